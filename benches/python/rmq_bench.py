#!/usr/bin/env python3
"""rmq_bench for Python: the workloads, options, histogram and RESULT line of
benches/c/rmq_bench.c, through the rmq Python package (rmq.Producer, rmq.PushConsumer).

    python3 benches/python/rmq_bench.py produce [options]
    python3 benches/python/rmq_bench.py consume --count N [options]

Options as the C tool's (-n -t -g -w -s -m -i -b -d -c -W -T -o -l). Sync sends run on
--threads Python threads; async sends use send_async / send_batch_async with the library's
in-flight window (producer.max-in-flight-async-sends = --inflight) and a done-callback per send.
CPU is the whole process's (getrusage), RSS and threads from /proc/self/status.
Then, as the C tool, the library's metrics of the topic (rmq.metrics_value) beside the run's
own counts; the exit status is 1 when they differ.
"""

import argparse
import os
import resource
import sys
import threading
import time

try:
    import rmq
except ImportError:  # not installed: the package of the repository this file sits in
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    import rmq

SUB_BITS = 5
SUB = 1 << SUB_BITS
BUCKETS = 59 * SUB + SUB


class Histogram:
    """Log-linear buckets over nanoseconds, as in the C tool."""

    def __init__(self):
        self.counts = [0] * BUCKETS
        self.lock = threading.Lock()

    @staticmethod
    def bucket(v):
        if v < 2 * SUB:
            return v
        shift = v.bit_length() - 1 - SUB_BITS
        return shift * SUB + (v >> shift)

    @staticmethod
    def mid(i):
        if i < 2 * SUB:
            return float(i)
        shift = i // SUB - 1
        mant = SUB + i % SUB
        return ((mant << shift) + ((mant + 1) << shift)) / 2.0

    def add(self, ns):
        b = self.bucket(ns)
        with self.lock:
            self.counts[b] += 1

    def pct_us(self, p):
        total = sum(self.counts)
        if not total:
            return 0.0
        rank, seen = max(1, int(p * total)), 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return self.mid(i) / 1000.0
        return 0.0


def cpu_us():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return (u.ru_utime + u.ru_stime) * 1e6


class Proc:
    rss_kb = 0
    threads = 0

    @classmethod
    def sample(cls):
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        cls.rss_kb = max(cls.rss_kb, int(line.split()[1]))
                    elif line.startswith("Threads:"):
                        cls.threads = max(cls.threads, int(line.split()[1]))
        except OSError:
            pass


