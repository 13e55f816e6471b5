/* rmq_bench: producer and push-consumer benchmark through rmq's C ABI.
 *
 * The producer workloads are those of the Java client's benchmark Producer: N sending threads,
 * a body size, sync / async (with a bounded in-flight window) / oneway sends, optional batches,
 * for a duration or a message count, after a warm-up. The consumer mode drains a topic with a
 * push consumer until a given number of messages has arrived.
 *
 *   rmq_bench produce [options]     rmq_bench consume --count N [options]     rmq_bench --help
 *
 * Printed: throughput, latency percentiles (p50/p99/p999 from a log-linear histogram with 32
 * sub-buckets per power of two, about 3% resolution; one sample per request, so a batch is one
 * sample), errors by status, client CPU per message (getrusage of the whole process over the
 * measured window: library, callback and benchmark threads alike), peak RSS and peak thread
 * count (from /proc/self/status). The last line is machine-readable:
 *   RESULT client=rmq-c workload=... tps=... p50_us=... ...
 * Then the library's own metrics of the topic (rmq_metrics_value) beside the run's counts, over
 * the whole run including the warm-up: messages sent, body bytes, failed requests and sends
 * still in flight; for the consumer, messages and body bytes consumed (read once the consumer
 * is destroyed, so every listener call has returned). Numbers, not pass/fail: the exit status is
 * 0 when the run did what it was asked (every measured message acknowledged, or the whole count
 * consumed) and the metrics equal its counts, 1 otherwise. */
#define _DEFAULT_SOURCE
#include "rmq.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- time, rusage, /proc ---- */

static uint64_t epoch_ns;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec - epoch_ns;
}

static double cpu_us(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_sec * 1e6 + u.ru_stime.tv_usec;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Peak RSS (KiB) and thread count, sampled by the main thread while a phase runs. */
static long peak_rss_kb, peak_threads;

static void sample_proc(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %ld", &v) == 1 && v > peak_rss_kb) peak_rss_kb = v;
        if (sscanf(line, "Threads: %ld", &v) == 1 && v > peak_threads) peak_threads = v;
    }
    fclose(f);
}

/* ---------------------------------------------------------------- latency histogram ---- */

/* Log-linear buckets over nanoseconds: values below 64 have a bucket each; above, each power
 * of two is cut into 32 equal buckets (relative width at most 1/32). */
#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define BUCKETS (59 * SUB + SUB)

static _Atomic uint64_t hist[BUCKETS];

static unsigned bucket_of(uint64_t v) {
    if (v < 2 * SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return shift * SUB + (unsigned)(v >> shift);
}

/* Middle of bucket i, in ns. */
static double bucket_mid(unsigned i) {
    if (i < 2 * SUB) return i;
    unsigned shift = i / SUB - 1;
    uint64_t mant = SUB + i % SUB;
    return ((double)(mant << shift) + (double)((mant + 1) << shift)) / 2.0;
}

static void hist_add(uint64_t ns) { atomic_fetch_add_explicit(&hist[bucket_of(ns)], 1, memory_order_relaxed); }

static uint64_t hist_total(void) {
    uint64_t n = 0;
    for (unsigned i = 0; i < BUCKETS; i++) n += atomic_load(&hist[i]);
    return n;
}

static double hist_pct_us(double p) {
    uint64_t total = hist_total();
    if (total == 0) return 0;
    uint64_t rank = (uint64_t)(p * (double)total);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += atomic_load(&hist[i]);
        if (seen >= rank) return bucket_mid(i) / 1000.0;
    }
    return 0;
}

/* ---------------------------------------------------------------- options ---- */

enum mode { MODE_SYNC, MODE_ASYNC, MODE_ONEWAY };

static struct {
    const char *ns, *topic, *group, *label;
    int threads, inflight, batch;
    size_t size;
    enum mode mode;
    double duration, timeout;
    long count, warmup;
    const char *sets[64];
    int nsets;
} opt;

