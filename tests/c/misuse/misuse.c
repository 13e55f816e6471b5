/* The C ABI misuse suite: what a careless or hostile C caller can do to rmq, each case run in a
 * process of its own (scripts/test-misuse.sh runs `misuse <case>` once per case, under ASan +
 * UBSan or valgrind). Every case must end with a clear status, never a crash, hang, leak or
 * undefined behaviour. Cases that need a broker use RMQ_NAMESRV.
 *
 *   null            NULL in every pointer parameter of every function (generated from rmq.h
 *                   by scripts/gen-misuse-null.py; the allowed NULLs are listed there)
 *   stale           double destroy and use after destroy, every handle type
 *   forged          wrong-type handles and forged pointers/integers, every handle type
 *   destroy_in_cb   a producer destroyed in its own send callback, a consumer in its listener
 *   shutdown_10k    shutdown with 10 000 async sends in flight: each callback exactly once
 *   threads32       32 threads on one producer
 *   mutate          a message changed by another thread while async sends of it run
 *   oversized       huge lengths with small buffers, bodies over the size limits
 *   fork            a child uses the parent's handles: RMQ_ERR_FORKED at once, parent unharmed
 *   nofile          sockets fail under a lowered RLIMIT_NOFILE; all works once it is raised
 *
 *   misuse <case>   runs one case; exit status 0 when every check passed
 *   misuse list     prints the case names */
#include "check.h"
#include "fixtures.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Upper bound of one case: only a hang reaches it (SIGALRM kills the process). */
#define CASE_SECONDS 240

/* Polls until *counter >= want or `seconds` pass (a failure bound, not a timing assumption). */
static int wait_count(atomic_int *counter, int want, int seconds) {
    double until = now_s() + seconds;
    while (atomic_load(counter) < want && now_s() < until) sleep_ms(2);
    return atomic_load(counter);
}

/* Send timeouts far above any run's pace, valgrind's (tens of times slower) included: the
 * checks are about what happens, not how fast. */
#define SEND_TIMEOUT_MS "60000"

static rmq_producer_t *new_producer(const char *prefix, int start) {
    char group[96], inst[96];
    unique(group, sizeof group, prefix);
    unique(inst, sizeof inst, "misuse");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    OK(rmq_config_set(cfg, "instance-name", inst));
    OK(rmq_config_set(cfg, "producer.send-message-timeout", SEND_TIMEOUT_MS));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    if (p && start) OK(rmq_producer_start(p));
    return p;
}

static void warm_up(rmq_producer_t *p, const char *topic) {
    rmq_message_t *m = text_message(topic, "warm-up");
    OK(send_retrying(p, m, NULL));
    rmq_message_destroy(m);
}

/* ============================================================================ fixtures */

static char fx_topic_name[96];
static char fx_offset_id[64];
static rmq_config_t *fx_cfg;
static rmq_message_t *fx_msg, *fx_stored;
static const rmq_message_t *fx_msgs[1];
static rmq_producer_t *fx_prod;
static rmq_send_result_t *fx_result;
static rmq_push_consumer_t *fx_push;
static rmq_lite_pull_consumer_t *fx_lite;
static rmq_message_queue_list_t *fx_list;
static rmq_received_batch_t *fx_batch;
static const rmq_received_message_t *fx_received;
static rmq_transaction_producer_t *fx_tx;
static char fx_queue_topic[128], fx_queue_broker[64];
static rmq_message_queue_t fx_mq;
static atomic_int fx_callbacks_pending;

const char *fx_namesrv(void) { return namesrv; }
int64_t fx_now_ms(void) { return (int64_t)time(NULL) * 1000; }
void *fx_user_data(void) { return &fx_callbacks_pending; }

const char *fx_topic(void) {
    if (!fx_topic_name[0]) unique(fx_topic_name, sizeof fx_topic_name, "MisuseNullTopic");
    return fx_topic_name;
}

const char *fx_reply_properties(void) {
    return "CLUSTER\x01" "DefaultCluster\x02" "CORRELATION_ID\x01" "c1\x02"
           "REPLY_TO_CLIENT\x01" "client\x02" "TTL\x01" "3000\x02";
}

rmq_config_t *fx_config(void) {
    if (!fx_cfg) {
        char group[96], inst[96];
        unique(group, sizeof group, "MisuseNullGroup");
        unique(inst, sizeof inst, "misuse-null");
        fx_cfg = rmq_config_create();
        OK(rmq_config_set(fx_cfg, "name-server", namesrv));
        OK(rmq_config_set(fx_cfg, "producer.group", group));
        OK(rmq_config_set(fx_cfg, "consumer.group", group));
        OK(rmq_config_set(fx_cfg, "consumer.consume-from-where", "first"));
        OK(rmq_config_set(fx_cfg, "consumer.pull-batch-size", "1"));
        OK(rmq_config_set(fx_cfg, "consumer.auto-commit", "false"));
        OK(rmq_config_set(fx_cfg, "instance-name", inst));
        OK(rmq_config_set(fx_cfg, "producer.send-message-timeout", SEND_TIMEOUT_MS));
    }
    return fx_cfg;
}

rmq_message_t *fx_message(void) {
    if (!fx_msg) {
        fx_msg = text_message(fx_topic(), "misuse");
        OK(rmq_message_set_property(fx_msg, "color", "blue"));
    }
    return fx_msg;
}

/* The fixture message as the broker stored it. */
rmq_message_t *fx_stored_message(void) {
    if (!fx_stored) OK(rmq_producer_view_message(fx_producer(), fx_offset_msg_id(), &fx_stored));
    return fx_stored;
}

const rmq_message_t *const *fx_message_array(void) {
    fx_msgs[0] = fx_message();
    return fx_msgs;
}

rmq_producer_t *fx_producer(void) {
    if (!fx_prod) {
        OK(rmq_producer_create(fx_config(), &fx_prod));
        OK(rmq_producer_start(fx_prod));
        OK(send_retrying(fx_prod, fx_message(), &fx_result));
        const char *id;
        size_t n;
        OK(rmq_send_result_offset_msg_id(fx_result, &id, &n));
        snprintf(fx_offset_id, sizeof fx_offset_id, "%.*s", (int)n, id);
    }
    return fx_prod;
}

