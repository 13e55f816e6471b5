/* Broadcasting through the C ABI against the real broker (RMQ_NAMESRV): the message model is a
 * configuration key (consumer.message-model=BROADCASTING). Two consumers of one group each
 * receive every message; a consumer restarted with the same instance name resumes from its
 * local offset file (consumer.local-offset-store-dir) and receives only what came since.
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

#define WITHIN_SECONDS 120
#define N 20 /* messages per wave; wave 0 before the restart, wave 1 after */

static char dir[256];

/* Deliveries of "<wave>-<i>" to one consumer. */
struct seen {
    pthread_mutex_t mu;
    int count[2][N];
    int foreign;
};

static rmq_consume_status_t record(const rmq_received_message_t *const *msgs, size_t count,
                                   rmq_consume_context_t *ctx, void *user_data) {
    struct seen *s = user_data;
    (void)ctx;
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < count; k++) {
        const uint8_t *body;
        size_t len;
        char text[32] = {0};
        int wave = -1, i = -1;
        if (rmq_received_message_body(msgs[k], &body, &len) == RMQ_OK && len < sizeof text)
            memcpy(text, body, len);
        if (sscanf(text, "%d-%d", &wave, &i) == 2 && wave >= 0 && wave < 2 && i >= 0 && i < N)
            s->count[wave][i]++;
        else
            s->foreign++;
    }
    pthread_mutex_unlock(&s->mu);
    return RMQ_CONSUME_SUCCESS;
}

static int wave_complete(struct seen *s, int wave) {
    double until = now_s() + WITHIN_SECONDS;
    for (;;) {
        int all = 1;
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < N; i++) all &= s->count[wave][i] > 0;
        pthread_mutex_unlock(&s->mu);
        if (all || now_s() >= until) return all;
        sleep_ms(20);
    }
}

static void send_wave(rmq_producer_t *p, const char *topic, int wave) {
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "%d-%d", wave, i);
        rmq_message_t *m = text_message(topic, body);
        rmq_send_result_t *r = NULL;
        rmq_status_t st = rmq_producer_send_sync(p, m, &r);
        EXPECT(st == RMQ_OK);
        if (st == RMQ_OK) rmq_send_result_destroy(r);
        rmq_message_destroy(m);
    }
}

static rmq_push_consumer_t *broadcaster(const char *group, const char *instance, const char *topic,
                                        struct seen *s) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "instance-name", instance));
    OK(rmq_config_set(cfg, "consumer.message-model", "BROADCASTING"));
    OK(rmq_config_set(cfg, "consumer.local-offset-store-dir", dir));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    EXPECT(rmq_config_set(cfg, "consumer.message-model", "broadcast") == RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, record, s));
    OK(rmq_push_consumer_start(c));
    return c;
}

int main(void) {
    check_namesrv("test_consumer_broadcast");
    alarm(600);
    char topic[96], group[96], inst_a[96], inst_b[96], name[96];
    unique(topic, sizeof topic, "CBroadcast");
    unique(group, sizeof group, "CBroadcastGroup");
    unique(inst_a, sizeof inst_a, "cba");
    unique(inst_b, sizeof inst_b, "cbb");
    unique(name, sizeof name, "rmq-c-bc");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/%s", tmp && *tmp ? tmp : "/tmp", name);

    rmq_producer_t *p = start_producer("CBroadcastProducer", NULL);
    send_wave(p, topic, 0);

    static struct seen a, b, a2;
    pthread_mutex_init(&a.mu, NULL);
    pthread_mutex_init(&b.mu, NULL);
    pthread_mutex_init(&a2.mu, NULL);
    rmq_push_consumer_t *ca = broadcaster(group, inst_a, topic, &a);
    rmq_push_consumer_t *cb = broadcaster(group, inst_b, topic, &b);
    EXPECT(wave_complete(&a, 0));
    EXPECT(wave_complete(&b, 0));
    rmq_push_consumer_destroy(ca);
    rmq_push_consumer_destroy(cb);

    send_wave(p, topic, 1);
    rmq_push_consumer_t *ca2 = broadcaster(group, inst_a, topic, &a2);
    EXPECT(wave_complete(&a2, 1));
    rmq_push_consumer_destroy(ca2);
    int again = 0;
    for (int i = 0; i < N; i++) again += a2.count[0][i];
    EXPECT(again == 0); /* resumed from the file: nothing of wave 0 came again */
    EXPECT(a.foreign == 0 && b.foreign == 0 && a2.foreign == 0);
    rmq_producer_destroy(p);

    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    EXPECT(system(cmd) == 0);
    return check_report("test_consumer_broadcast");
}