static void usage(FILE *to) {
    fprintf(to,
            "usage: rmq_bench produce [options]\n"
            "       rmq_bench consume --count N [options]\n"
            "  -n, --namesrv ADDR     name server (default $RMQ_NAMESRV, else 127.0.0.1:9876)\n"
            "  -t, --topic TOPIC      topic (default RmqBenchTopic)\n"
            "  -g, --group GROUP      producer or consumer group (default RmqBenchProducer /\n"
            "                         RmqBenchConsumer_<pid>, a new group that starts at the first offset)\n"
            "  -w, --threads N        sending threads (default 1)\n"
            "  -s, --size BYTES       body size (default 1024)\n"
            "  -m, --mode MODE        sync | async | oneway (default sync)\n"
            "  -i, --inflight N       async in-flight window (producer.max-in-flight-async-sends;\n"
            "                         default 256)\n"
            "  -b, --batch N          messages per send (a batch request when N > 1; default 1)\n"
            "  -d, --duration SEC     measured time (default 10; ignored with --count)\n"
            "  -c, --count N          produce: measured messages instead of a duration;\n"
            "                         consume: messages to drain before stopping (required)\n"
            "  -W, --warmup N         messages sent before measuring (default 2000)\n"
            "  -T, --timeout SEC      consume: give up after SEC (default 120)\n"
            "  -o, --set KEY=VALUE    any rmq config key (repeatable), e.g. -o consumer.consume-thread-number=20\n"
            "  -l, --label TEXT       workload label for the RESULT line\n");
}

