/* C tests of the rmq ABI: argument checking, handles, lifecycle, and sends against the real
 * broker (RMQ_NAMESRV). Built with -Wall -Wextra -Werror, run plain and under ASan/UBSan. */
#include "rmq.h"
#include "rmq.h" /* twice on purpose: the include guard must hold */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int other_translation_unit_version(void);
void test_input(const char *namesrv, const char *topic, int *passed, int *failed); /* test_input.c */
void test_routing(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                  int *failed); /* test_routing.c */
void test_payload(const char *namesrv, const char *topic, int *passed, int *failed); /* test_payload.c */
void test_order(const char *namesrv, int *passed, int *failed);                      /* test_order.c */
void test_log(int *passed, int *failed); /* test_log.c */
void test_async(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                int *failed); /* test_async.c */

static int passed, failed;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, rmq_last_error_message());                                  \
        }                                                                              \
    } while (0)
#define EXPECT_STATUS(call, want) EXPECT((call) == (want))
#define OK(call) EXPECT_STATUS(call, RMQ_OK)

static const char *namesrv;
static char topic[96];

static int view_eq(const char *ptr, size_t len, const char *want) {
    return len == strlen(want) && memcmp(ptr, want, len) == 0;
}

static rmq_config_t *producer_config(const char *ns, const char *group) {
    rmq_config_t *cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", ns);
    rmq_config_set(cfg, "producer.group", group);
    return cfg;
}

static rmq_message_t *make_message(const char *t, const uint8_t *body, size_t len, const char *keys) {
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, t);
    rmq_message_set_tags(m, "TagC");
    rmq_message_set_keys(m, keys);
    rmq_message_set_property(m, "lang", "c");
    rmq_message_set_body(m, body, len);
    return m;
}

/* The stored copy has the sent body, tags, keys and user property. */
static void expect_stored(rmq_producer_t *p, const rmq_send_result_t *r, const uint8_t *body,
                          size_t len, const char *keys) {
    const char *id;
    size_t id_len;
    OK(rmq_send_result_offset_msg_id(r, &id, &id_len));
    char offset_id[80];
    snprintf(offset_id, sizeof offset_id, "%.*s", (int)id_len, id);
    rmq_message_t *back = NULL;
    OK(rmq_producer_view_message(p, offset_id, &back));
    const uint8_t *b;
    size_t n;
    OK(rmq_message_body(back, &b, &n));
    EXPECT(n == len && memcmp(b, body, len) == 0);
    const char *v;
    OK(rmq_message_tags(back, &v, &n));
    EXPECT(view_eq(v, n, "TagC"));
    OK(rmq_message_keys(back, &v, &n));
    EXPECT(view_eq(v, n, keys));
    OK(rmq_message_property(back, "lang", &v, &n));
    EXPECT(view_eq(v, n, "c"));
    /* the client id (UNIQ_KEY) of the result is the stored message's id */
    const char *uniq, *stored_uniq;
    size_t uniq_len, stored_len;
    OK(rmq_send_result_msg_id(r, &uniq, &uniq_len));
    OK(rmq_message_msg_id(back, &stored_uniq, &stored_len));
    EXPECT(uniq_len == stored_len && memcmp(uniq, stored_uniq, uniq_len) == 0);
    int32_t q1, q2;
    int64_t o1, o2;
    OK(rmq_send_result_queue_id(r, &q1));
    OK(rmq_message_queue_id(back, &q2));
    OK(rmq_send_result_queue_offset(r, &o1));
    OK(rmq_message_queue_offset(back, &o2));
    EXPECT(q1 == q2 && o1 == o2);
    rmq_message_destroy(back);
}

