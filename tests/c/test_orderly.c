/* Orderly consumption through the C ABI against the real broker (RMQ_NAMESRV): messages of a
 * sharding key arrive in send order, each once, while a second consumer joins and the group
 * rebalances; one queue never runs two listener calls at once; a suspended message comes again,
 * in order, after the context's suspend time; a message suspended max-reconsume-times times
 * goes to %DLQ%<group> and the queue moves on; misuse is refused.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs.
 *
 *   test_orderly              every case
 *   test_orderly order dlq    the named cases only */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 120
#define KEYS 8
#define MAX_PER_KEY 512

/* Sends "<key>:<i>" to the queue of `key` (Java's hash selector); retries while the topic is
 * being auto-created. */
static void send_keyed(rmq_producer_t *p, const char *topic, const char *key, int i) {
    char body[64];
    snprintf(body, sizeof body, "%s:%d", key, i);
    rmq_message_t *m = text_message(topic, body);
    rmq_queue_selector_t sel;
    memset(&sel, 0, sizeof sel);
    sel.kind = RMQ_SELECTOR_HASH;
    sel.key = key;
    sel.key_len = strlen(key);
    rmq_status_t s = RMQ_ERR_TIMEOUT;
    for (int tries = 0; tries < 60 && (s = rmq_producer_send_sync_select(p, m, &sel, NULL)) != RMQ_OK;
         tries++)
        sleep_ms(500);
    EXPECT(s == RMQ_OK);
    rmq_message_destroy(m);
}

/* An orderly consumer of `group` from the first offset; extra key/value pairs end with NULL. */
#define new_consumer(...) create_consumer("co", __VA_ARGS__)

/* "<key>:<i>" of a received message -> key number (from "k<n>") and i; 0 when malformed. */
static int parse_body(const rmq_received_message_t *m, int *key, int *i, char *copy, size_t cap) {
    const uint8_t *b;
    size_t len;
    if (rmq_received_message_body(m, &b, &len) != RMQ_OK || len + 1 > cap) return 0;
    memcpy(copy, b, len);
    copy[len] = 0;
    return sscanf(copy, "k%d:%d", key, i) == 2 && *key >= 0 && *key < KEYS && *i >= 0 &&
           *i < MAX_PER_KEY;
}

/* ------------------------------------------------------------- order across a rebalance */

struct order_record {
    pthread_mutex_t mu;
    int seq[KEYS][MAX_PER_KEY]; /* indexes per key, in the order the listeners saw them */
    int n[KEYS];
    int total, malformed;
    int per_consumer[2];
    int running[64], most_at_once; /* listener calls running per queue id */
};

struct order_listener {
    struct order_record *r;
    int who;
};

static rmq_consume_orderly_status_t on_ordered(const rmq_received_message_t *const *msgs, size_t count,
                                               rmq_consume_orderly_context_t *ctx, void *user_data) {
    (void)ctx;
    struct order_listener *l = user_data;
    struct order_record *r = l->r;
    int32_t qid = 0;
    rmq_received_message_queue_id(msgs[0], &qid);
    qid &= 63;
    pthread_mutex_lock(&r->mu);
    if (++r->running[qid] > r->most_at_once) r->most_at_once = r->running[qid];
    for (size_t j = 0; j < count; j++) {
        int key, i;
        char copy[64];
        if (!parse_body(msgs[j], &key, &i, copy, sizeof copy) || r->n[key] >= MAX_PER_KEY) {
            r->malformed++;
            continue;
        }
        r->seq[key][r->n[key]++] = i;
        r->total++;
        r->per_consumer[l->who]++;
    }
    pthread_mutex_unlock(&r->mu);
    sleep_ms(5); /* slow enough that the second consumer joins while the first is busy */
    pthread_mutex_lock(&r->mu);
    r->running[qid]--;
    pthread_mutex_unlock(&r->mu);
    return RMQ_CONSUME_ORDERLY_SUCCESS;
}

static int order_read(struct order_record *r, int who) {
    pthread_mutex_lock(&r->mu);
    int v = who < 0 ? r->total : r->per_consumer[who];
    pthread_mutex_unlock(&r->mu);
    return v;
}

