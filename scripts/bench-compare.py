#!/usr/bin/env python3
"""Side-by-side benchmark of rmq (C; Python and Go when their benchmark programs are built), the
Java client 5.3.3 and the Apache Go client v2 on one broker and one topic, interleaved, writing
docs/benchmarks.md with plots (docs/benchmarks-*.png) and callgrind counts of rmq's instructions
per message.

`make bench-compare` runs it. The cluster: RMQ_NAMESRV names a running one (topics are created in
its cluster BENCH_CLUSTER, default DefaultCluster, with mqadmin); without it this script starts
its own with scripts/rocketmq-local.sh on free ports and a private data directory, and stops it.

Workloads (1 KiB bodies, one topic of 4 queues, compression and trace off):
  sync-1     sync sends, 1 thread          sync-16    sync sends, 16 threads
  async-256  async sends, 1 thread, 256 in flight
  batch-16   sync batches of 16 messages, 1 thread
  drain      a push consumer drains BENCH_DRAIN_COUNT messages that rmq_bench preloaded into a
             fresh topic (one per client and round), timed from the consumer's start to the
             last message
Each round runs every client once per workload; the order of the clients alternates from round to
round. Ratios are taken within a round, then summarised.

Environment (all optional):
  BENCH_ROUNDS        rounds of the producer workloads                        (5; quick: 2)
  BENCH_DRAIN_ROUNDS  rounds of the drain                          (BENCH_ROUNDS; quick: 1)
  BENCH_DURATION      measured seconds per producer run                        (10; quick: 3)
  BENCH_WARMUP        warm-up messages before each producer run            (5000; quick: 1000)
  BENCH_DRAIN_COUNT   messages per drain                                (100000; quick: 10000)
  BENCH_WORKLOADS     comma list of the workloads above                             (all)
  BENCH_CLIENTS       comma list among rmq-c, rmq-python, rmq-go, java, go-v2  (every one built)
  BENCH_CALLGRIND     0 leaves out the callgrind counts                           (1)
  BENCH_PLOTS         0 leaves out the plots (they need matplotlib; `make bench-compare`
                      installs it into target/bench-venv when the system Python lacks it)  (1)
  BENCH_QUICK=1       the quick values above
  BENCH_OUT           report path (the RESULT lines go beside it as .json)  (docs/benchmarks.md)
  JAVA                java binary (default: JDK 17 if installed, else `java`)
Numbers, not pass/fail: a failed run is recorded as failed and the report says so.
"""

import datetime
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
CLUSTER_SCRIPT = "scripts/rocketmq-local.sh"
QUICK = os.environ.get("BENCH_QUICK") == "1"
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "1") != "0"
PLOTS = os.environ.get("BENCH_PLOTS", "1") != "0"


def env_int(name, default, quick):
    return int(os.environ.get(name, quick if QUICK else default))


ROUNDS = env_int("BENCH_ROUNDS", 5, 2)
DRAIN_ROUNDS = env_int("BENCH_DRAIN_ROUNDS", ROUNDS, 1)
DURATION = env_int("BENCH_DURATION", 10, 3)
WARMUP = env_int("BENCH_WARMUP", 5000, 1000)
DRAIN_COUNT = env_int("BENCH_DRAIN_COUNT", 100000, 10000)
OUT = os.environ.get("BENCH_OUT", "docs/benchmarks.md")
ALL_WORKLOADS = ["sync-1", "sync-16", "async-256", "batch-16", "drain"]
WORKLOADS = [w for w in os.environ.get("BENCH_WORKLOADS", ",".join(ALL_WORKLOADS)).split(",") if w]
PRODUCER_ARGS = {
    "sync-1": ["-m", "sync", "-w", "1"],
    "sync-16": ["-m", "sync", "-w", "16"],
    "async-256": ["-m", "async", "-w", "1", "-i", "256"],
    "batch-16": ["-m", "sync", "-w", "1", "-b", "16"],
}
for w in WORKLOADS:
    if w not in ALL_WORKLOADS:
        sys.exit(f"bench-compare: unknown workload {w!r} (known: {', '.join(ALL_WORKLOADS)})")