static void test_version_and_tables(void) {
    EXPECT(rmq_version_number() == RMQ_VERSION_NUMBER);
    EXPECT(strcmp(rmq_version(), RMQ_VERSION_STRING) == 0);
    EXPECT(other_translation_unit_version() == RMQ_VERSION_NUMBER);
    EXPECT(strcmp(rmq_status_name(RMQ_ERR_TIMEOUT), "RMQ_ERR_TIMEOUT") == 0);
    EXPECT(strcmp(rmq_status_name(RMQ_ERR_BROKER_SYSTEM_BUSY), "RMQ_ERR_BROKER_SYSTEM_BUSY") == 0);
    EXPECT(strcmp(rmq_status_name(123456), "RMQ_ERR_UNKNOWN") == 0);
    EXPECT(rmq_status_is_retriable(RMQ_ERR_BROKER_SYSTEM_BUSY));
    EXPECT(!rmq_status_is_retriable(RMQ_ERR_INVALID_ARGUMENT));
    size_t n = 0;
    const rmq_status_desc_t *descs = rmq_status_descs(&n);
    EXPECT(n > 20 && descs[0].status == RMQ_OK);
    size_t k = 0;
    const rmq_config_key_t *keys = rmq_config_keys(&k);
    int have_ns = 0, have_group = 0;
    for (size_t i = 0; i < k; i++) {
        have_ns |= strcmp(keys[i].name, "name-server") == 0;
        have_group |= strcmp(keys[i].name, "producer.group") == 0;
    }
    EXPECT(have_ns && have_group);
}

static void test_config(void) {
    rmq_config_t *cfg = rmq_config_create();
    EXPECT(cfg != NULL);
    EXPECT_STATUS(rmq_config_set(cfg, "no.such.key", "1"), RMQ_ERR_UNKNOWN_CONFIG_KEY);
    EXPECT(strstr(rmq_last_error_message(), "no.such.key") != NULL);
    EXPECT(rmq_last_error_status() == RMQ_ERR_UNKNOWN_CONFIG_KEY);
    EXPECT_STATUS(rmq_config_set(cfg, "producer.send-message-timeout", "soon"), RMQ_ERR_INVALID_CONFIG_VALUE);
    EXPECT_STATUS(rmq_config_set(cfg, "name-server", "no-port"), RMQ_ERR_INVALID_CONFIG_VALUE);
    EXPECT_STATUS(rmq_config_set(cfg, NULL, "x"), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_config_set(cfg, "name-server", "\xff\xfe"), RMQ_ERR_INVALID_UTF8);
    OK(rmq_config_set(cfg, "producer.send-message-timeout", "1500"));
    EXPECT(rmq_last_error_status() == RMQ_OK && rmq_last_error_message()[0] == '\0');
    char buf[16];
    size_t len = 0;
    OK(rmq_config_get(cfg, "producer.send-message-timeout", buf, sizeof buf, &len));
    EXPECT(len == 4 && strcmp(buf, "1500") == 0);
    OK(rmq_config_get(cfg, "producer.retry-times-when-send-failed", buf, sizeof buf, &len));
    EXPECT(strcmp(buf, "2") == 0);
    EXPECT_STATUS(rmq_config_get(cfg, "producer.send-message-timeout", buf, 4, &len), RMQ_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 4);
    EXPECT_STATUS(rmq_config_get(cfg, "producer.group", buf, sizeof buf, &len), RMQ_ERR_NOT_FOUND);
    rmq_producer_t *p = NULL;
    /* no group, no name server */
    EXPECT(rmq_producer_create(cfg, &p) == RMQ_ERR_INVALID_ARGUMENT && p == NULL);
    rmq_config_destroy(cfg);
    rmq_config_destroy(NULL);
    /* a destroyed handle is detected, not dereferenced */
    EXPECT_STATUS(rmq_config_set(cfg, "name-server", "a:1"), RMQ_ERR_INVALID_HANDLE);
    rmq_config_destroy(cfg); /* twice: detected, no crash */
}

