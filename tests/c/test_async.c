/* C tests of async batches and of async retries on another broker, against real brokers.
 * The retry test pauses broker-b of the two-broker IPv6 cluster (SIGSTOP, through the pid the
 * cluster script reports for RMQ_DATA_V6) and resumes it before it returns, also from an atexit
 * handler. Entry point: test_async(), called from test_rmq.c's main. */
#include "rmq.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

void test_async(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                int *failed);

static int *n_passed, *n_failed;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            (*n_passed)++;                                                             \
        } else {                                                                       \
            (*n_failed)++;                                                             \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, rmq_last_error_message());                                  \
        }                                                                              \
    } while (0)
#define EXPECT_STATUS(call, want) EXPECT((call) == (want))
#define OK(call) EXPECT_STATUS(call, RMQ_OK)

/* Outcomes of async sends, filled by on_done on the callback thread. */
enum { MAX_SENDS = 16 };
struct outcomes {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    int ok;
    int cancelled;
    int other;
    pthread_t thread;
    size_t ids; /* message ids in the last OK result */
    char brokers[MAX_SENDS][32];
    rmq_send_result_t *last;
};

static void on_done(const rmq_send_callback_params_t *params, void *user_data) {
    struct outcomes *o = user_data;
    pthread_mutex_lock(&o->lock);
    o->thread = pthread_self();
    if (params->status == RMQ_OK) {
        const char *b;
        size_t n;
        if (rmq_send_result_broker_name(params->result, &b, &n) == RMQ_OK && o->ok < MAX_SENDS)
            snprintf(o->brokers[o->ok], sizeof o->brokers[0], "%.*s", (int)n, b);
        rmq_send_result_message_count(params->result, &o->ids);
        if (o->last) rmq_send_result_destroy(o->last);
        rmq_send_result_clone(params->result, &o->last);
        o->ok++;
    } else if (params->status == RMQ_ERR_CANCELLED) {
        o->cancelled++;
    } else {
        o->other++;
    }
    o->calls++;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

static void outcomes_init(struct outcomes *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
}

static int wait_calls(struct outcomes *o, int want, int seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&o->lock);
    while (o->calls < want)
        if (pthread_cond_timedwait(&o->cond, &o->lock, &until) != 0) break;
    int calls = o->calls;
    pthread_mutex_unlock(&o->lock);
    return calls;
}

static rmq_producer_t *producer(const char *ns, const char *group, const char *const *kv) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", ns));
    OK(rmq_config_set(cfg, "producer.group", group));
    for (; kv && kv[0]; kv += 2) OK(rmq_config_set(cfg, kv[0], kv[1]));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    return p;
}

static rmq_message_t *message(const char *topic, const char *body, const char *keys) {
    rmq_message_t *m = rmq_message_create();
    OK(rmq_message_set_topic(m, topic));
    OK(rmq_message_set_keys(m, keys));
    OK(rmq_message_set_body(m, (const uint8_t *)body, strlen(body)));
    return m;
}

static void test_batch_async(const char *ns, const char *topic) {
    char group[96], t[128];
    snprintf(group, sizeof group, "CAsyncBatchGroup_%d", (int)getpid());
    snprintf(t, sizeof t, "%s_abatch", topic);
    rmq_producer_t *p = producer(ns, group, NULL);
    rmq_message_t *msgs[3] = {message(t, "one", "ab1"), message(t, "two", "ab2"),
                              message(t, "three", "ab3")};
    const rmq_message_t *const *all = (const rmq_message_t *const *)msgs;
    struct outcomes o;
    outcomes_init(&o);
    OK(rmq_producer_send_batch_async(p, all, 3, on_done, &o));
    EXPECT(wait_calls(&o, 1, 10) == 1);
    EXPECT(o.ok == 1 && o.ids == 3 && !pthread_equal(o.thread, pthread_self()));
    for (size_t i = 0; o.last && i < 3; i++) {
        const char *id, *body;
        size_t id_len, body_len;
        char buf[128];
        OK(rmq_send_result_offset_msg_id_at(o.last, i, &id, &id_len));
        snprintf(buf, sizeof buf, "%.*s", (int)id_len, id);
        rmq_message_t *back = NULL;
        OK(rmq_producer_view_message(p, buf, &back));
        const uint8_t *want;
        size_t want_len;
        OK(rmq_message_body(msgs[i], &want, &want_len));
        OK(rmq_message_body(back, (const uint8_t **)&body, &body_len));
        EXPECT(back && body_len == want_len && memcmp(body, want, body_len) == 0);
        rmq_message_destroy(back);
    }
    if (o.last) rmq_send_result_destroy(o.last);
    o.last = NULL;

    /* refused before anything is sent: the callback never runs */
    EXPECT_STATUS(rmq_producer_send_batch_async(p, all, 3, NULL, &o), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_producer_send_batch_async(p, NULL, 0, on_done, &o),
                  RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_message_set_topic(msgs[2], "OtherTopic"));
    EXPECT_STATUS(rmq_producer_send_batch_async(p, all, 3, on_done, &o), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(rmq_last_error_message(), "one topic") != NULL);
    OK(rmq_message_set_topic(msgs[2], t));

    /* the in-flight window applies: one slot, no waiting; a batch holds it */
    OK(rmq_producer_destroy(p));
    rmq_producer_t *w = producer(ns, group, (const char *const[]){
        "producer.max-in-flight-async-sends", "1", "producer.block-when-in-flight-full", "false",
        NULL});
    struct outcomes o2;
    outcomes_init(&o2);
    int accepted = 0, full = 0;
    for (int i = 0; i < 8; i++) {
        rmq_status_t st = rmq_producer_send_batch_async(w, all, 3, on_done, &o2);
        accepted += st == RMQ_OK;
        full += st == RMQ_ERR_IN_FLIGHT_FULL;
    }
    EXPECT(accepted >= 1 && accepted + full == 8);
    /* shutdown: every accepted batch completes exactly once, OK or cancelled */
    OK(rmq_producer_shutdown(w));
    OK(rmq_producer_destroy(w));
    EXPECT(o2.calls == accepted && o2.ok + o2.cancelled == accepted && o2.other == 0);
    if (o2.last) rmq_send_result_destroy(o2.last);
    for (int i = 0; i < 3; i++) rmq_message_destroy(msgs[i]);
}