JAVA_CP_FILE = "benches/java/target/classpath.txt"
JAVA_OPTS = ["-Xms512m", "-Xmx512m"]
LABELS = {"rmq-c": "rmq (C)", "rmq-python": "rmq (Python)", "rmq-go": "rmq (Go)", "java": "Java 5.3.3",
          "go-v2": "Go client v2"}
PEERS = ["java", "go-v2"]  # the clients rmq is compared with


def log(*a):
    print("bench-compare:", *a, file=sys.stderr, flush=True)


def java_bin():
    if os.environ.get("JAVA"):
        return os.environ["JAVA"]
    jdk = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
    return jdk if os.path.exists(jdk) else "java"


# --------------------------------------------------------------------------- clients

def client_cmd(client, args):
    """(argv to run, argv as written in the report) of one benchmark run."""
    if client == "rmq-c":
        argv = ["target/c/rmq_bench"] + args
        return argv, argv
    if client == "java":
        with open(JAVA_CP_FILE) as f:
            cp = "benches/java/target/classes:" + f.read().strip()
        shown = ["java"] + JAVA_OPTS + ["-cp", f"benches/java/target/classes:$(cat {JAVA_CP_FILE})",
                                        "rmq.bench.Bench"] + args
        return [java_bin()] + JAVA_OPTS + ["-cp", cp, "rmq.bench.Bench"] + args, shown
    if client == "rmq-python":
        argv = [sys.executable, "benches/python/rmq_bench.py"] + args
        return argv, ["python3"] + argv[1:]
    if client == "rmq-go":
        argv = ["target/go/rmq_bench_go"] + args
        return argv, argv
    if client == "go-v2":
        argv = ["target/go/go_v2_bench"] + args
        return argv, argv
    raise ValueError(client)