static void test_message_handles(void) {
    rmq_message_t *m = rmq_message_create();
    const uint8_t body[] = {0, 1, 2, 0, 255};
    OK(rmq_message_set_body(m, body, sizeof body));
    const uint8_t *b;
    size_t n;
    OK(rmq_message_body(m, &b, &n));
    EXPECT(n == sizeof body && memcmp(b, body, n) == 0);
    OK(rmq_message_set_body(m, NULL, 0));
    OK(rmq_message_body(m, &b, &n));
    EXPECT(n == 0 && b != NULL);
    EXPECT_STATUS(rmq_message_set_body(m, NULL, 3), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_message_set_property(m, "TAGS", "x"), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_property(m, "k", ""), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_topic(m, "\xc3\x28"), RMQ_ERR_INVALID_UTF8);
    const char *v;
    EXPECT_STATUS(rmq_message_property(m, "missing", &v, &n), RMQ_ERR_NOT_FOUND);
    EXPECT_STATUS(rmq_message_msg_id(m, &v, &n), RMQ_ERR_NOT_FOUND);
    int32_t q;
    EXPECT_STATUS(rmq_message_queue_id(m, &q), RMQ_ERR_NOT_FOUND);
    OK(rmq_message_set_keys(m, "a b"));
    OK(rmq_message_keys(m, &v, &n));
    EXPECT(view_eq(v, n, "a b"));
    OK(rmq_message_set_keys(m, NULL));
    OK(rmq_message_keys(m, &v, &n));
    EXPECT(n == 0);
    size_t count = 0;
    OK(rmq_message_property_count(m, &count));
    EXPECT(count == 1); /* WAIT=true, as Java's Message sets */
    const char *kname, *kval;
    size_t kn, kv;
    OK(rmq_message_property_at(m, 0, &kname, &kn, &kval, &kv));
    EXPECT(view_eq(kname, kn, "WAIT") && view_eq(kval, kv, "true"));
    EXPECT_STATUS(rmq_message_property_at(m, 1, &kname, &kn, &kval, &kv), RMQ_ERR_NOT_FOUND);
    EXPECT_STATUS(rmq_message_topic(NULL, &v, &n), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_message_topic(m, NULL, &n), RMQ_ERR_NULL_POINTER);
    /* a handle of another type is refused */
    rmq_config_t *cfg = rmq_config_create();
    EXPECT_STATUS(rmq_message_set_topic((rmq_message_t *)cfg, "T"), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_start((rmq_producer_t *)m), RMQ_ERR_INVALID_HANDLE);
    rmq_config_destroy(cfg);
    rmq_message_destroy(m);
    EXPECT_STATUS(rmq_message_set_topic(m, "T"), RMQ_ERR_INVALID_HANDLE);
    rmq_message_destroy(NULL);
    rmq_producer_destroy(NULL);
    rmq_send_result_destroy(NULL);
}

struct async_box {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int calls;
    rmq_status_t status;
    rmq_send_result_t *result;
    pthread_t thread;
};

static void on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct async_box *box = user_data;
    pthread_mutex_lock(&box->lock);
    box->calls++;
    box->status = params->status;
    box->thread = pthread_self();
    if (params->status == RMQ_OK) {
        rmq_send_result_clone(params->result, &box->result);
    }
    pthread_cond_signal(&box->done);
    pthread_mutex_unlock(&box->lock);
}

static int wait_calls(struct async_box *box, int want, int seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&box->lock);
    while (box->calls < want) {
        if (pthread_cond_timedwait(&box->done, &box->lock, &until) != 0) break;
    }
    int calls = box->calls;
    pthread_mutex_unlock(&box->lock);
    return calls;
}

