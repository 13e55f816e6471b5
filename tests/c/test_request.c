/* Request-reply through the C ABI against the real broker (RMQ_NAMESRV): a C requester and a C
 * responder (a push consumer whose listener answers with rmq_received_message_create_reply and
 * rmq_producer_send_sync) round-trip blocking and with callbacks, each callback once with its own
 * reply; a request nobody answers is RMQ_ERR_TIMEOUT saying no reply came; shutdown completes a
 * waiting request with RMQ_ERR_CANCELLED, once; bad input is refused.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Long enough for a responder that is still starting (rebalance, first pull) to answer. */
#define PATIENT_MS 30000
#define WITHIN_SECONDS 90
#define ASYNC_REQUESTS 4

/* Whether `m` has body "re: <question>", MSG_TYPE=reply and a topic ending in _REPLY_TOPIC. */
static int is_reply_to(const rmq_message_t *m, const char *question) {
    char want[128];
    snprintf(want, sizeof want, "re: %s", question);
    const uint8_t *body;
    const char *v, *topic;
    size_t len, vlen, tlen;
    const char *suffix = "_REPLY_TOPIC";
    return rmq_message_body(m, &body, &len) == RMQ_OK && len == strlen(want) &&
           memcmp(body, want, len) == 0 &&
           rmq_message_property(m, "MSG_TYPE", &v, &vlen) == RMQ_OK && vlen == 5 &&
           memcmp(v, "reply", 5) == 0 && rmq_message_topic(m, &topic, &tlen) == RMQ_OK &&
           tlen > strlen(suffix) && memcmp(topic + tlen - strlen(suffix), suffix, strlen(suffix)) == 0;
}

/* ---------------------------------------------------------------------------- the responder */

struct responder {
    rmq_push_consumer_t *consumer;
    rmq_producer_t *replier;
    atomic_int replied, not_requests, failures;
};

static rmq_consume_status_t answer(const rmq_received_message_t *const *msgs, size_t count,
                                   rmq_consume_context_t *ctx, void *user_data) {
    struct responder *r = user_data;
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (rmq_received_message_body(msgs[i], &body, &len) != RMQ_OK) return RMQ_CONSUME_RECONSUME_LATER;
        char text[160];
        snprintf(text, sizeof text, "re: %.*s", (int)len, (const char *)body);
        rmq_message_t *reply = NULL;
        rmq_status_t s = rmq_received_message_create_reply(msgs[i], (const uint8_t *)text, strlen(text), &reply);
        if (s == RMQ_ERR_INVALID_ARGUMENT) { /* not a request */
            atomic_fetch_add(&r->not_requests, 1);
            continue;
        }
        if (s != RMQ_OK) return RMQ_CONSUME_RECONSUME_LATER;
        s = rmq_producer_send_sync(r->replier, reply, NULL);
        rmq_message_destroy(reply);
        if (s != RMQ_OK) {
            atomic_fetch_add(&r->failures, 1);
            return RMQ_CONSUME_RECONSUME_LATER;
        }
        atomic_fetch_add(&r->replied, 1);
    }
    return RMQ_CONSUME_SUCCESS;
}

static void responder_start(struct responder *r, const char *topic) {
    memset(r, 0, sizeof *r);
    r->replier = start_producer("CRequestGroup", "crr");
    /* the topic exists before the consumer looks its route up */
    rmq_message_t *m = text_message(topic, "not a request");
    OK(rmq_producer_send_sync(r->replier, m, NULL));
    rmq_message_destroy(m);
    char group[96], instance[96];
    unique(group, sizeof group, "CResponder");
    unique(instance, sizeof instance, "cresp");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "instance-name", instance));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_push_consumer_create(cfg, &r->consumer));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(r->consumer, topic, "*"));
    OK(rmq_push_consumer_set_listener(r->consumer, answer, r));
    OK(rmq_push_consumer_start(r->consumer));
}

static void responder_stop(struct responder *r) {
    OK(rmq_push_consumer_destroy(r->consumer));
    OK(rmq_producer_destroy(r->replier));
}

/* ------------------------------------------------------------------------ async bookkeeping */

struct outcome {
    pthread_mutex_t mu;
    char question[64];
    int calls;
    rmq_status_t status;
    int reply_ok;
    char error[256];
};

static void on_reply(const rmq_request_callback_params_t *params, void *user_data) {
    struct outcome *o = user_data;
    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->status = params->status;
    o->reply_ok = params->status == RMQ_OK && params->reply != NULL && is_reply_to(params->reply, o->question);
    snprintf(o->error, sizeof o->error, "%s", params->error_message);
    pthread_mutex_unlock(&o->mu);
    /* the callback owns the reply */
    rmq_message_destroy(params->reply);
}

static int calls_of(struct outcome *o) {
    pthread_mutex_lock(&o->mu);
    int n = o->calls;
    pthread_mutex_unlock(&o->mu);
    return n;
}

static int wait_calls(struct outcome *o, int n) {
    for (int i = 0; i < WITHIN_SECONDS * 10 && calls_of(o) < n; i++) sleep_ms(100);
    return calls_of(o);
}

/* -------------------------------------------------------------------------------- the cases */