def available_clients():
    clients = ["rmq-c", "java"]
    if os.path.exists("benches/python/rmq_bench.py"):
        try:
            subprocess.run([sys.executable, "-c", "import rmq"], check=True, capture_output=True,
                           cwd=ROOT, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings/python")))
            clients.insert(1, "rmq-python")
        except subprocess.CalledProcessError:
            log("the rmq Python package does not import: skipping rmq-python")
    if os.path.exists("target/go/rmq_bench_go"):
        clients.insert(-1, "rmq-go")
    if os.path.exists("target/go/go_v2_bench"):
        clients.append("go-v2")
    wanted = os.environ.get("BENCH_CLIENTS")
    if wanted:
        clients = [c for c in wanted.split(",") if c]
    return clients


def build_java():
    log("building the Java harness (Maven)")
    subprocess.run(["mvn", "-q", "-f", "benches/java/pom.xml", "compile", "dependency:build-classpath",
                    "-Dmdep.outputFile=target/classpath.txt"], check=True)


# --------------------------------------------------------------------------- cluster

def free_port(broker=False):
    def free(port, host="127.0.0.1"):
        s = socket.socket(socket.AF_INET)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False
        finally:
            s.close()
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not 1026 < port < 65000:
            continue
        if not broker or (free(port) and free(port - 2) and free(port + 1, "0.0.0.0")):
            return port
    sys.exit("bench-compare: no free port found")


class Cluster:
    def __init__(self):
        self.own = not os.environ.get("RMQ_NAMESRV")
        self.state = tempfile.mkdtemp(prefix="rmq-bench-")
        self.env = dict(os.environ)
        if self.own:
            ns_port, broker_port = free_port(), free_port(broker=True)
            self.env.update(RMQ_NAMESRV_PORT=str(ns_port), RMQ_BROKER_PORT=str(broker_port),
                            RMQ_DATA=os.path.join(self.state, "cluster"))
            self.namesrv = f"127.0.0.1:{ns_port}"
            self.cluster_name = self.env.get("RMQ_CLUSTER", "DefaultCluster")
        else:
            self.namesrv = os.environ["RMQ_NAMESRV"]
            self.cluster_name = os.environ.get("BENCH_CLUSTER", "DefaultCluster")
            # mqadmin keeps its logs under RMQ_DATA/tools: a private one, not the cluster's.
            self.env["RMQ_DATA"] = os.path.join(self.state, "tools-only")

    def up(self):
        if self.own:
            log(f"starting a cluster on {self.namesrv}")
            subprocess.run([CLUSTER_SCRIPT, "up"], env=self.env, check=True)

    def down(self):
        if self.own:
            subprocess.run([CLUSTER_SCRIPT, "down"], env=self.env)
        # the cluster's store and logs, or mqadmin's logs: nothing in them is reported
        shutil.rmtree(self.state, ignore_errors=True)

    def create_topic(self, topic):
        if self.own:
            subprocess.run([CLUSTER_SCRIPT, "create-topic", topic, "4"], env=self.env, check=True,
                           stdout=subprocess.DEVNULL)
            return
        out = subprocess.run([CLUSTER_SCRIPT, "mqadmin", "updateTopic", "-n", self.namesrv, "-c",
                              self.cluster_name, "-t", topic, "-r", "4", "-w", "4"], env=self.env,
                             capture_output=True, text=True)
        if "success" not in out.stdout or "xception" in out.stdout + out.stderr:
            sys.exit(f"bench-compare: creating topic {topic} failed:\n{out.stdout}{out.stderr}")


# --------------------------------------------------------------------------- runs

COMMANDS = []  # (round, shown command) in the order run


def run(client, args, rnd, timeout):
    argv, shown = client_cmd(client, args)
    COMMANDS.append((rnd, " ".join(shlex.quote(a) if not a.startswith("benches/java/target/classes:$")
                                   else f'"{a}"' for a in shown)))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings/python"))
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        log(f"{client} {' '.join(args)}: timed out after {timeout} s")
        return None
    result = None
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            result = dict(kv.split("=", 1) for kv in line.split()[1:])
    if result is None or p.returncode != 0:
        log(f"{client} {' '.join(args)}: exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    if result is not None:
        result["ok"] = p.returncode == 0
        log(f"round {rnd} {client:10} {result['workload']:10} tps {float(result['tps']):9.0f}  "
            f"cpu {float(result['cpu_us_per_msg']):7.2f} us/msg  rss {int(result['rss_kb']) / 1024:6.1f} MiB"
            f"  errors {result['errors']}{'' if result['ok'] else '  (FAILED)'}")
    return result


def order(clients, rnd):
    return clients if rnd % 2 == 1 else list(reversed(clients))


def main():
    clients = available_clients()
    if "java" in clients:
        build_java()
    cluster = Cluster()
    results = {}  # (workload, client) -> [result or None per round]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        cluster.up()
        ns = ["-n", cluster.namesrv]
        stamp = time.strftime("%H%M%S")
        topic = f"RmqBenchCompare_{stamp}"
        producer_workloads = [w for w in WORKLOADS if w != "drain"]
        drain_topics = {}
        if producer_workloads:
            cluster.create_topic(topic)
        if "drain" in WORKLOADS:
            for rnd in range(1, DRAIN_ROUNDS + 1):
                for c in clients:
                    t = f"RmqBenchDrain_{stamp}_{rnd}_{c.replace('-', '')}"
                    cluster.create_topic(t)
                    drain_topics[(rnd, c)] = t
        for rnd in range(1, max(ROUNDS if producer_workloads else 0,
                                DRAIN_ROUNDS if "drain" in WORKLOADS else 0) + 1):
            if rnd <= ROUNDS:
                for w in producer_workloads:
                    for c in order(clients, rnd):
                        args = ["produce"] + ns + ["-t", topic, "-s", "1024", "-d", str(DURATION),
                                                   "-W", str(WARMUP), "-l", w] + PRODUCER_ARGS[w]
                        results.setdefault((w, c), []).append(
                            run(c, args, rnd, timeout=DURATION + 300))
            if "drain" in WORKLOADS and rnd <= DRAIN_ROUNDS:
                for c in order(clients, rnd):
                    t = drain_topics[(rnd, c)]
                    pre = run("rmq-c", ["produce"] + ns + ["-t", t, "-s", "1024", "-m", "async", "-i", "256",
                                                           "-c", str(DRAIN_COUNT), "-W", "0", "-l", "preload"],
                              rnd, timeout=600)
                    if not pre or not pre["ok"]:
                        results.setdefault(("drain", c), []).append(None)
                        continue
                    args = ["consume"] + ns + ["-t", t, "-c", str(DRAIN_COUNT), "-T", "300", "-l", "drain"]
                    results.setdefault(("drain", c), []).append(run(c, args, rnd, timeout=400))
        counts = callgrind_counts(ns, topic, producer_workloads) if "rmq-c" in clients else {}
    finally:
        cluster.down()
    load_after = os.getloadavg()
    plots = make_plots(clients, results)
    write_report(clients, results, cluster, started, load_before, load_after, counts, plots)
    log(f"wrote {OUT}")


# --------------------------------------------------------------------------- callgrind

# Messages per callgrind run: two runs per workload, and the difference of their instruction
# totals over the difference of their message counts leaves out start-up and shutdown.
CALLGRIND_COUNTS = {"sync-1": (500, 1500), "async-256": (2000, 6000), "batch-16": (1600, 4800)}
CALLGRIND_CMDS = []


def callgrind_counts(ns, topic, workloads):
    """Instructions per message of rmq (C), whole process, for the workloads that have counts."""
    counts = {}
    if not CALLGRIND:
        return counts
    if not shutil.which("valgrind"):
        log("valgrind not found: no callgrind counts")
        return counts
    for w in [w for w in workloads if w in CALLGRIND_COUNTS]:
        totals = []
        for n in CALLGRIND_COUNTS[w]:
            out = os.path.join(tempfile.gettempdir(), f"rmq-bench-callgrind-{os.getpid()}.out")
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "target/c/rmq_bench",
                    "produce"] + ns + ["-t", topic, "-s", "1024", "-c", str(n), "-W", "0", "-l", w] + PRODUCER_ARGS[w]
            CALLGRIND_CMDS.append(" ".join(shlex.quote(a) for a in argv).replace(out, "cg.out"))
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            collected = [line.split(":")[-1].strip() for line in p.stderr.splitlines() if "Collected :" in line]
            if os.path.exists(out):
                os.remove(out)
            if p.returncode != 0 or not collected:
                log(f"callgrind {w} -c {n}: exit {p.returncode}\n{p.stdout[-1000:]}{p.stderr[-1000:]}")
                break
            totals.append(int(collected[0]))
        if len(totals) == 2:
            lo, hi = CALLGRIND_COUNTS[w]
            counts[w] = (totals[1] - totals[0]) / (hi - lo)
            log(f"callgrind {w}: {counts[w]:,.0f} instructions per message")
    return counts


# --------------------------------------------------------------------------- plots

def make_plots(clients, results):
    """PNG bar charts of throughput and CPU per message (median, min–max whiskers); their paths."""
    if not PLOTS:
        return []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib does not import: no plots (make bench-compare installs it)")
        return []
    workloads = [w for w in WORKLOADS if any(good(results.get((w, c), [])) for c in clients)]
    if not workloads:
        return []
    paths = []
    base = os.path.splitext(OUT)[0]
    for key, title, path, log_scale in [
            ("tps", "Throughput (messages per second; higher is better)", f"{base}-throughput.png", False),
            ("cpu_us_per_msg", "Client CPU per message (µs, log scale; lower is better)", f"{base}-cpu.png", True)]:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / len(clients)
        for i, c in enumerate(clients):
            med, lo, hi = [], [], []
            for w in workloads:
                vals = [float(r[key]) for r in good(results.get((w, c), []))]
                m = statistics.median(vals) if vals else 0
                med.append(m)
                lo.append(m - min(vals) if vals else 0)
                hi.append(max(vals) - m if vals else 0)
            xs = [j + (i - (len(clients) - 1) / 2) * width for j in range(len(workloads))]
            ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=LABELS[c])
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- report

