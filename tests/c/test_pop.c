/* The push consumer in POP mode (consumer.consume-mode=pop) through the C ABI against the real
 * broker (RMQ_NAMESRV): two consumers of one group consume every one of N messages, and a
 * message delivered twice is only ever a re-delivery (its reconsume count is higher); a message
 * not acked within its invisible time comes again, with the same message id; an orderly
 * listener (orderly POP) gets each key's messages in send order, and a suspended batch again in
 * the same order; unknown consume modes are refused.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 90
#define N 60
#define MAX_TIMES 4

/* Deliveries per message index and reconsume count, and per consumer. */
struct record {
    pthread_mutex_t mu;
    int seen[N][MAX_TIMES];
    int foreign;
    int calls;
};

static struct record rec;

static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    int *calls = user_data;
    (void)ctx;
    pthread_mutex_lock(&rec.mu);
    (*calls)++;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        int32_t times = -1;
        char text[64] = {0};
        int idx = -1;
        if (rmq_received_message_body(msgs[i], &body, &len) == RMQ_OK && len < sizeof text)
            memcpy(text, body, len);
        rmq_received_message_reconsume_times(msgs[i], &times);
        if (sscanf(text, "pop-%d", &idx) == 1 && idx >= 0 && idx < N && times >= 0 &&
            times < MAX_TIMES)
            rec.seen[idx][times]++;
        else
            rec.foreign++;
    }
    pthread_mutex_unlock(&rec.mu);
    return RMQ_CONSUME_SUCCESS;
}

static int distinct(void) {
    int k = 0;
    pthread_mutex_lock(&rec.mu);
    for (int i = 0; i < N; i++) {
        int any = 0;
        for (int t = 0; t < MAX_TIMES; t++) any |= rec.seen[i][t] > 0;
        k += any;
    }
    pthread_mutex_unlock(&rec.mu);
    return k;
}

static rmq_push_consumer_t *pop_consumer(const char *group, const char *topic, int *calls) {
    char instance[96];
    unique(instance, sizeof instance, "cpop");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "instance-name", instance));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "consumer.consume-mode", "pop"));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, on_messages, calls));
    return c;
}

static void send_all(const char *topic) {
    rmq_producer_t *p = start_producer("CPopProducer", NULL);
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "pop-%d", i);
        rmq_message_t *m = text_message(topic, body);
        rmq_send_result_t *r = NULL;
        rmq_status_t s = send_retrying(p, m, &r);
        EXPECT(s == RMQ_OK);
        if (s == RMQ_OK) rmq_send_result_destroy(r);
        rmq_message_destroy(m);
    }
    OK(rmq_producer_destroy(p));
}

static void two_consumers_consume_everything(void) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "CPop");
    unique(group, sizeof group, "CPopGroup");
    pthread_mutex_init(&rec.mu, NULL);
    int calls_a = 0, calls_b = 0;
    rmq_push_consumer_t *a = pop_consumer(group, topic, &calls_a);
    rmq_push_consumer_t *b = pop_consumer(group, topic, &calls_b);
    send_all(topic);
    OK(rmq_push_consumer_start(a));
    OK(rmq_push_consumer_start(b));
    double until = now_s() + WITHIN_SECONDS;
    while (distinct() < N && now_s() < until) sleep_ms(50);
    EXPECT(distinct() == N);
    OK(rmq_push_consumer_destroy(a));
    OK(rmq_push_consumer_destroy(b));
    pthread_mutex_lock(&rec.mu);
    int twice = 0;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < MAX_TIMES; t++) twice += rec.seen[i][t] > 1;
    EXPECT(twice == 0);
    EXPECT(rec.foreign == 0);
    pthread_mutex_unlock(&rec.mu);
}

static void unknown_modes_are_refused(void) {
    char group[96];
    unique(group, sizeof group, "CPopPoll");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-mode", "pop"));
    EXPECT(rmq_config_set(cfg, "consumer.consume-mode", "push") == RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_config_destroy(cfg);
}


/* ------------------------------------------------ a message not acked comes again */

struct slow_record {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int deliveries;       /* of "slow-0" */
    char ids[2][128];     /* its message id at the first two */
    int32_t times[2];
    double at[2];
};

static struct slow_record slow;

/* Holds the first delivery of "slow-0" (not answering it) until it is delivered again. */
static rmq_consume_status_t on_slow(const rmq_received_message_t *const *msgs, size_t count,
                                    rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx;
    (void)user_data;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (rmq_received_message_body(msgs[i], &body, &len) != RMQ_OK || !eq_view((const char *)body, len, "slow-0"))
            continue;
        const char *id;
        size_t id_len;
        int32_t times = -1;
        rmq_received_message_reconsume_times(msgs[i], &times);
        pthread_mutex_lock(&slow.mu);
        int k = slow.deliveries++;
        if (k < 2) {
            if (rmq_received_message_msg_id(msgs[i], &id, &id_len) == RMQ_OK && id_len < sizeof slow.ids[k]) {
                memcpy(slow.ids[k], id, id_len);
                slow.ids[k][id_len] = 0;
            }
            slow.times[k] = times;
            slow.at[k] = now_s();
        }
        pthread_cond_broadcast(&slow.cv);
        if (k == 0) {
            double until = now_s() + WITHIN_SECONDS;
            while (slow.deliveries < 2 && now_s() < until) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&slow.cv, &slow.mu, &ts);
            }
        }
        pthread_mutex_unlock(&slow.mu);
    }
    return RMQ_CONSUME_SUCCESS;
}