rmq_send_result_t *fx_send_result(void) {
    fx_producer();
    return fx_result;
}

const char *fx_offset_msg_id(void) {
    fx_producer();
    return fx_offset_id;
}

rmq_push_consumer_t *fx_push_consumer(void) {
    if (!fx_push) OK(rmq_push_consumer_create(fx_config(), &fx_push));
    return fx_push;
}

const rmq_message_queue_t *fx_queue(void) {
    if (!fx_mq.topic) {
        fx_producer(); /* the topic exists */
        rmq_lite_pull_consumer_t *c = NULL;
        OK(rmq_lite_pull_consumer_create(fx_config(), &c));
        OK(rmq_lite_pull_consumer_start(c));
        rmq_message_queue_list_t *l = NULL;
        OK(rmq_lite_pull_consumer_fetch_message_queues(c, fx_topic(), &l));
        const rmq_message_queue_t *v = NULL;
        size_t n = 0;
        OK(rmq_message_queue_list_views(l, &v, &n));
        EXPECT(n > 0);
        if (n > 0) {
            snprintf(fx_queue_topic, sizeof fx_queue_topic, "%.*s", (int)v[0].topic_len, v[0].topic);
            snprintf(fx_queue_broker, sizeof fx_queue_broker, "%.*s", (int)v[0].broker_name_len,
                     v[0].broker_name);
            fx_mq = v[0];
            fx_mq.topic = fx_queue_topic;
            fx_mq.broker_name = fx_queue_broker;
        }
        OK(rmq_message_queue_list_destroy(l));
        OK(rmq_lite_pull_consumer_destroy(c));
        /* messages in that queue for the batch fixtures */
        for (int i = 0; i < 4; i++) OK(rmq_producer_send_sync_to_queue(fx_prod, fx_message(), &fx_mq, NULL));
    }
    return &fx_mq;
}

const rmq_queue_selector_t *fx_selector(void) {
    static const rmq_queue_selector_t sel = {RMQ_SELECTOR_ROUND_ROBIN, NULL, 0, NULL, NULL};
    return &sel;
}

rmq_lite_pull_consumer_t *fx_lite_pull_consumer(void) {
    if (!fx_lite) {
        const rmq_message_queue_t *q = fx_queue();
        OK(rmq_lite_pull_consumer_create(fx_config(), &fx_lite));
        OK(rmq_lite_pull_consumer_assign(fx_lite, q, 1));
        OK(rmq_lite_pull_consumer_start(fx_lite));
    }
    return fx_lite;
}

rmq_message_queue_list_t *fx_message_queue_list(void) {
    size_t n;
    const rmq_message_queue_t *v;
    if (fx_list && rmq_message_queue_list_views(fx_list, &v, &n) == RMQ_OK) return fx_list;
    fx_list = NULL;
    OK(rmq_lite_pull_consumer_assignment(fx_lite_pull_consumer(), &fx_list));
    return fx_list;
}

/* A batch of one message (pull-batch-size 1), polled again when a call ended the last one. */
rmq_received_batch_t *fx_received_batch(void) {
    size_t n;
    if (fx_batch && rmq_received_batch_count(fx_batch, &n) == RMQ_OK) return fx_batch;
    fx_batch = NULL;
    fx_received = NULL;
    rmq_lite_pull_consumer_t *c = fx_lite_pull_consumer();
    OK(rmq_lite_pull_consumer_seek_to_begin(c, fx_queue()));
    double until = now_s() + 60;
    while (!fx_batch && now_s() < until) {
        rmq_status_t s = rmq_lite_pull_consumer_poll(c, 500, &fx_batch);
        EXPECT(s == RMQ_OK);
        if (s != RMQ_OK) break;
    }
    EXPECT(fx_batch != NULL && rmq_received_batch_count(fx_batch, &n) == RMQ_OK && n == 1);
    return fx_batch;
}

const rmq_received_message_t *fx_received_message(void) {
    int32_t q;
    if (fx_received && fx_batch && rmq_received_message_queue_id(fx_received, &q) == RMQ_OK)
        return fx_received;
    OK(rmq_received_batch_at(fx_received_batch(), 0, &fx_received));
    return fx_received;
}

static rmq_completion_queue_t *fx_cq;

rmq_completion_queue_t *fx_completion_queue(void) {
    if (!fx_cq) OK(rmq_completion_queue_new(16, &fx_cq));
    return fx_cq;
}

void fx_release_completion_queue(rmq_completion_queue_t *q) { rmq_completion_queue_destroy(q); }

rmq_transaction_producer_t *fx_transaction_producer(void) {
    if (!fx_tx) {
        /* a group of its own: one group is one producer per client instance */
        char group[96];
        unique(group, sizeof group, "MisuseNullTx");
        rmq_config_t *cfg = rmq_config_create();
        OK(rmq_config_set(cfg, "name-server", namesrv));
        OK(rmq_config_set(cfg, "producer.group", group));
        OK(rmq_transaction_producer_create(cfg, fx_checker, NULL, &fx_tx));
        rmq_config_destroy(cfg);
        OK(rmq_transaction_producer_start(fx_tx));
    }
    return fx_tx;
}

void fx_send_callback(const rmq_send_callback_params_t *params, void *user_data) {
    (void)params;
    if (user_data) atomic_fetch_sub((atomic_int *)user_data, 1);
}

rmq_consume_status_t fx_listener(const rmq_received_message_t *const *messages, size_t count,
                                 rmq_consume_context_t *context, void *user_data) {
    (void)messages, (void)count, (void)context, (void)user_data;
    return RMQ_CONSUME_SUCCESS;
}

rmq_consume_orderly_status_t fx_orderly_listener(const rmq_received_message_t *const *messages,
                                                 size_t count,
                                                 rmq_consume_orderly_context_t *context,
                                                 void *user_data) {
    (void)messages, (void)count, (void)context, (void)user_data;
    return RMQ_CONSUME_ORDERLY_SUCCESS;
}

void fx_log_callback(const rmq_log_record_t *record, void *user_data) {
    (void)record, (void)user_data;
}

