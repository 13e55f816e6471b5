/* Metrics and message trace through the C ABI against the real broker (RMQ_NAMESRV): after N
 * sync sends and N consumed messages of a new topic, rmq_metrics_value and the Prometheus text
 * of rmq_metrics_prometheus count exactly N sent and N consumed; the text's buffer protocol
 * (too small: RMQ_ERR_BUFFER_TOO_SMALL with the length) holds; unknown metric names and NULL
 * arguments are refused; with client.trace-enabled the trace topic holds a Pub record and the
 * SubBefore / SubAfter records of a sent message, found by its message id.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 10
#define WITHIN_SECONDS 60

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int consumed;

static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    (void)msgs;
    (void)ctx;
    (void)user_data;
    pthread_mutex_lock(&lock);
    consumed += (int)count;
    pthread_mutex_unlock(&lock);
    return RMQ_CONSUME_SUCCESS;
}

static int consumed_now(void) {
    pthread_mutex_lock(&lock);
    int n = consumed;
    pthread_mutex_unlock(&lock);
    return n;
}

static uint64_t metric(const char *name, const char *topic) {
    uint64_t v = 0;
    OK(rmq_metrics_value(name, topic, NULL, &v));
    return v;
}

/* The metrics text, malloc'ed (the caller frees it). */
static char *metrics_text(void) {
    size_t needed = 0;
    EXPECT(rmq_metrics_prometheus(NULL, 0, &needed) == RMQ_ERR_BUFFER_TOO_SMALL);
    EXPECT(needed > 0);
    char small[8];
    size_t small_needed = 0;
    EXPECT(rmq_metrics_prometheus(small, sizeof small, &small_needed) ==
           RMQ_ERR_BUFFER_TOO_SMALL);
    EXPECT(small_needed >= needed);
    for (;;) {
        size_t cap = needed + 4096; /* series may be added between the calls */
        char *buf = malloc(cap);
        if (!buf) return NULL;
        rmq_status_t s = rmq_metrics_prometheus(buf, cap, &needed);
        if (s == RMQ_OK) {
            EXPECT(strlen(buf) == needed);
            return buf;
        }
        free(buf);
        if (s != RMQ_ERR_BUFFER_TOO_SMALL) {
            EXPECT(s == RMQ_OK);
            return NULL;
        }
    }
}

/* Whether a message of the trace topic keyed `msg_id` holds a record of `kind` for it. */
static int has_trace_record(rmq_producer_t *reader, const char *msg_id, const char *kind) {
    rmq_message_t *found[32];
    size_t count = 0;
    if (rmq_producer_query_message(reader, "RMQ_SYS_TRACE_TOPIC", msg_id, 32, 0, INT64_MAX / 2,
                                   found, 32, &count) != RMQ_OK)
        return 0;
    int hit = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s\001", kind);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (rmq_message_body(found[i], &body, &len) == RMQ_OK) {
            /* Records end with 0x02; look for one of `kind` that names the message. */
            const char *p = (const char *)body, *end = p + len;
            while (p < end) {
                const char *stop = memchr(p, '\002', (size_t)(end - p));
                size_t rlen = stop ? (size_t)(stop - p) : (size_t)(end - p);
                char record[4096];
                if (rlen < sizeof record) {
                    memcpy(record, p, rlen);
                    record[rlen] = 0;
                    if (strncmp(record, prefix, strlen(prefix)) == 0 && strstr(record, msg_id))
                        hit = 1;
                }
                p += rlen + 1;
            }
        }
        rmq_message_destroy(found[i]);
    }
    return hit;
}