def parse():
    ap = argparse.ArgumentParser(prog="rmq_bench.py")
    ap.add_argument("what", choices=["produce", "consume"])
    ap.add_argument("-n", "--namesrv", default=os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876"))
    ap.add_argument("-t", "--topic", default="RmqBenchTopic")
    ap.add_argument("-g", "--group")
    ap.add_argument("-w", "--threads", type=int, default=1)
    ap.add_argument("-s", "--size", type=int, default=1024)
    ap.add_argument("-m", "--mode", choices=["sync", "async", "oneway"], default="sync")
    ap.add_argument("-i", "--inflight", type=int, default=256)
    ap.add_argument("-b", "--batch", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=10)
    ap.add_argument("-c", "--count", type=int, default=0)
    ap.add_argument("-W", "--warmup", type=int, default=2000)
    ap.add_argument("-T", "--timeout", type=float, default=120)
    ap.add_argument("-o", "--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("-l", "--label")
    a = ap.parse_args()
    if a.threads < 1 or a.inflight < 1 or not 1 <= a.batch <= 1024 or a.duration <= 0 or a.count < 0:
        ap.error("out of range: threads >= 1, inflight >= 1, batch 1..1024, duration > 0, count >= 0")
    if a.mode == "oneway" and a.batch > 1:
        ap.error("batches are sent sync or async, not oneway")
    for kv in a.set:
        if "=" not in kv:
            ap.error(f"--set takes KEY=VALUE, not {kv!r}")
    return a


def config(a, group_key, group):
    cfg = {"name-server": a.namesrv, group_key: group}
    cfg.update(kv.split("=", 1) for kv in a.set)
    return cfg


class Bench:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.acked = self.errors = self.accepted = self.completed = self.tickets = 0
        self.failed_requests = 0
        self.error_kinds = {}
        self.first_error = None
        self.record = False
        self.stop = False
        self.limit = 0
        self.hist = Histogram()
        self.done = threading.Condition(self.lock)

    def claim(self):
        if self.stop:
            return 0
        if not self.limit:
            return self.a.batch
        with self.lock:
            old = self.tickets
            self.tickets += self.a.batch
        return 0 if old >= self.limit else min(self.a.batch, self.limit - old)

    def note_error(self, e, n):
        with self.lock:
            self.errors += n
            self.failed_requests += 1
            kind = type(e).__name__
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + n
            if self.first_error is None:
                self.first_error = str(e)

    def sender(self, producer):
        a = self.a
        body = b"x" * a.size
        msgs = [rmq.Message(a.topic, body) for _ in range(a.batch)]
        while True:
            n = self.claim()
            if not n:
                break
            t0 = time.monotonic_ns()
            try:
                if a.mode == "async":
                    fut = producer.send_batch_async(msgs[:n]) if a.batch > 1 else producer.send_async(msgs[0])
                    with self.lock:
                        self.accepted += n
                    fut.add_done_callback(lambda f, n=n, t0=t0: self.on_done(f, n, t0))
                    continue
                if a.mode == "oneway":
                    producer.send_oneway(msgs[0])
                elif a.batch > 1:
                    producer.send_batch(msgs[:n])
                else:
                    producer.send(msgs[0])
                if self.record:
                    self.hist.add(time.monotonic_ns() - t0)
                with self.lock:
                    self.acked += n
            except rmq.RmqError as e:
                self.note_error(e, n)
        for m in msgs:
            m.close()

    def on_done(self, fut, n, t0):
        e = fut.exception()
        if e is None:
            if self.record:
                self.hist.add(time.monotonic_ns() - t0)
            with self.lock:
                self.acked += n
        else:
            self.note_error(e, n)
        with self.lock:
            self.completed += n
            self.done.notify_all()

    def run_phase(self, producer, limit, duration):
        self.limit, self.tickets, self.stop = limit, 0, False
        threads = [threading.Thread(target=self.sender, args=(producer,)) for _ in range(self.a.threads)]
        for t in threads:
            t.start()
        start = time.monotonic()
        while any(t.is_alive() for t in threads):
            time.sleep(0.02)
            Proc.sample()
            if not limit and time.monotonic() - start >= duration:
                self.stop = True
        for t in threads:
            t.join()
        with self.lock:
            while self.completed < self.accepted:
                self.done.wait(0.05)


def compare(topic, rows):
    """Prints each (what, run's count, metric name or value) row; True when any differ."""
    differ = False
    for what, own, metric in rows:
        m = rmq.metrics_value(metric, topic) if isinstance(metric, str) else metric
        print(f"  {what:22} run {own:<10} metrics {m:<10} {'equal' if m == own else 'DIFFERENT'}")
        differ |= m != own
    if differ:
        print("  METRICS DIFFER from the run's counts")
    return differ


def produce_metrics(a, cfg, b):
    """The metrics of the whole run, warm-up included, beside its counts (see the C tool)."""
    print(f"  metrics of topic {a.topic} (whole run, warm-up included):")
    threshold = cfg.get("producer.compress-message-body-threshold") or next(
        k.default for k in rmq.config_keys() if k.name == "producer.compress-message-body-threshold")
    rows = [("messages sent", b.acked, "rmq_messages_sent_total")]
    if a.batch == 1 and a.size < int(threshold):
        rows.append(("body bytes sent", b.acked * a.size, "rmq_bytes_sent_total"))
    else:
        print(f"  {'body bytes sent':22} metrics {rmq.metrics_value('rmq_bytes_sent_total', a.topic)} (not compared: "
              f"it counts {'encoded batches' if a.batch > 1 else 'compressed bodies'} as sent)")
    failed = rmq.metrics_value("rmq_send_errors_total", a.topic) - rmq.metrics_value("rmq_send_retries_total", a.topic)
    rows += [("failed requests", b.failed_requests, failed), ("sends in flight", 0, "rmq_sends_in_flight")]
    return compare(a.topic, rows)


def produce(a):
    cfg = config(a, "producer.group", a.group or "RmqBenchProducerPython")
    if a.mode == "async":
        cfg.setdefault("producer.max-in-flight-async-sends", str(a.inflight))
    b = Bench(a)
    with rmq.Producer(cfg) as producer:  # started by the with statement
        if a.warmup:
            b.run_phase(producer, a.warmup, 0)
        warm_errors = b.errors
        Proc.rss_kb = Proc.threads = 0
        acked0, cpu0, t0 = b.acked, cpu_us(), time.monotonic_ns()
        b.record = True
        b.run_phase(producer, a.count, a.duration)
        t1, cpu1 = time.monotonic_ns(), cpu_us()
        b.record = False
        Proc.sample()
    ok, errs = b.acked - acked0, b.errors - warm_errors
    secs = (t1 - t0) / 1e9
    tps, cpu_per = ok / secs, (cpu1 - cpu0) / ok if ok else 0.0
    p50, p99, p999 = b.hist.pct_us(0.5), b.hist.pct_us(0.99), b.hist.pct_us(0.999)
    workload = a.label or (f"async-w{a.threads}-i{a.inflight}-b{a.batch}" if a.mode == "async"
                           else f"{a.mode}-w{a.threads}-b{a.batch}")
    print(f"rmq (Python) producer: {a.mode}, {a.threads} thread(s), {a.size}-byte bodies, batch {a.batch}, topic {a.topic}")
    print(f"  measured {ok} messages in {secs:.2f} s (after {a.warmup} warm-up)")
    print(f"  TPS {tps:.0f}   latency per request p50 {p50:.1f} us  p99 {p99:.1f} us  p999 {p999:.1f} us")
    print(f"  client CPU {cpu_per:.2f} us/msg   peak RSS {Proc.rss_kb / 1024:.1f} MiB   peak threads {Proc.threads}"
          f"   errors {errs}")
    for kind, n in sorted(b.error_kinds.items()):
        print(f"  error {kind:36} x {n}")
    if b.first_error:
        print(f"  first error: {b.first_error}")
    print(f"RESULT client=rmq-python workload={workload} mode={a.mode} threads={a.threads} "
          f"inflight={a.inflight if a.mode == 'async' else 0} batch={a.batch} size={a.size} msgs={ok} "
          f"secs={secs:.3f} tps={tps:.1f} p50_us={p50:.1f} p99_us={p99:.1f} p999_us={p999:.1f} errors={errs} "
          f"cpu_us_per_msg={cpu_per:.3f} rss_kb={Proc.rss_kb} threads_peak={Proc.threads}", flush=True)
    differ = produce_metrics(a, cfg, b)
    return 0 if errs == 0 and not differ and (not a.count or ok == a.count) else 1


def consume(a):
    if a.count <= 0:
        print("rmq_bench.py: consume needs --count N (messages to drain)", file=sys.stderr)
        return 2
    group = a.group or f"RmqBenchConsumerPython_{os.getpid()}"
    cfg = config(a, "consumer.group", group)
    cfg.setdefault("consumer.consume-from-where", "first")
    lock = threading.Lock()
    state = {"n": 0, "bytes": 0, "first": 0, "last": 0}
    reached = threading.Event()

    def listener(msgs):
        t = time.monotonic_ns()
        with lock:
            if not state["first"]:
                state["first"] = t
            before = state["n"]
            state["n"] += len(msgs)
            state["bytes"] += sum(len(m.body) for m in msgs)
            if before < a.count <= state["n"]:
                state["last"] = t
                reached.set()

    with rmq.PushConsumer(cfg) as consumer:
        consumer.subscribe(a.topic, "*")
        cpu0, t0 = cpu_us(), time.monotonic_ns()
        consumer.start(listener)
        while not reached.is_set() and (time.monotonic_ns() - t0) / 1e9 < a.timeout:
            reached.wait(0.005)
            Proc.sample()
        cpu1 = cpu_us()
        Proc.sample()
        with lock:
            got, done = state["n"], state["n"] >= a.count
            t_last = state["last"] if done else time.monotonic_ns()
            first, nbytes = state["first"], state["bytes"]
    secs = (t_last - t0) / 1e9
    since_first = (t_last - first) / 1e9 if first else 0.0
    rate = (a.count if done else got) / secs
    cpu_per = (cpu1 - cpu0) / got if got else 0.0
    print(f"rmq (Python) push consumer: topic {a.topic}, {group}")
    print(f"  {'drained' if done else 'TIMED OUT after'} {got} of {a.count} messages ({nbytes / 1048576:.1f} MiB) in "
          f"{secs:.2f} s from start ({since_first:.2f} s from the first message)")
    print(f"  {rate:.0f} msgs/s   client CPU {cpu_per:.2f} us/msg   peak RSS {Proc.rss_kb / 1024:.1f} MiB"
          f"   peak threads {Proc.threads}")
    print(f"RESULT client=rmq-python workload={a.label or 'drain'} mode=consume msgs={got} secs={secs:.3f} "
          f"tps={rate:.1f} secs_from_first={since_first:.3f} errors={0 if done else 1} cpu_us_per_msg={cpu_per:.3f} "
          f"rss_kb={Proc.rss_kb} threads_peak={Proc.threads}", flush=True)
    # The consumer is closed: every listener call has returned and recorded its batch.
    print(f"  metrics of topic {a.topic}:")
    with lock:
        got, nbytes = state["n"], state["bytes"]
    differ = compare(a.topic, [("messages consumed", got, "rmq_messages_consumed_total"),
                               ("body bytes consumed", nbytes, "rmq_bytes_consumed_total"),
                               ("failed listener calls", 0, "rmq_consume_failures_total")])
    return 0 if done and not differ else 1


def main():
    a = parse()
    return consume(a) if a.what == "consume" else produce(a)


if __name__ == "__main__":
    sys.exit(main())
