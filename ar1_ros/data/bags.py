"""rosbag2 bags (sqlite3 and MCAP) read and written with the `rosbags` library: no ROS install.

Messages come out in log-time order as raw CDR bytes plus their type, so a player can publish
them unchanged and a reader can deserialize only what it needs. Every fault a bag can have (a
missing or truncated file, a corrupt database, a type without definition) becomes a BagError
whose message names the bag and, while reading, the last good message time, so callers can keep
what they computed before it.
"""
import dataclasses
from pathlib import Path
import shutil
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from ar1_ros.data.mcap_recovery import TruncatedMcap
from ar1_ros.data.typestore import ar1_typestore
from ar1_ros.runtime.types import NS_PER_S

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


class BagError(RuntimeError):
    """A bag cannot be opened or read on; the message says which bag and why."""


@dataclasses.dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic, type (pkg/msg/Name), log time [ns] and CDR bytes."""

    topic: str
    msgtype: str
    log_ns: int
    raw: bytes
    connection: object  # rosbags.interfaces.Connection, for deserialize and copying


def _where(log_ns: Optional[int]) -> str:
    return ('before the first message' if log_ns is None
            else f'after the message at {log_ns / NS_PER_S:.3f} s')


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f'{type(exc).__name__}: {text}' if type(exc).__name__ not in text else text


class BagReader:
    """One rosbag2 recording (a folder with metadata.yaml, or a ROS 1 .bag), opened to read.

    Use as a context manager. Types come from the definitions stored in the bag, with the
    ROS 2 Kilted types and ours as a fallback for bags that stored none.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'{self.path}: no such bag')
        self.recovered = False  # an unfinished MCAP read up to its cut (mcap_recovery)
        try:
            self._reader = AnyReader([self.path], default_typestore=ar1_typestore())
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - every library fault becomes one clear error
            self._reader = self._recover(exc)
            if self._reader is None:
                raise BagError(f'{self.path}: cannot open as a rosbag2 bag '
                               f'({_describe(exc)})') from exc
            self.recovered = True

    def _recover(self, exc: Exception):
        """Return a TruncatedMcap when the bag is one MCAP file without its end, else None."""
        files = [self.path] if self.path.suffix == '.mcap' else sorted(self.path.glob('*.mcap'))
        if len(files) != 1 or 'magic' not in str(exc).lower():
            return None
        recovered = TruncatedMcap(files[0])
        return recovered if recovered.connections else None

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag (idempotent)."""
        if self._reader is not None and self._reader.stack is not None:
            self._reader.close()
        self._reader = None

    @property
    def topics(self) -> Dict[str, str]:
        """Return {topic: message type} of every topic in the bag."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def start_ns(self) -> int:
        """Return the log time of the first message [ns]."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Return the log time of the last message [ns]."""
        return max(int(self._reader.end_time) - 1, self.start_ns)

    def message_count(self, topic: Optional[str] = None) -> int:
        """Return the number of messages of `topic` (all topics when None), from the index."""
        return sum(c.msgcount for c in self._reader.connections
                   if topic is None or c.topic == topic)

    def require(self, topic: str, msgtypes: Iterable[str]) -> str:
        """Return the type of `topic`; raise BagError if it is absent or of another type."""
        msgtypes = tuple(msgtypes)
        found = self.topics.get(topic)
        if found is None:
            listing = ', '.join(f'{t} ({m})' for t, m in sorted(self.topics.items()))
            raise BagError(f'{self.path}: no topic {topic}; the bag has: {listing or "nothing"}')
        if found not in msgtypes:
            raise BagError(f'{self.path}: topic {topic} is {found}, expected '
                           f'{" or ".join(msgtypes)}')
        return found

    def messages(self, topics: Optional[Sequence[str]] = None,
                 start_ns: Optional[int] = None,
                 stop_ns: Optional[int] = None) -> Iterator[BagMessage]:
        """Yield the messages of `topics` (all when None) in log-time order, [start, stop).

        A read fault raises BagError after every message before it has been yielded.
        """
        connections = [c for c in self._reader.connections
                       if topics is None or c.topic in topics]
        if not connections:
            return
        last = None
        try:
            for connection, log_ns, raw in self._reader.messages(connections, start_ns, stop_ns):
                last = log_ns
                yield BagMessage(connection.topic, connection.msgtype, int(log_ns), raw,
                                 connection)
        except Exception as exc:  # noqa: BLE001 - sqlite/mcap/lz4 faults alike
            raise BagError(f'{self.path}: read failed {_where(last)} ({_describe(exc)}); the '
                           f'bag is corrupt or truncated') from exc
        fault = getattr(self._reader, 'fault', None)
        if fault:
            raise BagError(f'{self.path}: the bag was never closed (no MCAP summary); read up '
                           f'to its cut, which comes {_where(last)} ({fault}); the bag is '
                           f'truncated')

    def deserialize(self, message: BagMessage):
        """Return the message object of `message` (fields as in rclpy; arrays as numpy)."""
        try:
            return self._reader.deserialize(message.raw, message.msgtype)
        except KeyError as exc:
            raise BagError(f'{self.path}: unknown message type {message.msgtype} on '
                           f'{message.topic}: the bag stores no definition of it and it is not '
                           f'a ROS 2 Kilted or ar1_ros type') from exc
        except Exception as exc:  # noqa: BLE001 - bad CDR
            raise BagError(f'{self.path}: cannot decode a {message.msgtype} on {message.topic} '
                           f'at {message.log_ns / NS_PER_S:.3f} s ({_describe(exc)})') from exc


class BagWriter:
    """A new rosbag2 bag (MCAP by default) written message by message.

    Types are ours and ROS 2 Kilted's; add_topic(copy_from=connection) takes the definition of a
    recorded topic instead, so any recorded type can be copied through unchanged.
    """

    def __init__(self, path, storage: str = 'mcap', overwrite: bool = False):
        self.path = Path(path)
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {sorted(STORAGES)}, got {storage!r}')
        if self.path.exists():
            if not overwrite:
                raise BagError(f'{self.path} exists; choose another output or remove it')
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.typestore = ar1_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: Dict[str, Tuple[object, str]] = {}

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (index, metadata.yaml); idempotent."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def has_topic(self, topic: str) -> bool:
        """Return whether `topic` has been added."""
        return topic in self._connections

    def add_topic(self, topic: str, msgtype: str, copy_from=None) -> None:
        """Add `topic` of `msgtype`; copy_from: a recorded Connection whose definition to use."""
        if topic in self._connections:
            return
        if copy_from is not None and copy_from.msgdef.data and copy_from.digest:
            connection = self._writer.add_connection(
                topic, msgtype, msgdef=copy_from.msgdef.data, rihs01=copy_from.digest)
        else:
            connection = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self._connections[topic] = (connection, msgtype)

    def write_raw(self, topic: str, log_ns: int, raw) -> None:
        """Write CDR bytes `raw` on an added topic at log time `log_ns`."""
        self._writer.write(self._connections[topic][0], int(log_ns), raw)

    def write(self, topic: str, log_ns: int, message) -> None:
        """Serialize a `rosbags` message object of the topic's type and write it."""
        connection, msgtype = self._connections[topic]
        self._writer.write(connection, int(log_ns),
                           self.typestore.serialize_cdr(message, msgtype))
