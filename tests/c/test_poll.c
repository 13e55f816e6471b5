/* The push consumer's poll mode through the C ABI against the real broker (RMQ_NAMESRV): every
 * message produced is polled (sets compared) with its fields read both through the views and
 * the accessors; per-message acknowledgement where the reconsumed messages come back with
 * reconsume times >= 1; batches not acknowledged at shutdown go to the next consumer of the
 * group; an empty poll returns NULL; shutdown wakes a waiting poll; NULL, stale and doubly
 * acknowledged batches and other misuse are errors.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs.
 *
 *   test_poll            every case
 *   test_poll all wake   the named cases only */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 90
#define MAX_MSGS 64
#define POLL_MS 500

/* Sends n messages, body "p-<i>", keys = body, property n=<i>; retries while the topic is
 * being created. */
static void send_n(rmq_producer_t *p, const char *topic, int n) {
    for (int i = 0; i < n; i++) {
        char body[32], num[16];
        snprintf(body, sizeof body, "p-%d", i);
        snprintf(num, sizeof num, "%d", i);
        rmq_message_t *m = text_message(topic, body);
        OK(rmq_message_set_keys(m, body));
        OK(rmq_message_set_property(m, "n", num));
        rmq_send_result_t *r = NULL;
        rmq_status_t s = send_retrying(p, m, &r);
        EXPECT(s == RMQ_OK);
        if (s == RMQ_OK) rmq_send_result_destroy(r);
        rmq_message_destroy(m);
    }
}

/* A started consumer of `group` in poll mode, reading `topic` from the first message. */
static rmq_push_consumer_t *poll_consumer(const char *group, const char *topic) {
    rmq_config_t *cfg = rmq_config_create();
    char instance[96];
    unique(instance, sizeof instance, "cp");
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "instance-name", instance));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_poll_mode(c));
    OK(rmq_push_consumer_start(c));
    return c;
}

/* Index i of body "p-<i>", or -1. */
static int index_of(const uint8_t *body, size_t len) {
    if (len < 3 || len > 8 || memcmp(body, "p-", 2) != 0) return -1;
    char text[16];
    snprintf(text, sizeof text, "%.*s", (int)len - 2, (const char *)body + 2);
    int i = atoi(text);
    return i >= 0 && i < MAX_MSGS ? i : -1;
}

/* Checks view v against the accessors of its message and the sent fields; returns its index. */
static int check_view(const rmq_received_view_t *v, const char *topic) {
    int i = index_of(v->body, v->body_len);
    EXPECT(i >= 0);
    if (i < 0) return -1;
    char body[32], num[16];
    snprintf(body, sizeof body, "p-%d", i);
    snprintf(num, sizeof num, "%d", i);
    EXPECT(eq_view(v->topic, v->topic_len, topic));
    EXPECT(eq_view(v->keys, v->keys_len, body));
    EXPECT(v->tags != NULL && v->tags_len == 0);
    EXPECT(v->msg_id_len > 0 && v->offset_msg_id_len > 0 && v->broker_name_len > 0);
    EXPECT(v->born_timestamp > 0 && v->store_timestamp >= v->born_timestamp - 60000);
    int found_n = 0;
    for (size_t k = 0; k < v->property_count; k++) {
        const rmq_property_view_t *pv = &v->properties[k];
        if (eq_view(pv->name, pv->name_len, "n")) found_n = eq_view(pv->value, pv->value_len, num);
    }
    EXPECT(found_n);
    /* The accessors of the same message say the same. */
    const uint8_t *b;
    size_t blen;
    const char *s;
    size_t slen;
    int32_t qid, times;
    int64_t off;
    size_t props;
    OK(rmq_received_message_body(v->message, &b, &blen));
    EXPECT(b == v->body && blen == v->body_len);
    OK(rmq_received_message_msg_id(v->message, &s, &slen));
    EXPECT(s == v->msg_id && slen == v->msg_id_len);
    OK(rmq_received_message_property(v->message, "n", &s, &slen));
    EXPECT(eq_view(s, slen, num));
    OK(rmq_received_message_queue_id(v->message, &qid));
    OK(rmq_received_message_queue_offset(v->message, &off));
    OK(rmq_received_message_reconsume_times(v->message, &times));
    OK(rmq_received_message_property_count(v->message, &props));
    EXPECT(qid == v->queue_id && off == v->queue_offset && times == v->reconsume_times);
    EXPECT(props == v->property_count);
    return i;
}

