/* A push consumer killed with SIGKILL loses nothing, and the consumer that takes over re-delivers
 * at most what was in flight, through the C ABI against the real broker (RMQ_NAMESRV).
 *
 * The program runs itself again as the child ("child DIR TOPIC GROUP"): the child consumes and
 * appends "<body> <queue> <offset>" for each message to DIR/consumed before its listener returns
 * success, for RECORDED_CALLS calls; every later call appends a line to DIR/blocked and never
 * returns. Once all consume threads are blocked nothing more is consumed, and the child keeps
 * committing (every COMMIT_MS) the lowest unconsumed offset of each queue. The parent then kills
 * it with SIGKILL and a new consumer of the group finishes the topic.
 *
 * The bound: a queue is pulled only while its lowest unconsumed offset is within MAX_SPAN of the
 * pull position, and a pull adds at most PULL_BATCH, so what the child consumed above its last
 * committed offset of a queue, the only consumed messages that can come again, is at most
 * MAX_SPAN + PULL_BATCH per queue. The parent gives the child SETTLE_MS (many commit intervals)
 * after the last thread blocks for that commit to reach the broker; this is the one wait that
 * is not an observed outcome (no API reads a group's committed offset). */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MESSAGES 300
#define THREADS 4
#define BATCH 2
#define RECORDED_CALLS 40
#define MAX_SPAN 16
#define PULL_BATCH 4
#define COMMIT_MS "200"
#define SETTLE_MS 3000
#define WITHIN_SECONDS 120
#define MAX_QUEUES 64

static rmq_push_consumer_t *new_consumer(const char *group, const char *topic,
                                         rmq_message_listener_t listener, void *user_data) {
    rmq_config_t *cfg = rmq_config_create();
    char n[16];
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    snprintf(n, sizeof n, "%d", THREADS);
    OK(rmq_config_set(cfg, "consumer.consume-thread-number", n));
    snprintf(n, sizeof n, "%d", BATCH);
    OK(rmq_config_set(cfg, "consumer.consume-message-batch-max-size", n));
    snprintf(n, sizeof n, "%d", PULL_BATCH);
    OK(rmq_config_set(cfg, "consumer.pull-batch-size", n));
    snprintf(n, sizeof n, "%d", MAX_SPAN);
    OK(rmq_config_set(cfg, "consumer.consume-concurrently-max-span", n));
    OK(rmq_config_set(cfg, "consumer.persist-consumer-offset-interval", COMMIT_MS));
    OK(rmq_config_set(cfg, "consumer.rebalance-interval", "1000"));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, listener, user_data));
    OK(rmq_push_consumer_start(c));
    return c;
}

/* "k-<i>" -> i, or -1. */
static int body_index(const rmq_received_message_t *m) {
    const uint8_t *body;
    size_t len;
    char text[32] = {0};
    int i = -1;
    if (rmq_received_message_body(m, &body, &len) != RMQ_OK || len >= sizeof text) return -1;
    memcpy(text, body, len);
    if (sscanf(text, "k-%d", &i) != 1 || i < 0 || i >= MESSAGES) return -1;
    return i;
}

/* ------------------------------------------------------------------------------- the child */

static int consumed_fd, blocked_fd;
static int calls;
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;

static rmq_consume_status_t child_listener(const rmq_received_message_t *const *msgs,
                                           size_t count, rmq_consume_context_t *ctx,
                                           void *user_data) {
    (void)ctx;
    (void)user_data;
    pthread_mutex_lock(&calls_mu);
    int call = calls++;
    pthread_mutex_unlock(&calls_mu);
    if (call >= RECORDED_CALLS) {
        if (write(blocked_fd, "blocked\n", 8) != 8) abort();
        for (;;) sleep_ms(3600 * 1000L);
    }
    char lines[1024];
    size_t used = 0;
    for (size_t k = 0; k < count; k++) {
        int32_t q = -1;
        int64_t off = -1;
        rmq_received_message_queue_id(msgs[k], &q);
        rmq_received_message_queue_offset(msgs[k], &off);
        used += (size_t)snprintf(lines + used, sizeof lines - used, "%d %d %lld\n",
                                 body_index(msgs[k]), (int)q, (long long)off);
    }
    /* One append per call, done before success is returned: SIGKILL cannot lose it. */
    if (write(consumed_fd, lines, used) != (ssize_t)used) abort();
    return RMQ_CONSUME_SUCCESS;
}

static int child(const char *dir, const char *topic, const char *group) {
    char path[512];
    snprintf(path, sizeof path, "%s/consumed", dir);
    consumed_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    snprintf(path, sizeof path, "%s/blocked", dir);
    blocked_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (consumed_fd < 0 || blocked_fd < 0) return 2;
    new_consumer(group, topic, child_listener, NULL);
    for (;;) sleep_ms(3600 * 1000L);
}

/* ------------------------------------------------------------------------------ the parent */

struct taker {
    pthread_mutex_t mu;
    int times[MESSAGES]; /* deliveries to the consumer that takes over */
};

