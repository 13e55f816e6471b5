/* The push consumer's C ABI against the real broker (RMQ_NAMESRV), beyond test_consumer.c:
 * failing messages retried then moved to %DLQ%<group> (read back by another group), two and
 * three consumers in one group (every message consumed, the queues partitioned among them), and
 * fork() of a running consumer (the child gets RMQ_ERR_FORKED, the parent keeps consuming).
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs.
 *
 *   test_consumer_group            every case
 *   test_consumer_group dlq fork   the named cases only */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 120
#define MAX_WAVES 64
#define WAVE 16 /* messages per wave: every queue of a 4-queue topic gets some */
#define MAX_MEMBERS 3

/* Sends body "<wave>-<i>". */
static void send_one(rmq_producer_t *p, const char *topic, int wave, int i) {
    char body[32];
    snprintf(body, sizeof body, "%d-%d", wave, i);
    rmq_message_t *m = text_message(topic, body);
    rmq_send_result_t *r = NULL;
    rmq_status_t s = send_retrying(p, m, &r);
    EXPECT(s == RMQ_OK);
    if (s == RMQ_OK) rmq_send_result_destroy(r);
    rmq_message_destroy(m);
}

static rmq_push_consumer_t *new_consumer(const char *group, const char *topic,
                                         const char *max_reconsume, rmq_message_listener_t listener,
                                         void *user_data) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "consumer.rebalance-interval", "1000"));
    if (max_reconsume) OK(rmq_config_set(cfg, "consumer.max-reconsume-times", max_reconsume));
    char instance[96];
    unique(instance, sizeof instance, "cg");
    OK(rmq_config_set(cfg, "instance-name", instance));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, listener, user_data));
    OK(rmq_push_consumer_start(c));
    return c;
}

/* ------------------------------------------------------------------------ shared recording */

/* Per message "<wave>-<i>": which members received it (bit per member), its queue, and the
 * reconsume counts it was delivered with (bit per count). */
struct table {
    pthread_mutex_t mu;
    unsigned owners[MAX_WAVES][WAVE];
    int queue[MAX_WAVES][WAVE];
    unsigned times[MAX_WAVES][WAVE];
    int foreign;
    int fail; /* RECONSUME_LATER (delay level 1) for every batch */
};

struct member {
    struct table *t;
    int index;
};

static rmq_consume_status_t record(const rmq_received_message_t *const *msgs, size_t count,
                                   rmq_consume_context_t *ctx, void *user_data) {
    struct member *me = user_data;
    struct table *t = me->t;
    pthread_mutex_lock(&t->mu);
    for (size_t k = 0; k < count; k++) {
        const uint8_t *body;
        size_t len;
        int32_t q = -1, times = -1;
        int wave = -1, i = -1;
        char text[32] = {0};
        if (rmq_received_message_body(msgs[k], &body, &len) == RMQ_OK && len < sizeof text)
            memcpy(text, body, len);
        if (sscanf(text, "%d-%d", &wave, &i) != 2 || wave < 0 || wave >= MAX_WAVES || i < 0 ||
            i >= WAVE || rmq_received_message_queue_id(msgs[k], &q) != RMQ_OK ||
            rmq_received_message_reconsume_times(msgs[k], &times) != RMQ_OK || times < 0 ||
            times > 31) {
            t->foreign++;
            continue;
        }
        t->owners[wave][i] |= 1u << me->index;
        t->queue[wave][i] = q;
        t->times[wave][i] |= 1u << times;
    }
    int fail = t->fail;
    pthread_mutex_unlock(&t->mu);
    if (!fail) return RMQ_CONSUME_SUCCESS;
    ctx->delay_level = 1; /* the broker's 1 s */
    return RMQ_CONSUME_RECONSUME_LATER;
}

static void table_init(struct table *t) {
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
}

/* Waves 0..waves-1 all received by someone. */
static int all_received(struct table *t, int waves) {
    pthread_mutex_lock(&t->mu);
    int all = 1;
    for (int w = 0; w < waves; w++)
        for (int i = 0; i < WAVE; i++) all &= t->owners[w][i] != 0;
    pthread_mutex_unlock(&t->mu);
    return all;
}

static int wait_received(struct table *t, int waves) {
    double until = now_s() + WITHIN_SECONDS;
    while (!all_received(t, waves) && now_s() < until) sleep_ms(20);
    return all_received(t, waves);
}

/* Wave w was partitioned: each queue's messages went to exactly one member, and every one of
 * `members` owned some queue. */
static int partitioned(struct table *t, int w, int members) {
    pthread_mutex_lock(&t->mu);
    unsigned queue_owner[64] = {0};
    unsigned seen = 0;
    int ok = 1;
    for (int i = 0; i < WAVE; i++) {
        unsigned o = t->owners[w][i];
        int q = t->queue[w][i];
        if (o == 0 || (o & (o - 1)) != 0 || q < 0 || q >= 64) {
            ok = 0; /* not received, or received by two */
            continue;
        }
        if (queue_owner[q] && queue_owner[q] != o) ok = 0;
        queue_owner[q] = o;
        seen |= o;
    }
    pthread_mutex_unlock(&t->mu);
    return ok && seen == (1u << members) - 1;
}

/* ------------------------------------------------------------------------------- the cases */

/* Two or three consumers of one group: every message is consumed, and once the group has
 * settled a wave of messages is split by queue, each queue to exactly one consumer. */
