/* rmq from C: send a few messages, then receive them with a push consumer.
 *   cc -Iinclude examples/c/consumer.c target/release/librmq.a -lpthread -ldl -lm -o consumer
 *   ./consumer [name-server] [topic]                     (default 127.0.0.1:9876 RmqExampleTopic) */
#include "rmq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 5

#define TRY(call)                                                                   \
    do {                                                                            \
        rmq_status_t status_ = (call);                                              \
        if (status_ != RMQ_OK) {                                                    \
            fprintf(stderr, "%s failed: %s: %s\n", #call, rmq_status_name(status_), \
                    rmq_last_error_message());                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static char run_tag[32];
static atomic_int received;

/* Runs on the consumer's own threads; the messages are views valid until it returns. */
static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx, (void)user_data;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        const char *tags, *id;
        size_t body_len, tags_len, id_len;
        int32_t queue;
        int64_t offset;
        if (rmq_received_message_body(msgs[i], &body, &body_len) != RMQ_OK ||
            rmq_received_message_tags(msgs[i], &tags, &tags_len) != RMQ_OK ||
            rmq_received_message_msg_id(msgs[i], &id, &id_len) != RMQ_OK ||
            rmq_received_message_queue_id(msgs[i], &queue) != RMQ_OK ||
            rmq_received_message_queue_offset(msgs[i], &offset) != RMQ_OK)
            return RMQ_CONSUME_RECONSUME_LATER;
        if (tags_len != strlen(run_tag) || memcmp(tags, run_tag, tags_len) != 0) continue;
        printf("received %.*s  msg id %.*s  queue %d offset %lld\n", (int)body_len,
               (const char *)body, (int)id_len, id, queue, (long long)offset);
        atomic_fetch_add(&received, 1);
    }
    return RMQ_CONSUME_SUCCESS;
}

int main(int argc, char **argv) {
    const char *namesrv = argc > 1 ? argv[1] : "127.0.0.1:9876";
    const char *topic = argc > 2 ? argv[2] : "RmqExampleTopic";
    /* A tag of this run, so only what this run sent is counted. */
    snprintf(run_tag, sizeof run_tag, "run%ld", (long)getpid());

    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", namesrv));
    TRY(rmq_config_set(config, "producer.group", "ExampleProducerGroup"));
    rmq_producer_t *producer = NULL;
    TRY(rmq_producer_create(config, &producer));
    TRY(rmq_producer_start(producer));
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "hello %d", i);
        rmq_message_t *msg = rmq_message_create();
        TRY(rmq_message_set_topic(msg, topic));
        TRY(rmq_message_set_tags(msg, run_tag));
        TRY(rmq_message_set_body(msg, (const uint8_t *)body, strlen(body)));
        TRY(rmq_producer_send_sync(producer, msg, NULL));
        rmq_message_destroy(msg);
    }
    printf("sent %d messages tagged %s\n", N, run_tag);
    TRY(rmq_producer_destroy(producer));

    /* The group starts from the first stored message, and subscribes only this run's tag. */
    TRY(rmq_config_set(config, "consumer.group", "ExampleConsumerGroup"));
    TRY(rmq_config_set(config, "consumer.consume-from-where", "first"));
    rmq_push_consumer_t *consumer = NULL;
    TRY(rmq_push_consumer_create(config, &consumer));
    rmq_config_destroy(config);
    TRY(rmq_push_consumer_subscribe(consumer, topic, run_tag));
    TRY(rmq_push_consumer_set_listener(consumer, on_messages, NULL));
    TRY(rmq_push_consumer_start(consumer));
    for (int waited = 0; atomic_load(&received) < N && waited < 600; waited++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TRY(rmq_push_consumer_destroy(consumer));
    printf("received %d of %d\n", atomic_load(&received), N);
    return atomic_load(&received) >= N ? 0 : 1;
}
