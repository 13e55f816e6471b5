/* C tests of batches, compression and delays through the ABI, against the real broker: every
 * message is read back (view by store id, query by key) and compared. */
#include "rmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void test_payload(const char *namesrv, const char *topic, int *passed, int *failed);

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

static const char *ns;

static rmq_producer_t *start_producer(const char *group, const char *key, const char *value) {
    rmq_config_t *cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", ns);
    rmq_config_set(cfg, "producer.group", group);
    if (key) OK(rmq_config_set(cfg, key, value));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    OK(rmq_producer_start(p));
    rmq_config_destroy(cfg);
    return p;
}

static void text_body(uint8_t *out, size_t n) {
    static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)words[(i * 7 + i / 13) % (sizeof words - 1)];
}

static rmq_message_t *message(const char *t, const uint8_t *body, size_t len, const char *keys) {
    rmq_message_t *m = rmq_message_create();
    OK(rmq_message_set_topic(m, t));
    OK(rmq_message_set_tags(m, "TagP"));
    OK(rmq_message_set_keys(m, keys));
    OK(rmq_message_set_property(m, "lang", "c"));
    OK(rmq_message_set_body(m, body, len));
    return m;
}

/* body, tags, keys and the user property of `back` are those of `sent` */
static int same(const rmq_message_t *sent, const rmq_message_t *back) {
    const uint8_t *a, *b;
    size_t an, bn;
    const char *s, *t;
    size_t sn, tn;
    if (rmq_message_body(sent, &a, &an) || rmq_message_body(back, &b, &bn)) return 0;
    if (an != bn || memcmp(a, b, an) != 0) return 0;
    if (rmq_message_tags(sent, &s, &sn) || rmq_message_tags(back, &t, &tn)) return 0;
    if (sn != tn || memcmp(s, t, sn) != 0) return 0;
    if (rmq_message_keys(sent, &s, &sn) || rmq_message_keys(back, &t, &tn)) return 0;
    if (sn != tn || memcmp(s, t, sn) != 0) return 0;
    if (rmq_message_property(back, "lang", &t, &tn) || tn != 1 || t[0] != 'c') return 0;
    return 1;
}

static rmq_message_t *view(rmq_producer_t *p, const char *id, size_t len) {
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)len, id);
    rmq_message_t *back = NULL;
    OK(rmq_producer_view_message(p, buf, &back));
    return back;
}