void fx_request_callback(const rmq_request_callback_params_t *params, void *user_data) {
    (void)user_data;
    if (params->reply) rmq_message_destroy(params->reply);
}

rmq_transaction_state_t fx_checker(const rmq_received_message_t *message, void *user_data) {
    (void)message, (void)user_data;
    return RMQ_TRANSACTION_ROLLBACK;
}

rmq_transaction_state_t fx_execute(const rmq_message_t *message, const rmq_send_result_t *result,
                                   void *arg) {
    (void)message, (void)result, (void)arg;
    return RMQ_TRANSACTION_ROLLBACK;
}

void fx_release_message(rmq_message_t *m) { rmq_message_destroy(m); }
void fx_release_send_result(rmq_send_result_t *r) { rmq_send_result_destroy(r); }
void fx_release_producer(rmq_producer_t *p) { rmq_producer_destroy(p); }
void fx_release_push_consumer(rmq_push_consumer_t *c) { rmq_push_consumer_destroy(c); }
void fx_release_lite_pull_consumer(rmq_lite_pull_consumer_t *c) { rmq_lite_pull_consumer_destroy(c); }
void fx_release_message_queue_list(rmq_message_queue_list_t *l) { rmq_message_queue_list_destroy(l); }
void fx_release_received_batch(rmq_received_batch_t *b) { rmq_received_batch_destroy(b); }
void fx_release_transaction_producer(rmq_transaction_producer_t *p) {
    rmq_transaction_producer_destroy(p);
}

static const char *fx_current_fn, *fx_current_param;

void fx_before(const char *fn, const char *param) {
    fx_current_fn = fn;
    fx_current_param = param;
    if (getenv("MISUSE_VERBOSE")) fprintf(stderr, "  %s(%s = NULL)\n", fn, param);
}

void fx_expect_status(const char *fn, const char *param, rmq_status_t got, rmq_status_t want) {
    if (got == want) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s with %s = NULL returned %s, want %s (%s)\n", fn, param,
                rmq_status_name(got), rmq_status_name(want), rmq_last_error_message());
    }
}

void fx_expect_void(const char *fn, const char *param) {
    (void)fn, (void)param;
    passed++; /* it returned */
}

void fx_expect_null(const char *fn, const char *param, const void *got) {
    if (got == NULL) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s with %s = NULL returned %p, want NULL\n", fn, param, got);
    }
}

void fx_expect_nonnull(const char *fn, const char *param, const void *got) {
    if (got != NULL) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s with %s = NULL returned NULL\n", fn, param);
    }
}

static void fx_teardown(void) {
    if (fx_batch) OK(rmq_received_batch_destroy(fx_batch));
    if (fx_list) OK(rmq_message_queue_list_destroy(fx_list));
    if (fx_lite) OK(rmq_lite_pull_consumer_destroy(fx_lite));
    if (fx_push) OK(rmq_push_consumer_destroy(fx_push));
    if (fx_tx) OK(rmq_transaction_producer_destroy(fx_tx));
    if (fx_prod) OK(rmq_producer_destroy(fx_prod)); /* waits for every callback */
    rmq_send_result_destroy(fx_result);
    rmq_message_destroy(fx_msg);
    rmq_message_destroy(fx_stored);
    rmq_config_destroy(fx_cfg);
    OK(rmq_set_logger(NULL, NULL, RMQ_LOG_OFF));
}

/* ================================================================================ cases */

static void case_null(void) {
    null_calls();
    fx_current_fn = NULL;
    fx_teardown();
    /* Only refused calls were given fx_user_data (the accepted ones pass NULL), and a refused
     * call never runs its callback: none may have seen it. */
    EXPECT(atomic_load(&fx_callbacks_pending) == 0);
    printf("  null: %d calls over %d functions\n", null_call_count, null_function_count);
}

/* ---------------------------------------------------------------- stale (double destroy) */