/* ------------------------------------------------------------------------------------ cases */

/* Every message is polled and acknowledged; fields read through views and accessors agree;
 * misuse of a live and of a finished batch. */
static void case_all(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CPollAll");
    unique(group, sizeof group, "CPollAllGroup");
    const int n = 40;
    rmq_producer_t *p = start_producer("CPollProducer", NULL);
    send_n(p, topic, n);
    rmq_push_consumer_t *c = poll_consumer(group, topic);
    int seen[MAX_MSGS] = {0}, distinct = 0, largest = 0, misuse_done = 0;
    double until = now_s() + WITHIN_SECONDS;
    while (distinct < n && now_s() < until) {
        rmq_received_batch_t *b = NULL;
        OK(rmq_push_consumer_poll(c, 16, POLL_MS, &b));
        if (!b) continue;
        size_t count = 0, vcount = 0;
        const rmq_received_view_t *views = NULL;
        OK(rmq_received_batch_count(b, &count));
        OK(rmq_received_batch_views(b, &views, &vcount));
        EXPECT(count >= 1 && count <= 16 && vcount == count);
        if ((int)count > largest) largest = (int)count;
        for (size_t k = 0; k < vcount; k++) {
            const rmq_received_message_t *m = NULL;
            OK(rmq_received_batch_at(b, k, &m));
            EXPECT(m == views[k].message);
            int i = check_view(&views[k], topic);
            if (i >= 0 && seen[i]++ == 0) distinct++;
        }
        if (!misuse_done) {
            misuse_done = 1;
            const rmq_received_message_t *m = NULL;
            const rmq_received_message_t *first = views[0].message;
            rmq_consume_status_t st[1] = {RMQ_CONSUME_SUCCESS};
            EXPECT_STATUS(rmq_received_batch_at(b, count, &m), RMQ_ERR_NOT_FOUND);
            EXPECT_STATUS(rmq_received_batch_at(b, 0, NULL), RMQ_ERR_NULL_POINTER);
            EXPECT_STATUS(rmq_received_batch_count(b, NULL), RMQ_ERR_NULL_POINTER);
            EXPECT_STATUS(rmq_received_batch_views(b, NULL, &vcount), RMQ_ERR_NULL_POINTER);
            EXPECT_STATUS(rmq_received_batch_ack_each(b, NULL, NULL, count), RMQ_ERR_NULL_POINTER);
            EXPECT_STATUS(rmq_received_batch_ack_each(b, st, NULL, count + 1),
                          RMQ_ERR_INVALID_ARGUMENT);
            /* A message handle is not a batch. */
            EXPECT_STATUS(rmq_received_batch_ack((rmq_received_batch_t *)(uintptr_t)first),
                          RMQ_ERR_INVALID_HANDLE);
            /* Still valid after the refused calls. */
            OK(rmq_received_batch_count(b, &vcount));
            OK(rmq_received_batch_ack(b));
            /* Stale now: a second acknowledgement, its messages, destroy. */
            EXPECT_STATUS(rmq_received_batch_ack(b), RMQ_ERR_INVALID_HANDLE);
            EXPECT_STATUS(rmq_received_batch_ack_each(b, st, NULL, 1), RMQ_ERR_INVALID_HANDLE);
            EXPECT_STATUS(rmq_received_batch_count(b, &vcount), RMQ_ERR_INVALID_HANDLE);
            EXPECT_STATUS(rmq_received_batch_destroy(b), RMQ_ERR_INVALID_HANDLE);
            int32_t qid;
            EXPECT_STATUS(rmq_received_message_queue_id(first, &qid), RMQ_ERR_INVALID_HANDLE);
        } else {
            OK(rmq_received_batch_ack(b));
        }
    }
    EXPECT(distinct == n);
    EXPECT(largest > 1);
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
}

/* Odd messages are refused on first delivery (delay level 1) within batches whose other
 * messages succeed; they come back with reconsume times >= 1. */
