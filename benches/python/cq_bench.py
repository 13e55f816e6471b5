#!/usr/bin/env python3
"""Async send throughput from asyncio: the completion-queue path (rmq.CompletionQueue.send,
results resolved in batches by the event loop's reader) against the callback path
(Producer.send_async, one library-thread callback per result).

    RMQ_NAMESRV=host:port python3 benches/python/cq_bench.py [--count N] [--inflight W] [--size B]

Prints one RESULT line per path: messages per second and client CPU per message (getrusage of
the whole process: library threads included) over the timed run, after a warm-up.
"""

import argparse
import asyncio
import os
import resource
import sys
import time
import uuid

try:
    import rmq
except ImportError:  # not installed: the package of the repository this file sits in
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    import rmq


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(send, count, inflight):
    """`count` sends with at most `inflight` awaited at once; returns (secs, cpu secs, errors)."""
    sem = asyncio.Semaphore(inflight)
    errors = 0

    async def one():
        nonlocal errors
        async with sem:
            try:
                await send()
            except rmq.RmqError:
                errors += 1

    t0, c0 = time.perf_counter(), cpu_s()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - t0, cpu_s() - c0, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--topic", default="BenchCq_" + uuid.uuid4().hex[:8])
    a = ap.parse_args()
    ns = os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876")
    p = rmq.Producer({"name-server": ns, "producer.group": "BenchCq_" + uuid.uuid4().hex[:8]})
    p.start()
    msg = rmq.Message(a.topic, os.urandom(a.size))
    for _ in range(60):
        try:
            p.send(msg)
            break
        except rmq.RmqError:
            time.sleep(0.5)
    q = rmq.CompletionQueue(capacity=max(a.inflight, 1) * 2)
    paths = {
        "queue": lambda: q.send(p, msg),
        "callback": lambda: p.send_async(msg),  # a SendFuture, awaitable
    }

    async def bench():
        for name, send in paths.items():
            await run(send, min(a.count, 5000), a.inflight)  # warm-up
            secs, cpu, errors = await run(send, a.count, a.inflight)
            print(
                f"RESULT client=rmq-python path={name} inflight={a.inflight} size={a.size} msgs={a.count} "
                f"secs={secs:.3f} tps={a.count / secs:.0f} cpu_us_per_msg={cpu * 1e6 / a.count:.2f} errors={errors}",
                flush=True,
            )

    asyncio.run(bench())
    p.close()
    q.close()


if __name__ == "__main__":
    main()
