"""One side of the cross-process message test: publish or receive ar1_ros Trajectory/Reasoning.

    dds_peer.py talk   SPEC.json  publishes the messages described by SPEC at 10 Hz
    dds_peer.py listen OUT.json   writes the first Trajectory and Reasoning received, then exits

SPEC has the shape `message_to_dict` produces: {'trajectory': {...}, 'reasoning': {...}}.
Run as separate processes, so the messages cross DDS (FastDDS shared memory / UDP loopback).
"""
import argparse
import importlib
import json
from pathlib import Path
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ar1_ros.msg import Reasoning, Trajectory

TOPICS = {'trajectory': ('/ar1/test/trajectory', Trajectory),
          'reasoning': ('/ar1/test/reasoning', Reasoning)}
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.VOLATILE)


def message_to_dict(msg):
    """Return a message as nested dicts and lists of plain Python values."""
    if not hasattr(msg, 'get_fields_and_field_types'):
        return msg
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        out[name] = [message_to_dict(v) for v in value] if isinstance(value, list) else (
            message_to_dict(value))
    return out


def message_class(type_name):
    """Return the class of 'pkg/Name' or 'sequence<pkg/Name>' (None for primitive types)."""
    base = type_name.removeprefix('sequence<').removesuffix('>')
    if '/' not in base:
        return None
    package, name = base.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def dict_to_message(cls, values):
    """Build a `cls` message from the nested dict `message_to_dict` would return for it."""
    msg = cls()
    for name, type_name in cls.get_fields_and_field_types().items():
        if name not in values:
            raise KeyError(f'{cls.__name__}.{name} missing from spec')
        value, sub = values[name], message_class(type_name)
        if sub is not None:
            is_list = type_name.startswith('sequence<')
            value = [dict_to_message(sub, v) for v in value] if is_list else (
                dict_to_message(sub, value))
        setattr(msg, name, value)
    return msg


def talk(node, spec_path):
    """Publish the spec's messages every 0.1 s; the test terminates the process."""
    spec = json.loads(Path(spec_path).read_text())
    pubs = {key: (node.create_publisher(cls, topic, QOS), dict_to_message(cls, spec[key]))
            for key, (topic, cls) in TOPICS.items()}
    node.create_timer(0.1, lambda: [pub.publish(msg) for pub, msg in pubs.values()])
    return {}


def listen(node):
    """Subscribe to every topic; return the dict that collects the first message of each."""
    received = {}
    for key, (topic, cls) in TOPICS.items():
        node.create_subscription(
            cls, topic, lambda m, k=key: received.setdefault(k, message_to_dict(m)), QOS)
    return received


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('mode', choices=('talk', 'listen'))
    parser.add_argument('path')
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node(f'ar1_test_{args.mode}er')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received = talk(node, args.path) if args.mode == 'talk' else listen(node)
    deadline = time.monotonic() + args.timeout
    try:
        # A talker never completes `received`: it runs until terminated or the deadline.
        while len(received) < len(TOPICS) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    except (ExternalShutdownException, KeyboardInterrupt):
        pass  # rclpy's SIGTERM/SIGINT handler shut the context down: the test stopped us
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if args.mode == 'talk':
        return 0
    Path(args.path).write_text(json.dumps(received))
    return 0 if len(received) == len(TOPICS) else 1


if __name__ == '__main__':
    sys.exit(main())
