"""Producer routing through the C ABI: namespaces, the name server lookup URL, IPv6 and latency
fault tolerance, against real brokers. (The Rust suite covers each in depth, including the
paused-broker scenario of fault tolerance.)"""

import http.server
import threading

import pytest
import rmq

from conftest import unique_name


def test_namespace_wraps_the_topic_on_the_broker_and_not_in_results(make_producer, topic):
    ns = unique_name("pyns")[:40]
    inside = make_producer({"client.namespace": ns})
    outside = make_producer()
    with rmq.Message(topic, b"in a namespace") as msg:
        result = inside.send(msg)
    assert result.ok
    assert result.topic == topic
    with outside.view_message(result.offset_msg_id) as stored:
        assert stored.topic == f"{ns}%{topic}"
        assert stored.get_property("INSTANCE_ID") == ns
    with inside.view_message(result.offset_msg_id) as seen:
        assert seen.topic == topic


def test_bad_namespace_is_a_config_error(namesrv):
    with pytest.raises(rmq.ConfigError):
        rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pyg"), "client.namespace": "a%b"})


class _Lookup(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        if self.path != "/rocketmq/nsaddr":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_name_servers_from_a_lookup_url(namesrv, topic):
    handler = type("Lookup", (_Lookup,), {"body": namesrv.encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rocketmq/nsaddr"
        with rmq.Producer({"client.name-server-url": url, "producer.group": unique_name("pyg")}) as p:
            with rmq.Message(topic, b"found through the lookup") as msg:
                assert p.send(msg).ok
    finally:
        server.shutdown()
        server.server_close()


def test_ipv6_cluster_with_latency_fault_tolerance(v6_namesrv, topic):
    config = {
        "name-server": v6_namesrv,
        "producer.group": unique_name("pyg"),
        "producer.send-latency-fault-enable": "true",
    }
    brokers = set()
    with rmq.Producer(config) as p:
        for i in range(8):
            with rmq.Message(topic, f"over ipv6 {i}".encode()) as msg:
                result = p.send(msg)
            assert result.ok
            assert len(result.offset_msg_id) == 56, "IPv6 store host: 16-byte address in the id"
            brokers.add(result.broker_name)
            with p.view_message(result.offset_msg_id) as stored:
                assert stored.body == f"over ipv6 {i}".encode()
    assert brokers <= {"broker-a", "broker-b"}
    with pytest.raises(rmq.ConfigError):
        rmq.Producer({**config, "producer.send-latency-fault-enable": "yes"})
