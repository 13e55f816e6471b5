/* rmq from C: transactional messages. Three orders are sent in transactions: the first commits,
 * the second rolls back, the third answers "unknown" and is committed later by the checker, when
 * the broker asks about it. A consumer then receives exactly the two committed orders.
 *   cc -Iinclude examples/c/transaction.c target/release/librmq.a -lpthread -ldl -lm -o transaction
 *   ./transaction [name-server] [topic]              (default 127.0.0.1:9876 RmqTransactionTopic)
 * The broker asks the checker once a half message is older than its transactionTimeOut (6 s by
 * default) at its next check, every transactionCheckInterval (30 s by default), so the third
 * order arrives that much later. */
#include "rmq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* The application's own state, standing in for its database: the outcome of each local
 * transaction by transaction id. The checker answers from it, so it must be safe to use from the
 * checker's thread while the main thread writes it. */
#define MAX_RECORDS 16
static struct {
    char txn_id[64];
    rmq_transaction_state_t state;
} records[MAX_RECORDS];
static int record_count;
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(const char *id, size_t len, rmq_transaction_state_t state) {
    pthread_mutex_lock(&records_lock);
    if (record_count < MAX_RECORDS && len < sizeof records[0].txn_id) {
        memcpy(records[record_count].txn_id, id, len);
        records[record_count].txn_id[len] = '\0';
        records[record_count].state = state;
        record_count++;
    }
    pthread_mutex_unlock(&records_lock);
}

/* Whether `id` is recorded; its state goes to *state. */
static int lookup(const char *id, size_t len, rmq_transaction_state_t *state) {
    int found = 0;
    pthread_mutex_lock(&records_lock);
    for (int i = 0; i < record_count && !found; i++) {
        if (strlen(records[i].txn_id) == len && memcmp(records[i].txn_id, id, len) == 0) {
            *state = records[i].state;
            found = 1;
        }
    }
    pthread_mutex_unlock(&records_lock);
    return found;
}

/* One order: what its local transaction stores, and what it answers at once. */
struct order {
    const char *key;
    rmq_transaction_state_t outcome; /* what the application's state will say */
    rmq_transaction_state_t answer;  /* what the local transaction returns now */
};

/* The local transaction: runs on the thread that called rmq_transaction_producer_send, after
 * the broker stored the half message. `arg` is the order given to that call. */
static rmq_transaction_state_t execute(const rmq_message_t *message, const rmq_send_result_t *result,
                                       void *arg) {
    (void)message;
    const struct order *o = arg;
    const char *id;
    size_t len;
    if (rmq_send_result_transaction_id(result, &id, &len) != RMQ_OK) return RMQ_TRANSACTION_UNKNOWN;
    record(id, len, o->outcome); /* "write the order to the database" */
    printf("local transaction of %s (transaction id %.*s): %s\n", o->key, (int)len, id,
           rmq_transaction_state_name(o->answer));
    return o->answer;
}

/* The checker: runs on the producer's own thread ("rmq-txn-check-1") when the broker asks about
 * a transaction whose end it did not get. The half message's msg id is the transaction id. */
static rmq_transaction_state_t check(const rmq_received_message_t *message, void *user_data) {
    (void)user_data;
    const char *id;
    size_t len;
    rmq_transaction_state_t state;
    if (rmq_received_message_msg_id(message, &id, &len) != RMQ_OK) return RMQ_TRANSACTION_UNKNOWN;
    if (!lookup(id, len, &state)) {
        /* Not in this run's records: a transaction of another run of the group, which this
         * in-memory stand-in cannot judge. The broker asks again later. */
        state = RMQ_TRANSACTION_UNKNOWN;
    }
    printf("checker asked about %.*s: %s\n", (int)len, id, rmq_transaction_state_name(state));
    return state;
}

/* ---- the consumer: counts what arrives of this run, by order key */

static char run_tag[32];
static atomic_int seen[3];
static atomic_int others;
static const struct order orders[3] = {
    {"order-1", RMQ_TRANSACTION_COMMIT, RMQ_TRANSACTION_COMMIT},
    {"order-2", RMQ_TRANSACTION_ROLLBACK, RMQ_TRANSACTION_ROLLBACK},
    {"order-3", RMQ_TRANSACTION_COMMIT, RMQ_TRANSACTION_UNKNOWN},
};

