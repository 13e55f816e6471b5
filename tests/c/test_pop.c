/* The push consumer in POP mode (consumer.consume-mode=pop) through the C ABI against the real
 * broker (RMQ_NAMESRV): two consumers of one group consume every one of N messages, and a
 * message delivered twice is only ever a re-delivery (its reconsume count is higher); poll mode
 * is refused in POP mode.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 90
#define N 60
#define MAX_TIMES 4

/* Deliveries per message index and reconsume count, and per consumer. */
struct record {
    pthread_mutex_t mu;
    int seen[N][MAX_TIMES];
    int foreign;
    int calls;
};

static struct record rec;

static rmq_consume_status_t on_messages(const rmq_received_message_t *const *msgs, size_t count,
                                        rmq_consume_context_t *ctx, void *user_data) {
    int *calls = user_data;
    (void)ctx;
    pthread_mutex_lock(&rec.mu);
    (*calls)++;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *body;
        size_t len;
        int32_t times = -1;
        char text[64] = {0};
        int idx = -1;
        if (rmq_received_message_body(msgs[i], &body, &len) == RMQ_OK && len < sizeof text)
            memcpy(text, body, len);
        rmq_received_message_reconsume_times(msgs[i], &times);
        if (sscanf(text, "pop-%d", &idx) == 1 && idx >= 0 && idx < N && times >= 0 &&
            times < MAX_TIMES)
            rec.seen[idx][times]++;
        else
            rec.foreign++;
    }
    pthread_mutex_unlock(&rec.mu);
    return RMQ_CONSUME_SUCCESS;
}

static int distinct(void) {
    int k = 0;
    pthread_mutex_lock(&rec.mu);
    for (int i = 0; i < N; i++) {
        int any = 0;
        for (int t = 0; t < MAX_TIMES; t++) any |= rec.seen[i][t] > 0;
        k += any;
    }
    pthread_mutex_unlock(&rec.mu);
    return k;
}

static rmq_push_consumer_t *pop_consumer(const char *group, const char *topic, int *calls) {
    char instance[96];
    unique(instance, sizeof instance, "cpop");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "instance-name", instance));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "consumer.consume-mode", "pop"));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, on_messages, calls));
    return c;
}

static void send_all(const char *topic) {
    rmq_producer_t *p = start_producer("CPopProducer", NULL);
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "pop-%d", i);
        rmq_message_t *m = text_message(topic, body);
        rmq_send_result_t *r = NULL;
        rmq_status_t s = send_retrying(p, m, &r);
        EXPECT(s == RMQ_OK);
        if (s == RMQ_OK) rmq_send_result_destroy(r);
        rmq_message_destroy(m);
    }
    OK(rmq_producer_destroy(p));
}

static void two_consumers_consume_everything(void) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "CPop");
    unique(group, sizeof group, "CPopGroup");
    pthread_mutex_init(&rec.mu, NULL);
    int calls_a = 0, calls_b = 0;
    rmq_push_consumer_t *a = pop_consumer(group, topic, &calls_a);
    rmq_push_consumer_t *b = pop_consumer(group, topic, &calls_b);
    send_all(topic);
    OK(rmq_push_consumer_start(a));
    OK(rmq_push_consumer_start(b));
    double until = now_s() + WITHIN_SECONDS;
    while (distinct() < N && now_s() < until) sleep_ms(50);
    EXPECT(distinct() == N);
    OK(rmq_push_consumer_destroy(a));
    OK(rmq_push_consumer_destroy(b));
    pthread_mutex_lock(&rec.mu);
    int twice = 0;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < MAX_TIMES; t++) twice += rec.seen[i][t] > 1;
    EXPECT(twice == 0);
    EXPECT(rec.foreign == 0);
    pthread_mutex_unlock(&rec.mu);
}

static void poll_mode_is_refused(void) {
    char group[96];
    unique(group, sizeof group, "CPopPoll");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-mode", "pop"));
    EXPECT(rmq_config_set(cfg, "consumer.consume-mode", "push") == RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, "CPopPollTopic", "*"));
    OK(rmq_push_consumer_set_poll_mode(c));
    EXPECT(rmq_push_consumer_start(c) == RMQ_ERR_INVALID_STATE);
    OK(rmq_push_consumer_destroy(c));
}

int main(void) {
    check_namesrv("test_pop");
    alarm(300);
    two_consumers_consume_everything();
    poll_mode_is_refused();
    return check_report("test_pop");
}
