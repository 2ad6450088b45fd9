"""Run tracking on rank 0: TensorBoard scalars and a tqdm progress bar; silent elsewhere."""
from pathlib import Path
from typing import Mapping, Optional

from tqdm import tqdm


class Tracker:
    """TensorBoard writer (when enabled) plus a progress bar (when shown), as one object.

    Other ranks construct it with enabled=False and show_progress=False and may call every
    method: they do nothing, so the trainer needs no rank checks around logging.

    Args:
        log_dir: TensorBoard folder (created); event files land directly in it.
        enabled: write TensorBoard events (rank 0 only).
        total_steps: the bar's total, in optimizer steps.
        desc: the bar's label, e.g. 'sft'.
        show_progress: draw a tqdm bar on stderr (rank 0 only).
        initial_step: where the bar starts, for a resumed run.
    """

    def __init__(self, log_dir, *, enabled: bool, total_steps: int, desc: str,
                 show_progress: bool, initial_step: int = 0):
        self.writer = None
        if enabled:
            # Imported here: ranks that never log do not load tensorboard.
            from torch.utils.tensorboard import SummaryWriter
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(log_dir))
        self.bar: Optional[tqdm] = None
        if show_progress:
            self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc,
                            dynamic_ncols=True)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record scalars (e.g. {'train/loss': 0.41, 'train/lr': 1e-4}) at `step`.

        Tags are TensorBoard's; the bar's postfix shows each tag's last part, 4 digits.
        """
        values = {tag: float(value) for tag, value in scalars.items()}
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, global_step=step)
        if self.bar is not None:
            self.bar.set_postfix({t.rsplit('/', 1)[-1]: f'{v:.4g}' for t, v in values.items()},
                                 refresh=False)

    def advance(self, n: int = 1) -> None:
        """Move the progress bar by n optimizer steps."""
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        """Flush and close the event file and the bar (idempotent)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> 'Tracker':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
