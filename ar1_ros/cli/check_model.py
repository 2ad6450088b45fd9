"""`ar1 check-model DIR`: validate an AR1 checkpoint folder without loading its weights."""
import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 check-model`."""
    parser = subparsers.add_parser(
        'check-model', help='validate an AR1 checkpoint folder (config, backbone, tensors)',
        description='Check config.json, the backbone files and every tensor name and shape of '
                    'an AR1 checkpoint folder, reading only the safetensors headers.')
    parser.add_argument('checkpoint', type=Path, help='folder with config.json and safetensors')
    parser.add_argument('--vlm-path', type=Path, default=None,
                        help='local folder with the backbone config/tokenizer files')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 with the reason if the checkpoint would be refused."""
    from ar1_ros.model import CheckpointError
    from ar1_ros.model.report import check_checkpoint
    try:
        report = check_checkpoint(args.checkpoint, args.vlm_path)
    except CheckpointError as err:
        print(f'REFUSED {args.checkpoint}: {err}')
        return 1
    print(f'OK {report.folder}')
    print(f'  backbone     {report.backbone_type} from {report.backbone_folder} '
          f'({report.backbone_origin})')
    tokenizer = 'found' if report.has_tokenizer else 'MISSING: predict() needs --vlm-path'
    print(f'  tokenizer    {tokenizer}')
    print(f'  tensors      {report.tensor_count} stored as {", ".join(report.stored_dtypes)}')
    for name, count in report.parameters.items():
        print(f'  {name:<16} {count:>15,d} parameters')
    print('  expert       ' + ', '.join(f'{k} {v}' for k, v in report.expert.items()))
    return 0 if report.has_tokenizer else 1