static void case_partial(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CPollPartial");
    unique(group, sizeof group, "CPollPartialGroup");
    const int n = 10;
    rmq_producer_t *p = start_producer("CPollProducer", NULL);
    send_n(p, topic, n);
    rmq_push_consumer_t *c = poll_consumer(group, topic);
    int refused[MAX_MSGS] = {0}, consumed[MAX_MSGS] = {0}, came_back[MAX_MSGS] = {0};
    int done = 0;
    double until = now_s() + WITHIN_SECONDS;
    while (done < n && now_s() < until) {
        rmq_received_batch_t *b = NULL;
        OK(rmq_push_consumer_poll(c, 32, POLL_MS, &b));
        if (!b) continue;
        const rmq_received_view_t *v = NULL;
        size_t count = 0;
        OK(rmq_received_batch_views(b, &v, &count));
        rmq_consume_status_t st[32];
        int32_t levels[32];
        for (size_t k = 0; k < count && k < 32; k++) {
            int i = index_of(v[k].body, v[k].body_len);
            st[k] = RMQ_CONSUME_SUCCESS;
            levels[k] = 0;
            if (i < 0) continue;
            if (i % 2 == 1 && v[k].reconsume_times == 0) {
                st[k] = RMQ_CONSUME_RECONSUME_LATER;
                levels[k] = 1;
                refused[i]++;
            } else {
                if (v[k].reconsume_times >= 1) came_back[i]++;
                if (consumed[i]++ == 0) done++;
            }
        }
        OK(rmq_received_batch_ack_each(b, st, levels, count));
    }
    EXPECT(done == n);
    for (int i = 0; i < n; i++) {
        if (i % 2 == 1) EXPECT(refused[i] >= 1 && came_back[i] >= 1);
        else EXPECT(refused[i] == 0);
    }
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
}

/* Batches held when the consumer shuts down are not committed: acknowledging them is refused
 * (and frees them), and the next consumer of the group receives every message again. */
static void case_unacked(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CPollUnacked");
    unique(group, sizeof group, "CPollUnackedGroup");
    const int n = 6;
    rmq_producer_t *p = start_producer("CPollProducer", NULL);
    send_n(p, topic, n);
    rmq_push_consumer_t *c = poll_consumer(group, topic);
    rmq_received_batch_t *held[MAX_MSGS];
    int nheld = 0, seen[MAX_MSGS] = {0}, distinct = 0;
    double until = now_s() + WITHIN_SECONDS;
    while (distinct < n && nheld < MAX_MSGS && now_s() < until) {
        rmq_received_batch_t *b = NULL;
        OK(rmq_push_consumer_poll(c, 32, POLL_MS, &b));
        if (!b) continue;
        held[nheld++] = b;
        const rmq_received_view_t *v = NULL;
        size_t count = 0;
        OK(rmq_received_batch_views(b, &v, &count));
        for (size_t k = 0; k < count; k++) {
            int i = index_of(v[k].body, v[k].body_len);
            if (i >= 0 && seen[i]++ == 0) distinct++;
        }
    }
    EXPECT(distinct == n);
    OK(rmq_push_consumer_shutdown(c));
    rmq_received_batch_t *b = NULL;
    EXPECT_STATUS(rmq_push_consumer_poll(c, 1, 0, &b), RMQ_ERR_INVALID_STATE);
    for (int k = 0; k < nheld; k++) {
        if (k == 0) {
            EXPECT_STATUS(rmq_received_batch_ack(held[k]), RMQ_ERR_INVALID_STATE);
            EXPECT_STATUS(rmq_received_batch_ack(held[k]), RMQ_ERR_INVALID_HANDLE);
        } else {
            OK(rmq_received_batch_destroy(held[k]));
        }
    }
    OK(rmq_push_consumer_destroy(c));
    rmq_push_consumer_t *again = poll_consumer(group, topic);
    int seen2[MAX_MSGS] = {0}, distinct2 = 0;
    until = now_s() + WITHIN_SECONDS;
    while (distinct2 < n && now_s() < until) {
        b = NULL;
        OK(rmq_push_consumer_poll(again, 32, POLL_MS, &b));
        if (!b) continue;
        const rmq_received_view_t *v = NULL;
        size_t count = 0;
        OK(rmq_received_batch_views(b, &v, &count));
        for (size_t k = 0; k < count; k++) {
            int i = index_of(v[k].body, v[k].body_len);
            if (i >= 0 && seen2[i]++ == 0) distinct2++;
        }
        OK(rmq_received_batch_ack(b));
    }
    EXPECT(distinct2 == n);
    OK(rmq_push_consumer_destroy(again));
    OK(rmq_producer_destroy(p));
}