static void test_producer_against_broker(void) {
    char group[96];
    snprintf(group, sizeof group, "CTestGroup_%d", (int)getpid());
    rmq_config_t *cfg = producer_config(namesrv, group);
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg); /* the producer keeps its own copy */
    rmq_message_t *m = make_message(topic, (const uint8_t *)"x", 1, "k");
    EXPECT_STATUS(rmq_producer_send_sync(p, m, NULL), RMQ_ERR_INVALID_STATE); /* not started */
    OK(rmq_producer_start(p));
    EXPECT_STATUS(rmq_producer_start(p), RMQ_ERR_INVALID_STATE);
    rmq_message_destroy(m);

    /* sync: binary body with NULs, read back */
    const uint8_t body[] = "sync\0body\xff";
    m = make_message(topic, body, sizeof body, "sync-key other");
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, m, &r));
    rmq_send_status_t st = -1;
    OK(rmq_send_result_status(r, &st));
    EXPECT(st == RMQ_SEND_OK);
    const char *v;
    size_t n;
    OK(rmq_send_result_topic(r, &v, &n));
    EXPECT(view_eq(v, n, topic));
    OK(rmq_send_result_broker_name(r, &v, &n));
    EXPECT(n > 0);
    expect_stored(p, r, body, sizeof body, "sync-key other");
    rmq_send_result_destroy(r);
    rmq_message_destroy(m);

    /* async: the callback runs once, on a callback thread */
    struct async_box box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, NULL, 0};
    const uint8_t abody[] = "async\0body";
    m = make_message(topic, abody, sizeof abody, "async-key");
    OK(rmq_producer_send_async(p, m, on_sent, &box));
    rmq_message_destroy(m); /* borrowed for the call only */
    EXPECT(wait_calls(&box, 1, 10) == 1);
    EXPECT(box.status == RMQ_OK && box.result != NULL);
    EXPECT(!pthread_equal(box.thread, pthread_self()));
    if (box.result) {
        expect_stored(p, box.result, abody, sizeof abody, "async-key");
        rmq_send_result_destroy(box.result);
    }
    EXPECT_STATUS(rmq_producer_send_async(p, NULL, on_sent, &box), RMQ_ERR_NULL_POINTER);
    m = make_message(topic, abody, sizeof abody, "k");
    EXPECT_STATUS(rmq_producer_send_async(p, m, NULL, &box), RMQ_ERR_NULL_POINTER);
    rmq_message_destroy(m);

    /* oneway: found through the broker's key index */
    char key[64];
    snprintf(key, sizeof key, "oneway-%d-%ld", (int)getpid(), (long)time(NULL));
    const uint8_t obody[] = "oneway\0body";
    m = make_message(topic, obody, sizeof obody, key);
    OK(rmq_producer_send_oneway(p, m));
    rmq_message_destroy(m);
    rmq_message_t *found[4] = {0};
    size_t count = 0;
    for (int i = 0; i < 100 && count == 0; i++) {
        OK(rmq_producer_query_message(p, topic, key, 32, 0, INT64_MAX, found, 4, &count));
        if (count == 0) nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    EXPECT(count == 1);
    if (count >= 1) {
        const uint8_t *b;
        OK(rmq_message_body(found[0], &b, &n));
        EXPECT(n == sizeof obody && memcmp(b, obody, n) == 0);
        OK(rmq_message_keys(found[0], &v, &n));
        EXPECT(view_eq(v, n, key));
        rmq_message_destroy(found[0]);
    }

    /* bad input: clear errors, nothing sent */
    m = make_message("", (const uint8_t *)"x", 1, "k");
    EXPECT_STATUS(rmq_producer_send_sync(p, m, &r), RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_message_set_topic(m, "bad topic!"));
    EXPECT_STATUS(rmq_producer_send_sync(p, m, &r), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(rmq_last_error_message(), "illegal character") != NULL);
    EXPECT_STATUS(rmq_producer_send_async(p, m, on_sent, &box), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_send_oneway(p, m), RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_message_set_topic(m, topic));
    size_t big_len = 4 * 1024 * 1024 + 1;
    uint8_t *big = calloc(1, big_len);
    /* noise: a body over the compression threshold is limited as sent, compressed */
    for (size_t i = 0; big && i < big_len; i++) big[i] = (uint8_t)(rand() >> 7);
    OK(rmq_message_set_body(m, big, big_len));
    free(big);
    EXPECT_STATUS(rmq_producer_send_sync(p, m, &r), RMQ_ERR_MESSAGE_TOO_LARGE);
    OK(rmq_message_set_body(m, NULL, 0));
    EXPECT_STATUS(rmq_producer_send_sync(p, m, &r), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_view_message(p, "not-an-id", &found[0]), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(wait_calls(&box, 1, 0) == 1); /* refused async sends never call back */

    OK(rmq_producer_shutdown(p));
    OK(rmq_producer_shutdown(p));
    OK(rmq_message_set_body(m, (const uint8_t *)"x", 1));
    EXPECT_STATUS(rmq_producer_send_sync(p, m, &r), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_producer_start(p), RMQ_ERR_INVALID_STATE);
    rmq_message_destroy(m);
    rmq_producer_destroy(p);
    EXPECT_STATUS(rmq_producer_start(p), RMQ_ERR_INVALID_HANDLE);
}

static void test_dead_name_server(void) {
    rmq_config_t *cfg = producer_config("127.0.0.1:1", "CTestDead");
    OK(rmq_config_set(cfg, "producer.send-message-timeout", "1000"));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    rmq_message_t *m = make_message("CDeadTopic", (const uint8_t *)"x", 1, "k");
    rmq_status_t s = rmq_producer_send_sync(p, m, NULL);
    EXPECT(s == RMQ_ERR_CONNECT || s == RMQ_ERR_TIMEOUT);
    EXPECT(strstr(rmq_last_error_message(), "127.0.0.1:1") != NULL);
    /* async to a dead cluster: the failure arrives through the callback */
    struct async_box box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, NULL, 0};
    OK(rmq_producer_send_async(p, m, on_sent, &box));
    EXPECT(wait_calls(&box, 1, 10) == 1);
    EXPECT(box.status == RMQ_ERR_CONNECT || box.status == RMQ_ERR_TIMEOUT);
    rmq_message_destroy(m);
    rmq_producer_destroy(p);
}

