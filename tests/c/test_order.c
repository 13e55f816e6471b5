/* Ordered sends, the in-flight window and the ABI points of issue 6 through the C ABI, against
 * the real broker: selectors (hash, round robin, callback) and explicit queues, the selector's
 * thread and failures, broker codes kept, rmq_send_result_get, user properties, the query's
 * RMQ_ERR_BUFFER_TOO_SMALL, and client.language. Entry point: test_order(), called from
 * test_rmq.c's main. */
#include "rmq.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void test_order(const char *namesrv, int *passed, int *failed);

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

static int view_eq(const char *ptr, size_t len, const char *want) {
    return len == strlen(want) && memcmp(ptr, want, len) == 0;
}

static rmq_producer_t *start_producer(const char *namesrv, const char *group, const char *k1,
                                      const char *v1, const char *k2, const char *v2) {
    rmq_config_t *cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", namesrv);
    rmq_config_set(cfg, "producer.group", group);
    if (k1) EXPECT_STATUS(rmq_config_set(cfg, k1, v1), RMQ_OK);
    if (k2) EXPECT_STATUS(rmq_config_set(cfg, k2, v2), RMQ_OK);
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    return p;
}

static rmq_message_t *message(const char *topic, const char *body) {
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, topic);
    rmq_message_set_body(m, (const uint8_t *)body, strlen(body));
    return m;
}

/* Java's String.hashCode for ASCII text, and SelectMessageQueueByHash's index. */
static size_t java_hash_index(const char *key, size_t n) {
    uint32_t h = 0;
    for (const char *c = key; *c; c++) h = 31u * h + (uint8_t)*c;
    int32_t v = (int32_t)h % (int32_t)n;
    return (size_t)(v < 0 ? -v : v);
}

/* A callback selector that records what it saw and returns `answer` (-1: the last queue). */
struct seen {
    size_t count;
    int32_t queue_ids[64];
    char broker[64];
    pthread_t thread;
    int32_t answer;
    int calls;
};

static int32_t record_selector(const rmq_message_queue_t *queues, size_t count,
                               const rmq_message_t *message, void *arg) {
    struct seen *s = arg;
    s->calls++;
    s->thread = pthread_self();
    s->count = count;
    for (size_t i = 0; i < count && i < 64; i++) s->queue_ids[i] = queues[i].queue_id;
    snprintf(s->broker, sizeof s->broker, "%.*s", (int)queues[0].broker_name_len,
             queues[0].broker_name);
    const char *body;
    size_t len;
    /* the message can be read while selecting */
    if (rmq_message_body(message, (const uint8_t **)&body, &len) != RMQ_OK) return -1;
    return s->answer == -1 ? (int32_t)count - 1 : s->answer;
}

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    rmq_status_t status;
    int32_t broker_code;
    int32_t queue_id;
    /* window test: the callback holds its slot until released */
    int hold, holding;
    rmq_producer_t *producer;
    rmq_message_t *again;
    rmq_status_t again_status;
};

