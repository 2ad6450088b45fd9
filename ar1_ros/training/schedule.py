"""Learning-rate schedule: linear warmup, then cosine decay to a floor (official min_lr 1e-6).

The official recipe names transformers' `cosine_warmup_with_min_lr` scheduler type, which is
`get_cosine_with_min_lr_schedule_with_warmup_lr_rate` (warmup_lr_rate=None, num_cycles=0.5).
`lr_factor` reproduces its lambda step for step, so the warmup convention is theirs:

- warmup: factor (step + 1) / warmup_steps for step < warmup_steps, so the first optimizer step
  already trains (1 / warmup_steps) and the last warmup step reaches 1.0;
- cosine: progress (step - warmup_steps + 1) / (total_steps - warmup_steps), so the floor
  min_ratio is reached on the last step, step total_steps - 1.

One deliberate difference: past total_steps transformers' cosine rises again (progress > 1);
here the factor stays at min_ratio (progress is clamped), so extra steps never raise the lr.
"""
import functools
import math

import torch


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Return the lr multiplier for optimizer step `step` (0-based), in [min_ratio, 1].

    Args:
        step: optimizer steps already taken (LambdaLR's last_epoch), >= 0.
        warmup_steps: length of the linear warmup, >= 0 (0: no warmup).
        total_steps: total optimizer steps of the run, > warmup_steps for a cosine phase.
        min_ratio: floor of the factor, as a fraction of the peak lr, in [0, 1].

    Returns:
        The factor that multiplies the group's peak lr.
    """
    if step < warmup_steps:
        return (step + 1.0) / max(1.0, float(warmup_steps))
    progress = (step - warmup_steps + 1.0) / max(1.0, float(total_steps - warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, cosine * (1.0 - min_ratio) + min_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                    min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a LambdaLR applying `lr_factor` to every param group, each with its own floor.

    The floor is absolute: a group whose peak lr is base_lr x m (m = its 'lr_multiplier',
    1.0 when absent) ends at min_lr x m, as transformers does with min_lr / base_lr for one
    group. So the vision tower at 0.1 x lr ends at 0.1 x min_lr, keeping the ratio between
    groups for the whole run.

    Args:
        optimizer: optimizer whose groups carry 'lr' (the peak) and optionally 'lr_multiplier'.
        warmup_steps: linear warmup length in optimizer steps, >= 0.
        total_steps: total optimizer steps of the run, >= 1.
        min_lr: the floor for multiplier 1.0, absolute (not a ratio), >= 0.

    Returns:
        The scheduler; call `scheduler.step()` after each `optimizer.step()`.

    Raises:
        ValueError: on negative steps or lr, or a floor above a group's peak lr.
    """
    if warmup_steps < 0 or total_steps < 1 or min_lr < 0:
        raise ValueError(f'bad schedule: warmup_steps={warmup_steps} (>= 0), '
                         f'total_steps={total_steps} (>= 1), min_lr={min_lr} (>= 0)')
    lambdas = []
    for group in optimizer.param_groups:
        peak = group.get('initial_lr', group['lr'])
        floor = min_lr * group.get('lr_multiplier', 1.0)
        if floor > peak:
            raise ValueError(f'min_lr x multiplier = {floor} exceeds the group peak lr {peak}')
        # peak 0 (a frozen-by-lr group) stays at 0 whatever the ratio.
        ratio = floor / peak if peak > 0 else 0.0
        lambdas.append(functools.partial(lr_factor, warmup_steps=warmup_steps,
                                         total_steps=total_steps, min_ratio=ratio))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