static void case_stale(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseStale");
    const char *v;
    size_t n;

    rmq_config_t *cfg = rmq_config_create();
    rmq_config_destroy(cfg);
    rmq_config_destroy(cfg); /* void, so nothing to report: it must just return */
    char buf[64];
    EXPECT_STATUS(rmq_config_set(cfg, "name-server", namesrv), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_config_get(cfg, "name-server", buf, sizeof buf, &n), RMQ_ERR_INVALID_HANDLE);

    rmq_message_t *m = text_message(topic, "stale");
    rmq_message_destroy(m);
    rmq_message_destroy(m);
    EXPECT_STATUS(rmq_message_set_body(m, (const uint8_t *)"x", 1), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_message_topic(m, &v, &n), RMQ_ERR_INVALID_HANDLE);

    rmq_producer_t *p = new_producer("MisuseStale", 1);
    warm_up(p, topic);
    rmq_message_t *live = text_message(topic, "live");
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, live, &r));
    rmq_send_result_destroy(r);
    rmq_send_result_destroy(r);
    EXPECT_STATUS(rmq_send_result_msg_id(r, &v, &n), RMQ_ERR_INVALID_HANDLE);
    rmq_send_result_t *clone = NULL;
    EXPECT_STATUS(rmq_send_result_clone(r, &clone), RMQ_ERR_INVALID_HANDLE);

    /* lite pull consumer, its queue list and a polled batch with its message */
    char group[96];
    unique(group, sizeof group, "MisuseStaleGroup");
    cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    rmq_lite_pull_consumer_t *lc = NULL;
    OK(rmq_lite_pull_consumer_create(cfg, &lc));
    OK(rmq_lite_pull_consumer_subscribe(lc, topic, "*"));
    OK(rmq_lite_pull_consumer_start(lc));
    rmq_message_queue_list_t *list = NULL;
    OK(rmq_lite_pull_consumer_fetch_message_queues(lc, topic, &list));
    OK(rmq_message_queue_list_destroy(list));
    EXPECT_STATUS(rmq_message_queue_list_destroy(list), RMQ_ERR_INVALID_HANDLE);
    const rmq_message_queue_t *qv;
    EXPECT_STATUS(rmq_message_queue_list_views(list, &qv, &n), RMQ_ERR_INVALID_HANDLE);
    rmq_received_batch_t *b = NULL;
    double until = now_s() + 60;
    while (!b && now_s() < until) {
        rmq_status_t s = rmq_lite_pull_consumer_poll(lc, 500, &b);
        EXPECT(s == RMQ_OK);
        if (s != RMQ_OK) break;
    }
    EXPECT(b != NULL);
    if (b) {
        const rmq_received_message_t *rm = NULL;
        OK(rmq_received_batch_at(b, 0, &rm));
        OK(rmq_received_message_topic(rm, &v, &n));
        OK(rmq_received_batch_destroy(b));
        EXPECT_STATUS(rmq_received_batch_destroy(b), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_received_batch_ack(b), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_received_batch_count(b, &n), RMQ_ERR_INVALID_HANDLE);
        /* the batch's messages died with it */
        EXPECT_STATUS(rmq_received_message_topic(rm, &v, &n), RMQ_ERR_INVALID_HANDLE);
        const uint8_t *body;
        EXPECT_STATUS(rmq_received_message_body(rm, &body, &n), RMQ_ERR_INVALID_HANDLE);
    }
    OK(rmq_lite_pull_consumer_destroy(lc));
    EXPECT_STATUS(rmq_lite_pull_consumer_destroy(lc), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_lite_pull_consumer_poll(lc, 0, &b), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_lite_pull_consumer_shutdown(lc), RMQ_ERR_INVALID_HANDLE);

    rmq_push_consumer_t *pc = NULL;
    OK(rmq_push_consumer_create(cfg, &pc));
    OK(rmq_push_consumer_destroy(pc));
    EXPECT_STATUS(rmq_push_consumer_destroy(pc), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_push_consumer_subscribe(pc, topic, "*"), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_push_consumer_start(pc), RMQ_ERR_INVALID_HANDLE);

    OK(rmq_config_set(cfg, "producer.group", group));
    rmq_transaction_producer_t *tx = NULL;
    OK(rmq_transaction_producer_create(cfg, fx_checker, NULL, &tx));
    OK(rmq_transaction_producer_destroy(tx));
    EXPECT_STATUS(rmq_transaction_producer_destroy(tx), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_transaction_producer_start(tx), RMQ_ERR_INVALID_HANDLE);
    rmq_config_destroy(cfg);

    /* completion queue: destroyed with a send's result still waiting, then used */
    rmq_completion_queue_t *cq = NULL;
    OK(rmq_completion_queue_new(16, &cq));
    OK(rmq_producer_send_async_queued(p, live, cq, 7));
    size_t owed = 1;
    until = now_s() + 30;
    while (owed != 0 && now_s() < until) {
        size_t waiting = 0;
        OK(rmq_completion_queue_counts(cq, &owed, &waiting));
        if (waiting == 1) break;
        sleep_ms(1);
    }
    OK(rmq_completion_queue_destroy(cq));
    EXPECT_STATUS(rmq_completion_queue_destroy(cq), RMQ_ERR_INVALID_HANDLE);
    rmq_completion_t done[4];
    EXPECT_STATUS(rmq_completion_queue_poll(cq, done, 4, 0, &n), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_completion_queue_poll(cq, done, 4, 10, &n), RMQ_ERR_INVALID_HANDLE);
    int32_t fd;
    EXPECT_STATUS(rmq_completion_queue_fd(cq, &fd), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_completion_queue_counts(cq, &owed, NULL), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_send_async_queued(p, live, cq, 8), RMQ_ERR_INVALID_HANDLE);

    OK(rmq_producer_destroy(p));
    EXPECT_STATUS(rmq_producer_destroy(p), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_send_sync(p, live, NULL), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_send_async(p, live, fx_send_callback, NULL), RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_start(p), RMQ_ERR_INVALID_HANDLE);
    /* a new object never reuses a destroyed one's handle */
    rmq_message_t *fresh = rmq_message_create();
    EXPECT(fresh != m && fresh != live);
    rmq_message_destroy(fresh);
    rmq_message_destroy(live);
}

/* ---------------------------------------------------------------- forged / wrong type */

/* Status of one call of each handle type's accessor with handle h. */
static void expect_refused_everywhere(const void *h, const char *what, rmq_status_t want) {
    const char *v;
    size_t n;
    int32_t q;
    char buf[16];
    int before = failed;
    EXPECT_STATUS(rmq_config_get((const rmq_config_t *)h, "name-server", buf, sizeof buf, &n), want);
    EXPECT_STATUS(rmq_message_topic((const rmq_message_t *)h, &v, &n), want);
    EXPECT_STATUS(rmq_producer_start((rmq_producer_t *)h), want);
    EXPECT_STATUS(rmq_send_result_queue_id((const rmq_send_result_t *)h, &q), want);
    EXPECT_STATUS(rmq_push_consumer_start((rmq_push_consumer_t *)h), want);
    EXPECT_STATUS(rmq_lite_pull_consumer_shutdown((rmq_lite_pull_consumer_t *)h), want);
    const rmq_message_queue_t *qv;
    EXPECT_STATUS(rmq_message_queue_list_views((const rmq_message_queue_list_t *)h, &qv, &n), want);
    EXPECT_STATUS(rmq_received_batch_count((const rmq_received_batch_t *)h, &n), want);
    EXPECT_STATUS(rmq_received_message_queue_id((const rmq_received_message_t *)h, &q), want);
    EXPECT_STATUS(rmq_transaction_producer_start((rmq_transaction_producer_t *)h), want);
    size_t owed;
    EXPECT_STATUS(rmq_completion_queue_counts((const rmq_completion_queue_t *)h, &owed, NULL), want);
    rmq_completion_t done[2];
    EXPECT_STATUS(rmq_completion_queue_poll((rmq_completion_queue_t *)h, done, 2, 0, &n), want);
    /* destroys refuse too, and leave the real object alone */
    EXPECT_STATUS(rmq_producer_destroy((rmq_producer_t *)h), want);
    EXPECT_STATUS(rmq_push_consumer_destroy((rmq_push_consumer_t *)h), want);
    EXPECT_STATUS(rmq_lite_pull_consumer_destroy((rmq_lite_pull_consumer_t *)h), want);
    EXPECT_STATUS(rmq_received_batch_destroy((rmq_received_batch_t *)h), want);
    EXPECT_STATUS(rmq_message_queue_list_destroy((rmq_message_queue_list_t *)h), want);
    EXPECT_STATUS(rmq_transaction_producer_destroy((rmq_transaction_producer_t *)h), want);
    EXPECT_STATUS(rmq_completion_queue_destroy((rmq_completion_queue_t *)h), want);
    /* the void destroys have no status: they must return and free nothing */
    rmq_config_destroy((rmq_config_t *)h);
    rmq_message_destroy((rmq_message_t *)h);
    rmq_send_result_destroy((rmq_send_result_t *)h);
    if (failed != before) fprintf(stderr, "  (with %s)\n", what);
}