static void test_order(void) {
    char topic[128], group[128], keys[KEYS][8];
    unique(topic, sizeof topic, "COrderly");
    unique(group, sizeof group, "COrderlyGroup");
    for (int k = 0; k < KEYS; k++) snprintf(keys[k], sizeof keys[k], "k%d", k);
    rmq_producer_t *p = start_producer("COrderlyProducer", NULL);
    int sent = 0; /* per key */
    for (; sent < 40; sent++)
        for (int k = 0; k < KEYS; k++) send_keyed(p, topic, keys[k], sent);

    static struct order_record r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    struct order_listener l0 = {&r, 0}, l1 = {&r, 1};
    rmq_push_consumer_t *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = new_consumer(group, "consumer.rebalance-interval", "2000", "consumer.consume-thread-number",
                            "4", NULL);
        OK(rmq_push_consumer_subscribe(c[i], topic, "*"));
        OK(rmq_push_consumer_set_orderly_listener(c[i], on_ordered, i == 0 ? &l0 : &l1));
    }
    OK(rmq_push_consumer_start(c[0]));
    double deadline = now_s() + WITHIN_SECONDS;
    while (order_read(&r, -1) < 20 && now_s() < deadline) sleep_ms(20);
    EXPECT(order_read(&r, -1) >= 20);
    /* The second consumer joins mid-stream; messages keep coming until it has taken queues. */
    OK(rmq_push_consumer_start(c[1]));
    while (order_read(&r, 1) == 0 && sent < MAX_PER_KEY - 20 && now_s() < deadline) {
        for (int k = 0; k < KEYS; k++) send_keyed(p, topic, keys[k], sent);
        sent++;
        sleep_ms(20);
    }
    for (int end = sent + 20; sent < end; sent++)
        for (int k = 0; k < KEYS; k++) send_keyed(p, topic, keys[k], sent);
    while (order_read(&r, -1) < sent * KEYS && now_s() < deadline) sleep_ms(50);
    OK(rmq_push_consumer_destroy(c[0]));
    OK(rmq_push_consumer_destroy(c[1]));
    rmq_producer_destroy(p);

    EXPECT(r.total == sent * KEYS);
    EXPECT(r.malformed == 0);
    EXPECT(r.per_consumer[0] > 0 && r.per_consumer[1] > 0);
    EXPECT(r.most_at_once == 1);
    int in_order = 1;
    for (int k = 0; k < KEYS; k++) {
        if (r.n[k] != sent) in_order = 0;
        for (int i = 0; i < r.n[k]; i++)
            if (r.seq[k][i] != i) in_order = 0;
    }
    EXPECT(in_order);
    fprintf(stderr, "test_orderly: %d per key; first / second consumer %d / %d\n", sent,
            r.per_consumer[0], r.per_consumer[1]);
}

/* ------------------------------------------------------------------ suspend, then the DLQ */

struct delivery {
    int i, reconsume;
    double at;
};

struct suspend_record {
    pthread_mutex_t mu;
    struct delivery d[64];
    int n;
    int suspend_index;  /* index to suspend */
    int suspend_times;  /* how many times (-1: always) */
    long suspend_millis; /* written to the context; 0 leaves the configured value */
    long context_found;  /* the value the listener found in the context */
};

static rmq_consume_orderly_status_t on_suspend(const rmq_received_message_t *const *msgs, size_t count,
                                               rmq_consume_orderly_context_t *ctx, void *user_data) {
    struct suspend_record *r = user_data;
    (void)count;
    int key, i;
    char copy[64];
    int32_t rt = -1;
    if (!parse_body(msgs[0], &key, &i, copy, sizeof copy)) return RMQ_CONSUME_ORDERLY_SUCCESS;
    rmq_received_message_reconsume_times(msgs[0], &rt);
    pthread_mutex_lock(&r->mu);
    int seen = 0;
    for (int j = 0; j < r->n; j++) seen += r->d[j].i == i;
    if (r->n < 64) r->d[r->n++] = (struct delivery){i, rt, now_s()};
    r->context_found = (long)ctx->suspend_millis;
    int suspend = i == r->suspend_index && (r->suspend_times < 0 || seen < r->suspend_times);
    pthread_mutex_unlock(&r->mu);
    if (!suspend) return RMQ_CONSUME_ORDERLY_SUCCESS;
    if (r->suspend_millis) ctx->suspend_millis = r->suspend_millis;
    return RMQ_CONSUME_ORDERLY_SUSPEND;
}

static int suspend_count(struct suspend_record *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void test_suspend(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "COrderlySuspend");
    unique(group, sizeof group, "COrderlySuspendGroup");
    rmq_producer_t *p = start_producer("COrderlyProducer", NULL);
    for (int i = 0; i < 4; i++) send_keyed(p, topic, "k0", i);
    static struct suspend_record r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    r.suspend_index = 1;
    r.suspend_times = 1;
    r.suspend_millis = 400;
    rmq_push_consumer_t *c = new_consumer(group, "consumer.suspend-current-queue-time-millis", "250", NULL);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_orderly_listener(c, on_suspend, &r));
    OK(rmq_push_consumer_start(c));
    double deadline = now_s() + WITHIN_SECONDS;
    while (suspend_count(&r) < 5 && now_s() < deadline) sleep_ms(20);
    OK(rmq_push_consumer_destroy(c));
    rmq_producer_destroy(p);
    EXPECT(r.n == 5);
    int want_i[5] = {0, 1, 1, 2, 3}, want_rt[5] = {0, 0, 1, 0, 0};
    for (int j = 0; j < 5 && j < r.n; j++) EXPECT(r.d[j].i == want_i[j] && r.d[j].reconsume == want_rt[j]);
    if (r.n >= 3) EXPECT(r.d[2].at - r.d[1].at >= 0.4); /* the context's time, not the key's */
    EXPECT(r.context_found == 250);                     /* the listener finds the key's value */
}