static int parse_options(int argc, char **argv) {
    static const struct option longs[] = {
        {"namesrv", required_argument, 0, 'n'}, {"topic", required_argument, 0, 't'},
        {"group", required_argument, 0, 'g'},   {"threads", required_argument, 0, 'w'},
        {"size", required_argument, 0, 's'},    {"mode", required_argument, 0, 'm'},
        {"inflight", required_argument, 0, 'i'}, {"batch", required_argument, 0, 'b'},
        {"duration", required_argument, 0, 'd'}, {"count", required_argument, 0, 'c'},
        {"warmup", required_argument, 0, 'W'},  {"timeout", required_argument, 0, 'T'},
        {"set", required_argument, 0, 'o'},     {"label", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    opt.ns = getenv("RMQ_NAMESRV") ? getenv("RMQ_NAMESRV") : "127.0.0.1:9876";
    opt.topic = "RmqBenchTopic";
    opt.threads = 1, opt.inflight = 256, opt.batch = 1, opt.size = 1024;
    opt.mode = MODE_SYNC, opt.duration = 10, opt.timeout = 120, opt.warmup = 2000;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "n:t:g:w:s:m:i:b:d:c:W:T:o:l:h", longs, NULL)) != -1) {
        switch (c) {
        case 'n': opt.ns = optarg; break;
        case 't': opt.topic = optarg; break;
        case 'g': opt.group = optarg; break;
        case 'l': opt.label = optarg; break;
        case 'w': opt.threads = atoi(optarg); break;
        case 's': opt.size = (size_t)strtoul(optarg, &end, 10); break;
        case 'i': opt.inflight = atoi(optarg); break;
        case 'b': opt.batch = atoi(optarg); break;
        case 'd': opt.duration = strtod(optarg, &end); break;
        case 'c': opt.count = atol(optarg); break;
        case 'W': opt.warmup = atol(optarg); break;
        case 'T': opt.timeout = strtod(optarg, &end); break;
        case 'm':
            if (!strcmp(optarg, "sync")) opt.mode = MODE_SYNC;
            else if (!strcmp(optarg, "async")) opt.mode = MODE_ASYNC;
            else if (!strcmp(optarg, "oneway")) opt.mode = MODE_ONEWAY;
            else { fprintf(stderr, "rmq_bench: --mode must be sync, async or oneway, not '%s'\n", optarg); return -1; }
            break;
        case 'o':
            if (opt.nsets == 64 || !strchr(optarg, '=')) {
                fprintf(stderr, "rmq_bench: --set takes KEY=VALUE (at most 64), not '%s'\n", optarg);
                return -1;
            }
            opt.sets[opt.nsets++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (opt.threads < 1 || opt.threads > 1024 || opt.inflight < 1 || opt.batch < 1 || opt.batch > 1024 ||
        opt.duration <= 0 || opt.count < 0 || opt.warmup < 0 || opt.timeout <= 0) {
        fprintf(stderr, "rmq_bench: out of range: threads 1..1024, inflight >= 1, batch 1..1024, "
                        "duration > 0, count >= 0, warmup >= 0, timeout > 0\n");
        return -1;
    }
    if (opt.mode == MODE_ONEWAY && opt.batch > 1) {
        fprintf(stderr, "rmq_bench: batches are sent sync or async, not oneway\n");
        return -1;
    }
    return 0;
}

/* Applies name-server and every --set to a new config; NULL after printing why. */
static rmq_config_t *make_config(const char *group_key, const char *group) {
    rmq_config_t *cfg = rmq_config_create();
    if (!cfg || rmq_config_set(cfg, "name-server", opt.ns) != RMQ_OK ||
        rmq_config_set(cfg, group_key, group) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: config: %s\n", rmq_last_error_message());
        return NULL;
    }
    for (int i = 0; i < opt.nsets; i++) {
        char key[256];
        const char *eq = strchr(opt.sets[i], '=');
        size_t klen = (size_t)(eq - opt.sets[i]);
        if (klen >= sizeof key) klen = sizeof key - 1;
        memcpy(key, opt.sets[i], klen);
        key[klen] = 0;
        if (rmq_config_set(cfg, key, eq + 1) != RMQ_OK) {
            fprintf(stderr, "rmq_bench: --set %s: %s\n", opt.sets[i], rmq_last_error_message());
            rmq_config_destroy(cfg);
            return NULL;
        }
    }
    return cfg;
}

/* ---------------------------------------------------------------- errors ---- */

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { rmq_status_t status; long count; } err_tab[16];
static char first_error[256];
static _Atomic long errors, failed_requests;

static void note_error(rmq_status_t status, const char *message, long n) {
    atomic_fetch_add(&errors, n);
    atomic_fetch_add(&failed_requests, 1);
    pthread_mutex_lock(&err_lock);
    int i = 0;
    while (i < 15 && err_tab[i].count && err_tab[i].status != status) i++;
    err_tab[i].status = status;
    err_tab[i].count += n;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", message);
    pthread_mutex_unlock(&err_lock);
}

static void print_errors(void) {
    for (int i = 0; i < 16 && err_tab[i].count; i++)
        printf("  error %-36s x %ld\n", rmq_status_name(err_tab[i].status), err_tab[i].count);
    if (first_error[0]) printf("  first error: %s\n", first_error);
}


/* ---------------------------------------------------------------- metrics vs counts ---- */

/* The library's metric `name` for the topic (every broker); -1 after printing why not. */
static long long metric(const char *name) {
    uint64_t v;
    if (rmq_metrics_value(name, opt.topic, NULL, &v) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: metric %s: %s\n", name, rmq_last_error_message());
        return -1;
    }
    return (long long)v;
}

/* Prints a metric's value beside the run's own count; returns 1 when they differ. */
static int compare_value(const char *what, long long own, long long m) {
    printf("  %-22s run %-10lld metrics %-10lld %s\n", what, own, m, m == own ? "equal" : "DIFFERENT");
    return m != own;
}

static int compare(const char *what, const char *name, long long own) {
    return compare_value(what, own, metric(name));
}

/* ---------------------------------------------------------------- producer ---- */

static rmq_producer_t *producer;
static _Atomic long tickets;   /* messages claimed in the current phase */
static _Atomic long acked;     /* messages acknowledged (oneway: handed over) */
static _Atomic long accepted;  /* async: messages whose send was accepted */
static _Atomic long completed; /* async: messages whose callback has run */
static _Atomic int stop_flag, record_flag, workers_done;
static long phase_limit;       /* 0: until stop_flag */

/* How many messages the next request carries: up to --batch, fewer at the end of a count. */
static long claim(void) {
    if (atomic_load_explicit(&stop_flag, memory_order_relaxed)) return 0;
    if (!phase_limit) return opt.batch;
    long old = atomic_fetch_add(&tickets, opt.batch);
    if (old >= phase_limit) return 0;
    return phase_limit - old < opt.batch ? phase_limit - old : opt.batch;
}

/* user_data of an async send: send time (ns since start, 48 bits) and message count. */
static void on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    uintptr_t v = (uintptr_t)user_data;
    uint64_t t0 = v & ((1ull << 48) - 1);
    long n = (long)(v >> 48);
    if (params->status == RMQ_OK) {
        if (atomic_load_explicit(&record_flag, memory_order_relaxed)) hist_add(now_ns() - t0);
        atomic_fetch_add(&acked, n);
    } else {
        note_error(params->status, params->error_message, n);
    }
    atomic_fetch_add(&completed, n);
}

static void *sender(void *arg) {
    (void)arg;
    uint8_t *body = malloc(opt.size ? opt.size : 1);
    memset(body, 'x', opt.size);
    rmq_message_t **msgs = calloc((size_t)opt.batch, sizeof *msgs);
    for (int i = 0; i < opt.batch; i++) {
        msgs[i] = rmq_message_create();
        if (!msgs[i] || rmq_message_set_topic(msgs[i], opt.topic) != RMQ_OK ||
            rmq_message_set_body(msgs[i], body, opt.size) != RMQ_OK) {
            fprintf(stderr, "rmq_bench: message: %s\n", rmq_last_error_message());
            exit(1);
        }
    }
    long n;
    while ((n = claim()) > 0) {
        uint64_t t0 = now_ns();
        rmq_status_t st;
        if (opt.mode == MODE_ASYNC) {
            void *ud = (void *)(uintptr_t)(t0 | ((uint64_t)n << 48));
            st = opt.batch > 1 ? rmq_producer_send_batch_async(producer, (const rmq_message_t *const *)msgs,
                                                               (size_t)n, on_sent, ud)
                               : rmq_producer_send_async(producer, msgs[0], on_sent, ud);
            if (st == RMQ_OK) atomic_fetch_add(&accepted, n);
        } else {
            if (opt.mode == MODE_ONEWAY) st = rmq_producer_send_oneway(producer, msgs[0]);
            else if (opt.batch > 1)
                st = rmq_producer_send_batch(producer, (const rmq_message_t *const *)msgs, (size_t)n, NULL);
            else st = rmq_producer_send_sync(producer, msgs[0], NULL);
            if (st == RMQ_OK) {
                if (atomic_load_explicit(&record_flag, memory_order_relaxed)) hist_add(now_ns() - t0);
                atomic_fetch_add(&acked, n);
            }
        }
        if (st != RMQ_OK) note_error(st, rmq_last_error_message(), n);
    }
    for (int i = 0; i < opt.batch; i++) rmq_message_destroy(msgs[i]);
    free(msgs);
    free(body);
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

/* Runs the senders until `limit` messages were claimed (or for `duration` seconds when limit
 * is 0), then waits for every accepted async send's callback. Samples /proc meanwhile. */
static int run_phase(long limit, double duration) {
    phase_limit = limit;
    atomic_store(&tickets, 0);
    atomic_store(&stop_flag, 0);
    atomic_store(&workers_done, 0);
    pthread_t *th = calloc((size_t)opt.threads, sizeof *th);
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&th[i], NULL, sender, NULL) != 0) { perror("pthread_create"); exit(1); }
    uint64_t start = now_ns();
    while (atomic_load(&workers_done) < opt.threads) {
        sleep_ms(20);
        sample_proc();
        if (!limit && (double)(now_ns() - start) / 1e9 >= duration) atomic_store(&stop_flag, 1);
    }
    for (int i = 0; i < opt.threads; i++) pthread_join(th[i], NULL);
    free(th);
    /* Every accepted send completes: with its result, a timeout, or RMQ_ERR_CANCELLED. */
    while (atomic_load(&completed) < atomic_load(&accepted)) {
        sleep_ms(1);
        sample_proc();
    }
    return 0;
}