def fmt(v, digits=0):
    return f"{v:,.{digits}f}"


def summary(values, digits=0):
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(statistics.median(values), digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def good(rs):
    return [r for r in rs if r and r["ok"]]


def ratios(mine, theirs):
    """Per round: (mine ÷ theirs throughput, theirs ÷ mine CPU per message), both runs good."""
    tps_r, cpu_r = [], []
    for a, b in zip(mine, theirs):
        if a and b and a["ok"] and b["ok"] and float(b["tps"]) > 0 and float(a["cpu_us_per_msg"]) > 0:
            tps_r.append(float(a["tps"]) / float(b["tps"]))
            cpu_r.append(float(b["cpu_us_per_msg"]) / float(a["cpu_us_per_msg"]))
    return tps_r, cpu_r


def write_report(clients, results, cluster, started, load_before, load_after, counts, plots):
    uname = platform.uname()
    lines = [
        "# Benchmarks: rmq against the Java and Go clients",
        "",
        f"Written by `make bench-compare` (scripts/bench-compare.py) on {started:%Y-%m-%d %H:%M} UTC. "
        "Regenerate it with the same command; the environment variables it reads are listed in the "
        "script's header (`BENCH_QUICK=1` for a short run).",
        "",
        "## Setup",
        "",
        f"- Machine: {os.cpu_count()} CPUs, {uname.system} {uname.machine}; load average "
        f"{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end. The broker and the "
        "clients share these CPUs, and other work ran on the machine meanwhile: absolute numbers "
        "drift a lot from run to run; the per-round ratios are the figures to read.",
        f"- Broker: Apache RocketMQ 5.3.3, one name server and one broker "
        f"({'started by the script' if cluster.own else 'an already running cluster'}), one topic of 4 "
        "queues per run set, 1 KiB bodies, compression and trace off.",
        "- Clients: " + ", ".join(LABELS[c] for c in clients) +
        f". Java runs with `{' '.join(JAVA_OPTS)}` and its default client settings; every client keeps its "
        "own defaults (for the drain: pull batch 32 for all; consume threads 20 in Java and the Go client "
        "v2, 8 in rmq; listener batch 1 in all). The Go client v2 has no in-flight bound for async sends: "
        "its harness (benches/go-v2) holds the window with a semaphore.",
        f"- Producer runs: {ROUNDS} round(s), each client once per workload per round, the order of the "
        f"clients alternating between rounds; {WARMUP} warm-up messages, then {DURATION} s measured.",
        f"- Drain: {DRAIN_ROUNDS} round(s); per client and round a fresh topic is preloaded with "
        f"{DRAIN_COUNT:,} × 1 KiB by rmq_bench (async, 256 in flight), then a new consumer group drains it "
        "from the first offset. The rate is messages ÷ time from the consumer's start call to the listener "
        "call that brought the count to the target (rebalance and first pulls included); the rate after the "
        "first message leaves out the start-up (route, heartbeat, first rebalance).",
        "- Metrics: TPS = acknowledged messages ÷ measured wall time (until the last async callback); "
        "latency per request (a batch is one request) from a log-linear histogram (32 sub-buckets per "
        "power of two, ~3 % resolution); CPU = user + system time of the whole client process over the "
        "measured window ÷ messages (Java: every JVM thread, JIT and GC included); RSS and threads = "
        "peaks sampled from /proc/self/status every 20 ms.",
        "- Cells read `median (min–max)` over the rounds. Ratios are computed per round "
        "(rmq ÷ peer for throughput, peer ÷ rmq for CPU per message), then summarised the same way.",
        "",
    ]
    for path in plots:
        lines += [f"![{os.path.basename(path)}]({os.path.relpath(path, os.path.dirname(OUT) or '.')})", ""]
    if counts:
        lines += ["## Instructions per message (callgrind)", "",
                  "rmq (C), the whole client process (every thread: the sending loop, the runtime, the "
                  "20 ms /proc sampler of the tool), counted by `valgrind --tool=callgrind`. Each workload "
                  "runs twice with different message counts; the difference of the totals over the "
                  "difference of the counts leaves start-up and shutdown out. Unlike time, the count "
                  "holds steady on a loaded machine.", "",
                  "| workload | instructions per message |", "|---|---|"]
        lines += [f"| {w} | {fmt(v)} |" for w, v in counts.items()]
        lines += ["", "```"] + CALLGRIND_CMDS + ["```", ""]

    def table(workload):
        rows = []
        rs_by_client = {c: results.get((workload, c), []) for c in clients}
        if not any(rs_by_client.values()):
            return rows
        drain = workload == "drain"
        if drain:
            rows += ["| client | msgs/s from start | msgs/s after the first message | seconds from start | "
                     "seconds to the first message | CPU µs/msg | peak RSS MiB | peak threads | failed runs |",
                     "|---|---|---|---|---|---|---|---|---|"]
        else:
            rows += ["| client | TPS | p50 µs | p99 µs | p999 µs | CPU µs/msg | peak RSS MiB | peak threads | "
                     "errors | failed runs |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in clients:
            rs = rs_by_client[c]
            g = good(rs)
            col = lambda k, d=0: summary([float(r[k]) for r in g], d)
            failed = len(rs) - len(g)
            rss = summary([int(r["rss_kb"]) / 1024 for r in g], 1)
            thr = summary([int(r["threads_peak"]) for r in g])
            if drain:
                after_first = summary([float(r["msgs"]) / float(r["secs_from_first"]) for r in g
                                       if float(r.get("secs_from_first", 0)) > 0])
                to_first = summary([float(r["secs"]) - float(r["secs_from_first"]) for r in g], 2)
                rows.append(f"| {LABELS[c]} | {col('tps')} | {after_first} | {col('secs', 2)} | {to_first} | "
                            f"{col('cpu_us_per_msg', 1)} | {rss} | {thr} | {failed} |")
            else:
                errs = sum(int(r["errors"]) for r in rs if r)
                rows.append(f"| {LABELS[c]} | {col('tps')} | {col('p50_us', 1)} | {col('p99_us', 1)} | "
                            f"{col('p999_us', 1)} | {col('cpu_us_per_msg', 1)} | {rss} | {thr} | {errs} | {failed} |")
        rows.append("")
        for peer in [p for p in PEERS if p in clients]:
            theirs = rs_by_client[peer]
            for c in [c for c in clients if c not in PEERS]:
                tps_r, cpu_r = ratios(rs_by_client[c], theirs)
                if tps_r:
                    rows.append(f"- {LABELS[c]} ÷ {LABELS[peer]}, per round: throughput {summary(tps_r, 2)}× "
                                f"[{', '.join(f'{x:.2f}' for x in tps_r)}]; {LABELS[peer]}'s CPU per message ÷ "
                                f"{LABELS[c]}'s {summary(cpu_r, 1)}× [{', '.join(f'{x:.1f}' for x in cpu_r)}]")
            rows.append("")
        return rows

    titles = {
        "sync-1": "Sync send, 1 thread", "sync-16": "Sync send, 16 threads",
        "async-256": "Async send, 1 thread, 256 in flight", "batch-16": "Sync batches of 16, 1 thread",
        "drain": f"Push-consumer drain of {DRAIN_COUNT:,} × 1 KiB",
    }
    for w in WORKLOADS:
        body = table(w)
        if body:
            lines += [f"## {titles[w]}", ""] + body

    lines += ["## Commands", "",
              "As run, in this order (name server and topic names as in this run; every round runs the "
              "same commands with round-specific topic names for the drain).", "", "```"]
    seen = set()
    for rnd, cmd in COMMANDS:
        if rnd == 1 and cmd not in seen:
            seen.add(cmd)
            lines.append(cmd)
    lines += ["```", ""]
    os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    # Every RESULT line of the run, for other summaries: docs/benchmarks.json beside the report.
    raw = {"started": f"{started:%Y-%m-%dT%H:%M:%SZ}", "clients": clients,
           "results": {f"{w}/{c}": rs for (w, c), rs in results.items()},
           "commands": [{"round": r, "command": cmd} for r, cmd in COMMANDS]}
    with open(os.path.splitext(OUT)[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
