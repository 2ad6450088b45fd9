"""Reading an MCAP bag that was never closed (a recorder killed mid-write: no summary, no footer).

`rosbags` needs the summary section at the end of the file, so such a bag cannot be opened at
all, yet everything up to the cut is intact. This reader streams the file's records front to
back with the `mcap` library (schemas, channels, messages, chunks decompressed as they come) and
stops at the first incomplete record. It offers the part of the AnyReader interface BagReader
uses, so everything downstream works on the recovered part. Messages come in file order, which
is the recorder's arrival order (log-time order up to the writer's chunk interleaving).
"""
import contextlib
from pathlib import Path
import struct
from typing import Dict, Iterator, List, Optional, Tuple

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.typesys import get_types_from_msg

from ar1_ros.data.typestore import ar1_typestore


class TruncatedMcap:
    """The readable part of an unfinished MCAP file. `fault` says where and why it ended."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.stack = True  # BagReader's "is open" check
        self.connections: List[Connection] = []
        self.typestore = ar1_typestore()
        self.fault: Optional[str] = None
        self._by_channel: Dict[int, Connection] = {}
        counts, times = self._scan()
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]
        self._by_channel = {c.id: c for c in self.connections}
        self.start_time, self.end_time = (times[0], times[1] + 1) if times else (0, 1)

    def _records(self) -> Iterator[object]:
        """Yield the file's records; at an incomplete or corrupt record, set `fault` and stop."""
        from mcap.exceptions import McapError
        from mcap.stream_reader import StreamReader
        with open(self.path, 'rb') as stream:
            try:
                yield from StreamReader(stream, skip_magic=False).records
            # struct.error: a file shorter than the 8-byte magic (cut right after creation).
            except (McapError, EOFError, ValueError, OSError, struct.error) as exc:
                self.fault = f'{type(exc).__name__}: {exc}'.rstrip(': ')

    def _scan(self) -> Tuple[Dict[int, int], Optional[Tuple[int, int]]]:
        from mcap.records import Channel, Message, Schema
        schemas, counts, first, last = {}, {}, None, None
        for record in self._records():
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel) and record.schema_id in schemas:
                self._add_channel(record, schemas[record.schema_id])
            elif isinstance(record, Message):
                counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                first = record.log_time if first is None else min(first, record.log_time)
                last = record.log_time if last is None else max(last, record.log_time)
        return counts, (None if first is None else (first, last))

    def _add_channel(self, channel, schema) -> None:
        text = schema.data.decode('utf-8', 'replace')
        if schema.encoding == 'ros2msg' and schema.name not in self.typestore.types:
            # An odd schema only makes that topic unreadable (deserialize names the type).
            with contextlib.suppress(Exception):
                self.typestore.register(get_types_from_msg(text, schema.name))
        digest = ''
        with contextlib.suppress(Exception):  # the RIHS01 hash copies need (BagWriter)
            digest = self.typestore.hash_rihs01(schema.name)
        self.connections.append(Connection(
            id=channel.id, topic=channel.topic, msgtype=schema.name,
            msgdef=MessageDefinition(MessageDefinitionFormat.MSG, text), digest=digest,
            msgcount=0, ext=ConnectionExtRosbag2('cdr', []), owner=self))

    def messages(self, connections=(), start: Optional[int] = None,
                 stop: Optional[int] = None) -> Iterator[Tuple[Connection, int, bytes]]:
        """Yield (connection, log time, raw) in file order, filtered like AnyReader.messages."""
        from mcap.records import Message
        wanted = {c.id for c in connections} if connections else None
        for record in self._records():
            if not isinstance(record, Message):
                continue
            if wanted is not None and record.channel_id not in wanted:
                continue
            if (start is not None and record.log_time < start) or (
                    stop is not None and record.log_time >= stop):
                continue
            connection = self._by_channel.get(record.channel_id)
            if connection is not None:
                yield connection, record.log_time, record.data

    def deserialize(self, raw: bytes, msgtype: str):
        """Return the message object of CDR bytes `raw` (types from the file's schemas)."""
        return self.typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        """Nothing stays open between reads."""
        self.stack = None