static const char *mode_name(void) {
    return opt.mode == MODE_SYNC ? "sync" : opt.mode == MODE_ASYNC ? "async" : "oneway";
}

static int produce(void) {
    rmq_config_t *cfg = make_config("producer.group", opt.group ? opt.group : "RmqBenchProducer");
    if (!cfg) return 1;
    if (opt.mode == MODE_ASYNC) {
        char w[32];
        snprintf(w, sizeof w, "%d", opt.inflight);
        rmq_config_set(cfg, "producer.max-in-flight-async-sends", w);
    }
    /* Bodies this large are sent compressed, and the metric counts bytes as sent. */
    char threshold[32];
    size_t tlen;
    long compress_over = rmq_config_get(cfg, "producer.compress-message-body-threshold", threshold,
                                        sizeof threshold, &tlen) == RMQ_OK ? atol(threshold) : 0;
    if (rmq_producer_create(cfg, &producer) != RMQ_OK || rmq_producer_start(producer) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: producer: %s\n", rmq_last_error_message());
        return 1;
    }
    rmq_config_destroy(cfg);

    if (opt.warmup > 0) run_phase(opt.warmup, 0);
    long warm_errors = atomic_load(&errors);
    peak_rss_kb = peak_threads = 0;
    long acked0 = atomic_load(&acked);
    double cpu0 = cpu_us();
    uint64_t t0 = now_ns();
    atomic_store(&record_flag, 1);
    run_phase(opt.count, opt.duration);
    uint64_t t1 = now_ns();
    double cpu1 = cpu_us();
    atomic_store(&record_flag, 0);
    sample_proc();

    long ok = atomic_load(&acked) - acked0, errs = atomic_load(&errors) - warm_errors;
    double secs = (double)(t1 - t0) / 1e9;
    double tps = ok / secs, cpu_per = ok ? (cpu1 - cpu0) / ok : 0;
    double p50 = hist_pct_us(0.50), p99 = hist_pct_us(0.99), p999 = hist_pct_us(0.999);
    char workload[128];
    if (opt.label) snprintf(workload, sizeof workload, "%s", opt.label);
    else if (opt.mode == MODE_ASYNC)
        snprintf(workload, sizeof workload, "async-w%d-i%d-b%d", opt.threads, opt.inflight, opt.batch);
    else snprintf(workload, sizeof workload, "%s-w%d-b%d", mode_name(), opt.threads, opt.batch);

    printf("rmq (C) producer: %s, %d thread(s), %zu-byte bodies, batch %d, topic %s\n", mode_name(),
           opt.threads, opt.size, opt.batch, opt.topic);
    if (opt.mode == MODE_ASYNC) printf("  in-flight window %d\n", opt.inflight);
    printf("  measured %ld messages in %.2f s (after %ld warm-up)%s\n", ok, secs, opt.warmup,
           opt.mode == MODE_ONEWAY ? "; oneway counts sends handed over, not stored" : "");
    printf("  TPS %.0f   latency per request p50 %.1f us  p99 %.1f us  p999 %.1f us\n", tps, p50, p99, p999);
    printf("  client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %ld   errors %ld\n", cpu_per,
           peak_rss_kb / 1024.0, peak_threads, errs);
    print_errors();
    /* Whole run, warm-up included, as the metrics count from the start of the process. */
    printf("  metrics of topic %s (whole run, warm-up included):\n", opt.topic);
    int differ = compare("messages sent", "rmq_messages_sent_total", atomic_load(&acked));
    if (opt.batch == 1 && (long)opt.size < compress_over)
        differ |= compare("body bytes sent", "rmq_bytes_sent_total", (long long)atomic_load(&acked) * (long long)opt.size);
    else
        printf("  %-22s metrics %lld (not compared: it counts %s as sent)\n", "body bytes sent",
               metric("rmq_bytes_sent_total"), opt.batch > 1 ? "encoded batches" : "compressed bodies");
    /* A request that failed in the end failed every attempt, one more than its retries; one that
     * succeeded after failures failed as many attempts as it was retried. (A request refused
     * before any attempt, for want of a route, is no attempt: the two then differ.) */
    long long failed_attempts = metric("rmq_send_errors_total"), retries = metric("rmq_send_retries_total");
    differ |= compare_value("failed requests", atomic_load(&failed_requests), failed_attempts - retries);
    differ |= compare("sends in flight", "rmq_sends_in_flight", 0);
    if (differ) printf("  METRICS DIFFER from the run's counts\n");
    printf("RESULT client=rmq-c workload=%s mode=%s threads=%d inflight=%d batch=%d size=%zu msgs=%ld "
           "secs=%.3f tps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%ld cpu_us_per_msg=%.3f "
           "rss_kb=%ld threads_peak=%ld\n",
           workload, mode_name(), opt.threads, opt.mode == MODE_ASYNC ? opt.inflight : 0, opt.batch, opt.size, ok,
           secs, tps, p50, p99, p999, errs, cpu_per, peak_rss_kb, peak_threads);
    fflush(stdout);
    if (rmq_producer_destroy(producer) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: destroy: %s\n", rmq_last_error_message());
        return 1;
    }
    return errs == 0 && !differ && ok == (opt.count ? opt.count : ok) ? 0 : 1;
}

