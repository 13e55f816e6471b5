"""Message trace of batches, oneway sends and transaction ends against a real broker, as the Java
client writes them: a batch is one Pub record whose message id is the batch's ids joined by
commas (its trace key), with "null" tags and keys; a oneway send leaves no record; ending a
transaction leaves an EndTransaction record (message type 2, the transaction id, the state's Java
name, whether it answered a check)."""

import rmq

from conftest import unique_name, wait_for

WITHIN = 90  # seconds; a failure bound, never a timing assumption


def records(reader, key, kind):
    """The records of type kind in RMQ_SYS_TRACE_TOPIC, found by trace key, naming key."""
    out = []
    for m in reader.query_message("RMQ_SYS_TRACE_TOPIC", key):
        for record in m.body.decode().split("\x02"):
            fields = record.split("\x01")
            if fields[0] == kind and key in fields:
                out.append(fields)
    return out


def test_a_batch_is_one_pub_record_and_a_oneway_send_none(namesrv, topic):
    group = unique_name("pytbp")
    oneway_key = unique_name("oneway")
    cfg = {"name-server": namesrv, "producer.group": group, "client.trace-enabled": "true"}
    with rmq.Producer(cfg) as p:
        p.send(rmq.Message(topic, b"first"))  # the route, so the oneway send is not the first
        p.send_oneway(rmq.Message(topic, b"oneway", keys=oneway_key))
        r = p.send_batch([rmq.Message(topic, f"batched-{i}".encode(), tags="TagB", keys=f"b{i}") for i in range(3)])
    # Closed: what was queued has been sent.
    assert len(r.msg_id.split(",")) == 3
    with rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pytbr")}) as reader:
        found = wait_for(lambda: records(reader, r.msg_id, "Pub"), WITHIN)
        assert found, f"no Pub record of the batch {r.msg_id}"
        f = found[0]
        # Pub: type, time, region, group, topic, msgId, tags, keys, storeHost, bodyLength,
        # costTime, msgType, offsetMsgId, success.
        assert len(f) == 14, f
        assert (f[3], f[4], f[5], f[6], f[7]) == (group, topic, r.msg_id, "null", "null")
        assert int(f[9]) > len(b"batched-0") * 3, "the encoded batch's length"
        assert (f[11], f[12], f[13]) == ("0", r.offset_msg_id, "true")
        # Every record queued before the batch's is in the topic: none is the oneway send's.
        assert records(reader, oneway_key, "Pub") == []


def test_transaction_ends_leave_end_transaction_records(namesrv, topic):
    group = unique_name("pyttp")
    cfg = {"name-server": namesrv, "producer.group": group, "client.trace-enabled": "true"}
    ends = {}
    with rmq.TransactionProducer(cfg, lambda m: rmq.TransactionState.ROLLBACK) as p:
        for key, state in [("committed", rmq.TransactionState.COMMIT), ("rolled-back", rmq.TransactionState.ROLLBACK)]:
            r = p.send_in_transaction(rmq.Message(topic, b"txn", keys=key), lambda m, sent, arg, s=state: s)
            ends[key] = (r.send_result.msg_id, state)
    with rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pyttr")}) as reader:
        for key, (msg_id, state) in ends.items():
            found = wait_for(lambda: records(reader, msg_id, "EndTransaction"), WITHIN)
            assert found, f"no EndTransaction record of {msg_id}"
            f = found[0]
            # EndTransaction: type, time, region, group, topic, msgId, tags, keys, storeHost,
            # msgType, transactionId, transactionState, fromTransactionCheck.
            assert len(f) == 13, f
            assert (f[2], f[3], f[4], f[5], f[6], f[7]) == ("DefaultRegion", group, topic, msg_id, "null", key)
            assert (f[9], f[10], f[12]) == ("2", msg_id, "false"), f
            assert f[11] == {"COMMIT": "COMMIT_MESSAGE", "ROLLBACK": "ROLLBACK_MESSAGE"}[state.name]