/* --------------------------------------------------------------- retry on another broker */
static pid_t paused_pid;

static void resume_paused(void) {
    if (paused_pid > 0) kill(paused_pid, SIGCONT);
    paused_pid = 0;
}

static pid_t broker_pid(const char *data, const char *name) {
    if (setenv("RMQ_DATA", data, 1) != 0) return 0;
    FILE *f = popen("scripts/rocketmq-local.sh pids", "r");
    if (!f) return 0;
    char line[128];
    pid_t pid = 0;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ' ') pid = (pid_t)atol(line + n + 1);
    pclose(f);
    return pid;
}

/* `count` async sends of `p` to `t`; their outcomes in `o` once all callbacks ran */
static void send_async_n(rmq_producer_t *p, const char *t, int count, struct outcomes *o) {
    outcomes_init(o);
    int accepted = 0;
    for (int i = 0; i < count; i++) {
        rmq_message_t *m = message(t, "retry", "r");
        accepted += rmq_producer_send_async(p, m, on_done, o) == RMQ_OK;
        rmq_message_destroy(m);
    }
    EXPECT(accepted == count);
    EXPECT(wait_calls(o, count, 30) == count);
    if (o->last) rmq_send_result_destroy(o->last);
    o->last = NULL;
}

static void test_retry_on_other_broker(const char *v6_ns, const char *topic) {
    const char *data = getenv("RMQ_DATA_V6");
    EXPECT(data != NULL); /* RMQ_DATA_V6: where the cluster script finds the brokers' pids */
    if (!data) return;
    pid_t broker_b = broker_pid(data, "broker-b");
    EXPECT(broker_b > 0);
    if (broker_b <= 0) return;
    char group[96], t[128];
    snprintf(group, sizeof group, "CAsyncRetryGroup_%d", (int)getpid());
    snprintf(t, sizeof t, "%s_aretry", topic);
    /* 8 queues (4 per broker): 8 sends in a row pick each queue once */
    rmq_producer_t *retry = producer(v6_ns, group, (const char *const[]){
        "producer.send-message-timeout", "1500", "producer.retry-times-when-send-async-failed",
        "1", NULL});
    char group0[112];
    snprintf(group0, sizeof group0, "%s_none", group);
    rmq_producer_t *none = producer(v6_ns, group0, (const char *const[]){
        "producer.send-message-timeout", "1500", "producer.retry-times-when-send-async-failed",
        "0", NULL});
    /* both brokers serve the topic, and both producers know its route and brokers */
    struct outcomes warm;
    send_async_n(retry, t, 8, &warm);
    int on_b = 0;
    for (int i = 0; i < warm.ok && i < MAX_SENDS; i++) on_b += strcmp(warm.brokers[i], "broker-b") == 0;
    EXPECT(warm.ok == 8 && on_b == 4);
    send_async_n(none, t, 8, &warm);
    EXPECT(warm.ok == 8);

    atexit(resume_paused);
    paused_pid = broker_b;
    EXPECT(kill(broker_b, SIGSTOP) == 0);
    /* broker-b is silent: the attempts there time out after their share of the send timeout
     * (750 ms) and are retried on broker-a within it */
    struct outcomes with_retry, without;
    send_async_n(retry, t, 8, &with_retry);
    /* one attempt only: the sends that pick broker-b time out and fail */
    send_async_n(none, t, 8, &without);
    resume_paused();

    int all_on_a = 1;
    for (int i = 0; i < with_retry.ok && i < MAX_SENDS; i++)
        all_on_a &= strcmp(with_retry.brokers[i], "broker-a") == 0;
    EXPECT(with_retry.ok == 8 && with_retry.other == 0 && all_on_a);
    EXPECT(without.other == 4 && without.ok == 4);
    OK(rmq_producer_destroy(retry));
    OK(rmq_producer_destroy(none));
}

void test_async(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                int *failed) {
    n_passed = passed;
    n_failed = failed;
    test_batch_async(namesrv, topic);
    test_retry_on_other_broker(v6_namesrv, topic);
}