/* ---------------------------------------------------------------- consumer ---- */

static _Atomic long received;
static _Atomic long long received_bytes;
static _Atomic uint64_t first_ns, last_ns; /* first message; the message that made the count */

static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx, (void)user_data;
    long long bytes = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (rmq_received_message_body(msgs[i], &body, &len) == RMQ_OK) bytes += (long long)len;
    }
    uint64_t t = now_ns(), zero = 0;
    atomic_compare_exchange_strong(&first_ns, &zero, t);
    atomic_fetch_add(&received_bytes, bytes);
    long before = atomic_fetch_add(&received, (long)count);
    if (before < opt.count && before + (long)count >= opt.count) atomic_store(&last_ns, t);
    return RMQ_CONSUME_SUCCESS;
}

static int consume(void) {
    if (opt.count <= 0) {
        fprintf(stderr, "rmq_bench: consume needs --count N (messages to drain)\n");
        return 2;
    }
    char group[128];
    snprintf(group, sizeof group, "RmqBenchConsumer_%ld", (long)getpid());
    /* A new group reads the topic from its first message; --set may say otherwise. */
    rmq_config_t *cfg = make_config("consumer.group", opt.group ? opt.group : group);
    if (!cfg) return 1;
    int from_set = 0;
    for (int i = 0; i < opt.nsets; i++) from_set |= !strncmp(opt.sets[i], "consumer.consume-from-where=", 28);
    if (!from_set) rmq_config_set(cfg, "consumer.consume-from-where", "first");
    rmq_push_consumer_t *consumer = NULL;
    if (rmq_push_consumer_create(cfg, &consumer) != RMQ_OK ||
        rmq_push_consumer_subscribe(consumer, opt.topic, "*") != RMQ_OK ||
        rmq_push_consumer_set_listener(consumer, on_messages, NULL) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: consumer: %s\n", rmq_last_error_message());
        return 1;
    }
    rmq_config_destroy(cfg);
    double cpu0 = cpu_us();
    uint64_t t0 = now_ns();
    if (rmq_push_consumer_start(consumer) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: consumer start: %s\n", rmq_last_error_message());
        return 1;
    }
    while (atomic_load(&received) < opt.count && (double)(now_ns() - t0) / 1e9 < opt.timeout) {
        sleep_ms(5);
        sample_proc();
    }
    double cpu1 = cpu_us();
    sample_proc();
    long got = atomic_load(&received);
    int done = got >= opt.count;
    uint64_t t_last = done ? atomic_load(&last_ns) : now_ns();
    double secs = (double)(t_last - t0) / 1e9;
    double since_first = first_ns ? (double)(t_last - atomic_load(&first_ns)) / 1e9 : 0;
    double rate = (done ? opt.count : got) / secs;
    double cpu_per = got ? (cpu1 - cpu0) / got : 0;
    printf("rmq (C) push consumer: topic %s, %s\n", opt.topic, opt.group ? opt.group : group);
    printf("  %s %ld of %ld messages (%.1f MiB) in %.2f s from start (%.2f s from the first message)\n",
           done ? "drained" : "TIMED OUT after", got, opt.count, atomic_load(&received_bytes) / 1048576.0, secs,
           since_first);
    printf("  %.0f msgs/s   client CPU %.2f us/msg   peak RSS %.1f MiB   peak threads %ld\n", rate, cpu_per,
           peak_rss_kb / 1024.0, peak_threads);
    printf("RESULT client=rmq-c workload=%s mode=consume msgs=%ld secs=%.3f tps=%.1f secs_from_first=%.3f "
           "errors=%d cpu_us_per_msg=%.3f rss_kb=%ld threads_peak=%ld\n",
           opt.label ? opt.label : "drain", got, secs, rate, since_first, done ? 0 : 1, cpu_per, peak_rss_kb,
           peak_threads);
    fflush(stdout);
    if (rmq_push_consumer_destroy(consumer) != RMQ_OK) {
        fprintf(stderr, "rmq_bench: destroy: %s\n", rmq_last_error_message());
        return 1;
    }
    /* Destroyed: every listener call has returned, and each recorded its batch. Messages that
     * arrived after the count was reached are in both. */
    printf("  metrics of topic %s:\n", opt.topic);
    int differ = compare("messages consumed", "rmq_messages_consumed_total", atomic_load(&received));
    differ |= compare("body bytes consumed", "rmq_bytes_consumed_total", atomic_load(&received_bytes));
    differ |= compare("failed listener calls", "rmq_consume_failures_total", 0);
    if (differ) printf("  METRICS DIFFER from the run's counts\n");
    fflush(stdout);
    return done && !differ ? 0 : 1;
}

int main(int argc, char **argv) {
    epoch_ns = 0;
    epoch_ns = now_ns();
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume"))) {
        usage(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    int consumer = !strcmp(argv[1], "consume");
    if (parse_options(argc - 1, argv + 1) != 0) return 2;
    return consumer ? consume() : produce();
}
