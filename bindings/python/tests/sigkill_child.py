"""The consumer process that test_consumer_group.py kills with SIGKILL (not a test module).

It consumes the topic in RMQ_SIGKILL_GROUP and appends one line per consumed message to
<dir>/consumed (one write per listener call, made before the call returns success): msg id,
offset msg id, broker name, queue id, queue offset. After RMQ_SIGKILL_CALLS calls, every later call
writes a line to <dir>/blocked and blocks for good, so its messages stay in flight until the
parent kills this process."""

import os
import threading
import time

import rmq


def main():
    env = os.environ
    out = env["RMQ_SIGKILL_DIR"]
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    consumed = os.open(os.path.join(out, "consumed"), flags, 0o644)
    blocked = os.open(os.path.join(out, "blocked"), flags, 0o644)
    recorded_calls = int(env["RMQ_SIGKILL_CALLS"])
    lock = threading.Lock()
    calls = [0]

    def listener(batch):
        with lock:
            calls[0] += 1
            mine = calls[0]
        if mine <= recorded_calls:
            lines = "".join(
                f"{m.msg_id} {m.offset_msg_id} {m.broker_name} {m.queue_id} {m.queue_offset}\n" for m in batch
            )
            os.write(consumed, lines.encode())
            return rmq.ConsumeStatus.SUCCESS
        os.write(blocked, b"blocked\n")
        while True:
            time.sleep(3600)

    c = rmq.PushConsumer(
        {
            "name-server": env["RMQ_NAMESRV"],
            "consumer.group": env["RMQ_SIGKILL_GROUP"],
            "instance-name": env["RMQ_SIGKILL_INSTANCE"],
            "consumer.consume-from-where": "first",
            "consumer.consume-thread-number": env["RMQ_SIGKILL_THREADS"],
            "consumer.consume-message-batch-max-size": env["RMQ_SIGKILL_BATCH"],
            "consumer.persist-consumer-offset-interval": env["RMQ_SIGKILL_COMMIT_MS"],
        }
    )
    c.subscribe(env["RMQ_SIGKILL_TOPIC"], "*")
    c.start(listener)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
