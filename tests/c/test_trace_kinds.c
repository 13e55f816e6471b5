/* Message trace of batches, oneway sends and transaction ends through the C ABI against the
 * real broker (RMQ_NAMESRV), as the Java client writes them: a batch is one Pub record whose
 * message id is the batch's ids joined by commas (its trace key), with "null" tags and keys; a
 * oneway send leaves no record; ending a transaction leaves an EndTransaction record (message
 * type 2, the transaction id, the state's Java name, not from a check).
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WITHIN_SECONDS 90
#define MAX_FIELDS 16

/* One record's fields (pointers into `buf`). */
struct record {
    char buf[4096];
    const char *f[MAX_FIELDS];
    int n;
};

/* Finds, in the trace topic, a record of `kind` found by trace key `key` and naming it; 1 when
 * found (fields in *out). */
static int find_record(rmq_producer_t *reader, const char *key, const char *kind,
                       struct record *out) {
    rmq_message_t *found[32];
    size_t count = 0;
    if (rmq_producer_query_message(reader, "RMQ_SYS_TRACE_TOPIC", key, 32, 0, INT64_MAX / 2, found,
                                   32, &count) != RMQ_OK)
        return 0;
    int hit = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (!hit && rmq_message_body(found[i], &body, &len) == RMQ_OK) {
            const char *p = (const char *)body, *end = p + len;
            while (p < end && !hit) {
                const char *stop = memchr(p, '\002', (size_t)(end - p));
                size_t rlen = stop ? (size_t)(stop - p) : (size_t)(end - p);
                if (rlen < sizeof out->buf) {
                    memcpy(out->buf, p, rlen);
                    out->buf[rlen] = 0;
                    out->n = 0;
                    char *s = out->buf;
                    for (;;) {
                        if (out->n < MAX_FIELDS) out->f[out->n++] = s;
                        char *sep = strchr(s, '\001');
                        if (!sep) break;
                        *sep = 0;
                        s = sep + 1;
                    }
                    int names = 0;
                    for (int k = 0; k < out->n; k++) names |= strcmp(out->f[k], key) == 0;
                    hit = names && strcmp(out->f[0], kind) == 0;
                }
                p += rlen + 1;
            }
        }
        rmq_message_destroy(found[i]);
    }
    return hit;
}

static int wait_record(rmq_producer_t *reader, const char *key, const char *kind,
                       struct record *out) {
    double deadline = now_s() + WITHIN_SECONDS;
    while (!find_record(reader, key, kind, out)) {
        if (now_s() > deadline) return 0;
        sleep_ms(200);
    }
    return 1;
}

static rmq_producer_t *traced_producer(const char *group) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    OK(rmq_config_set(cfg, "client.trace-enabled", "true"));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    return p;
}

static void batch_and_oneway(void) {
    char topic[128], group[128], oneway_key[128];
    unique(topic, sizeof topic, "CTraceBatch");
    unique(group, sizeof group, "CTraceBatchP");
    unique(oneway_key, sizeof oneway_key, "oneway");
    rmq_producer_t *p = traced_producer(group);
    rmq_message_t *first = text_message(topic, "first");
    OK(send_retrying(p, first, NULL)); /* the route, so the oneway send is not the first */
    rmq_message_destroy(first);
    rmq_message_t *oneway = text_message(topic, "oneway");
    OK(rmq_message_set_keys(oneway, oneway_key));
    OK(rmq_producer_send_oneway(p, oneway));
    rmq_message_destroy(oneway);
    rmq_message_t *batch[3];
    for (int i = 0; i < 3; i++) {
        char body[32], key[32];
        snprintf(body, sizeof body, "batched-%d", i);
        snprintf(key, sizeof key, "b%d", i);
        batch[i] = text_message(topic, body);
        OK(rmq_message_set_tags(batch[i], "TagB"));
        OK(rmq_message_set_keys(batch[i], key));
    }
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_batch(p, (const rmq_message_t *const *)batch, 3, &r));
    for (int i = 0; i < 3; i++) rmq_message_destroy(batch[i]);
    OK(rmq_producer_destroy(p)); /* sends what is queued */
    if (!r) return;
    const char *v;
    size_t len;
    char ids[512] = "", offsets[512] = "";
    OK(rmq_send_result_msg_id(r, &v, &len));
    snprintf(ids, sizeof ids, "%.*s", (int)len, v);
    OK(rmq_send_result_offset_msg_id(r, &v, &len));
    snprintf(offsets, sizeof offsets, "%.*s", (int)len, v);
    rmq_send_result_destroy(r);

    rmq_producer_t *reader = start_producer("CTraceBatchR", NULL);
    struct record rec;
    EXPECT(wait_record(reader, ids, "Pub", &rec));
    /* Pub: type, time, region, group, topic, msgId, tags, keys, storeHost, bodyLength, costTime,
     * msgType, offsetMsgId, success. */
    EXPECT(rec.n == 14);
    if (rec.n == 14) {
        EXPECT(strcmp(rec.f[3], group) == 0 && strcmp(rec.f[4], topic) == 0);
        EXPECT(strcmp(rec.f[5], ids) == 0 && strchr(ids, ',') != NULL);
        EXPECT(strcmp(rec.f[6], "null") == 0 && strcmp(rec.f[7], "null") == 0);
        EXPECT(atoi(rec.f[9]) > 3 * (int)strlen("batched-0"));
        EXPECT(strcmp(rec.f[11], "0") == 0 && strcmp(rec.f[12], offsets) == 0);
        EXPECT(strcmp(rec.f[13], "true") == 0);
    }
    /* Every record queued before the batch's is in the topic: none is the oneway send's. */
    EXPECT(!find_record(reader, oneway_key, "Pub", &rec));
    OK(rmq_producer_destroy(reader));
}