static void case_forged(void) {
    /* forged values: small integers, all bits, odd, a stack and a heap address, a freed one */
    int on_stack = 0;
    void *heap = malloc(64);
    uintptr_t forged[] = {1,
                          0x10,
                          0xdeadbeef,
                          UINTPTR_MAX,
                          UINTPTR_MAX - 15,
                          0x100000 + 8, /* inside the id range, misaligned */
                          (uintptr_t)&on_stack,
                          (uintptr_t)heap,
                          (uintptr_t)&case_forged};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "forged %#lx", (unsigned long)forged[i]);
        expect_refused_everywhere((const void *)forged[i], what, RMQ_ERR_INVALID_HANDLE);
    }
    free(heap);

    /* a live handle of each type passed as every other type: only its own type accepts it */
    char topic[96];
    unique(topic, sizeof topic, "MisuseForged");
    rmq_config_t *cfg = rmq_config_create();
    rmq_message_t *m = text_message(topic, "typed");
    rmq_producer_t *p = new_producer("MisuseForged", 0);
    rmq_completion_queue_t *cq = NULL;
    OK(rmq_completion_queue_new(4, &cq));
    const void *live[] = {cfg, m, p, cq};
    const char *names[] = {"config", "message", "producer", "completion queue"};
    const char *v;
    size_t n;
    char buf[16];
    for (size_t i = 0; i < 4; i++) {
        int32_t q;
        const rmq_message_queue_t *qv;
        int before = failed;
        if (i != 0)
            EXPECT_STATUS(rmq_config_get(live[i], "name-server", buf, sizeof buf, &n),
                          RMQ_ERR_INVALID_HANDLE);
        if (i != 1) EXPECT_STATUS(rmq_message_topic(live[i], &v, &n), RMQ_ERR_INVALID_HANDLE);
        if (i != 2)
            EXPECT_STATUS(rmq_producer_send_sync((rmq_producer_t *)live[i], m, NULL),
                          RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_push_consumer_start((rmq_push_consumer_t *)live[i]), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_push_consumer_destroy((rmq_push_consumer_t *)live[i]), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_lite_pull_consumer_destroy((rmq_lite_pull_consumer_t *)live[i]),
                      RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_transaction_producer_start((rmq_transaction_producer_t *)live[i]),
                      RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_send_result_queue_id(live[i], &q), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_received_message_queue_id(live[i], &q), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_received_batch_destroy((rmq_received_batch_t *)live[i]), RMQ_ERR_INVALID_HANDLE);
        EXPECT_STATUS(rmq_message_queue_list_views(live[i], &qv, &n), RMQ_ERR_INVALID_HANDLE);
        if (i != 3) {
            size_t owed;
            rmq_completion_t done[2];
            EXPECT_STATUS(rmq_completion_queue_counts(live[i], &owed, NULL), RMQ_ERR_INVALID_HANDLE);
            EXPECT_STATUS(rmq_completion_queue_poll((rmq_completion_queue_t *)live[i], done, 2, 0, &n),
                          RMQ_ERR_INVALID_HANDLE);
            EXPECT_STATUS(rmq_completion_queue_destroy((rmq_completion_queue_t *)live[i]),
                          RMQ_ERR_INVALID_HANDLE);
        }
        if (failed != before) fprintf(stderr, "  (with a %s handle)\n", names[i]);
    }
    /* a message passed where a producer is expected, and the reverse, in the same call */
    EXPECT_STATUS(rmq_producer_send_sync((rmq_producer_t *)m, (const rmq_message_t *)p, NULL),
                  RMQ_ERR_INVALID_HANDLE);
    /* a queued send with the producer where the queue goes, and the queue where the producer goes */
    EXPECT_STATUS(rmq_producer_send_async_queued(p, m, (rmq_completion_queue_t *)p, 1),
                  RMQ_ERR_INVALID_HANDLE);
    EXPECT_STATUS(rmq_producer_send_async_queued((rmq_producer_t *)cq, m, cq, 1),
                  RMQ_ERR_INVALID_HANDLE);
    /* every object is still intact and works */
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_message_topic(m, &v, &n));
    EXPECT(n == strlen(topic));
    OK(rmq_producer_start(p));
    warm_up(p, topic);
    OK(rmq_producer_send_sync(p, m, NULL));
    OK(rmq_producer_send_async_queued(p, m, cq, 42));
    OK(rmq_producer_destroy(p)); /* delivers every result before it returns */
    rmq_completion_t done[2];
    OK(rmq_completion_queue_poll(cq, done, 2, 0, &n));
    /* its one result: stored, or cancelled by the destroy's shutdown */
    EXPECT(n == 1 && done[0].user_tag == 42 &&
           (done[0].status == RMQ_OK || done[0].status == RMQ_ERR_CANCELLED));
    OK(rmq_completion_queue_destroy(cq));
    rmq_message_destroy(m);
    rmq_config_destroy(cfg);
}

/* ---------------------------------------------------------------- destroy in callbacks */

struct own_destroy {
    rmq_producer_t *producer;
    atomic_int calls;
    atomic_int destroy_status;
};

static void destroy_own_producer(const rmq_send_callback_params_t *params, void *user_data) {
    (void)params;
    struct own_destroy *d = user_data;
    atomic_store(&d->destroy_status, rmq_producer_destroy(d->producer));
    atomic_fetch_add(&d->calls, 1);
}