static void on_done(const rmq_send_callback_params_t *params, void *user_data) {
    struct done *d = user_data;
    rmq_status_t again = RMQ_OK;
    if (d->again) again = rmq_producer_send_async(d->producer, d->again, on_done, d);
    pthread_mutex_lock(&d->mu);
    d->again_status = again;
    d->status = params->status;
    d->broker_code = params->broker_code;
    if (params->status == RMQ_OK) {
        rmq_send_result_view_t v;
        if (rmq_send_result_get(params->result, &v) == RMQ_OK) d->queue_id = v.queue_id;
    }
    d->holding = 1;
    pthread_cond_broadcast(&d->cv);
    while (d->hold) pthread_cond_wait(&d->cv, &d->mu);
    d->calls++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void wait_done(struct done *d, int calls) {
    pthread_mutex_lock(&d->mu);
    while (d->calls < calls) pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

static void test_selectors(const char *namesrv, const char *topic) {
    rmq_producer_t *p = start_producer(namesrv, "CTestOrderGroup", NULL, NULL, NULL, NULL);
    rmq_message_t *m = message(topic, "ordered");
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, m, &r)); /* creates the topic */
    rmq_send_result_destroy(r);

    /* callback selector: runs on this thread, sees the queues, its choice is used */
    struct seen s = {.answer = -1};
    rmq_queue_selector_t sel = {.kind = RMQ_SELECTOR_CALLBACK, .select = record_selector, .arg = &s};
    OK(rmq_producer_send_sync_select(p, m, &sel, &r));
    EXPECT(s.calls == 1 && s.count >= 2 && pthread_equal(s.thread, pthread_self()));
    rmq_send_result_view_t v;
    OK(rmq_send_result_get(r, &v));
    EXPECT(s.count > 0 && v.queue_id == s.queue_ids[s.count - 1]);
    EXPECT(view_eq(v.broker_name, v.broker_name_len, s.broker));
    EXPECT(view_eq(v.topic, v.topic_len, topic));
    EXPECT(v.status == RMQ_SEND_OK && v.queue_offset >= 0 && v.transaction_id != NULL);
    EXPECT(view_eq(v.region_id, v.region_id_len, "DefaultRegion"));
    const char *id;
    size_t id_len;
    OK(rmq_send_result_msg_id(r, &id, &id_len));
    EXPECT(id_len == v.msg_id_len && memcmp(id, v.msg_id, id_len) == 0);
    OK(rmq_send_result_offset_msg_id(r, &id, &id_len));
    EXPECT(id_len == v.offset_msg_id_len && memcmp(id, v.offset_msg_id, id_len) == 0);
    rmq_send_result_destroy(r);
    EXPECT_STATUS(rmq_send_result_get(NULL, &v), RMQ_ERR_NULL_POINTER);
    size_t n = s.count;

    /* hash: every message of a key on Java's queue for it */
    const char *keys[] = {"order-1001", "order-1002", "customer-7"};
    for (int k = 0; k < 3; k++) {
        rmq_queue_selector_t h = {.kind = RMQ_SELECTOR_HASH, .key = keys[k], .key_len = strlen(keys[k])};
        int64_t last_offset = -1;
        for (int i = 0; i < 3; i++) {
            OK(rmq_producer_send_sync_select(p, m, &h, &r));
            OK(rmq_send_result_get(r, &v));
            EXPECT(v.queue_id == s.queue_ids[java_hash_index(keys[k], n)]);
            EXPECT(v.queue_offset > last_offset);
            last_offset = v.queue_offset;
            rmq_send_result_destroy(r);
        }
    }

    /* round robin visits every queue */
    int visited[64] = {0};
    rmq_queue_selector_t rr = {.kind = RMQ_SELECTOR_ROUND_ROBIN};
    for (size_t i = 0; i < n; i++) {
        OK(rmq_producer_send_sync_select(p, m, &rr, &r));
        OK(rmq_send_result_get(r, &v));
        if (v.queue_id >= 0 && v.queue_id < 64) visited[v.queue_id]++;
        rmq_send_result_destroy(r);
    }
    int all = 1;
    for (size_t i = 0; i < n; i++) all &= visited[s.queue_ids[i]] == 1;
    EXPECT(all);
    rmq_queue_selector_t rnd = {.kind = RMQ_SELECTOR_RANDOM};
    OK(rmq_producer_send_sync_select(p, m, &rnd, NULL));

    /* async: the selector runs before the call returns, on this thread */
    struct done d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    s.calls = 0;
    s.answer = 0;
    OK(rmq_producer_send_async_select(p, m, &sel, on_done, &d));
    EXPECT(s.calls == 1 && pthread_equal(s.thread, pthread_self()));
    wait_done(&d, 1);
    EXPECT(d.status == RMQ_OK && d.queue_id == s.queue_ids[0]);

    /* failing selectors: nothing sent, no callback */
    s.answer = (int32_t)n;
    EXPECT_STATUS(rmq_producer_send_sync_select(p, m, &sel, &r), RMQ_ERR_QUEUE_SELECTOR);
    s.answer = -2;
    EXPECT_STATUS(rmq_producer_send_sync_select(p, m, &sel, &r), RMQ_ERR_QUEUE_SELECTOR);
    EXPECT_STATUS(rmq_producer_send_async_select(p, m, &sel, on_done, &d), RMQ_ERR_QUEUE_SELECTOR);
    rmq_queue_selector_t none = {0};
    EXPECT_STATUS(rmq_producer_send_sync_select(p, m, &none, &r), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_send_sync_select(p, m, NULL, &r), RMQ_ERR_NULL_POINTER);
    rmq_queue_selector_t nofn = {.kind = RMQ_SELECTOR_CALLBACK};
    EXPECT_STATUS(rmq_producer_send_sync_select(p, m, &nofn, &r), RMQ_ERR_NULL_POINTER);

    /* explicit queue */
    rmq_message_queue_t q = {.topic = topic, .topic_len = strlen(topic), .broker_name = s.broker,
                             .broker_name_len = strlen(s.broker), .queue_id = s.queue_ids[1]};
    OK(rmq_producer_send_sync_to_queue(p, m, &q, &r));
    OK(rmq_send_result_get(r, &v));
    EXPECT(v.queue_id == q.queue_id);
    rmq_send_result_destroy(r);
    OK(rmq_producer_send_async_to_queue(p, m, &q, on_done, &d));
    wait_done(&d, 2);
    EXPECT(d.status == RMQ_OK && d.queue_id == q.queue_id);
    rmq_message_queue_t other = q;
    other.topic = "OtherTopic";
    other.topic_len = strlen("OtherTopic");
    EXPECT_STATUS(rmq_producer_send_sync_to_queue(p, m, &other, &r), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_send_sync_to_queue(p, m, NULL, &r), RMQ_ERR_NULL_POINTER);
    /* a queue the topic lacks: the broker refuses, and its own code is kept */
    rmq_message_queue_t missing = q;
    missing.queue_id = 999;
    rmq_status_t st = rmq_producer_send_sync_to_queue(p, m, &missing, &r);
    EXPECT(st > RMQ_ERR_BROKER_BASE);
    EXPECT(rmq_last_error_broker_code() > 0 &&
           (st == RMQ_ERR_BROKER_OTHER || st == RMQ_ERR_BROKER_BASE + rmq_last_error_broker_code()));
    OK(rmq_message_set_body(m, (const uint8_t *)"x", 1));
    EXPECT(rmq_last_error_broker_code() == 0);

    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));
}

