"""`ar1 train`: one loop for the three stages, on one process or many under torchrun.

The engine is PyTorch's own: torchrun starts the processes, DistributedDataParallel (or FSDP2
`fully_shard`) synchronises the gradients, DistributedSampler splits the data. Everything the
stages differ in is the objective module (training.objectives, training.grpo) and which
parameters are trainable (training.setup).
"""
import contextlib
import functools
import itertools
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch
import yaml

from ar1_ros.training import checkpoints as ckpt
from ar1_ros.training.config import TrainConfig
from ar1_ros.training.distributed import (
    all_reduce_mean,
    barrier,
    distributed_sampler,
    full_state_dict,
    init_distributed,
    is_main,
    seed_everything,
    shutdown,
    wrap_model,
)
from ar1_ros.training.grpo import GrpoObjective
from ar1_ros.training.objectives import ExpertObjective, VlmObjective
from ar1_ros.training.optim import build_optimizer
from ar1_ros.training.samples import PromptSamples, SampleSequences
from ar1_ros.training.schedule import build_scheduler
from ar1_ros.training.sequences import collate
from ar1_ros.training.setup import autocast_dtype, load_start_model, prepare_trainable
from ar1_ros.training.state import load_trainer_state, save_trainer_state
from ar1_ros.training.tracking import Tracker

# Transformer blocks FSDP shards one by one (Qwen3-VL and Qwen2.5-VL text and vision blocks).
SHARD_MODULES = ('Qwen3VLTextDecoderLayer', 'Qwen3VLVisionBlock', 'Qwen2_5_VLDecoderLayer',
                 'Qwen2_5_VLVisionBlock')


def _as_list(batch: list) -> list:
    return list(batch)


