"""BagReader faults test_bags.py does not cover: a type without definition, an unfinished MCAP."""
import sqlite3

from bags.drive_bag import Drive, write_drive_bag
import pytest
from rosbags.typesys import get_types_from_msg

from ar1_ros.data.bags import BagError, BagReader, BagWriter


def test_unknown_type_is_named(tmp_path):
    with BagWriter(tmp_path / 'c', 'sqlite3') as writer:
        writer.typestore.register(get_types_from_msg('int32 a', 'gone_msgs/msg/Thing'))
        writer.add_topic('/thing', 'gone_msgs/msg/Thing')
        writer.write('/thing', 10, writer.typestore.types['gone_msgs/msg/Thing'](a=1))
    database = next((tmp_path / 'c').glob('*.db3'))
    with sqlite3.connect(database) as connection:  # an older recorder stored no definitions
        connection.execute('delete from message_definitions')
    with BagReader(tmp_path / 'c') as reader, pytest.raises(
            BagError, match='unknown message type gone_msgs/msg/Thing on /thing'):
        reader.deserialize(next(reader.messages()))

def test_unfinished_mcap_is_read_up_to_its_cut(tmp_path):
    bag = write_drive_bag(tmp_path / 'b', Drive(duration_s=10.0))
    with BagReader(bag) as reader:
        everything = [(m.topic, m.log_ns, bytes(m.raw)) for m in reader.messages()]
    data = next(bag.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[:data.stat().st_size * 9 // 10])  # recorder killed
    seen = []

    def read_all(reader):
        for message in reader.messages():
            reader.deserialize(message)
            seen.append((message.topic, message.log_ns, bytes(message.raw)))

    with BagReader(bag) as reader:
        assert reader.recovered
        assert set(reader.topics) == {t for t, _, _ in everything}
        assert reader.message_count() == 706  # the complete chunks (writer's 1 MB chunks)
        with pytest.raises(BagError, match='never closed .* after the message at'):
            read_all(reader)
    assert seen == everything[:len(seen)]
    assert len(seen) == 706

