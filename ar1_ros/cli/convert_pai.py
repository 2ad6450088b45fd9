"""`ar1 convert-pai`: NVIDIA PhysicalAI-AV clips to rosbag2 bags the node and `ar1 eval` read."""
import argparse
from pathlib import Path
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ar1 convert-pai`."""
    parser = subparsers.add_parser(
        'convert-pai', help='convert PhysicalAI-AV clips into MCAP bags (our topics)',
        description='Convert clips of a local PhysicalAI-AV dataset tree (features.csv, '
                    'clip_index.parquet, camera/calibration/labels chunks) into one rosbag2 '
                    'bag per clip: JPEG images, CameraInfo, odometry and /tf_static.')
    parser.add_argument('--dataset', type=Path, required=True,
                        help='dataset folder (hf download --local-dir, or a hub cache '
                             'snapshots/<revision> folder)')
    parser.add_argument('--out', type=Path, required=True, help='folder for the bags')
    clips = parser.add_mutually_exclusive_group(required=True)
    clips.add_argument('--clip', nargs='+', metavar='ID', help='clip ids')
    clips.add_argument('--clip-list', type=Path, help='file with one clip id per line')
    parser.add_argument('--cameras', nargs='+', default=None, metavar='NAME',
                        help='PAI camera names (default: the 4 AR1 cameras)')
    parser.add_argument('--camera-hz', type=float, default=0.0,
                        help='keep at most this many frames per second (default: all)')
    parser.add_argument('--jpeg-quality', type=int, default=90)
    parser.add_argument('--epoch', type=float, default=None, metavar='S',
                        help='ROS time of clip time 0 [s] (default 1.7e9)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--overwrite', action='store_true', help='replace existing bags')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace):
    from ar1_ros.data.pai.convert import AR1_CAMERAS, CAMERA_IDS, DEFAULT_EPOCH_S, ConvertOptions
    cameras = tuple(args.cameras or AR1_CAMERAS)
    unknown = sorted(set(cameras) - set(CAMERA_IDS))
    if unknown:
        raise ValueError(f'unknown camera(s) {unknown}; known: {list(CAMERA_IDS)}')
    if not 1 <= args.jpeg_quality <= 100 or args.camera_hz < 0:
        raise ValueError('--jpeg-quality must be 1..100 and --camera-hz >= 0')
    return ConvertOptions(cameras, args.camera_hz, args.jpeg_quality,
                          DEFAULT_EPOCH_S if args.epoch is None else args.epoch,
                          args.storage, args.overwrite)


def _clip_ids(args: argparse.Namespace):
    if args.clip:
        return list(args.clip)
    lines = args.clip_list.read_text().split()
    return [line.strip() for line in lines if line.strip()]


def run(args: argparse.Namespace) -> int:
    """Convert the clips; exit 0, 1 when a clip failed (others converted), 2 on usage."""
    from tqdm import tqdm

    from ar1_ros.data.pai.convert import convert_clips
    from ar1_ros.data.pai.snapshot import PaiError, PaiSnapshot
    try:
        options, clip_ids = _options(args), _clip_ids(args)
        snapshot = PaiSnapshot(args.dataset)
    except (ValueError, OSError, PaiError) as exc:
        print(f'ar1 convert-pai: {exc}', file=sys.stderr)
        return 2
    bars = []

    def progress(clip_id):
        bars.append(tqdm(desc=clip_id[:13], unit='msg', disable=args.no_progress, leave=False))
        return bars[-1].update

    summaries, errors = convert_clips(snapshot, clip_ids, args.out, options, progress)
    for bar in bars:
        bar.close()
    for s in summaries:
        worst = max(s.fit_error_px.values(), default=0.0)
        print(f'{s.clip_id}: {s.bag} ({sum(s.frames.values())} frames, {s.odometry} odometry, '
              f'{s.span_s[1] - s.span_s[0]:.1f} s; CameraInfo fit error <= {worst:.2f} px)')
        for note in s.notes:
            print(f'  note: {note}')
    for clip_id, error in errors.items():
        print(f'ar1 convert-pai: {clip_id}: {error}', file=sys.stderr)
    return 1 if errors else 0
