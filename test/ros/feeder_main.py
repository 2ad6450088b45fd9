"""A feeder process: synthetic cameras, odometry and /clock until SIGINT, then its stamps as JSON.

    python test/ros/feeder_main.py OUT.json [--speedup 2]

Sim time starts at 1000 s and advances in 10 ms steps; odometry every 20 ms, the four cameras
every 100 ms (Feeder's arc drive). On SIGINT or SIGTERM it stops and writes
{"camera": [stamps ns], "odom": [...], "speed": m/s, "curvature": 1/m} to OUT.json.
"""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ros.harness import Harness  # noqa: E402 - after the path set-up above


def main(out_path, speedup):
    stop = []
    harness = Harness(overrides=None, sim_time=True, listen=False)
    # Installed after rclpy's: its handlers would shut the context down mid-publish.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        while not stop:
            harness.drive(0.1, speedup=speedup)
    finally:
        feeder = harness.feeder
        result = dict(feeder.published, speed=feeder.speed, curvature=feeder.curvature)
        with open(out_path, 'w') as f:
            json.dump(result, f)
        harness.close()


if __name__ == '__main__':
    speedup = float(sys.argv[sys.argv.index('--speedup') + 1]) if '--speedup' in sys.argv else 2.0
    main(sys.argv[1], speedup)