/* The first stored message of `t` with key `key`, polling up to `seconds`; NULL if none. */
static rmq_message_t *find(rmq_producer_t *p, const char *t, const char *key, int seconds) {
    for (int i = 0; i < seconds * 5; i++) {
        rmq_message_t *found[4];
        size_t count = 0;
        if (rmq_producer_query_message(p, t, key, 4, 0, INT64_MAX, found, 4, &count) == RMQ_OK &&
            count > 0) {
            for (size_t j = 1; j < count && j < 4; j++) rmq_message_destroy(found[j]);
            return found[0];
        }
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void test_batch(const char *topic) {
    char group[128], t[128];
    snprintf(group, sizeof group, "CBatchGroup_%d", (int)getpid());
    snprintf(t, sizeof t, "%s_batch", topic);
    rmq_producer_t *p = start_producer(group, NULL, NULL);
    rmq_message_t *msgs[3];
    uint8_t big[8192];
    text_body(big, sizeof big);
    msgs[0] = message(t, (const uint8_t *)"one", 3, "b1");
    msgs[1] = message(t, big, sizeof big, "b2"); /* not compressed in a batch */
    msgs[2] = message(t, (const uint8_t *)"\0three", 6, "b3");
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_batch(p, (const rmq_message_t *const *)msgs, 3, &r));
    size_t count = 0;
    OK(rmq_send_result_message_count(r, &count));
    EXPECT(count == 3);
    int64_t first_offset = -1;
    OK(rmq_send_result_queue_offset(r, &first_offset));
    for (size_t i = 0; i < 3; i++) {
        const char *id, *uniq, *stored_uniq;
        size_t id_len, uniq_len, stored_len;
        OK(rmq_send_result_offset_msg_id_at(r, i, &id, &id_len));
        OK(rmq_send_result_msg_id_at(r, i, &uniq, &uniq_len));
        rmq_message_t *back = view(p, id, id_len);
        EXPECT(back && same(msgs[i], back));
        OK(rmq_message_msg_id(back, &stored_uniq, &stored_len));
        EXPECT(stored_len == uniq_len && memcmp(stored_uniq, uniq, uniq_len) == 0);
        int64_t off = -1;
        OK(rmq_message_queue_offset(back, &off));
        EXPECT(off == first_offset + (int64_t)i);
        rmq_message_destroy(back);
    }
    const char *v;
    size_t n;
    EXPECT_STATUS(rmq_send_result_msg_id_at(r, 3, &v, &n), RMQ_ERR_NOT_FOUND);
    rmq_send_result_destroy(r);

    /* refused before anything is sent */
    EXPECT_STATUS(rmq_producer_send_batch(p, NULL, 0, NULL), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_send_batch(p, NULL, 2, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_message_set_delay_level(msgs[2], 1));
    EXPECT_STATUS(rmq_producer_send_batch(p, (const rmq_message_t *const *)msgs, 3, NULL),
                  RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_message_set_delay_level(msgs[2], 0));
    OK(rmq_message_set_topic(msgs[2], "OtherTopic"));
    EXPECT_STATUS(rmq_producer_send_batch(p, (const rmq_message_t *const *)msgs, 3, NULL),
                  RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(rmq_last_error_message(), "one topic") != NULL);
    for (int i = 0; i < 3; i++) rmq_message_destroy(msgs[i]);
    OK(rmq_producer_destroy(p));
}

static void test_split(const char *topic) {
    char group[128], t[128];
    snprintf(group, sizeof group, "CSplitGroup_%d", (int)getpid());
    snprintf(t, sizeof t, "%s_split", topic);
    rmq_producer_t *p = start_producer(group, "producer.max-message-size", "4000");
    enum { N = 12 };
    rmq_message_t *msgs[N];
    uint8_t body[900];
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", i);
        for (size_t j = 0; j < sizeof body; j++) body[j] = (uint8_t)(rand() & 0xff);
        msgs[i] = message(t, body, sizeof body, key);
    }
    const rmq_message_t *const *all = (const rmq_message_t *const *)msgs;
    EXPECT_STATUS(rmq_producer_send_batch(p, all, N, NULL), RMQ_ERR_MESSAGE_TOO_LARGE);
    size_t lengths[N], batches = 0, small[1];
    OK(rmq_producer_split_batch(p, all, N, lengths, N, &batches));
    EXPECT(batches >= 3 && batches <= N);
    /* too little room: the count is still right */
    size_t again = 0;
    OK(rmq_producer_split_batch(p, all, N, small, 1, &again));
    EXPECT(again == batches && small[0] == lengths[0]);
    OK(rmq_producer_split_batch(p, all, 0, NULL, 0, &again));
    EXPECT(again == 0);
    size_t start = 0, stored = 0;
    for (size_t b = 0; b < batches && b < N; b++) {
        rmq_send_result_t *r = NULL;
        OK(rmq_producer_send_batch(p, all + start, lengths[b], &r));
        for (size_t i = 0; r && i < lengths[b]; i++) {
            const char *id;
            size_t id_len;
            OK(rmq_send_result_offset_msg_id_at(r, i, &id, &id_len));
            rmq_message_t *back = view(p, id, id_len);
            EXPECT(back && same(msgs[start + i], back));
            stored += back != NULL;
            rmq_message_destroy(back);
        }
        rmq_send_result_destroy(r);
        start += lengths[b];
    }
    EXPECT(start == N && stored == N);
    for (int i = 0; i < N; i++) rmq_message_destroy(msgs[i]);
    OK(rmq_producer_destroy(p));
}

static void test_compression(const char *topic) {
    static const char *codecs[] = {"zlib", "lz4", "zstd"};
    enum { SIZE = 64 * 1024 };
    uint8_t *body = malloc(SIZE);
    text_body(body, SIZE);
    for (int c = 0; c < 3; c++) {
        char group[128], key[64];
        snprintf(group, sizeof group, "CCompressGroup_%s_%d", codecs[c], (int)getpid());
        snprintf(key, sizeof key, "ck_%s_%d_%ld", codecs[c], (int)getpid(), (long)time(NULL));
        rmq_producer_t *p = start_producer(group, "producer.compress-type", codecs[c]);
        rmq_message_t *m = message(topic, body, SIZE, key);
        rmq_send_result_t *r = NULL;
        OK(rmq_producer_send_sync(p, m, &r));
        const char *id;
        size_t id_len;
        OK(rmq_send_result_offset_msg_id(r, &id, &id_len));
        rmq_message_t *back = view(p, id, id_len);
        EXPECT(back && same(m, back));
        rmq_message_destroy(back);
        rmq_message_t *found = find(p, topic, key, 10);
        EXPECT(found && same(m, found));
        rmq_message_destroy(found);
        rmq_send_result_destroy(r);
        rmq_message_destroy(m);
        OK(rmq_producer_destroy(p));
    }
    free(body);
    rmq_config_t *cfg = rmq_config_create();
    EXPECT_STATUS(rmq_config_set(cfg, "producer.compress-type", "gzip"), RMQ_ERR_INVALID_CONFIG_VALUE);
    EXPECT(strstr(rmq_last_error_message(), "producer.compress-type") != NULL);
    rmq_config_set(cfg, "name-server", ns);
    rmq_config_set(cfg, "producer.group", "CBadLevel");
    OK(rmq_config_set(cfg, "producer.compress-level", "15"));
    rmq_producer_t *p = NULL;
    EXPECT_STATUS(rmq_producer_create(cfg, &p), RMQ_ERR_INVALID_CONFIG_VALUE);
    EXPECT(strstr(rmq_last_error_message(), "producer.compress-level") != NULL);
    rmq_config_destroy(cfg);
}

static void test_delays(const char *topic) {
    rmq_message_t *m = rmq_message_create();
    int32_t level = -1;
    OK(rmq_message_delay_level(m, &level));
    EXPECT(level == 0);
    EXPECT_STATUS(rmq_message_set_delay_level(m, 19), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_delay_ms(m, -1), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_delay_sec(m, -1), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_deliver_time_ms(m, -1), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_delay_level(NULL, 1), RMQ_ERR_NULL_POINTER);
    OK(rmq_message_set_delay_ms(m, 1500));
    OK(rmq_message_set_delay_level(m, 4));
    const char *v;
    size_t n;
    EXPECT_STATUS(rmq_message_property(m, "TIMER_DELAY_MS", &v, &n), RMQ_ERR_NOT_FOUND);
    OK(rmq_message_delay_level(m, &level));
    EXPECT(level == 4);
    OK(rmq_message_set_delay_sec(m, 2));
    OK(rmq_message_property(m, "TIMER_DELAY_SEC", &v, &n));
    EXPECT(n == 1 && v[0] == '2');
    OK(rmq_message_delay_level(m, &level));
    EXPECT(level == 0);
    rmq_message_destroy(m);

    /* level 1 (1 s): stored in the schedule topic, delivered to ours no earlier than 1 s later */
    char group[128], key[64];
    snprintf(group, sizeof group, "CDelayGroup_%d", (int)getpid());
    snprintf(key, sizeof key, "cdelay_%d_%ld", (int)getpid(), (long)time(NULL));
    rmq_producer_t *p = start_producer(group, NULL, NULL);
    m = message(topic, (const uint8_t *)"c delayed", 9, key);
    OK(rmq_message_set_delay_level(m, 1));
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, m, &r));
    const char *id;
    size_t id_len;
    OK(rmq_send_result_offset_msg_id(r, &id, &id_len));
    rmq_message_t *scheduled = view(p, id, id_len);
    EXPECT(scheduled && rmq_message_topic(scheduled, &v, &n) == RMQ_OK &&
           n == strlen("SCHEDULE_TOPIC_XXXX") && memcmp(v, "SCHEDULE_TOPIC_XXXX", n) == 0);
    rmq_message_t *real = find(p, topic, key, 60);
    EXPECT(real && same(m, real));
    int64_t scheduled_at = 0, delivered_at = 0;
    if (scheduled && real) {
        OK(rmq_message_store_timestamp(scheduled, &scheduled_at));
        OK(rmq_message_store_timestamp(real, &delivered_at));
        EXPECT(delivered_at >= scheduled_at + 1000);
    }
    rmq_message_destroy(scheduled);
    rmq_message_destroy(real);
    rmq_send_result_destroy(r);
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));
}

void test_payload(const char *namesrv, const char *topic, int *passed, int *failed) {
    ns = namesrv;
    n_passed = passed;
    n_failed = failed;
    test_batch(topic);
    test_split(topic);
    test_compression(topic);
    test_delays(topic);
}