class Trainer:
    """Builds model, data, engine and optimizer from a TrainConfig; `run()` trains."""

    def __init__(self, config: TrainConfig, resume: bool = False):
        self.config, self.out = config, Path(config.train.out_dir)
        self.ctx = init_distributed(config.model.device)
        seed_everything(config.train.seed, self.ctx.rank)
        self.amp = autocast_dtype(config, self.ctx.device)  # refused before any loading
        self.model = load_start_model(config, self.ctx.device)
        self.trainable = prepare_trainable(self.model, config)
        self.resume_from = ckpt.latest_checkpoint(self.out) if resume else None
        if self.resume_from is not None:
            ckpt.load_trainable(self.resume_from, self.model.network, self.trainable)
        self.objective = self._objective()
        self.dataset, self.loader = self._data()
        self.engine = wrap_model(self.objective, self.ctx, config.train.strategy,
                                 shard_modules=SHARD_MODULES)
        self._optimizer()
        self.step, self.epoch, self.batches_done = 0, 0, 0
        self.history: List[Dict[str, float]] = []  # logs of every step of this process's run
        if self.resume_from is not None:
            state = load_trainer_state(self.resume_from / ckpt.STATE, optimizer=self.optimizer,
                                       scheduler=self.scheduler, ctx=self.ctx)
            self.step, self.epoch, self.batches_done = (state.step, state.epoch,
                                                        state.batch_in_epoch)

    def _objective(self) -> torch.nn.Module:
        c, net = self.config, self.model.network
        if c.stage == 'vlm':
            return VlmObjective(net, self.model.preprocessor.ids, c.loss.traj_weight,
                                c.loss.other_weight)
        if c.stage == 'expert':
            return ExpertObjective(net, c.loss.action_attention)
        return GrpoObjective(net, self.model.preprocessor, c.grpo)

    def _data(self):
        c = self.config
        kind = PromptSamples if c.stage == 'grpo' else SampleSequences
        dataset = kind(c.data.train, self.model, c.data.use_labels, c.data.max_samples)
        collate_fn = (_as_list if c.stage == 'grpo' else
                      functools.partial(collate, pad_id=self.model.preprocessor.ids.pad))
        self.sampler = distributed_sampler(dataset, self.ctx, shuffle=True, seed=c.train.seed)
        # The loader draws a worker seed from its generator at every epoch: its own one, so
        # the global RNG (flow-matching noise, rollouts) is the same on resume as straight on.
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=c.train.batch_size, sampler=self.sampler, collate_fn=collate_fn,
            num_workers=c.data.num_workers,
            generator=torch.Generator().manual_seed(c.train.seed + self.ctx.rank))
        return dataset, loader

    def _optimizer(self) -> None:
        o, t = self.config.optim, self.config.train
        self.optimizer = build_optimizer(
            self.model.network, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
            eps=o.eps, lr_multipliers=o.lr_multipliers)
        per_epoch = math.ceil(len(self.loader) / t.grad_accum)
        self.total_steps = t.max_steps or t.epochs * per_epoch
        self.scheduler = build_scheduler(self.optimizer, warmup_steps=o.warmup_steps,
                                         total_steps=self.total_steps, min_lr=o.min_lr)

    def groups(self) -> Iterator[List]:
        """Yield lists of grad_accum micro-batches, epoch after epoch, from the resume point."""
        size = self.config.train.batch_size
        while True:
            start = min(self.batches_done * size, self.sampler.num_samples)
            self.sampler.set_epoch(self.epoch, start=start)
            batches = iter(self.loader)
            while group := list(itertools.islice(batches, self.config.train.grad_accum)):
                self.batches_done += len(group)
                yield group
            self.epoch, self.batches_done = self.epoch + 1, 0

    def train_step(self, group: List) -> Dict[str, float]:
        """One optimizer step over a group of micro-batches; returns averaged logs."""
        self.optimizer.zero_grad(set_to_none=True)
        logs: Dict[str, float] = {}
        for i, batch in enumerate(group):
            if hasattr(batch, 'to'):
                batch = batch.to(self.ctx.device)
            sync = i == len(group) - 1 or not hasattr(self.engine, 'no_sync')
            with (self.engine.no_sync() if not sync else contextlib.nullcontext()), \
                    torch.autocast(self.ctx.device.type, dtype=self.amp or torch.float32,
                                   enabled=self.amp is not None):
                loss, batch_logs = self.engine(batch)
                (loss / len(group)).backward()
            for key, value in batch_logs.items():
                logs[key] = logs.get(key, 0.0) + value / len(group)
        params = [p for p in self.model.network.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)
        lr = self.optimizer.param_groups[0]['lr']  # the rate this step used
        self.optimizer.step()
        self.scheduler.step()
        logs.update(grad_norm=float(norm), lr=lr)
        return {k: all_reduce_mean(v, self.ctx) for k, v in logs.items()}

    def run(self) -> Optional[Path]:
        """Train to total_steps; return the final checkpoint folder (on every rank)."""
        c = self.config
        if is_main(self.ctx):
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / 'train_config.yaml').write_text(yaml.safe_dump(c.to_dict()))
        tracker = Tracker(self.out / 'tensorboard', enabled=is_main(self.ctx),
                          total_steps=self.total_steps, desc=c.stage,
                          show_progress=c.train.progress and is_main(self.ctx),
                          initial_step=self.step)
        final = self.resume_from
        with tracker:
            for group in self.groups():
                if self.step >= self.total_steps:
                    break
                logs = self.train_step(group)
                self.step += 1
                self.history.append(logs)
                tracker.advance()
                if self.step % c.train.log_every == 0 or self.step == self.total_steps:
                    tracker.log(self.step, {f'{c.stage}/{k}': v for k, v in logs.items()})
                if self.step % c.train.save_every == 0 or self.step == self.total_steps:
                    final = self.save()
        shutdown(self.ctx)
        return final

    def save(self) -> Path:
        """Write a checkpoint after the current step (every rank takes part)."""
        folder = ckpt.partial_folder(self.out, self.step)
        state = full_state_dict(self.engine, self.ctx)
        if is_main(self.ctx):
            folder.mkdir(parents=True, exist_ok=True)
            net_state = {k[len('net.'):]: v for k, v in state.items() if k.startswith('net.')}
            lora = self.config.lora
            ckpt.write_model(folder, self.model, net_state, self.trainable,
                             lora.alpha / lora.r if lora.enabled else None)
        barrier(self.ctx)
        save_trainer_state(folder / ckpt.STATE, optimizer=self.optimizer,
                           scheduler=self.scheduler, step=self.step, epoch=self.epoch,
                           batch_in_epoch=self.batches_done,
                           extra={'stage': self.config.stage}, ctx=self.ctx)
        if is_main(self.ctx):
            ckpt.publish(self.out, self.step, self.config.train.keep_last)
        barrier(self.ctx)
        return self.out / 'checkpoints' / ckpt.checkpoint_name(self.step)


def train(config: TrainConfig, resume: bool = False) -> Optional[Path]:
    """Train with `config`; returns the final checkpoint folder."""
    return Trainer(config, resume).run()

