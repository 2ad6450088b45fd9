"""`ar1 train --config config/train/<stage>.yaml`: SFT (vlm, expert) and GRPO from datasets.

One process: `ar1 train --config F`. Several GPUs or nodes: the same command under torchrun,
which sets RANK/WORLD_SIZE and makes the run data-parallel (DDP, or FSDP2 with
`--set train.strategy=fsdp`):

    torchrun --nproc-per-node 8 -m ar1_ros.cli.main train --config config/train/stage1.yaml

The final checkpoint's `model/` folder is an official AR1 checkpoint: `ar1 run`, `ar1 eval` and
`AR1Model.from_pretrained` load it unchanged.
"""
import argparse
from pathlib import Path

from ar1_ros.cli.common import fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 train`."""
    parser = subparsers.add_parser(
        'train', help='train AR1 from datasets built from bags (SFT stages, GRPO)',
        description='Train AR1: stage vlm (CoC + trajectory tokens, cross-entropy, optional '
                    'LoRA), stage expert (flow matching, frozen VLM) or grpo. Launch under '
                    'torchrun for several GPUs or nodes.')
    parser.add_argument('--config', type=Path, required=True, help='training YAML')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config value, e.g. optim.lr=1e-5')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the newest checkpoint in train.out_dir')
    parser.add_argument('--out', type=Path, default=None, help='override train.out_dir')
    parser.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    """Train; exit 0 on success, 1 when training failed, 2 for configuration errors."""
    from ar1_ros.training.config import TrainConfigError, load_train_config
    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f'train.out_dir={args.out.resolve()}')
    try:
        config = load_train_config(args.config, overrides)
    except TrainConfigError as exc:
        return fail('ar1 train', str(exc))
    from ar1_ros.data.dataset_shards import DatasetError
    from ar1_ros.model.config import CheckpointError
    from ar1_ros.training.checkpoints import ResumeError
    from ar1_ros.training.loop import Trainer
    out = Path(config.train.out_dir)
    if not args.resume and (out / 'latest').exists():
        return fail('ar1 train', f'{out} holds checkpoints already: pass --resume to '
                                 'continue, or choose another --out')
    try:
        trainer = Trainer(config, resume=args.resume)
    except (CheckpointError, DatasetError, ResumeError, ValueError, OSError) as exc:
        return fail('ar1 train', f'{type(exc).__name__}: {exc}')
    try:
        final = trainer.run()
    except KeyboardInterrupt:
        return fail('ar1 train', 'interrupted; resume from the last checkpoint with --resume', 1)
    if final is not None and trainer.ctx.rank == 0:
        print(f'ar1 train: {config.stage} done at step {trainer.step}; model: {final / "model"}')
    return 0