static rmq_transaction_state_t rollback_checker(const rmq_received_message_t *m, void *ud) {
    (void)m;
    (void)ud;
    return RMQ_TRANSACTION_ROLLBACK;
}

static rmq_transaction_state_t as_arg(const rmq_message_t *m, const rmq_send_result_t *r,
                                      void *arg) {
    (void)m;
    (void)r;
    return *(rmq_transaction_state_t *)arg;
}

static void transaction_ends(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CTraceTxn");
    unique(group, sizeof group, "CTraceTxnP");
    rmq_producer_t *plain = start_producer("CTraceTxnW", NULL);
    rmq_message_t *first = text_message(topic, "first");
    OK(send_retrying(plain, first, NULL)); /* the topic exists before the half messages */
    rmq_message_destroy(first);
    OK(rmq_producer_destroy(plain));

    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    OK(rmq_config_set(cfg, "client.trace-enabled", "true"));
    rmq_transaction_producer_t *p = NULL;
    OK(rmq_transaction_producer_create(cfg, rollback_checker, NULL, &p));
    rmq_config_destroy(cfg);
    OK(rmq_transaction_producer_start(p));
    rmq_transaction_state_t states[2] = {RMQ_TRANSACTION_COMMIT, RMQ_TRANSACTION_ROLLBACK};
    const char *names[2] = {"COMMIT_MESSAGE", "ROLLBACK_MESSAGE"};
    char ids[2][64] = {"", ""};
    for (int i = 0; i < 2; i++) {
        rmq_message_t *m = text_message(topic, "txn");
        OK(rmq_message_set_keys(m, names[i]));
        rmq_send_result_t *r = NULL;
        OK(rmq_transaction_producer_send(p, m, as_arg, &states[i], NULL, &r));
        rmq_message_destroy(m);
        const char *v;
        size_t len;
        if (r && rmq_send_result_msg_id(r, &v, &len) == RMQ_OK)
            snprintf(ids[i], sizeof ids[i], "%.*s", (int)len, v);
        rmq_send_result_destroy(r);
    }
    rmq_producer_t *reader = start_producer("CTraceTxnR", NULL);
    for (int i = 0; i < 2; i++) {
        struct record rec;
        EXPECT(ids[i][0] && wait_record(reader, ids[i], "EndTransaction", &rec));
        /* EndTransaction: type, time, region, group, topic, msgId, tags, keys, storeHost,
         * msgType, transactionId, transactionState, fromTransactionCheck. */
        EXPECT(rec.n == 13);
        if (rec.n != 13) continue;
        EXPECT(strcmp(rec.f[2], "DefaultRegion") == 0 && strcmp(rec.f[3], group) == 0);
        EXPECT(strcmp(rec.f[4], topic) == 0 && strcmp(rec.f[5], ids[i]) == 0);
        EXPECT(strcmp(rec.f[6], "null") == 0 && strcmp(rec.f[7], names[i]) == 0);
        EXPECT(strcmp(rec.f[9], "2") == 0 && strcmp(rec.f[10], ids[i]) == 0);
        EXPECT(strcmp(rec.f[11], names[i]) == 0 && strcmp(rec.f[12], "false") == 0);
    }
    OK(rmq_producer_destroy(reader));
    OK(rmq_transaction_producer_destroy(p));
}

int main(int argc, char **argv) {
    check_namesrv("test_trace_kinds");
    alarm(600);
    static const struct check_case cases[] = {
        {"batch_and_oneway", batch_and_oneway},
        {"transaction_ends", transaction_ends},
    };
    return check_run("test_trace_kinds", cases, sizeof cases / sizeof cases[0], 18, argc, argv);
}
