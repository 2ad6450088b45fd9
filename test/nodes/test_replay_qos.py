"""`ar1 replay` offers each topic the QoS its publishers offered when it was recorded."""
import pytest
import rclpy
from ros.synthetic import NS

from ar1_ros.data.bags import BagReader

pytestmark = pytest.mark.ros


def test_recorded_qos_is_offered(tmp_path):
    from rosbags import interfaces as qos
    from rosbags.rosbag2 import Writer

    from ar1_ros.data.typestore import ar1_typestore
    from ar1_ros.nodes.player import BagPlayer

    def offer(reliability, durability):
        never = qos.QosTime(0, 0)
        return qos.Qos(qos.QosHistory.KEEP_LAST, 1, qos.QosReliability[reliability],
                       qos.QosDurability[durability], never, never,
                       qos.QosLiveliness.AUTOMATIC, never, False)
    reliable_latched, best_effort = (offer('RELIABLE', 'TRANSIENT_LOCAL'),
                                     offer('BEST_EFFORT', 'VOLATILE'))
    offers = {'/latched': [reliable_latched], '/sensor': [best_effort],
              '/mixed': [reliable_latched, best_effort], '/plain': [], '/tf_static': []}
    store, writer = ar1_typestore(), Writer(tmp_path / 'qos', version=9)
    writer.open()
    for topic, offered in offers.items():
        connection = writer.add_connection(topic, 'std_msgs/msg/String', typestore=store,
                                           offered_qos_profiles=offered)
        writer.write(connection, NS, store.serialize_cdr(store.types['std_msgs/msg/String'](
            data=topic), 'std_msgs/msg/String'))
    writer.close()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('replay_qos_probe', context=context)
    try:
        with BagReader(tmp_path / 'qos') as reader:
            player = BagPlayer(node, reader)
            got = {t: (player.qos(t).reliability.name, player.qos(t).durability.name,
                       player.qos(t).depth) for t in offers}
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert got == {'/latched': ('RELIABLE', 'TRANSIENT_LOCAL', 100),
                   '/sensor': ('BEST_EFFORT', 'VOLATILE', 100),
                   '/mixed': ('BEST_EFFORT', 'VOLATILE', 100),
                   '/plain': ('RELIABLE', 'VOLATILE', 100),
                   '/tf_static': ('RELIABLE', 'TRANSIENT_LOCAL', 100)}
