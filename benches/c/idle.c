/* Idle cost of a started producer plus a push consumer through the C ABI: RSS, threads and
 * wake-ups per thread while no message flows.
 *   idle [name-server] [topic] [seconds]
 * It sends one message and consumes it first, so that every lazily started part (connections,
 * the consume thread) exists, then sits idle for the given seconds (60 by default) and prints,
 * per thread, the context switches over the idle window: each one is a wake-up. The expected
 * wake-ups are the timers (heartbeat and route refresh every 30 s, offset persistence every
 * 5 s, rebalance every 20 s) and the long polls, which the broker holds for up to 15 s per queue.
 * Prints one RESULT line for scripts. */
#define _DEFAULT_SOURCE
#include "rmq.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

#define TRY(call)                                                                   \
    do {                                                                            \
        rmq_status_t status_ = (call);                                              \
        if (status_ != RMQ_OK) {                                                    \
            fprintf(stderr, "%s failed: %s: %s\n", #call, rmq_status_name(status_), \
                    rmq_last_error_message());                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

struct thread_switches {
    long tid;
    char name[32];
    long switches;
};

/* Every thread's voluntary + involuntary context switches, from /proc/self/task. */
static int read_threads(struct thread_switches *out, int max) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        struct thread_switches *t = &out[n];
        t->tid = atol(e->d_name);
        strcpy(t->name, "?");
        t->switches = 0;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(t->name, sizeof t->name, f)) t->name[strcspn(t->name, "\n")] = 0;
            fclose(f);
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) t->switches += v;
            if (sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1) t->switches += v;
        }
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}

static atomic_long consumed;

static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    (void)msgs, (void)ctx, (void)user_data;
    atomic_fetch_add(&consumed, (long)count);
    return RMQ_CONSUME_SUCCESS;
}

int main(int argc, char **argv) {
    const char *ns = argc > 1 ? argv[1] : getenv("RMQ_NAMESRV");
    const char *topic = argc > 2 ? argv[2] : "RmqIdleTopic";
    int seconds = argc > 3 ? atoi(argv[3]) : 60;
    if (!ns || seconds <= 0) {
        fprintf(stderr, "usage: idle NAME-SERVER [TOPIC] [SECONDS]\n");
        return 2;
    }
    char tag[32];
    snprintf(tag, sizeof tag, "idle%ld", (long)getpid());

    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", ns));
    TRY(rmq_config_set(config, "producer.group", "RmqIdleProducer"));
    TRY(rmq_config_set(config, "consumer.group", "RmqIdleConsumer"));
    TRY(rmq_config_set(config, "consumer.consume-from-where", "last"));
    rmq_producer_t *producer = NULL;
    rmq_push_consumer_t *consumer = NULL;
    TRY(rmq_producer_create(config, &producer));
    TRY(rmq_push_consumer_create(config, &consumer));
    rmq_config_destroy(config);
    TRY(rmq_producer_start(producer));
    TRY(rmq_push_consumer_subscribe(consumer, topic, tag));
    TRY(rmq_push_consumer_set_listener(consumer, on_messages, NULL));
    TRY(rmq_push_consumer_start(consumer));

    /* One message through both, resent until the consumer (starting at the last offset) has
     * taken its queues and received one. */
    for (int i = 0; i < 60 && atomic_load(&consumed) == 0; i++) {
        rmq_message_t *msg = rmq_message_create();
        TRY(rmq_message_set_topic(msg, topic));
        TRY(rmq_message_set_tags(msg, tag));
        TRY(rmq_message_set_body(msg, (const uint8_t *)"idle", 4));
        TRY(rmq_producer_send_sync(producer, msg, NULL));
        rmq_message_destroy(msg);
        for (int j = 0; j < 10 && atomic_load(&consumed) == 0; j++) usleep(100000);
    }
    if (atomic_load(&consumed) == 0) {
        fprintf(stderr, "idle: the consumer received nothing in 60 s\n");
        return 1;
    }
    sleep(1); /* let the consumed offset and the send's bookkeeping settle */

    struct thread_switches before[MAX_THREADS], after[MAX_THREADS];
    int nb = read_threads(before, MAX_THREADS);
    sleep((unsigned)seconds);
    int na = read_threads(after, MAX_THREADS);
    long rss = rss_kb();

    long total = 0, library_threads = 0;
    printf("idle producer + push consumer for %d s (topic %s)\n", seconds, topic);
    printf("  RSS %.1f MiB, %d threads (main included)\n", rss / 1024.0, na);
    printf("  wake-ups over the idle window, per thread:\n");
    for (int i = 0; i < na; i++) {
        long base = 0;
        for (int j = 0; j < nb; j++)
            if (before[j].tid == after[i].tid) base = before[j].switches;
        long delta = after[i].switches - base;
        total += delta;
        if (after[i].tid != (long)getpid()) library_threads++;
        printf("    %-16s %6ld  (%.2f/s)\n", after[i].name, delta, (double)delta / seconds);
    }
    printf("  total %ld wake-ups, %.2f/s\n", total, (double)total / seconds);
    printf("RESULT client=rmq-c workload=idle secs=%d rss_kb=%ld threads=%d library_threads=%ld wakeups=%ld "
           "wakeups_per_s=%.2f\n",
           seconds, rss, na, library_threads, total, (double)total / seconds);

    TRY(rmq_push_consumer_destroy(consumer));
    TRY(rmq_producer_destroy(producer));
    return 0;
}