static rmq_consume_status_t take(const rmq_received_message_t *const *msgs, size_t count,
                                 rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx;
    struct taker *t = user_data;
    pthread_mutex_lock(&t->mu);
    for (size_t k = 0; k < count; k++) {
        int i = body_index(msgs[k]);
        if (i >= 0) t->times[i]++;
    }
    pthread_mutex_unlock(&t->mu);
    return RMQ_CONSUME_SUCCESS;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    check_namesrv("test_consumer_sigkill");
    if (argc == 5 && strcmp(argv[1], "child") == 0) return child(argv[2], argv[3], argv[4]);
    alarm(600);

    char topic[96], group[96], pgroup[96];
    snprintf(topic, sizeof topic, "CSigkill_%d_%ld", (int)getpid(), (long)time(NULL));
    snprintf(group, sizeof group, "CSigkillGroup_%d_%ld", (int)getpid(), (long)time(NULL));
    snprintf(pgroup, sizeof pgroup, "CSigkillP_%d_%ld", (int)getpid(), (long)time(NULL));

    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", pgroup));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    for (int i = 0; i < MESSAGES; i++) {
        char body[32];
        snprintf(body, sizeof body, "k-%d", i);
        rmq_message_t *m = text_message(topic, body);
        rmq_send_result_t *r = NULL;
        OK(rmq_producer_send_sync(p, m, &r));
        rmq_send_result_destroy(r);
        rmq_message_destroy(m);
    }
    OK(rmq_producer_destroy(p));

    char dir[] = "/tmp/rmq-c-sigkill-XXXXXX";
    EXPECT(mkdtemp(dir) != NULL);
    char *child_argv[] = {argv[0], "child", dir, topic, group, NULL};
    pid_t kid = -1;
    EXPECT(posix_spawn(&kid, "/proc/self/exe", NULL, NULL, child_argv, environ) == 0);

    char consumed_path[512], blocked_path[512];
    snprintf(consumed_path, sizeof consumed_path, "%s/consumed", dir);
    snprintf(blocked_path, sizeof blocked_path, "%s/blocked", dir);
    double until = now_s() + WITHIN_SECONDS;
    while (count_lines(blocked_path) < THREADS && now_s() < until) sleep_ms(50);
    EXPECT(count_lines(blocked_path) == THREADS);
    sleep_ms(SETTLE_MS);
    kill(kid, SIGKILL);
    int wstatus = 0;
    EXPECT(waitpid(kid, &wstatus, 0) == kid && WIFSIGNALED(wstatus));

    /* What the child consumed, each at most once. */
    static int child_times[MESSAGES], child_queue[MESSAGES];
    int lines = 0, dup = 0;
    FILE *f = fopen(consumed_path, "r");
    EXPECT(f != NULL);
    int i, q;
    long long off;
    while (f && fscanf(f, "%d %d %lld", &i, &q, &off) == 3) {
        lines++;
        EXPECT(i >= 0 && i < MESSAGES && q >= 0 && q < MAX_QUEUES);
        if (i < 0 || i >= MESSAGES || q < 0 || q >= MAX_QUEUES) continue;
        dup += child_times[i]++ > 0;
        child_queue[i] = q;
    }
    if (f) fclose(f);
    EXPECT(dup == 0);
    EXPECT(lines >= RECORDED_CALLS && lines <= RECORDED_CALLS * BATCH);

    struct taker t;
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    rmq_push_consumer_t *c = new_consumer(group, topic, take, &t);
    int covered = 0;
    until = now_s() + WITHIN_SECONDS;
    while (covered < MESSAGES && now_s() < until) {
        sleep_ms(100);
        pthread_mutex_lock(&t.mu);
        covered = 0;
        for (int k = 0; k < MESSAGES; k++) covered += child_times[k] > 0 || t.times[k] > 0;
        pthread_mutex_unlock(&t.mu);
    }
    OK(rmq_push_consumer_shutdown(c));
    OK(rmq_push_consumer_destroy(c));
    fprintf(stderr, "child consumed %d, union covers %d of %d\n", lines, covered, MESSAGES);
    EXPECT(covered == MESSAGES); /* nothing lost */

    int again[MAX_QUEUES] = {0}, again_total = 0;
    for (int k = 0; k < MESSAGES; k++) {
        if (child_times[k] && t.times[k]) {
            again[child_queue[k]]++;
            again_total++;
        }
    }
    for (int k = 0; k < MAX_QUEUES; k++) {
        if (again[k] > MAX_SPAN + PULL_BATCH)
            fprintf(stderr, "queue %d: %d consumed messages came again, bound %d\n", k, again[k],
                    MAX_SPAN + PULL_BATCH);
        EXPECT(again[k] <= MAX_SPAN + PULL_BATCH);
    }
    fprintf(stderr, "re-delivered after the kill: %d consumed messages\n", again_total);

    unlink(consumed_path);
    unlink(blocked_path);
    rmdir(dir);
    return check_report("test_consumer_sigkill");
}
