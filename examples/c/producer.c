/* rmq from C: send one message sync, one async and one oneway, and print the results.
 *   cc -Iinclude examples/c/producer.c target/release/librmq.a -lpthread -ldl -lm -o producer
 *   ./producer [name-server] [topic]                     (default 127.0.0.1:9876 RmqExampleTopic) */
#include "rmq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(call)                                                                   \
    do {                                                                            \
        rmq_status_t status_ = (call);                                              \
        if (status_ != RMQ_OK) {                                                    \
            fprintf(stderr, "%s failed: %s: %s\n", #call, rmq_status_name(status_), \
                    rmq_last_error_message());                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* One line per send result, the same in the C, Python and Go examples:
 * MODE STATUS msgId=... offsetMsgId=... queue=BROKER/TOPIC/QUEUE offset=N */
static void print_result(const char *how, const rmq_send_result_t *r) {
    const char *id, *offset_id, *broker, *topic;
    size_t id_len, offset_len, broker_len, topic_len;
    rmq_send_status_t status;
    int32_t queue;
    int64_t offset;
    TRY(rmq_send_result_status(r, &status));
    TRY(rmq_send_result_msg_id(r, &id, &id_len));
    TRY(rmq_send_result_offset_msg_id(r, &offset_id, &offset_len));
    TRY(rmq_send_result_broker_name(r, &broker, &broker_len));
    TRY(rmq_send_result_topic(r, &topic, &topic_len));
    TRY(rmq_send_result_queue_id(r, &queue));
    TRY(rmq_send_result_queue_offset(r, &offset));
    printf("%-6s %s msgId=%.*s offsetMsgId=%.*s queue=%.*s/%.*s/%d offset=%lld\n", how,
           rmq_send_status_name(status), (int)id_len, id, (int)offset_len, offset_id,
           (int)broker_len, broker, (int)topic_len, topic, queue, (long long)offset);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int async_done;

/* Runs on a library callback thread ("rmq-callback-1"). */
static void on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    (void)user_data;
    if (params->status == RMQ_OK) {
        print_result("async", params->result);
    } else {
        fprintf(stderr, "async send failed: %s\n", params->error_message);
    }
    pthread_mutex_lock(&lock);
    async_done = 1;
    pthread_cond_signal(&done);
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    const char *name_server = argc > 1 ? argv[1] : "127.0.0.1:9876";
    const char *topic = argc > 2 ? argv[2] : "RmqExampleTopic";
    printf("rmq %s, name server %s, topic %s\n", rmq_version(), name_server, topic);

    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", name_server));
    TRY(rmq_config_set(config, "producer.group", "ExampleProducerGroup"));
    rmq_producer_t *producer = NULL;
    TRY(rmq_producer_create(config, &producer));
    rmq_config_destroy(config);
    TRY(rmq_producer_start(producer));

    rmq_message_t *msg = rmq_message_create();
    TRY(rmq_message_set_topic(msg, topic));
    TRY(rmq_message_set_tags(msg, "TagA"));
    TRY(rmq_message_set_keys(msg, "order-1001"));
    TRY(rmq_message_set_property(msg, "source", "c-example"));
    const char *body = "Hello RocketMQ from C";
    TRY(rmq_message_set_body(msg, (const uint8_t *)body, strlen(body)));

    rmq_send_result_t *result = NULL;
    TRY(rmq_producer_send_sync(producer, msg, &result));
    print_result("sync", result);
    rmq_send_result_destroy(result);

    TRY(rmq_producer_send_async(producer, msg, on_sent, NULL));
    pthread_mutex_lock(&lock);
    while (!async_done) pthread_cond_wait(&done, &lock);
    pthread_mutex_unlock(&lock);

    TRY(rmq_producer_send_oneway(producer, msg));
    printf("oneway sent (no result by design)\n");

    rmq_message_destroy(msg);
    rmq_producer_destroy(producer);
    return 0;
}