struct own_consumer {
    rmq_push_consumer_t *consumer;
    atomic_int calls;
    atomic_int destroy_status;
    atomic_int shutdown_status;
};

static rmq_consume_status_t destroy_own_consumer(const rmq_received_message_t *const *messages,
                                                 size_t count, rmq_consume_context_t *context,
                                                 void *user_data) {
    (void)messages, (void)count, (void)context;
    struct own_consumer *c = user_data;
    if (atomic_fetch_add(&c->calls, 1) == 0) {
        atomic_store(&c->shutdown_status, rmq_push_consumer_shutdown(c->consumer));
        atomic_store(&c->destroy_status, rmq_push_consumer_destroy(c->consumer));
    }
    return RMQ_CONSUME_SUCCESS;
}

static void case_destroy_in_cb(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseDestroyCb");
    rmq_producer_t *p = new_producer("MisuseDestroyCb", 1);
    warm_up(p, topic);
    rmq_message_t *m = text_message(topic, "destroy me");
    struct own_destroy d = {p, 0, -1};
    OK(rmq_producer_send_async(p, m, destroy_own_producer, &d));
    EXPECT(wait_count(&d.calls, 1, 30) == 1);
    EXPECT(atomic_load(&d.destroy_status) == RMQ_ERR_INVALID_STATE); /* it would wait for itself */
    OK(rmq_producer_send_sync(p, m, NULL));                           /* still alive */
    OK(rmq_producer_destroy(p));

    char group[96];
    unique(group, sizeof group, "MisuseDestroyCbGroup");
    rmq_push_consumer_t *c = create_consumer("misuse-cb", group, NULL);
    struct own_consumer oc = {c, 0, -1, -1};
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, destroy_own_consumer, &oc));
    OK(rmq_push_consumer_start(c));
    EXPECT(wait_count(&oc.calls, 1, 60) >= 1);
    EXPECT(atomic_load(&oc.shutdown_status) == RMQ_ERR_INVALID_STATE);
    EXPECT(atomic_load(&oc.destroy_status) == RMQ_ERR_INVALID_STATE);
    OK(rmq_push_consumer_destroy(c)); /* from outside: fine */
    EXPECT_STATUS(rmq_push_consumer_start(c), RMQ_ERR_INVALID_HANDLE);
    rmq_message_destroy(m);
}

/* ---------------------------------------------------------------- shutdown with 10 000 */

#define S_SENDS 10000

static atomic_int s_calls[S_SENDS];
static atomic_int s_status[S_SENDS];
static atomic_int s_total;

static void s_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    int i = (int)(intptr_t)user_data;
    atomic_store(&s_status[i], params->status);
    atomic_fetch_add(&s_calls[i], 1);
    atomic_fetch_add(&s_total, 1);
}

static void case_shutdown_10k(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseShutdown");
    rmq_config_t *cfg = rmq_config_create();
    char group[96];
    unique(group, sizeof group, "MisuseShutdown");
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    OK(rmq_config_set(cfg, "producer.max-in-flight-async-sends", "20000"));
    OK(rmq_config_set(cfg, "producer.send-message-timeout", SEND_TIMEOUT_MS));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    warm_up(p, topic);
    rmq_message_t *m = text_message(topic, "in flight");
    int accepted = 0;
    for (int i = 0; i < S_SENDS; i++) {
        rmq_status_t s = rmq_producer_send_async(p, m, s_on_sent, (void *)(intptr_t)i);
        EXPECT(s == RMQ_OK);
        if (s == RMQ_OK) accepted++;
    }
    OK(rmq_producer_shutdown(p));
    EXPECT_STATUS(rmq_producer_send_async(p, m, s_on_sent, NULL), RMQ_ERR_INVALID_STATE);
    OK(rmq_producer_destroy(p)); /* returns after the last callback */
    int ok = 0, cancelled = 0, other = 0, not_once = 0;
    for (int i = 0; i < accepted; i++) {
        if (atomic_load(&s_calls[i]) != 1) not_once++;
        rmq_status_t s = atomic_load(&s_status[i]);
        if (s == RMQ_OK) ok++;
        else if (s == RMQ_ERR_CANCELLED) cancelled++;
        else other++;
    }
    printf("  shutdown_10k: %d accepted, %d callbacks: %d OK, %d cancelled, %d other\n", accepted,
           atomic_load(&s_total), ok, cancelled, other);
    EXPECT(accepted == S_SENDS);
    EXPECT(not_once == 0);
    EXPECT(atomic_load(&s_total) == accepted);
    EXPECT(ok + cancelled + other == accepted);
    rmq_message_destroy(m);
}

/* ---------------------------------------------------------------- 32 threads */

#define T_THREADS 32
#define T_SENDS 20

struct t_arg {
    rmq_producer_t *producer;
    const char *topic;
    int ok;
    atomic_int async_done;
    int async_ok;
};

static void t_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct t_arg *a = user_data;
    if (params->status == RMQ_OK) a->async_ok++; /* one callback thread: no race */
    atomic_fetch_add(&a->async_done, 1);
}

static void *t_run(void *arg) {
    struct t_arg *a = arg;
    char body[64];
    snprintf(body, sizeof body, "thread %p", arg);
    rmq_message_t *m = text_message(a->topic, body);
    for (int i = 0; i < T_SENDS; i++) {
        rmq_send_result_t *r = NULL;
        rmq_status_t s = rmq_producer_send_sync(a->producer, m, &r);
        if (s != RMQ_OK) fprintf(stderr, "  threads32: sync send: %s\n", rmq_last_error_message());
        if (s == RMQ_OK) {
            const char *v;
            size_t n;
            if (rmq_send_result_topic(r, &v, &n) == RMQ_OK && eq_view(v, n, a->topic)) a->ok++;
            rmq_send_result_destroy(r);
        }
        if (rmq_producer_send_async(a->producer, m, t_on_sent, a) != RMQ_OK)
            atomic_fetch_add(&a->async_done, 1000); /* shows up as a failure below */
        rmq_producer_send_oneway(a->producer, m);
    }
    rmq_message_destroy(m);
    return NULL;
}

