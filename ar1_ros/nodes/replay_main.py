"""`ar1 replay` in this process: rclpy init, the bag player, a summary, orderly shutdown."""
import time
from typing import Callable, Optional, Sequence

import rclpy

from ar1_ros.data.bags import BagError, BagReader
from ar1_ros.nodes.player import BagPlayer, PlayStats


def summary(stats: PlayStats, loops: int) -> str:
    """Return the one-line report of a play: messages per topic, duration, achieved rate."""
    total = sum(stats.published.values())
    rate = stats.bag_s / stats.wall_s if stats.wall_s > 0 else float('nan')
    topics = ', '.join(f'{t} {n}' for t, n in sorted(stats.published.items()))
    return (f'ar1 replay: {total} messages ({loops} play(s)), {stats.bag_s:.2f} s of bag in '
            f'{stats.wall_s:.2f} s (rate {rate:.2f}, latest message {stats.max_late_s * 1e3:.0f}'
            f' ms late): {topics}')


def _play(player: BagPlayer, loop: bool, report: Callable[[str], None]) -> None:
    while True:
        player.play()
        report(summary(player.stats, player.plays))
        if not loop:
            return


def _report_stop(player: Optional[BagPlayer], report: Callable[[str], None]) -> int:
    """Report the interrupted play's summary; return how many messages it published."""
    stats = player.stats if player is not None else None
    if stats is None:
        return 0
    report(summary(stats, player.plays))
    return sum(stats.published.values())


def _wait(player: BagPlayer, topics: Sequence[str], timeout_s: float, delay_s: float,
          warn: Callable[[str], None]) -> None:
    """Wait for subscribers on `topics` (at most timeout_s, then warn), then delay_s."""
    missing = player.wait_for_subscribers(topics, timeout_s) if topics else []
    if missing:
        warn(f'ar1 replay: no subscriber after {timeout_s:g} s on {", ".join(missing)}; '
             'playing anyway')
    time.sleep(delay_s)


def run_replay(bag, *, rate: float = 1.0, loop: bool = False,
               topics: Optional[Sequence[str]] = None, clock_hz: float = 40.0,
               start_offset_s: float = 0.0, delay_s: float = 0.0,
               wait_for: Sequence[str] = (), wait_timeout_s: float = 30.0,
               ros_args: Sequence[str] = (), report: Callable[[str], None] = lambda line: None,
               warn: Callable[[str], None] = lambda line: None) -> int:
    """Play `bag` (once, or until Ctrl-C with loop); return the exit code (2: bad input).

    report(line) receives the summary of each play, warn(line) every problem (the command
    line tool prints them to stdout and stderr). Before playing, it waits until each topic
    of `wait_for` has a subscriber (at most wait_timeout_s, then warns), then delay_s.
    """
    def fail(message: str) -> int:
        warn(f'ar1 replay: {message}')
        return 2

    try:
        reader = BagReader(bag)
    except BagError as exc:
        return fail(str(exc))
    rclpy.init(args=['ar1_replay', *ros_args])
    node = rclpy.create_node('ar1_replay')
    player, code = None, 0
    try:
        player = BagPlayer(node, reader, topics, rate, clock_hz, start_offset_s, warn=warn)
        _wait(player, wait_for, wait_timeout_s, delay_s, warn)
        _play(player, loop, report)
    except ValueError as exc:
        code = fail(str(exc))
    except BagError as exc:
        done = _report_stop(player, report)
        code = fail(f'{exc}; stopped after {done} messages')
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the player's Interrupted)
        _report_stop(player, report)
    finally:
        reader.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
