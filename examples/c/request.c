/* rmq from C: request-reply (RPC over RocketMQ). A responder, a push consumer that answers every
 * request it receives, and a requester that sends N requests and waits for each reply, in one
 * program (in practice they are two).
 *   cc -Iinclude examples/c/request.c target/release/librmq.a -lpthread -ldl -lm -o request
 *   ./request [name-server] [topic] [N]           (default 127.0.0.1:9876 RmqRequestTopic 5) */
#include "rmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRY(call)                                                                   \
    do {                                                                            \
        rmq_status_t status_ = (call);                                              \
        if (status_ != RMQ_OK) {                                                    \
            fprintf(stderr, "%s failed: %s: %s\n", #call, rmq_status_name(status_), \
                    rmq_last_error_message());                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* How long a request waits for its reply. The first one may also wait for the responder to
 * start (rebalance, first pull). */
#define REPLY_TIMEOUT_MS 30000

static rmq_producer_t *new_producer(const char *namesrv, const char *group) {
    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", namesrv));
    TRY(rmq_config_set(config, "producer.group", group));
    rmq_producer_t *producer = NULL;
    TRY(rmq_producer_create(config, &producer));
    rmq_config_destroy(config);
    TRY(rmq_producer_start(producer));
    return producer;
}

/* The responder's listener: runs on the consumer's own threads. It answers each request with
 * "re: <request body>": rmq_received_message_create_reply makes the reply (to the requester
 * that sent it), any producer sends it. */
static rmq_consume_status_t answer(const rmq_received_message_t *const *msgs, size_t count,
                                   rmq_consume_context_t *ctx, void *user_data) {
    rmq_producer_t *replier = user_data;
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        if (rmq_received_message_body(msgs[i], &body, &len) != RMQ_OK) return RMQ_CONSUME_RECONSUME_LATER;
        char text[256];
        snprintf(text, sizeof text, "re: %.*s", (int)len, (const char *)body);
        rmq_message_t *reply = NULL;
        rmq_status_t s = rmq_received_message_create_reply(msgs[i], (const uint8_t *)text, strlen(text), &reply);
        if (s == RMQ_ERR_INVALID_ARGUMENT) continue; /* not a request: nobody waits for an answer */
        if (s == RMQ_OK) {
            s = rmq_producer_send_sync(replier, reply, NULL);
            rmq_message_destroy(reply);
        }
        if (s != RMQ_OK) {
            fprintf(stderr, "responder: %s\n", rmq_last_error_message());
            return RMQ_CONSUME_RECONSUME_LATER;
        }
    }
    return RMQ_CONSUME_SUCCESS;
}

int main(int argc, char **argv) {
    const char *namesrv = argc > 1 ? argv[1] : "127.0.0.1:9876";
    const char *topic = argc > 2 ? argv[2] : "RmqRequestTopic";
    int n = argc > 3 ? atoi(argv[3]) : 5;
    /* A tag of this run: the responder answers only this run's requests. */
    char run_tag[32];
    snprintf(run_tag, sizeof run_tag, "run%ld", (long)getpid());

    rmq_producer_t *requester = new_producer(namesrv, "ExampleRequesterGroup");
    rmq_producer_t *replier = new_producer(namesrv, "ExampleReplyGroup");

    /* With topics auto-created by the broker (autoCreateTopicEnable), send once so the topic
     * exists before the responder looks up its route; a topic made by mqadmin needs no such
     * step. The responder does not subscribe this tag. */
    rmq_message_t *hello = rmq_message_create();
    TRY(rmq_message_set_topic(hello, topic));
    TRY(rmq_message_set_tags(hello, "hello"));
    TRY(rmq_message_set_body(hello, (const uint8_t *)"hello", 5));
    TRY(rmq_producer_send_sync(requester, hello, NULL));
    rmq_message_destroy(hello);

    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", namesrv));
    TRY(rmq_config_set(config, "consumer.group", "ExampleResponderGroup"));
    TRY(rmq_config_set(config, "consumer.consume-from-where", "first"));
    rmq_push_consumer_t *responder = NULL;
    TRY(rmq_push_consumer_create(config, &responder));
    rmq_config_destroy(config);
    TRY(rmq_push_consumer_subscribe(responder, topic, run_tag));
    TRY(rmq_push_consumer_set_listener(responder, answer, replier));
    TRY(rmq_push_consumer_start(responder));

    int matched = 0;
    for (int i = 0; i < n; i++) {
        char question[64], want[80];
        snprintf(question, sizeof question, "question %d", i);
        snprintf(want, sizeof want, "re: %s", question);
        rmq_message_t *request = rmq_message_create();
        TRY(rmq_message_set_topic(request, topic));
        TRY(rmq_message_set_tags(request, run_tag));
        TRY(rmq_message_set_body(request, (const uint8_t *)question, strlen(question)));
        rmq_message_t *reply = NULL;
        rmq_status_t s = rmq_producer_request(requester, request, REPLY_TIMEOUT_MS, &reply);
        rmq_message_destroy(request);
        if (s != RMQ_OK) { /* RMQ_ERR_TIMEOUT: sent, but no reply came in time */
            printf("%s: %s: %s\n", question, rmq_status_name(s), rmq_last_error_message());
            continue;
        }
        const uint8_t *body;
        size_t len;
        TRY(rmq_message_body(reply, &body, &len));
        int ok = len == strlen(want) && memcmp(body, want, len) == 0;
        printf("%s -> %.*s%s\n", question, (int)len, (const char *)body, ok ? "" : "  (NOT the answer)");
        matched += ok;
        rmq_message_destroy(reply); /* the reply is the caller's */
    }

    TRY(rmq_push_consumer_destroy(responder));
    TRY(rmq_producer_destroy(replier));
    TRY(rmq_producer_destroy(requester));
    printf("%d of %d replies came back and matched\n", matched, n);
    return matched == n ? 0 : 1;
}