struct destroy_box {
    rmq_producer_t *producer;
    struct async_box box;
};

static rmq_status_t destroy_status_in_callback = -1;

static void destroy_in_callback(const rmq_send_callback_params_t *params, void *user_data) {
    struct destroy_box *d = user_data;
    /* its own producer: it would wait for this very callback, so it is refused */
    destroy_status_in_callback = rmq_producer_destroy(d->producer);
    on_sent(params, &d->box);
}

static void test_destroy_inside_callback(void) {
    rmq_config_t *cfg = producer_config(namesrv, "CTestDestroyCb");
    struct destroy_box d = {NULL, {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, NULL, 0}};
    OK(rmq_producer_create(cfg, &d.producer));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(d.producer));
    rmq_message_t *m = make_message(topic, (const uint8_t *)"x", 1, "k");
    OK(rmq_producer_send_async(d.producer, m, destroy_in_callback, &d));
    EXPECT(wait_calls(&d.box, 1, 10) == 1);
    if (d.box.result) rmq_send_result_destroy(d.box.result);
    EXPECT(destroy_status_in_callback == RMQ_ERR_INVALID_STATE);
    /* the handle stayed valid; destroyed from this thread it goes */
    OK(rmq_producer_send_sync(d.producer, m, NULL));
    OK(rmq_producer_destroy(d.producer));
    EXPECT_STATUS(rmq_producer_send_sync(d.producer, m, NULL), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_destroy(d.producer), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_producer_destroy(NULL));
    rmq_message_destroy(m);
}

int main(void) {
    namesrv = getenv("RMQ_NAMESRV");
    if (!namesrv) {
        fprintf(stderr, "RMQ_NAMESRV is not set: run via `make test`, or start a cluster with "
                        "scripts/rocketmq-local.sh up and set RMQ_NAMESRV=127.0.0.1:9876\n");
        return 2;
    }
    const char *v6_namesrv = getenv("RMQ_NAMESRV_V6");
    if (!v6_namesrv) {
        fprintf(stderr, "RMQ_NAMESRV_V6 is not set: run via `make test`, or start a two-broker "
                        "cluster on ::1 with RMQ_HOST=::1 RMQ_BROKERS=2 scripts/rocketmq-local.sh "
                        "up and set RMQ_NAMESRV_V6=[::1]:9876\n");
        return 2;
    }
    snprintf(topic, sizeof topic, "CTest_%d_%ld", (int)getpid(), (long)time(NULL));
    test_version_and_tables();
    test_config();
    test_message_handles();
    test_producer_against_broker();
    test_dead_name_server();
    test_destroy_inside_callback();
    test_input(namesrv, topic, &passed, &failed);
    test_routing(namesrv, v6_namesrv, topic, &passed, &failed);
    test_payload(namesrv, topic, &passed, &failed);
    test_order(namesrv, &passed, &failed);
    test_log(&passed, &failed);
    test_async(namesrv, v6_namesrv, topic, &passed, &failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
