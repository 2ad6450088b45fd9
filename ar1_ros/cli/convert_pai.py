"""`ar1 convert-pai`: NVIDIA PhysicalAI-AV clips to rosbag2 bags the node and `ar1 eval` read."""
import argparse
import os
from pathlib import Path
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 convert-pai`."""
    parser = subparsers.add_parser(
        'convert-pai', help='convert PhysicalAI-AV clips into MCAP bags (our topics)',
        description='Convert clips of a local PhysicalAI-AV dataset (features.csv, '
                    'clip_index.parquet, camera/calibration/labels chunks) into one rosbag2 '
                    'bag per clip: JPEG images, CameraInfo, odometry and /tf_static. Never '
                    'touches the network.')
    parser.add_argument('--dataset', type=Path, required=True,
                        help='dataset tree (hf download --local-dir) or Hugging Face hub cache')
    parser.add_argument('--revision', default=None,
                        help='hub cache only: commit or ref of the snapshot (default: main, or '
                             'the only snapshot)')
    parser.add_argument('--out', type=Path, required=True,
                        help='folder for the bags (<out>/<clip_id>/) and summaries '
                             '(<out>/<clip_id>.json)')
    clips = parser.add_mutually_exclusive_group(required=True)
    clips.add_argument('--clip', nargs='+', metavar='ID', help='clip ids')
    clips.add_argument('--clip-list', type=Path, help='file with one clip id per line')
    parser.add_argument('--cameras', nargs='+', default=None, metavar='NAME',
                        help='PAI camera names (default: the 4 AR1 cameras)')
    parser.add_argument('--camera-hz', type=float, default=0.0,
                        help='keep the frame nearest to each 1/HZ tick (default: every frame)')
    parser.add_argument('--jpeg-quality', type=int, default=90, help='1..100 (default 90)')
    parser.add_argument('--epoch', type=float, default=None, metavar='S',
                        help='ROS time of clip time 0 [s] (default 1.7e9)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--overwrite', action='store_true', help='replace existing bags')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace):
    from ar1_ros.data.pai.convert import AR1_CAMERAS, DEFAULT_EPOCH_S, ConvertOptions
    return ConvertOptions(tuple(args.cameras or AR1_CAMERAS), args.camera_hz, args.jpeg_quality,
                          DEFAULT_EPOCH_S if args.epoch is None else args.epoch,
                          args.storage, args.overwrite)


def _clip_ids(args: argparse.Namespace):
    ids = list(args.clip) if args.clip else [
        line.split('#')[0].strip() for line in args.clip_list.read_text().splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f'{args.clip_list}: no clip ids')
    return ids


def _report(summaries, errors) -> None:
    for s in summaries:
        frames = sum(c['frames'] for c in s.cameras.values())
        print(f'{s.clip_id}: {s.bag} ({frames} frames, {s.odometry} odometry, '
              f'{s.span_s[1] - s.span_s[0]:.1f} s; CameraInfo fit error <= '
              f'{s.worst_fit_px:.2f} px)')
        for note in s.notes:
            print(f'  note: {note}')
    for clip_id, error in errors.items():
        print(f'ar1 convert-pai: {clip_id}: {error}', file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Convert the clips; exit 0, 1 when some clips failed (others converted), 2 when none was."""
    # The devkit imports huggingface_hub, which reads this once at import: no hub calls ever.
    os.environ['HF_HUB_OFFLINE'] = '1'
    from tqdm import tqdm

    from ar1_ros.data.pai.convert import convert_clips
    from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot
    try:
        options, clip_ids = _options(args), _clip_ids(args)
        snapshot = PaiSnapshot(args.dataset, args.revision)
    except (ValueError, OSError, PaiError) as exc:
        print(f'ar1 convert-pai: {exc}', file=sys.stderr)
        return 2
    bars = []

    def progress(clip_id, total):
        for bar in bars:  # the previous clip's bar is done
            bar.close()
        bars.append(tqdm(desc=clip_id[:13], total=total, unit='msg', disable=args.no_progress))
        return bars[-1].update

    try:
        summaries, errors = convert_clips(snapshot, clip_ids, args.out, options, progress)
    finally:
        for bar in bars:
            bar.close()
    _report(summaries, errors)
    if errors:
        return 1 if summaries else 2
    return 0