static void run_group(int members) {
    static struct table t;
    table_init(&t);
    char topic[128], group[128];
    unique(topic, sizeof topic, "CGroup");
    unique(group, sizeof group, "CGroupGroup");
    rmq_producer_t *p = start_producer("CGroupProducer", NULL);
    for (int i = 0; i < WAVE; i++) send_one(p, topic, 0, i);
    struct member m[MAX_MEMBERS];
    rmq_push_consumer_t *c[MAX_MEMBERS];
    for (int k = 0; k < members; k++) {
        m[k].t = &t;
        m[k].index = k;
        c[k] = new_consumer(group, topic, NULL, record, &m[k]);
    }
    EXPECT(wait_received(&t, 1));
    int wave = 1, settled = 0;
    double until = now_s() + WITHIN_SECONDS;
    while (!settled && wave < MAX_WAVES && now_s() < until) {
        for (int i = 0; i < WAVE; i++) send_one(p, topic, wave, i);
        EXPECT(wait_received(&t, wave + 1));
        settled = partitioned(&t, wave, members);
        wave++;
    }
    EXPECT(settled);
    EXPECT(all_received(&t, wave));
    EXPECT(t.foreign == 0);
    for (int k = 0; k < members; k++) OK(rmq_push_consumer_destroy(c[k]));
    OK(rmq_producer_destroy(p));
}

static void case_group2(void) { run_group(2); }
static void case_group3(void) { run_group(3); }

/* A listener that always fails: each message is delivered with reconsume counts 0 and 1 (max
 * 1), then the broker moves it to %DLQ%<group>, where another group reads it; no delivery
 * comes after that. */
static void case_dlq(void) {
    static struct table t, dead;
    table_init(&t);
    table_init(&dead);
    t.fail = 1;
    char topic[128], group[128], reader[128], dlq[160];
    unique(topic, sizeof topic, "CDlq");
    unique(group, sizeof group, "CDlqGroup");
    unique(reader, sizeof reader, "CDlqReader");
    snprintf(dlq, sizeof dlq, "%%DLQ%%%s", group);
    const int n = 4;
    rmq_producer_t *p = start_producer("CGroupProducer", NULL);
    for (int i = 0; i < n; i++) send_one(p, topic, 0, i);
    struct member mt = {&t, 0}, md = {&dead, 0};
    rmq_push_consumer_t *c = new_consumer(group, topic, "1", record, &mt);
    double until = now_s() + WITHIN_SECONDS;
    int both = 0;
    while (both < n && now_s() < until) {
        pthread_mutex_lock(&t.mu);
        both = 0;
        for (int i = 0; i < n; i++) both += t.times[0][i] == 3; /* counts 0 and 1 */
        pthread_mutex_unlock(&t.mu);
        if (both < n) sleep_ms(20);
    }
    EXPECT(both == n);
    rmq_push_consumer_t *d = new_consumer(reader, dlq, NULL, record, &md);
    until = now_s() + WITHIN_SECONDS;
    int in_dlq = 0;
    while (in_dlq < n && now_s() < until) {
        pthread_mutex_lock(&dead.mu);
        in_dlq = 0;
        for (int i = 0; i < n; i++) in_dlq += dead.owners[0][i] != 0;
        pthread_mutex_unlock(&dead.mu);
        if (in_dlq < n) sleep_ms(20);
    }
    EXPECT(in_dlq == n);
    OK(rmq_push_consumer_destroy(d));
    OK(rmq_push_consumer_destroy(c));
    pthread_mutex_lock(&t.mu);
    int late = 0;
    for (int i = 0; i < n; i++) late += (t.times[0][i] & ~3u) != 0;
    pthread_mutex_unlock(&t.mu);
    EXPECT(late == 0);
    EXPECT(t.foreign == 0 && dead.foreign == 0);
    OK(rmq_producer_destroy(p));
}

/* fork() while a consumer runs: in the child every call on it is RMQ_ERR_FORKED and destroy
 * frees the handle only; the parent's consumer goes on consuming what is sent afterwards. */
static void case_fork(void) {
    static struct table t;
    table_init(&t);
    char topic[128], group[128];
    unique(topic, sizeof topic, "CForkRunning");
    unique(group, sizeof group, "CForkRunningGroup");
    rmq_producer_t *p = start_producer("CGroupProducer", NULL);
    for (int i = 0; i < WAVE; i++) send_one(p, topic, 0, i);
    struct member m = {&t, 0};
    rmq_push_consumer_t *c = new_consumer(group, topic, NULL, record, &m);
    EXPECT(wait_received(&t, 1));
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        int bad = 0;
        bad += rmq_push_consumer_subscribe(c, "T2", "*") != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_start(c) != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_shutdown(c) != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_destroy(c) != RMQ_OK;
        _exit(bad);
    }
    int st = 0;
    EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < WAVE; i++) send_one(p, topic, 1, i);
    EXPECT(wait_received(&t, 2));
    OK(rmq_push_consumer_destroy(c));
    EXPECT(t.foreign == 0);
    OK(rmq_producer_destroy(p));
}

static const struct check_case CASES[] = {
    {"fork", case_fork}, {"dlq", case_dlq}, {"group2", case_group2}, {"group3", case_group3},
};

int main(int argc, char **argv) {
    check_namesrv("test_consumer_group");
    alarm(900);
    return check_run("test_consumer_group", CASES, sizeof CASES / sizeof CASES[0], 8, argc, argv);
}