/* Bodies read back from a topic by a plain (concurrent) consumer. */
struct dlq_record {
    pthread_mutex_t mu;
    char bodies[8][64];
    int n;
};

static rmq_consume_status_t on_dead(const rmq_received_message_t *const *msgs, size_t count,
                                    rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx;
    struct dlq_record *r = user_data;
    pthread_mutex_lock(&r->mu);
    for (size_t j = 0; j < count; j++) {
        const uint8_t *b;
        size_t len;
        if (r->n < 8 && rmq_received_message_body(msgs[j], &b, &len) == RMQ_OK && len < 64) {
            memcpy(r->bodies[r->n], b, len);
            r->bodies[r->n][len] = 0;
            r->n++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return RMQ_CONSUME_SUCCESS;
}

static void test_dlq(void) {
    char topic[128], group[128], dlq[160], reader_group[128];
    unique(topic, sizeof topic, "COrderlyDlq");
    unique(group, sizeof group, "COrderlyDlqGroup");
    rmq_producer_t *p = start_producer("COrderlyProducer", NULL);
    for (int i = 0; i < 3; i++) send_keyed(p, topic, "k0", i);
    static struct suspend_record r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    r.suspend_index = 1;
    r.suspend_times = -1;
    rmq_push_consumer_t *c = new_consumer(group, "consumer.max-reconsume-times", "2",
                                          "consumer.suspend-current-queue-time-millis", "10", NULL);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_orderly_listener(c, on_suspend, &r));
    OK(rmq_push_consumer_start(c));
    double deadline = now_s() + WITHIN_SECONDS;
    while (suspend_count(&r) < 5 && now_s() < deadline) sleep_ms(20);

    static struct dlq_record dead;
    memset(&dead, 0, sizeof dead);
    pthread_mutex_init(&dead.mu, NULL);
    snprintf(dlq, sizeof dlq, "%%DLQ%%%s", group);
    unique(reader_group, sizeof reader_group, "COrderlyDlqReader");
    rmq_push_consumer_t *reader = new_consumer(reader_group, NULL);
    OK(rmq_push_consumer_subscribe(reader, dlq, "*"));
    OK(rmq_push_consumer_set_listener(reader, on_dead, &dead));
    OK(rmq_push_consumer_start(reader));
    for (;;) {
        pthread_mutex_lock(&dead.mu);
        int n = dead.n;
        pthread_mutex_unlock(&dead.mu);
        if (n > 0 || now_s() >= deadline) break;
        sleep_ms(50);
    }
    OK(rmq_push_consumer_destroy(reader));
    OK(rmq_push_consumer_destroy(c));
    rmq_producer_destroy(p);
    EXPECT(dead.n == 1 && strcmp(dead.bodies[0], "k0:1") == 0);
    /* Delivered max-reconsume-times + 1 times, then the queue went on. */
    EXPECT(r.n == 5);
    int want_i[5] = {0, 1, 1, 1, 2}, want_rt[5] = {0, 0, 1, 2, 0};
    for (int j = 0; j < 5 && j < r.n; j++) EXPECT(r.d[j].i == want_i[j] && r.d[j].reconsume == want_rt[j]);
}

/* ------------------------------------------------------------------------------- misuse */

static void test_misuse(void) {
    char group[96];
    unique(group, sizeof group, "COrderlyMisuse");
    rmq_push_consumer_t *c = new_consumer(group, NULL);
    EXPECT(rmq_push_consumer_set_orderly_listener(c, NULL, NULL) == RMQ_ERR_NULL_POINTER);
    EXPECT(rmq_push_consumer_set_orderly_listener(NULL, on_suspend, NULL) == RMQ_ERR_NULL_POINTER);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(rmq_push_consumer_set_orderly_listener(c, on_suspend, NULL) == RMQ_ERR_INVALID_HANDLE);
    rmq_config_t *cfg = rmq_config_create();
    EXPECT(rmq_config_set(cfg, "consumer.suspend-current-queue-time-millis", "5") ==
           RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_config_destroy(cfg);
}

static const struct check_case CASES[] = {
    {"order", test_order},
    {"suspend", test_suspend},
    {"dlq", test_dlq},
    {"misuse", test_misuse},
};

int main(int argc, char **argv) {
    check_namesrv("test_orderly");
    alarm(600);
    return check_run("test_orderly", CASES, sizeof CASES / sizeof CASES[0], 8, argc, argv);
}