static void case_threads32(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseThreads");
    rmq_producer_t *p = new_producer("MisuseThreads", 1);
    warm_up(p, topic);
    static struct t_arg args[T_THREADS];
    pthread_t th[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) {
        args[i] = (struct t_arg){p, topic, 0, 0, 0};
        EXPECT(pthread_create(&th[i], NULL, t_run, &args[i]) == 0);
    }
    for (int i = 0; i < T_THREADS; i++) pthread_join(th[i], NULL);
    int sync_ok = 0, async_ok = 0;
    for (int i = 0; i < T_THREADS; i++) {
        EXPECT(wait_count(&args[i].async_done, T_SENDS, 60) == T_SENDS);
        sync_ok += args[i].ok;
    }
    OK(rmq_producer_destroy(p));
    for (int i = 0; i < T_THREADS; i++) async_ok += args[i].async_ok;
    printf("  threads32: %d sync OK, %d async OK of %d each\n", sync_ok, async_ok,
           T_THREADS * T_SENDS);
    EXPECT(sync_ok == T_THREADS * T_SENDS);
    EXPECT(async_ok == T_THREADS * T_SENDS);
}

/* ---------------------------------------------------------------- mutate while sending */

#define M_SENDS 1000

static atomic_int m_done, m_ok, m_stop;

static void m_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    (void)user_data;
    if (params->status == RMQ_OK) atomic_fetch_add(&m_ok, 1);
    atomic_fetch_add(&m_done, 1);
}

static void *m_mutator(void *arg) {
    rmq_message_t *m = arg;
    char buf[64];
    unsigned long i = 0;
    while (!atomic_load(&m_stop)) {
        int len = snprintf(buf, sizeof buf, "body %lu", i++);
        rmq_message_set_body(m, (const uint8_t *)buf, (size_t)len);
        rmq_message_set_tags(m, i % 2 ? "TagA" : NULL);
        rmq_message_set_keys(m, buf + 5);
        rmq_message_set_property(m, "n", buf + 5);
        rmq_message_set_delay_level(m, 0);
        const uint8_t *b;
        size_t n;
        if (rmq_message_body(m, &b, &n) == RMQ_OK && n > 0) (void)b[n - 1];
        sleep_ms(1); /* room for the senders, also under valgrind's one-thread-at-a-time */
    }
    return NULL;
}

static void case_mutate(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseMutate");
    rmq_producer_t *p = new_producer("MisuseMutate", 1);
    warm_up(p, topic);
    rmq_message_t *m = text_message(topic, "start");
    pthread_t th[2];
    for (int i = 0; i < 2; i++) EXPECT(pthread_create(&th[i], NULL, m_mutator, m) == 0);
    int accepted = 0;
    for (int i = 0; i < M_SENDS; i++) {
        if (rmq_producer_send_async(p, m, m_on_sent, NULL) == RMQ_OK) accepted++;
        if (i % 100 == 0) OK(rmq_producer_send_sync(p, m, NULL));
    }
    EXPECT(wait_count(&m_done, accepted, 200) == accepted);
    atomic_store(&m_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    OK(rmq_producer_destroy(p));
    printf("  mutate: %d accepted, %d OK\n", accepted, atomic_load(&m_ok));
    EXPECT(accepted == M_SENDS);
    EXPECT(atomic_load(&m_ok) == accepted);
    rmq_message_destroy(m);
}

/* ---------------------------------------------------------------- oversized lengths */

static void case_oversized(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseOversized");
    rmq_message_t *m = text_message(topic, "small");
    static const char small[8] = "small";
    const size_t huge[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, 1u << 30,
                           16 * 1024 * 1024 + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t len = huge[i];
        rmq_status_t s = rmq_message_set_body(m, (const uint8_t *)small, len);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT || s == RMQ_ERR_MESSAGE_TOO_LARGE);
        EXPECT(rmq_message_set_topic_n(m, small, len) == RMQ_ERR_INVALID_ARGUMENT);
        EXPECT(rmq_message_set_tags_n(m, small, len) == RMQ_ERR_INVALID_ARGUMENT);
        EXPECT(rmq_message_set_keys_n(m, small, len) == RMQ_ERR_INVALID_ARGUMENT);
        EXPECT(rmq_message_set_property_n(m, small, len, "v", 1) == RMQ_ERR_INVALID_ARGUMENT);
        EXPECT(rmq_message_set_property_n(m, "n", 1, small, len) == RMQ_ERR_INVALID_ARGUMENT);
        rmq_message_t *reply = NULL;
        s = rmq_message_create_reply(small, len, (const uint8_t *)small, 1, &reply);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT || s == RMQ_ERR_MESSAGE_TOO_LARGE);
        s = rmq_message_create_reply(fx_reply_properties(), strlen(fx_reply_properties()),
                                     (const uint8_t *)small, len, &reply);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT || s == RMQ_ERR_MESSAGE_TOO_LARGE);
        EXPECT(reply == NULL);
    }
    /* the message is unchanged by all of that */
    const uint8_t *b;
    size_t n;
    OK(rmq_message_body(m, &b, &n));
    EXPECT(n == 5 && memcmp(b, "small", 5) == 0);

    /* counts that cannot describe an array are refused before the array is read */
    rmq_producer_t *p = new_producer("MisuseOversized", 1);
    warm_up(p, topic);
    const rmq_message_t *one[1] = {m};
    const size_t counts[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)PTRDIFF_MAX / sizeof(void *) + 1};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        rmq_status_t s = rmq_producer_send_batch(p, one, counts[i], NULL);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT);
        s = rmq_producer_send_batch_async(p, one, counts[i], fx_send_callback, NULL);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT);
        size_t lengths[1], batches = 0;
        s = rmq_producer_split_batch(p, one, counts[i], lengths, 1, &batches);
        EXPECT(s == RMQ_ERR_INVALID_ARGUMENT);
    }
    /* a real body over producer.max-message-size (4 MiB by default) is refused by the send */
    size_t big = 4 * 1024 * 1024 + 1;
    uint8_t *body = malloc(big);
    uint64_t x = 88172645463325252ull; /* incompressible (xorshift), so compression cannot shrink it */
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        body[i] = (uint8_t)x;
    }
    rmq_message_t *large = rmq_message_create();
    OK(rmq_message_set_topic(large, topic));
    OK(rmq_message_set_body(large, body, big));
    EXPECT_STATUS(rmq_producer_send_sync(p, large, NULL), RMQ_ERR_MESSAGE_TOO_LARGE);
    EXPECT_STATUS(rmq_producer_send_async(p, large, fx_send_callback, NULL),
                  RMQ_ERR_MESSAGE_TOO_LARGE);
    EXPECT_STATUS(rmq_producer_send_oneway(p, large), RMQ_ERR_MESSAGE_TOO_LARGE);
    /* a body over the 16 MiB ceiling is refused by the setter, from a real buffer too */
    size_t over = 16 * 1024 * 1024 + 1;
    uint8_t *huge_body = calloc(over, 1);
    EXPECT_STATUS(rmq_message_set_body(large, huge_body, over), RMQ_ERR_MESSAGE_TOO_LARGE);
    free(huge_body);
    free(body);
    OK(rmq_producer_send_sync(p, m, NULL)); /* the producer is unharmed */
    OK(rmq_producer_destroy(p));
    rmq_message_destroy(large);
    rmq_message_destroy(m);
}

