/* rmq_set_logger through the C ABI: records arrive on the "rmq-log" thread with level, target
 * and message; a name server nobody answers on at start and a failed send are warnings; levels
 * outside the range are refused; after removal (and its return) the logger is never called.
 * Entry point: test_log(), called from test_rmq.c's main. */
#define _GNU_SOURCE
#include "rmq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void test_log(int *passed, int *failed);

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

struct log_box {
    pthread_mutex_t lock;
    int calls;
    int warned_no_name_server; /* a WARN from rmq::client naming the dead address */
    int warned_connect;        /* a WARN from rmq::remoting naming the dead address */
    int wrong_thread;
    int after_removal;
    int removed;
};

static void on_log(const rmq_log_record_t *r, void *user_data) {
    struct log_box *b = user_data;
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    pthread_mutex_lock(&b->lock);
    b->calls++;
    if (b->removed) b->after_removal++;
    if (strcmp(name, "rmq-log") != 0) b->wrong_thread++;
    if (r->level == RMQ_LOG_WARN && strcmp(r->target, "rmq::client") == 0 &&
        strstr(r->message, "no name server answers") && strstr(r->message, "127.0.0.1:1"))
        b->warned_no_name_server = 1;
    if (r->level == RMQ_LOG_WARN && strcmp(r->target, "rmq::remoting") == 0 &&
        strstr(r->message, "127.0.0.1:1"))
        b->warned_connect = 1;
    pthread_mutex_unlock(&b->lock);
}

static int wait_flag(struct log_box *b, int *flag, int seconds) {
    for (int i = 0; i < seconds * 100; i++) {
        pthread_mutex_lock(&b->lock);
        int v = *flag;
        pthread_mutex_unlock(&b->lock);
        if (v) return 1;
        usleep(10000);
    }
    return 0;
}

void test_log(int *passed, int *failed) {
    n_passed = passed;
    n_failed = failed;
    static struct log_box box = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0};

    EXPECT(rmq_set_logger(on_log, &box, 6) == RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(rmq_set_logger(on_log, &box, -1) == RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(rmq_set_logger(on_log, &box, RMQ_LOG_INFO) == RMQ_OK);

    rmq_config_t *cfg = rmq_config_create();
    EXPECT(rmq_config_set(cfg, "name-server", "127.0.0.1:1") == RMQ_OK);
    EXPECT(rmq_config_set(cfg, "producer.group", "CTestLog") == RMQ_OK);
    EXPECT(rmq_config_set(cfg, "client.log-level", "loud") == RMQ_ERR_INVALID_CONFIG_VALUE);
    EXPECT(strstr(rmq_last_error_message(), "not a log level") != NULL);
    rmq_producer_t *p = NULL;
    EXPECT(rmq_producer_create(cfg, &p) == RMQ_OK);
    rmq_config_destroy(cfg);
    EXPECT(rmq_producer_start(p) == RMQ_OK);
    EXPECT(wait_flag(&box, &box.warned_no_name_server, 10));
    EXPECT(wait_flag(&box, &box.warned_connect, 10));
    rmq_producer_destroy(p);

    EXPECT(rmq_set_logger(NULL, NULL, RMQ_LOG_OFF) == RMQ_OK);
    pthread_mutex_lock(&box.lock);
    box.removed = 1;
    EXPECT(box.wrong_thread == 0);
    pthread_mutex_unlock(&box.lock);
    /* more failures after removal: none of them reaches the removed logger */
    cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", "127.0.0.1:1");
    rmq_config_set(cfg, "producer.group", "CTestLog2");
    EXPECT(rmq_producer_create(cfg, &p) == RMQ_OK);
    rmq_config_destroy(cfg);
    EXPECT(rmq_producer_start(p) == RMQ_OK);
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, "CLogTopic");
    rmq_message_set_body(m, (const uint8_t *)"x", 1);
    EXPECT(rmq_producer_send_sync(p, m, NULL) != RMQ_OK);
    rmq_message_destroy(m);
    rmq_producer_destroy(p);
    EXPECT(box.after_removal == 0);
    (void)rmq_log_dropped();
}
