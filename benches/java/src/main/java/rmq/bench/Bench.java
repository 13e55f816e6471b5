package rmq.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * The Java client's side of rmq's benchmarks: the workloads and metrics of benches/c/rmq_bench.c
 * (same options, same histogram, same RESULT line), for the Java client 5.3.3.
 *
 * <pre>
 * Bench produce [options]        Bench consume --count N [options]
 *   -n namesrv  -t topic  -g group  -w threads  -s size  -m sync|async|oneway  -i inflight
 *   -b batch  -d duration-seconds  -c count  -W warmup  -T timeout-seconds  -l label
 * </pre>
 *
 * Async sends hold a permit of a semaphore of --inflight permits from the send until the
 * callback has run (the window rmq's producer.max-in-flight-async-sends keeps). CPU is the
 * process's (every JVM thread: client, JIT, GC), from the OperatingSystemMXBean; RSS and threads
 * from /proc/self/status. A new Message is built for each send, as the Java client sets
 * properties on the message it sends.
 */
public final class Bench {
    // ------------------------------------------------------------------ options
    static String ns = System.getenv().getOrDefault("RMQ_NAMESRV", "127.0.0.1:9876");
    static String topic = "RmqBenchTopic", group = null, label = null, mode = "sync";
    static int threads = 1, inflight = 256, batch = 1, size = 1024;
    static double duration = 10, timeout = 120;
    static long count = 0, warmup = 2000;

    // ------------------------------------------------------------------ histogram (as in C)
    static final int SUB_BITS = 5, SUB = 1 << SUB_BITS, BUCKETS = 59 * SUB + SUB;
    static final AtomicLongArray hist = new AtomicLongArray(BUCKETS);

    static int bucketOf(long v) {
        if (v < 2 * SUB) return (int) v;
        int msb = 63 - Long.numberOfLeadingZeros(v);
        int shift = msb - SUB_BITS;
        return shift * SUB + (int) (v >>> shift);
    }

    static double bucketMid(int i) {
        if (i < 2 * SUB) return i;
        int shift = i / SUB - 1;
        long mant = SUB + i % SUB;
        return ((double) (mant << shift) + (double) ((mant + 1) << shift)) / 2.0;
    }

    static void histAdd(long ns) { hist.incrementAndGet(bucketOf(ns)); }

    static double pctUs(double p) {
        long total = 0;
        for (int i = 0; i < BUCKETS; i++) total += hist.get(i);
        if (total == 0) return 0;
        long rank = Math.max(1, (long) (p * total)), seen = 0;
        for (int i = 0; i < BUCKETS; i++) {
            seen += hist.get(i);
            if (seen >= rank) return bucketMid(i) / 1000.0;
        }
        return 0;
    }

    // ------------------------------------------------------------------ process metrics
    static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    static long peakRssKb, peakThreads;

    static double cpuUs() { return OS.getProcessCpuTime() / 1000.0; }

    static void sampleProc() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                String[] f = line.split("\\s+");
                if (f[0].equals("VmRSS:")) peakRssKb = Math.max(peakRssKb, Long.parseLong(f[1]));
                if (f[0].equals("Threads:")) peakThreads = Math.max(peakThreads, Long.parseLong(f[1]));
            }
        } catch (IOException | RuntimeException e) {
            // no /proc: no RSS or thread figures
        }
    }

    // ------------------------------------------------------------------ errors
    static final AtomicLong errors = new AtomicLong();
    static final Map<String, AtomicLong> errorKinds = new ConcurrentHashMap<>();
    static volatile String firstError = null;

    static void noteError(Throwable e, long n) {
        errors.addAndGet(n);
        String kind = e.getClass().getSimpleName();
        errorKinds.computeIfAbsent(kind, k -> new AtomicLong()).addAndGet(n);
        if (firstError == null) firstError = String.valueOf(e.getMessage());
    }

    // ------------------------------------------------------------------ producer
    static DefaultMQProducer producer;
    static Semaphore window;
    static byte[] body;
    static final AtomicLong tickets = new AtomicLong(), acked = new AtomicLong();
    static final AtomicLong accepted = new AtomicLong(), completed = new AtomicLong();
    static final AtomicBoolean stop = new AtomicBoolean(), record = new AtomicBoolean();
    static volatile long phaseLimit;

    static long claim() {
        if (stop.get()) return 0;
        if (phaseLimit == 0) return batch;
        long old = tickets.getAndAdd(batch);
        if (old >= phaseLimit) return 0;
        return Math.min(batch, phaseLimit - old);
    }

    static void sender() {
        long n;
        while ((n = claim()) > 0) {
            final long count = n;
            final long t0 = System.nanoTime();
            try {
                if (mode.equals("async")) {
                    window.acquire();
                    SendCallback cb = new SendCallback() {
                        @Override public void onSuccess(SendResult r) {
                            if (record.get()) histAdd(System.nanoTime() - t0);
                            acked.addAndGet(count);
                            completed.addAndGet(count);
                            window.release();
                        }
                        @Override public void onException(Throwable e) {
                            noteError(e, count);
                            completed.addAndGet(count);
                            window.release();
                        }
                    };
                    accepted.addAndGet(count);
                    try {
                        if (batch > 1) producer.send(batchOf(count), cb);
                        else producer.send(new Message(topic, body), cb);
                    } catch (Exception e) {
                        accepted.addAndGet(-count);
                        window.release();
                        throw e;
                    }
                } else {
                    if (mode.equals("oneway")) producer.sendOneway(new Message(topic, body));
                    else if (batch > 1) producer.send(batchOf(count));
                    else producer.send(new Message(topic, body));
                    if (record.get()) histAdd(System.nanoTime() - t0);
                    acked.addAndGet(count);
                }
            } catch (Exception e) {
                noteError(e, count);
            }
        }
    }

    static List<Message> batchOf(long n) {
        List<Message> l = new ArrayList<>((int) n);
        for (int i = 0; i < n; i++) l.add(new Message(topic, body));
        return l;
    }

    static void runPhase(long limit, double seconds) throws InterruptedException {
        phaseLimit = limit;
        tickets.set(0);
        stop.set(false);
        Thread[] th = new Thread[threads];
        for (int i = 0; i < threads; i++) {
            th[i] = new Thread(Bench::sender, "bench-sender-" + i);
            th[i].start();
        }
        long start = System.nanoTime();
        while (Arrays.stream(th).anyMatch(Thread::isAlive)) {
            Thread.sleep(20);
            sampleProc();
            if (limit == 0 && (System.nanoTime() - start) / 1e9 >= seconds) stop.set(true);
        }
        for (Thread t : th) t.join();
        while (completed.get() < accepted.get()) {
            Thread.sleep(1);
            sampleProc();
        }
    }

    static int produce() throws Exception {
        producer = new DefaultMQProducer(group != null ? group : "RmqBenchProducerJava");
        producer.setNamesrvAddr(ns);
        producer.setInstanceName("bench-" + ProcessHandle.current().pid());
        producer.start();
        window = new Semaphore(inflight);
        body = new byte[size];
        Arrays.fill(body, (byte) 'x');

        if (warmup > 0) runPhase(warmup, 0);
        long warmErrors = errors.get();
        peakRssKb = peakThreads = 0;
        long acked0 = acked.get();
        double cpu0 = cpuUs();
        long t0 = System.nanoTime();
        record.set(true);
        runPhase(count, duration);
        long t1 = System.nanoTime();
        double cpu1 = cpuUs();
        record.set(false);
        sampleProc();

        long ok = acked.get() - acked0, errs = errors.get() - warmErrors;
        double secs = (t1 - t0) / 1e9, tps = ok / secs, cpuPer = ok > 0 ? (cpu1 - cpu0) / ok : 0;
        double p50 = pctUs(0.50), p99 = pctUs(0.99), p999 = pctUs(0.999);
        String workload = label != null ? label
                : mode.equals("async") ? String.format("async-w%d-i%d-b%d", threads, inflight, batch)
                : String.format("%s-w%d-b%d", mode, threads, batch);
        System.out.printf("Java client 5.3.3 producer: %s, %d thread(s), %d-byte bodies, batch %d, topic %s%n",
                mode, threads, size, batch, topic);
        if (mode.equals("async")) System.out.printf("  in-flight window %d%n", inflight);
        System.out.printf("  measured %d messages in %.2f s (after %d warm-up)%s%n", ok, secs, warmup,
                mode.equals("oneway") ? "; oneway counts sends handed over, not stored" : "");
        System.out.printf("  TPS %.0f   latency per request p50 %.1f us  p99 %.1f us  p999 %.1f us%n", tps, p50, p99, p999);
        System.out.printf("  client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d   errors %d%n", cpuPer,
                peakRssKb / 1024.0, peakThreads, errs);
        new TreeMap<>(errorKinds).forEach((k, v) -> System.out.printf("  error %-36s x %d%n", k, v.get()));
        if (firstError != null) System.out.println("  first error: " + firstError);
        System.out.printf("RESULT client=java workload=%s mode=%s threads=%d inflight=%d batch=%d size=%d msgs=%d "
                        + "secs=%.3f tps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%d cpu_us_per_msg=%.3f "
                        + "rss_kb=%d threads_peak=%d%n",
                workload, mode, threads, mode.equals("async") ? inflight : 0, batch, size, ok, secs, tps, p50, p99,
                p999, errs, cpuPer, peakRssKb, peakThreads);
        System.out.flush();
        producer.shutdown();
        return errs == 0 && (count == 0 || ok == count) ? 0 : 1;
    }

    // ------------------------------------------------------------------ consumer
    static int consume() throws Exception {
        if (count <= 0) {
            System.err.println("Bench: consume needs --count N (messages to drain)");
            return 2;
        }
        String g = group != null ? group : "RmqBenchConsumerJava_" + ProcessHandle.current().pid();
        AtomicLong received = new AtomicLong(), bytes = new AtomicLong(), firstNs = new AtomicLong(), lastNs = new AtomicLong();
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(g);
        consumer.setNamesrvAddr(ns);
        consumer.setInstanceName("bench-" + ProcessHandle.current().pid());
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(topic, "*");
        final long want = count;
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long t = System.nanoTime(), b = 0;
            for (MessageExt m : msgs) b += m.getBody().length;
            firstNs.compareAndSet(0, t);
            bytes.addAndGet(b);
            long before = received.getAndAdd(msgs.size());
            if (before < want && before + msgs.size() >= want) lastNs.set(t);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        double cpu0 = cpuUs();
        long t0 = System.nanoTime();
        consumer.start();
        while (received.get() < count && (System.nanoTime() - t0) / 1e9 < timeout) {
            Thread.sleep(5);
            sampleProc();
        }
        double cpu1 = cpuUs();
        sampleProc();
        long got = received.get();
        boolean done = got >= count;
        long tLast = done ? lastNs.get() : System.nanoTime();
        double secs = (tLast - t0) / 1e9;
        double sinceFirst = firstNs.get() != 0 ? (tLast - firstNs.get()) / 1e9 : 0;
        double rate = (done ? count : got) / secs, cpuPer = got > 0 ? (cpu1 - cpu0) / got : 0;
        System.out.printf("Java client 5.3.3 push consumer: topic %s, %s%n", topic, g);
        System.out.printf("  %s %d of %d messages (%.1f MiB) in %.2f s from start (%.2f s from the first message)%n",
                done ? "drained" : "TIMED OUT after", got, count, bytes.get() / 1048576.0, secs, sinceFirst);
        System.out.printf("  %.0f msgs/s   client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %d%n", rate, cpuPer,
                peakRssKb / 1024.0, peakThreads);
        System.out.printf("RESULT client=java workload=%s mode=consume msgs=%d secs=%.3f tps=%.1f secs_from_first=%.3f "
                        + "errors=%d cpu_us_per_msg=%.3f rss_kb=%d threads_peak=%d%n",
                label != null ? label : "drain", got, secs, rate, sinceFirst, done ? 0 : 1, cpuPer, peakRssKb,
                peakThreads);
        System.out.flush();
        consumer.shutdown();
        return done ? 0 : 1;
    }

    // ------------------------------------------------------------------ main
    static String value(String[] a, int i) {
        if (i >= a.length) throw new IllegalArgumentException("option " + a[i - 1] + " needs a value");
        return a[i];
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || !(args[0].equals("produce") || args[0].equals("consume"))) {
            System.err.println("usage: Bench produce|consume [-n namesrv] [-t topic] [-g group] [-w threads] [-s size] "
                    + "[-m sync|async|oneway] [-i inflight] [-b batch] [-d seconds] [-c count] [-W warmup] [-T timeout] [-l label]");
            System.exit(2);
        }
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "-n", "--namesrv" -> ns = value(args, ++i);
                case "-t", "--topic" -> topic = value(args, ++i);
                case "-g", "--group" -> group = value(args, ++i);
                case "-l", "--label" -> label = value(args, ++i);
                case "-w", "--threads" -> threads = Integer.parseInt(value(args, ++i));
                case "-s", "--size" -> size = Integer.parseInt(value(args, ++i));
                case "-m", "--mode" -> mode = value(args, ++i);
                case "-i", "--inflight" -> inflight = Integer.parseInt(value(args, ++i));
                case "-b", "--batch" -> batch = Integer.parseInt(value(args, ++i));
                case "-d", "--duration" -> duration = Double.parseDouble(value(args, ++i));
                case "-c", "--count" -> count = Long.parseLong(value(args, ++i));
                case "-W", "--warmup" -> warmup = Long.parseLong(value(args, ++i));
                case "-T", "--timeout" -> timeout = Double.parseDouble(value(args, ++i));
                default -> {
                    System.err.println("Bench: unknown option " + args[i]);
                    System.exit(2);
                }
            }
        }
        if (!(mode.equals("sync") || mode.equals("async") || mode.equals("oneway"))) {
            System.err.println("Bench: --mode must be sync, async or oneway, not '" + mode + "'");
            System.exit(2);
        }
        if (mode.equals("oneway") && batch > 1) {
            System.err.println("Bench: batches are sent sync or async, not oneway");
            System.exit(2);
        }
        int rc = args[0].equals("consume") ? consume() : produce();
        System.exit(rc);
    }
}