/* Runs on the consumer's own threads; the messages are views valid until it returns. */
static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    (void)ctx, (void)user_data;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        const char *keys, *id;
        size_t body_len, keys_len, id_len;
        if (rmq_received_message_body(msgs[i], &body, &body_len) != RMQ_OK ||
            rmq_received_message_keys(msgs[i], &keys, &keys_len) != RMQ_OK ||
            rmq_received_message_msg_id(msgs[i], &id, &id_len) != RMQ_OK)
            return RMQ_CONSUME_RECONSUME_LATER;
        printf("received %.*s  msg id %.*s\n", (int)body_len, (const char *)body, (int)id_len, id);
        int known = 0;
        for (int k = 0; k < 3; k++) {
            if (keys_len == strlen(orders[k].key) && memcmp(keys, orders[k].key, keys_len) == 0) {
                atomic_fetch_add(&seen[k], 1);
                known = 1;
            }
        }
        if (!known) atomic_fetch_add(&others, 1);
    }
    return RMQ_CONSUME_SUCCESS;
}

int main(int argc, char **argv) {
    const char *namesrv = argc > 1 ? argv[1] : "127.0.0.1:9876";
    const char *topic = argc > 2 ? argv[2] : "RmqTransactionTopic";
    /* A tag of this run, so only what this run sent is counted. */
    snprintf(run_tag, sizeof run_tag, "run%ld", (long)getpid());

    rmq_config_t *config = rmq_config_create();
    TRY(rmq_config_set(config, "name-server", namesrv));
    TRY(rmq_config_set(config, "producer.group", "ExampleTransactionGroup"));
    rmq_transaction_producer_t *producer = NULL;
    TRY(rmq_transaction_producer_create(config, check, NULL, &producer));
    TRY(rmq_transaction_producer_start(producer));

    for (int i = 0; i < 3; i++) {
        char body[64];
        snprintf(body, sizeof body, "%s of %s", orders[i].key, run_tag);
        rmq_message_t *msg = rmq_message_create();
        TRY(rmq_message_set_topic(msg, topic));
        TRY(rmq_message_set_tags(msg, run_tag));
        TRY(rmq_message_set_keys(msg, orders[i].key));
        TRY(rmq_message_set_body(msg, (const uint8_t *)body, strlen(body)));
        rmq_transaction_state_t state;
        TRY(rmq_transaction_producer_send(producer, msg, execute, (void *)&orders[i], &state, NULL));
        printf("sent %s in a transaction: %s\n", orders[i].key, rmq_transaction_state_name(state));
        rmq_message_destroy(msg);
    }

    /* The consumer starts from the first stored message and subscribes only this run's tag. The
     * producer stays up meanwhile: the broker asks its checker about order-3. */
    TRY(rmq_config_set(config, "consumer.group", "ExampleTransactionConsumer"));
    TRY(rmq_config_set(config, "consumer.consume-from-where", "first"));
    rmq_push_consumer_t *consumer = NULL;
    TRY(rmq_push_consumer_create(config, &consumer));
    rmq_config_destroy(config);
    TRY(rmq_push_consumer_subscribe(consumer, topic, run_tag));
    TRY(rmq_push_consumer_set_listener(consumer, on_messages, NULL));
    TRY(rmq_push_consumer_start(consumer));
    printf("waiting for order-1, and for order-3 once the broker asks the checker\n");
    for (int waited = 0; waited < 900 && (atomic_load(&seen[0]) < 1 || atomic_load(&seen[2]) < 1);
         waited++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TRY(rmq_push_consumer_destroy(consumer));
    TRY(rmq_transaction_producer_destroy(producer));

    int ok = atomic_load(&seen[0]) == 1 && atomic_load(&seen[1]) == 0 && atomic_load(&seen[2]) == 1 &&
             atomic_load(&others) == 0;
    printf("received order-1 %d time(s), order-2 %d, order-3 %d: %s\n", atomic_load(&seen[0]),
           atomic_load(&seen[1]), atomic_load(&seen[2]),
           ok ? "the two committed orders, once each" : "NOT what was committed");
    return ok ? 0 : 1;
}