/* ---------------------------------------------------------------- fork */

static void case_fork(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseFork");
    rmq_producer_t *p = new_producer("MisuseFork", 1);
    warm_up(p, topic);
    rmq_message_t *m = text_message(topic, "parent");
    char group[96];
    unique(group, sizeof group, "MisuseForkGroup");
    rmq_push_consumer_t *c = create_consumer("misuse-fork", group, NULL);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, fx_listener, NULL));
    OK(rmq_push_consumer_start(c));

    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    EXPECT(child >= 0);
    if (child == 0) {
        alarm(30); /* a hang kills the child: the parent sees a signal */
        int bad = 0;
        bad += rmq_producer_send_sync(p, m, NULL) != RMQ_ERR_FORKED;
        bad += strstr(rmq_last_error_message(), "fork") == NULL;
        bad += rmq_producer_send_async(p, m, fx_send_callback, NULL) != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_shutdown(c) != RMQ_ERR_FORKED;
        const char *v;
        size_t n;
        bad += rmq_message_topic(m, &v, &n) != RMQ_OK; /* plain data works */
        bad += rmq_producer_destroy(p) != RMQ_OK;      /* frees the handle only */
        bad += rmq_push_consumer_destroy(c) != RMQ_OK;
        bad += rmq_producer_send_sync(p, m, NULL) != RMQ_ERR_INVALID_HANDLE;
        if (bad) fprintf(stderr, "fork child: %d checks failed (%s)\n", bad, rmq_last_error_message());
        /* The child ends by exec, not exit: its copy of the parent's memory is pointed to only
         * from the parent's threads, which the child does not have, so a leak check at its exit
         * (valgrind runs one) would report the parent's live objects as lost. */
        execl(bad ? "/bin/false" : "/bin/true", bad ? "false" : "true", (char *)NULL);
        _exit(bad ? 1 : 0);
    }
    int ws = 0;
    EXPECT(waitpid(child, &ws, 0) == child);
    EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    for (int i = 0; i < 5; i++) OK(rmq_producer_send_sync(p, m, NULL));
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
    rmq_message_destroy(m);
}

/* ---------------------------------------------------------------- RLIMIT_NOFILE */

static void case_nofile(void) {
    char topic[96];
    unique(topic, sizeof topic, "MisuseNofile");
    rmq_producer_t *first = new_producer("MisuseNofile", 1); /* the runtime exists */
    warm_up(first, topic);
    rmq_producer_t *p = new_producer("MisuseNofileSecond", 0); /* its own client instance */
    rmq_message_t *m = text_message(topic, "after the limit");

    struct rlimit old;
    EXPECT(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int lowest = open("/dev/null", O_RDONLY);
    EXPECT(lowest >= 0);
    close(lowest);
    struct rlimit tight = {(rlim_t)lowest, old.rlim_max};
    EXPECT(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    rmq_status_t start = rmq_producer_start(p);
    char why[256];
    snprintf(why, sizeof why, "%s", rmq_last_error_message());
    rmq_status_t send = start == RMQ_OK ? rmq_producer_send_sync(p, m, NULL) : start;
    char why_send[256];
    snprintf(why_send, sizeof why_send, "%s", rmq_last_error_message());
    EXPECT(setrlimit(RLIMIT_NOFILE, &old) == 0);
    printf("  nofile: limit %d: start %s (%s), send %s (%s)\n", lowest, rmq_status_name(start), why,
           rmq_status_name(send), why_send);
    EXPECT(send != RMQ_OK && send != RMQ_ERR_PANIC && start != RMQ_ERR_PANIC);
    EXPECT(strstr(start != RMQ_OK ? why : why_send, "open files") != NULL ||
           strstr(start != RMQ_OK ? why : why_send, "descriptor") != NULL);

    /* raised again: the same producer works */
    if (start != RMQ_OK) OK(rmq_producer_start(p));
    OK(send_retrying(p, m, NULL));
    OK(rmq_producer_send_sync(first, m, NULL));
    OK(rmq_producer_destroy(p));
    OK(rmq_producer_destroy(first));
    rmq_message_destroy(m);
}

static const struct check_case CASES[] = {
    {"null", case_null},
    {"stale", case_stale},
    {"forged", case_forged},
    {"destroy_in_cb", case_destroy_in_cb},
    {"shutdown_10k", case_shutdown_10k},
    {"threads32", case_threads32},
    {"mutate", case_mutate},
    {"oversized", case_oversized},
    {"fork", case_fork},
    {"nofile", case_nofile},
};

int main(int argc, char **argv) {
    size_t n = sizeof CASES / sizeof CASES[0];
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < n; i++) printf("%s\n", CASES[i].name);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s <case>|list (one case per process)\n", argv[0]);
        return 2;
    }
    check_namesrv("misuse");
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, SIG_DFL);
    alarm(CASE_SECONDS);
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[1], CASES[i].name) == 0) return check_run("misuse", CASES, n, 14, argc, argv);
    fprintf(stderr, "misuse: no case %s\n", argv[1]);
    return 2;
}