/* The window: a callback holds its slot until it returns. With the slot held, another send is
 * refused at once (fail-fast), and a send from inside the callback is refused even when
 * blocking is on. */
static void test_window(const char *namesrv, const char *topic) {
    rmq_producer_t *p = start_producer(namesrv, "CTestWindowGroup", "producer.max-in-flight-async-sends",
                                       "1", "producer.block-when-in-flight-full", "false");
    rmq_message_t *m = message(topic, "window");
    struct done d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .hold = 1};
    OK(rmq_producer_send_async(p, m, on_done, &d));
    pthread_mutex_lock(&d.mu);
    while (!d.holding) pthread_cond_wait(&d.cv, &d.mu);
    pthread_mutex_unlock(&d.mu);
    EXPECT_STATUS(rmq_producer_send_async(p, m, on_done, &d), RMQ_ERR_IN_FLIGHT_FULL);
    EXPECT(strstr(rmq_last_error_message(), "max-in-flight-async-sends") != NULL);
    EXPECT(rmq_status_is_retriable(RMQ_ERR_IN_FLIGHT_FULL));
    pthread_mutex_lock(&d.mu);
    d.hold = 0;
    pthread_cond_broadcast(&d.cv);
    pthread_mutex_unlock(&d.mu);
    wait_done(&d, 1);
    OK(rmq_producer_destroy(p)); /* waits until the callback has returned */

    p = start_producer(namesrv, "CTestWindowBlockGroup", "producer.max-in-flight-async-sends", "1",
                       NULL, NULL);
    struct done e = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .producer = p,
                     .again = m};
    OK(rmq_producer_send_async(p, m, on_done, &e));
    wait_done(&e, 1);
    EXPECT(e.again_status == RMQ_ERR_IN_FLIGHT_FULL); /* from its own callback: never waits */
    OK(rmq_producer_destroy(p));
    rmq_message_destroy(m);
}