static void round_trip(void) {
    char topic[128];
    unique(topic, sizeof topic, "CRequest");
    struct responder r;
    responder_start(&r, topic);
    rmq_producer_t *p = start_producer("CRequestGroup", "crr");

    rmq_message_t *q = text_message(topic, "q-blocking");
    rmq_message_t *reply = NULL;
    OK(rmq_producer_request(p, q, PATIENT_MS, &reply));
    EXPECT(reply != NULL && is_reply_to(reply, "q-blocking"));
    const char *v;
    size_t vlen;
    EXPECT(reply && rmq_message_property(reply, "CORRELATION_ID", &v, &vlen) == RMQ_OK && vlen > 0);
    /* the request message itself is not changed */
    EXPECT_STATUS(rmq_message_property(q, "CORRELATION_ID", &v, &vlen), RMQ_ERR_NOT_FOUND);
    rmq_message_destroy(reply);
    rmq_message_destroy(q);

    struct outcome o[ASYNC_REQUESTS];
    for (int i = 0; i < ASYNC_REQUESTS; i++) {
        memset(&o[i], 0, sizeof o[i]);
        pthread_mutex_init(&o[i].mu, NULL);
        snprintf(o[i].question, sizeof o[i].question, "q-async-%d", i);
        rmq_message_t *m = text_message(topic, o[i].question);
        OK(rmq_producer_request_async(p, m, PATIENT_MS, on_reply, &o[i]));
        rmq_message_destroy(m); /* borrowed for the call only */
    }
    for (int i = 0; i < ASYNC_REQUESTS; i++) {
        EXPECT(wait_calls(&o[i], 1) == 1);
        EXPECT(o[i].status == RMQ_OK && o[i].reply_ok);
    }
    OK(rmq_producer_destroy(p)); /* returns after the last callback */
    for (int i = 0; i < ASYNC_REQUESTS; i++) {
        EXPECT(calls_of(&o[i]) == 1);
        pthread_mutex_destroy(&o[i].mu);
    }
    responder_stop(&r);
    EXPECT(atomic_load(&r.failures) == 0);
    EXPECT(atomic_load(&r.replied) == 1 + ASYNC_REQUESTS);
}

static void timeout_and_cancel(void) {
    char topic[128];
    unique(topic, sizeof topic, "CRequestNoOne");
    rmq_producer_t *p = start_producer("CRequestGroup", "crr");
    rmq_message_t *q = text_message(topic, "anyone?");
    rmq_message_t *reply = NULL;
    EXPECT_STATUS(rmq_producer_request(p, q, 1500, &reply), RMQ_ERR_TIMEOUT);
    EXPECT(strstr(rmq_last_error_message(), "no reply came within 1500 ms") != NULL);
    EXPECT(reply == NULL);

    struct outcome timed_out = {.mu = PTHREAD_MUTEX_INITIALIZER, .question = "anyone?"};
    OK(rmq_producer_request_async(p, q, 1500, on_reply, &timed_out));
    EXPECT(wait_calls(&timed_out, 1) == 1);
    EXPECT(timed_out.status == RMQ_ERR_TIMEOUT && strstr(timed_out.error, "no reply came") != NULL);

    struct outcome cancelled = {.mu = PTHREAD_MUTEX_INITIALIZER, .question = "anyone?"};
    OK(rmq_producer_request_async(p, q, 600000, on_reply, &cancelled));
    OK(rmq_producer_shutdown(p));
    EXPECT(wait_calls(&cancelled, 1) == 1);
    EXPECT(cancelled.status == RMQ_ERR_CANCELLED);
    OK(rmq_producer_destroy(p));
    EXPECT(calls_of(&timed_out) == 1 && calls_of(&cancelled) == 1);
    rmq_message_destroy(q);
}

static void misuse(void) {
    rmq_producer_t *p = start_producer("CRequestGroup", "crr");
    rmq_message_t *q = text_message("CRequestMisuse", "x");
    rmq_message_t *reply = NULL;
    EXPECT_STATUS(rmq_producer_request(p, q, 0, &reply), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_request(p, q, -5, &reply), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_producer_request(p, q, 1000, NULL), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_producer_request(p, NULL, 1000, &reply), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_producer_request_async(p, q, 1000, NULL, NULL), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_received_message_create_reply(NULL, NULL, 0, &reply), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_received_message_create_reply((const rmq_received_message_t *)q, NULL, 0, &reply),
                  RMQ_ERR_INVALID_HANDLE);

    /* a reply from a request's properties (the broker's encoding) */
    const char props[] = "CLUSTER\001Cl\002REPLY_TO_CLIENT\001me\002CORRELATION_ID\001c-1\002TTL\0013000\002";
    OK(rmq_message_create_reply(props, sizeof props - 1, (const uint8_t *)"ok", 2, &reply));
    const char *v;
    size_t len;
    EXPECT(reply && rmq_message_topic(reply, &v, &len) == RMQ_OK && len == 14 && memcmp(v, "Cl_REPLY_TOPIC", 14) == 0);
    EXPECT(reply && rmq_message_property(reply, "CORRELATION_ID", &v, &len) == RMQ_OK && len == 3);
    rmq_message_destroy(reply);
    reply = NULL;
    const char plain[] = "KEYS\001k\002";
    EXPECT_STATUS(rmq_message_create_reply(plain, sizeof plain - 1, (const uint8_t *)"x", 1, &reply),
                  RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(rmq_last_error_message(), "CLUSTER") != NULL);
    EXPECT(reply == NULL);

    OK(rmq_producer_shutdown(p));
    EXPECT_STATUS(rmq_producer_request(p, q, 1000, &reply), RMQ_ERR_INVALID_STATE);
    rmq_message_destroy(q);
    OK(rmq_producer_destroy(p));
}

static const struct check_case CASES[] = {
    {"round_trip", round_trip},
    {"timeout", timeout_and_cancel},
    {"misuse", misuse},
};

int main(int argc, char **argv) {
    check_namesrv("test_request");
    alarm(600);
    return check_run("test_request", CASES, sizeof CASES / sizeof CASES[0], 10, argc, argv);
}