struct waiter {
    rmq_push_consumer_t *c;
    rmq_status_t status;
    rmq_received_batch_t *batch;
};

static void *wait_forever(void *arg) {
    struct waiter *w = arg;
    w->status = rmq_push_consumer_poll(w->c, 8, -1, &w->batch);
    return NULL;
}

/* A poll with nothing to take returns NULL; shutdown wakes a poll that waits without limit. */
static void case_wake(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CPollWake");
    unique(group, sizeof group, "CPollWakeGroup");
    rmq_producer_t *p = start_producer("CPollProducer", NULL);
    send_n(p, topic, 1);
    rmq_push_consumer_t *c = poll_consumer(group, topic);
    rmq_received_batch_t *b = NULL;
    double until = now_s() + WITHIN_SECONDS;
    while (!b && now_s() < until) OK(rmq_push_consumer_poll(c, 8, POLL_MS, &b));
    EXPECT(b != NULL);
    OK(rmq_received_batch_ack(b));
    double t0 = now_s();
    b = (rmq_received_batch_t *)1;
    OK(rmq_push_consumer_poll(c, 8, 200, &b));
    EXPECT(b == NULL);
    b = (rmq_received_batch_t *)1;
    OK(rmq_push_consumer_poll(c, 8, 0, &b));
    EXPECT(b == NULL);
    EXPECT(now_s() - t0 < 10); /* failure bound only */
    struct waiter w = {c, RMQ_OK, NULL};
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, wait_forever, &w) == 0);
    sleep_ms(300);
    OK(rmq_push_consumer_shutdown(c));
    pthread_join(t, NULL);
    EXPECT(w.status == RMQ_ERR_INVALID_STATE && w.batch == NULL);
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
}

static rmq_consume_status_t never_called(const rmq_received_message_t *const *msgs, size_t count,
                                         rmq_consume_context_t *ctx, void *user_data) {
    (void)msgs, (void)count, (void)ctx, (void)user_data;
    return RMQ_CONSUME_RECONSUME_LATER;
}

/* Misuse without a batch: NULL arguments, a poll before start or with a listener. */
static void case_misuse(void) {
    rmq_received_batch_t *b = NULL;
    EXPECT_STATUS(rmq_push_consumer_poll(NULL, 1, 0, &b), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_push_consumer_set_poll_mode(NULL), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_received_batch_ack(NULL), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_received_batch_ack_each(NULL, NULL, NULL, 0), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_received_batch_count(NULL, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_received_batch_destroy(NULL));
    rmq_config_t *cfg = rmq_config_create();
    char group[96];
    unique(group, sizeof group, "CPollMisuse");
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    EXPECT_STATUS(rmq_push_consumer_poll(c, 1, 0, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_push_consumer_set_poll_mode(c));
    EXPECT_STATUS(rmq_push_consumer_poll(c, 1, 0, &b), RMQ_ERR_INVALID_STATE);
    EXPECT(strstr(rmq_last_error_message(), "start") != NULL);
    EXPECT_STATUS(rmq_push_consumer_poll(c, 0, 0, &b), RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_push_consumer_set_listener(c, never_called, NULL));
    EXPECT_STATUS(rmq_push_consumer_poll(c, 1, 0, &b), RMQ_ERR_INVALID_STATE);
    EXPECT(strstr(rmq_last_error_message(), "poll mode") != NULL);
    OK(rmq_push_consumer_destroy(c));
    EXPECT_STATUS(rmq_push_consumer_poll(c, 1, 0, &b), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_push_consumer_set_poll_mode(c), RMQ_ERR_INVALID_HANDLE);
}

static const struct check_case CASES[] = {
    {"all", case_all},         {"partial", case_partial}, {"unacked", case_unacked},
    {"wake", case_wake},       {"misuse", case_misuse},
};

int main(int argc, char **argv) {
    check_namesrv("test_poll");
    alarm(600);
    return check_run("test_poll", CASES, sizeof CASES / sizeof CASES[0], 10, argc, argv);
}