static void test_user_properties_and_query(const char *namesrv, const char *topic) {
    rmq_producer_t *p = start_producer(namesrv, "CTestUserPropGroup", NULL, NULL, NULL, NULL);
    char key[64];
    snprintf(key, sizeof key, "q-%d-%ld", (int)getpid(), (long)time(NULL));
    rmq_message_t *m = message(topic, "props");
    OK(rmq_message_set_tags(m, "TagU"));
    OK(rmq_message_set_keys(m, key));
    OK(rmq_message_set_property(m, "color", "blue"));
    size_t n = 0, all = 0;
    OK(rmq_message_user_property_count(m, &n));
    OK(rmq_message_property_count(m, &all));
    EXPECT(n == 1 && all == 4); /* WAIT, TAGS, KEYS + color */
    const char *k, *v;
    size_t kl, vl;
    OK(rmq_message_user_property_at(m, 0, &k, &kl, &v, &vl));
    EXPECT(view_eq(k, kl, "color") && view_eq(v, vl, "blue"));
    EXPECT_STATUS(rmq_message_user_property_at(m, 1, &k, &kl, &v, &vl), RMQ_ERR_NOT_FOUND);
    for (int i = 0; i < 3; i++) OK(rmq_producer_send_sync(p, m, NULL));

    /* three stored with the key; room for one: the count, no handles, BUFFER_TOO_SMALL */
    rmq_message_t *found[8] = {0};
    size_t count = 0;
    rmq_status_t st = RMQ_OK;
    for (int i = 0; i < 100; i++) {
        found[0] = NULL;
        st = rmq_producer_query_message(p, topic, key, 32, 0, INT64_MAX, found, 1, &count);
        if (st == RMQ_ERR_BUFFER_TOO_SMALL && count == 3) break;
        for (size_t j = 0; st == RMQ_OK && j < count; j++) rmq_message_destroy(found[j]);
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    EXPECT(st == RMQ_ERR_BUFFER_TOO_SMALL && count == 3 && found[0] == NULL);
    OK(rmq_producer_query_message(p, topic, key, 32, 0, INT64_MAX, found, 8, &count));
    EXPECT(count == 3);
    for (size_t j = 0; j < count && j < 8; j++) {
        size_t un = 0;
        OK(rmq_message_user_property_count(found[j], &un));
        EXPECT(un == 1);
        OK(rmq_message_user_property_at(found[j], 0, &k, &kl, &v, &vl));
        EXPECT(view_eq(k, kl, "color") && view_eq(v, vl, "blue"));
        rmq_message_destroy(found[j]);
    }
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));

    /* client.language */
    rmq_config_t *cfg = rmq_config_create();
    EXPECT_STATUS(rmq_config_set(cfg, "client.language", "KLINGON"), RMQ_ERR_INVALID_CONFIG_VALUE);
    OK(rmq_config_set(cfg, "client.language", "JAVA"));
    rmq_config_destroy(cfg);
    p = start_producer(namesrv, "CTestJavaLangGroup", "client.language", "JAVA", "instance-name",
                       "c-java-lang");
    m = message(topic, "as java");
    OK(rmq_producer_send_sync(p, m, NULL));
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));
}

void test_order(const char *namesrv, int *passed, int *failed) {
    n_passed = passed;
    n_failed = failed;
    char topic[96];
    snprintf(topic, sizeof topic, "COrder_%d_%ld", (int)getpid(), (long)time(NULL));
    test_selectors(namesrv, topic);
    test_window(namesrv, topic);
    test_user_properties_and_query(namesrv, topic);
}
