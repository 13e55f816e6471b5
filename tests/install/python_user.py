"""A Python program outside the rmq tree, as a user writes it: scripts/test-packaging.sh runs
it with the installed wheel (no RMQ_LIBRARY, from another directory) and checks it with
``mypy --strict``. It sends one message blocking and one through asyncio."""

import asyncio
import sys

import rmq


async def send_async(producer: rmq.Producer, topic: str) -> rmq.SendResult:
    return await producer.send_async(rmq.Message(topic, b"hello from asyncio"))


def main(namesrv: str, topic: str) -> None:
    with rmq.Producer({"name-server": namesrv, "producer.group": "rmq_install_check"}) as producer:
        result: rmq.SendResult = producer.send(rmq.Message(topic, b"hello from an installed wheel"))
        print(f"sent {result.status_name} {result.msg_id} library={rmq.library_path}")
        aresult = asyncio.run(send_async(producer, topic))
        print(f"sent async {aresult.status_name} {aresult.msg_id}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