static int slow_deliveries(void) {
    pthread_mutex_lock(&slow.mu);
    int n = slow.deliveries;
    pthread_mutex_unlock(&slow.mu);
    return n;
}

static void not_acked_comes_again(void) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "CPopInvisible");
    unique(group, sizeof group, "CPopInvisibleGroup");
    pthread_mutex_init(&slow.mu, NULL);
    pthread_cond_init(&slow.cv, NULL);
    rmq_producer_t *p = start_producer("CPopProducer", NULL);
    rmq_send_result_t *r = NULL;
    rmq_message_t *m = text_message(topic, "warmup");
    EXPECT(send_retrying(p, m, &r) == RMQ_OK);
    rmq_send_result_destroy(r);
    rmq_message_destroy(m);
    rmq_push_consumer_t *c = create_consumer("cpop", group, "consumer.consume-mode", "pop",
                                             "consumer.pop-invisible-time-millis", "2000", NULL);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, on_slow, NULL));
    OK(rmq_push_consumer_start(c));
    m = text_message(topic, "slow-0");
    r = NULL;
    EXPECT(send_retrying(p, m, &r) == RMQ_OK);
    rmq_send_result_destroy(r);
    rmq_message_destroy(m);
    double until = now_s() + WITHIN_SECONDS;
    while (slow_deliveries() < 2 && now_s() < until) sleep_ms(50);
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
    pthread_mutex_lock(&slow.mu);
    EXPECT(slow.deliveries >= 2);
    EXPECT(slow.ids[0][0] != 0 && strcmp(slow.ids[0], slow.ids[1]) == 0);
    EXPECT(slow.times[0] == 0 && slow.times[1] == 1);
    EXPECT(slow.at[1] - slow.at[0] >= 1.5); /* not before its invisible time */
    pthread_mutex_unlock(&slow.mu);
}

/* ------------------------------------------------------------------ orderly POP */

#define KEYS 4
#define PER_KEY 20

/* Sends "k<key>:<i>" to the queue of its key (hash selector); a failed ordered send is
 * repeated in place, so the order stays. */
static void send_keyed(rmq_producer_t *p, const char *topic, int key, int i) {
    char body[32], k[16];
    snprintf(k, sizeof k, "k%d", key);
    snprintf(body, sizeof body, "k%d:%d", key, i);
    rmq_message_t *m = text_message(topic, body);
    rmq_queue_selector_t sel;
    memset(&sel, 0, sizeof sel);
    sel.kind = RMQ_SELECTOR_HASH;
    sel.key = k;
    sel.key_len = strlen(k);
    rmq_status_t st = RMQ_ERR_TIMEOUT;
    for (int tries = 0; tries < 60 && (st = rmq_producer_send_sync_select(p, m, &sel, NULL)) != RMQ_OK; tries++)
        sleep_ms(500);
    EXPECT(st == RMQ_OK);
    rmq_message_destroy(m);
}

/* Every listener call: its bodies' (key, index) and reconsume counts. */
#define MAX_CALLS 512
struct ocall {
    int n;
    int key[8], idx[8];
    int32_t times[8];
};

struct orecord {
    pthread_mutex_t mu;
    struct ocall calls[MAX_CALLS];
    int ncalls, total, malformed;
    int suspend_idx; /* the call holding k0:<suspend_idx> is suspended once; -1: never */
};

static struct orecord orec;

static rmq_consume_orderly_status_t on_ordered(const rmq_received_message_t *const *msgs, size_t count,
                                               rmq_consume_orderly_context_t *ctx, void *user_data) {
    (void)user_data;
    struct ocall call = {0};
    int suspend = 0;
    for (size_t j = 0; j < count && j < 8; j++) {
        const uint8_t *b;
        size_t len;
        char text[32] = {0};
        int32_t t = -1;
        if (rmq_received_message_body(msgs[j], &b, &len) == RMQ_OK && len < sizeof text) memcpy(text, b, len);
        rmq_received_message_reconsume_times(msgs[j], &t);
        if (sscanf(text, "k%d:%d", &call.key[call.n], &call.idx[call.n]) != 2) continue;
        call.times[call.n] = t;
        if (call.key[call.n] == 0 && call.idx[call.n] == orec.suspend_idx && t == 0) suspend = 1;
        call.n++;
    }
    pthread_mutex_lock(&orec.mu);
    if (orec.ncalls < MAX_CALLS) orec.calls[orec.ncalls++] = call;
    orec.total += call.n;
    orec.malformed += (int)count - call.n;
    pthread_mutex_unlock(&orec.mu);
    if (suspend) {
        ctx->suspend_millis = 300;
        return RMQ_CONSUME_ORDERLY_SUSPEND;
    }
    return RMQ_CONSUME_ORDERLY_SUCCESS;
}

