"""Two producers in one process on two different clusters ($RMQ_NAMESRV with broker-a,
$RMQ_NAMESRV_2 with broker-b), with the same group and the same instance-name on purpose: the
same client id, told apart only by their name servers. Each send must land on its own cluster's
broker. (The Rust suite tests this in depth; this is the same scenario through the C ABI.)"""

import rmq

from conftest import unique_name

FIRST_BROKER = "broker-a"  # make test: the first cluster's broker name (the script's default)
SECOND_BROKER = "broker-b"  # make test: the second cluster's, RMQ_BROKER_NAME=broker-b


def test_same_named_producers_on_two_clusters_send_to_their_own_broker(namesrv, second_namesrv, topic):
    same = {"producer.group": unique_name("pyg", "two_clusters"), "instance-name": unique_name("pyi", "two_clusters")}
    p1 = rmq.Producer({**same, "name-server": namesrv})
    p2 = rmq.Producer({**same, "name-server": second_namesrv})
    with p1, p2:

        def send(who, producer, broker):
            body = f"{who} through python".encode()
            with rmq.Message(topic, body) as msg:
                result = producer.send(msg)
            assert result.broker_name == broker, f"{who} sent to {result.broker_name}, not its own cluster's {broker}"
            with producer.view_message(result.offset_msg_id) as stored:
                assert stored.body == body
            return result

        first = send("P1", p1, FIRST_BROKER)
        second = send("P2", p2, SECOND_BROKER)
        assert first.offset_msg_id[:16] != second.offset_msg_id[:16], "two brokers, two store addresses"
        p1.close()
        send("P2 after P1 closed", p2, SECOND_BROKER)