int main(void) {
    check_namesrv("test_metrics");
    alarm(300);
    char topic[128], pgroup[128], cgroup[128], rgroup[128];
    unique(topic, sizeof topic, "CMetrics");
    unique(pgroup, sizeof pgroup, "CMetricsP");
    unique(cgroup, sizeof cgroup, "CMetricsC");
    unique(rgroup, sizeof rgroup, "CMetricsR");

    /* Misuse. */
    uint64_t v = 7;
    EXPECT(rmq_metrics_value("no_such_metric", topic, NULL, &v) == RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(rmq_last_error_message(), "rmq_messages_sent_total") != NULL);
    EXPECT(rmq_metrics_value(NULL, topic, NULL, &v) == RMQ_ERR_NULL_POINTER);
    EXPECT(rmq_metrics_value("rmq_messages_sent_total", topic, NULL, NULL) ==
           RMQ_ERR_NULL_POINTER);
    EXPECT(rmq_metrics_prometheus(NULL, 0, NULL) == RMQ_ERR_NULL_POINTER);
    EXPECT(metric("rmq_messages_sent_total", topic) == 0);

    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", pgroup));
    OK(rmq_config_set(cfg, "consumer.group", cgroup));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "client.trace-enabled", "true"));
    EXPECT(rmq_config_set(cfg, "client.trace-enabled", "on") == RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    OK(rmq_producer_start(p));

    char first_id[64] = "";
    rmq_message_t *msg = rmq_message_create();
    OK(rmq_message_set_topic(msg, topic));
    OK(rmq_message_set_body(msg, (const uint8_t *)"metrics", 7));
    for (int i = 0; i < N; i++) {
        rmq_send_result_t *r = NULL;
        OK(rmq_producer_send_sync(p, msg, &r));
        if (r && i == 0) {
            const char *id;
            size_t len;
            OK(rmq_send_result_msg_id(r, &id, &len));
            snprintf(first_id, sizeof first_id, "%.*s", (int)len, id);
        }
        rmq_send_result_destroy(r);
    }
    rmq_message_destroy(msg);

    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, on_messages, NULL));
    OK(rmq_push_consumer_start(c));
    rmq_config_destroy(cfg);
    for (int i = 0; i < WITHIN_SECONDS * 10 && consumed_now() < N; i++) sleep_ms(100);
    EXPECT(consumed_now() == N);
    for (int i = 0; i < WITHIN_SECONDS * 10 && metric("rmq_messages_consumed_total", topic) < N;
         i++)
        sleep_ms(100);

    EXPECT(metric("rmq_messages_sent_total", topic) == N);
    EXPECT(metric("rmq_bytes_sent_total", topic) == 7 * N);
    EXPECT(metric("rmq_send_latency_seconds_count", topic) == N);
    EXPECT(metric("rmq_send_errors_total", topic) == 0);
    EXPECT(metric("rmq_messages_consumed_total", topic) == N);
    EXPECT(metric("rmq_bytes_consumed_total", topic) == 7 * N);
    OK(rmq_metrics_value("rmq_messages_sent_total", topic, "no-such-broker", &v));
    EXPECT(v == 0);

    char *text = metrics_text();
    EXPECT(text != NULL);
    if (text) {
        char line[512];
        snprintf(line, sizeof line, "\nrmq_messages_sent_total{topic=\"%s\",", topic);
        char *at = strstr(text, line);
        EXPECT(at != NULL);
        if (at) {
            char *eol = strchr(at + 1, '\n');
            EXPECT(eol && eol - at > 3 && strncmp(eol - 3, " 10", 3) == 0);
        }
        EXPECT(strstr(text, "# TYPE rmq_send_latency_seconds histogram") != NULL);
        free(text);
    }

    OK(rmq_push_consumer_shutdown(c));
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));

    /* The trace records of the first message, read back by its id. */
    rmq_config_t *rc = rmq_config_create();
    OK(rmq_config_set(rc, "name-server", namesrv));
    OK(rmq_config_set(rc, "producer.group", rgroup));
    rmq_producer_t *reader = NULL;
    OK(rmq_producer_create(rc, &reader));
    rmq_config_destroy(rc);
    OK(rmq_producer_start(reader));
    int pub = 0, before = 0, after = 0;
    for (int i = 0; i < WITHIN_SECONDS * 2 && !(pub && before && after); i++) {
        pub = has_trace_record(reader, first_id, "Pub");
        before = has_trace_record(reader, first_id, "SubBefore");
        after = has_trace_record(reader, first_id, "SubAfter");
        if (!(pub && before && after)) sleep_ms(500);
    }
    EXPECT(pub);
    EXPECT(before);
    EXPECT(after);
    OK(rmq_producer_destroy(reader));
    EXPECT(rmq_trace_dropped() == 0);

    return check_report("test_metrics");
}