/* Whether k<key>:<PER_KEY - 1> was handed to the listener and succeeded (not suspended). */
static int orec_saw_last(int keys) {
    int seen = 0;
    pthread_mutex_lock(&orec.mu);
    for (int c = 0; c < orec.ncalls; c++)
        for (int j = 0; j < orec.calls[c].n; j++)
            if (orec.calls[c].idx[j] == PER_KEY - 1) seen |= 1 << orec.calls[c].key[j];
    pthread_mutex_unlock(&orec.mu);
    return seen == (1 << keys) - 1;
}

/* Runs an orderly POP consumer over `keys` keys of PER_KEY messages each, in chunks of `batch`,
 * until each key's last message was handed to the listener. */
static void run_orderly(const char *tag, int keys, const char *batch) {
    char topic[96], group[112];
    unique(topic, sizeof topic, tag);
    snprintf(group, sizeof group, "%sGroup", topic);
    rmq_producer_t *p = start_producer("CPopOrderlyProducer", NULL);
    for (int i = 0; i < PER_KEY; i++)
        for (int k = 0; k < keys; k++) send_keyed(p, topic, k, i);
    rmq_push_consumer_t *c = create_consumer("cpopo", group, "consumer.consume-mode", "pop",
                                             "consumer.consume-message-batch-max-size", batch, NULL);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_orderly_listener(c, on_ordered, NULL));
    OK(rmq_push_consumer_start(c));
    double until = now_s() + WITHIN_SECONDS;
    while (!orec_saw_last(keys) && now_s() < until) sleep_ms(50);
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
}

static void orderly_keys_in_send_order(void) {
    orec.ncalls = orec.total = orec.malformed = 0;
    orec.suspend_idx = -1;
    run_orderly("CPopOrderly", KEYS, "3");
    pthread_mutex_lock(&orec.mu);
    int next[KEYS] = {0}, bad = 0;
    for (int c = 0; c < orec.ncalls; c++)
        for (int j = 0; j < orec.calls[c].n; j++) {
            int k = orec.calls[c].key[j];
            if (k < 0 || k >= KEYS || orec.calls[c].idx[j] != next[k]++) bad++;
        }
    EXPECT(bad == 0);
    for (int k = 0; k < KEYS; k++) EXPECT(next[k] == PER_KEY);
    EXPECT(orec.malformed == 0);
    pthread_mutex_unlock(&orec.mu);
}

static void orderly_suspend_comes_again_in_order(void) {
    orec.ncalls = orec.total = orec.malformed = 0;
    orec.suspend_idx = 5;
    /* One key; chunks of 4: the chunk holding k0:5 is suspended once, then all consumed. */
    run_orderly("CPopOrderlySuspend", 1, "4");
    pthread_mutex_lock(&orec.mu);
    int at = -1;
    for (int c = 0; c < orec.ncalls && at < 0; c++)
        for (int j = 0; j < orec.calls[c].n; j++)
            if (orec.calls[c].idx[j] == 5) at = c;
    EXPECT(at >= 0 && at + 1 < orec.ncalls);
    if (at >= 0 && at + 1 < orec.ncalls) {
        struct ocall *s = &orec.calls[at], *again = &orec.calls[at + 1];
        EXPECT(s->n == again->n);
        for (int j = 0; j < s->n && j < again->n; j++) {
            EXPECT(s->idx[j] == again->idx[j]);
            EXPECT(s->times[j] == 0 && again->times[j] == 1);
        }
        /* Consumed once each, in order: every call but the suspended one. */
        int next = 0, bad = 0;
        for (int c = 0; c < orec.ncalls; c++) {
            if (c == at) continue;
            for (int j = 0; j < orec.calls[c].n; j++) bad += orec.calls[c].idx[j] != next++;
        }
        EXPECT(bad == 0 && next == PER_KEY);
    }
    pthread_mutex_unlock(&orec.mu);
}

int main(void) {
    check_namesrv("test_pop");
    alarm(600);
    pthread_mutex_init(&orec.mu, NULL);
    two_consumers_consume_everything();
    not_acked_comes_again();
    orderly_keys_in_send_order();
    orderly_suspend_comes_again_in_order();
    unknown_modes_are_refused();
    return check_report("test_pop");
}
