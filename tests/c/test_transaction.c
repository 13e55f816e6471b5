/* The transaction producer's C ABI against the real broker (RMQ_NAMESRV): a committed
 * transaction is delivered and a rolled-back one never is; unknown ones are settled by the
 * checker on its own threads (delivered exactly once when it says commit), a checker answer
 * that is not a state counts as unknown and is asked again; a producer process killed inside its
 * local transaction has its transaction checked and committed by a new producer of the group;
 * misuse is refused with a clear status.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. Works with any broker check interval.
 *
 *   test_transaction            every case
 *   test_transaction crash      the named cases only
 *   test_transaction child-crash TOPIC GROUP   (the crash case's child process) */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 90
#define MAX_KEYS 8

static const char *self_exe;

/* Counts per key, for consumers and checkers. */
struct counts {
    pthread_mutex_t mu;
    const char *keys[MAX_KEYS];
    int n[MAX_KEYS];
    int other;
    int bad_thread;
};

static void counts_init(struct counts *c, const char *const *keys) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < MAX_KEYS && keys[i]; i++) c->keys[i] = keys[i];
}

/* Counts one more for `key`; returns the new count. */
static int counts_add(struct counts *c, const char *key, size_t len) {
    int got = 0;
    pthread_mutex_lock(&c->mu);
    int i;
    for (i = 0; i < MAX_KEYS && c->keys[i]; i++) {
        if (eq_view(key, len, c->keys[i])) {
            got = ++c->n[i];
            break;
        }
    }
    if (i == MAX_KEYS || !c->keys[i]) c->other++;
    pthread_mutex_unlock(&c->mu);
    return got;
}

static int counts_of(struct counts *c, const char *key) {
    int got = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_KEYS && c->keys[i]; i++)
        if (strcmp(c->keys[i], key) == 0) got = c->n[i];
    pthread_mutex_unlock(&c->mu);
    return got;
}

static int wait_count(struct counts *c, const char *key, int at_least) {
    double until = now_s() + WITHIN_SECONDS;
    while (counts_of(c, key) < at_least && now_s() < until) sleep_ms(20);
    return counts_of(c, key);
}

static rmq_consume_status_t counting_listener(const rmq_received_message_t *const *msgs,
                                              size_t count, rmq_consume_context_t *ctx,
                                              void *user_data) {
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        const char *k;
        size_t len;
        if (rmq_received_message_keys(msgs[i], &k, &len) == RMQ_OK)
            counts_add(user_data, k, len);
    }
    return RMQ_CONSUME_SUCCESS;
}

static rmq_push_consumer_t *new_consumer(const char *topic, struct counts *seen) {
    char group[96];
    unique(group, sizeof group, "CTxnConsumer");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, counting_listener, seen));
    OK(rmq_push_consumer_start(c));
    return c;
}

static rmq_message_t *new_message(const char *topic, const char *key) {
    char body[96];
    snprintf(body, sizeof body, "body of %s", key);
    rmq_message_t *m = text_message(topic, body);
    OK(rmq_message_set_keys(m, key));
    return m;
}

/* A plain send, so the topic exists before a consumer looks for it. */
static void create_topic(const char *topic) {
    rmq_producer_t *p = start_producer("CTxnPlain", NULL);
    rmq_message_t *m = new_message(topic, "plain");
    OK(rmq_producer_send_sync(p, m, NULL));
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));
}

static rmq_transaction_producer_t *new_txn_producer(const char *group, const char *threads,
                                                    rmq_transaction_checker_t checker,
                                                    void *user_data) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    OK(rmq_config_set(cfg, "producer.transaction-check-threads", threads));
    rmq_transaction_producer_t *p = NULL;
    OK(rmq_transaction_producer_create(cfg, checker, user_data, &p));
    rmq_config_destroy(cfg);
    return p;
}

/* ------------------------------------------------------------------------------ the checker */

struct checker_state {
    struct counts calls;
    rmq_transaction_producer_t *self;
    int destroy_refused, destroy_not_refused;
    const rmq_received_message_t *kept;
};

static rmq_transaction_state_t checker(const rmq_received_message_t *m, void *user_data) {
    struct checker_state *st = user_data;
    char name[17] = {0};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    const char *k;
    size_t len;
    if (rmq_received_message_keys(m, &k, &len) != RMQ_OK) return RMQ_TRANSACTION_UNKNOWN;
    int n = counts_add(&st->calls, k, len);
    pthread_mutex_lock(&st->calls.mu);
    if (strncmp(name, "rmq-txn-check", 13) != 0) st->calls.bad_thread++;
    if (st->self) {
        if (rmq_transaction_producer_destroy(st->self) == RMQ_ERR_INVALID_STATE)
            st->destroy_refused++;
        else
            st->destroy_not_refused++;
    }
    st->kept = m;
    pthread_mutex_unlock(&st->calls.mu);
    if (eq_view(k, len, "unknown-then-commit") || eq_view(k, len, "orphan"))
        return RMQ_TRANSACTION_COMMIT;
    /* Not a state: counts as unknown, and the broker asks again. */
    if (eq_view(k, len, "not-a-state-once")) return n == 1 ? 42 : RMQ_TRANSACTION_COMMIT;
    return RMQ_TRANSACTION_ROLLBACK;
}

/* ---------------------------------------------------------------------- local transactions */

struct local_arg {
    const char *key;
    rmq_transaction_state_t state;
    int calls;
    int fields_ok;
};

static rmq_transaction_state_t local_transaction(const rmq_message_t *m,
                                                 const rmq_send_result_t *r, void *arg) {
    struct local_arg *a = arg;
    a->calls++;
    const char *v, *id, *txid;
    size_t vlen, idlen, txlen;
    int ok = rmq_message_property(m, "TRAN_MSG", &v, &vlen) == RMQ_OK && eq_view(v, vlen, "true");
    ok = ok && rmq_message_keys(m, &v, &vlen) == RMQ_OK && eq_view(v, vlen, a->key);
    ok = ok && rmq_send_result_msg_id(r, &id, &idlen) == RMQ_OK;
    ok = ok && rmq_send_result_transaction_id(r, &txid, &txlen) == RMQ_OK;
    ok = ok && idlen == txlen && memcmp(id, txid, idlen) == 0;
    ok = ok && rmq_message_property(m, "__transactionId__", &v, &vlen) == RMQ_OK &&
         vlen == txlen && memcmp(v, txid, txlen) == 0;
    a->fields_ok = ok;
    return a->state;
}

static void send_in_transaction(rmq_transaction_producer_t *p, const char *topic,
                                const char *key, rmq_transaction_state_t state) {
    rmq_message_t *m = new_message(topic, key);
    struct local_arg a = {key, state, 0, 0};
    rmq_transaction_state_t got = -1;
    rmq_send_result_t *r = NULL;
    OK(rmq_transaction_producer_send(p, m, local_transaction, &a, &got, &r));
    EXPECT(a.calls == 1);
    EXPECT(a.fields_ok);
    EXPECT(got == (state == 42 ? RMQ_TRANSACTION_UNKNOWN : state));
    const char *id;
    size_t len;
    OK(rmq_send_result_transaction_id(r, &id, &len));
    EXPECT(len > 0);
    rmq_send_result_destroy(r);
    rmq_message_destroy(m);
}

static void test_settle(void) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "CTxn");
    unique(group, sizeof group, "CTxnGroup");
    create_topic(topic);
    static const char *const keys[] = {"plain", "committed", "rolled-back", "unknown-then-commit",
                                       "unknown-then-rollback", "not-a-state-once", NULL};
    struct counts seen;
    counts_init(&seen, keys);
    struct checker_state st;
    memset(&st, 0, sizeof st);
    counts_init(&st.calls, keys);
    rmq_transaction_producer_t *p = new_txn_producer(group, "2", checker, &st);
    st.self = p; /* the checker tries to destroy its own producer: refused */
    OK(rmq_transaction_producer_start(p));
    rmq_push_consumer_t *c = new_consumer(topic, &seen);

    send_in_transaction(p, topic, "committed", RMQ_TRANSACTION_COMMIT);
    send_in_transaction(p, topic, "rolled-back", RMQ_TRANSACTION_ROLLBACK);
    send_in_transaction(p, topic, "unknown-then-commit", RMQ_TRANSACTION_UNKNOWN);
    send_in_transaction(p, topic, "unknown-then-rollback", RMQ_TRANSACTION_UNKNOWN);
    /* A local transaction answer that is not a state counts as unknown. */
    send_in_transaction(p, topic, "not-a-state-once", 42);

    EXPECT(wait_count(&seen, "plain", 1) == 1);
    EXPECT(wait_count(&seen, "committed", 1) == 1);
    EXPECT(wait_count(&seen, "unknown-then-commit", 1) == 1);
    EXPECT(wait_count(&seen, "not-a-state-once", 1) == 1);
    EXPECT(wait_count(&st.calls, "unknown-then-rollback", 1) >= 1);
    EXPECT(counts_of(&st.calls, "not-a-state-once") >= 2);
    EXPECT(st.calls.bad_thread == 0);
    EXPECT(st.destroy_refused >= 1 && st.destroy_not_refused == 0);
    /* A handle lent to the checker is invalid once it returned. */
    const char *k;
    size_t len;
    pthread_mutex_lock(&st.calls.mu);
    EXPECT(st.kept != NULL);
    EXPECT_STATUS(rmq_received_message_keys(st.kept, &k, &len), RMQ_ERR_INVALID_HANDLE);
    pthread_mutex_unlock(&st.calls.mu);
    OK(rmq_transaction_producer_destroy(p));
    /* Settled: once each, never the rolled-back ones. */
    EXPECT(counts_of(&seen, "committed") == 1);
    EXPECT(counts_of(&seen, "unknown-then-commit") == 1);
    EXPECT(counts_of(&seen, "not-a-state-once") == 1);
    EXPECT(counts_of(&seen, "rolled-back") == 0);
    EXPECT(counts_of(&seen, "unknown-then-rollback") == 0);
    OK(rmq_push_consumer_destroy(c));
}

/* ---------------------------------------------------------------------------------- crash */

static rmq_transaction_state_t die(const rmq_message_t *m, const rmq_send_result_t *r, void *arg) {
    (void)m, (void)r, (void)arg;
    _exit(17);
}

static rmq_transaction_state_t never_checked(const rmq_received_message_t *m, void *user_data) {
    (void)m, (void)user_data;
    return RMQ_TRANSACTION_UNKNOWN;
}

/* The child: a half message, then death inside the local transaction. */
static int child_crash(const char *topic, const char *group) {
    rmq_transaction_producer_t *p = new_txn_producer(group, "1", never_checked, NULL);
    OK(rmq_transaction_producer_start(p));
    rmq_message_t *m = new_message(topic, "orphan");
    rmq_transaction_producer_send(p, m, die, NULL, NULL, NULL);
    fprintf(stderr, "test_transaction: the local transaction did not run\n");
    return 1;
}

static void test_crash(void) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "CTxnCrash");
    unique(group, sizeof group, "CTxnCrashGroup");
    create_topic(topic);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self_exe, self_exe, "child-crash", topic, group, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    EXPECT(waitpid(pid, &status, 0) == pid);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 17);

    static const char *const keys[] = {"plain", "orphan", NULL};
    struct counts seen;
    counts_init(&seen, keys);
    struct checker_state st;
    memset(&st, 0, sizeof st);
    counts_init(&st.calls, keys);
    rmq_transaction_producer_t *p = new_txn_producer(group, "1", checker, &st);
    OK(rmq_transaction_producer_start(p));
    rmq_push_consumer_t *c = new_consumer(topic, &seen);
    EXPECT(wait_count(&seen, "orphan", 1) == 1);
    EXPECT(counts_of(&st.calls, "orphan") >= 1);
    OK(rmq_transaction_producer_destroy(p));
    EXPECT(counts_of(&seen, "orphan") == 1);
    OK(rmq_push_consumer_destroy(c));
}

static void test_misuse(void) {
    char group[96];
    unique(group, sizeof group, "CTxnMisuse");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    EXPECT_STATUS(rmq_config_set(cfg, "producer.transaction-check-threads", "0"),
                  RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_transaction_producer_t *p = NULL;
    EXPECT_STATUS(rmq_transaction_producer_create(cfg, NULL, NULL, &p), RMQ_ERR_NULL_POINTER);
    EXPECT(p == NULL);
    OK(rmq_transaction_producer_create(cfg, never_checked, NULL, &p));
    rmq_config_destroy(cfg);
    rmq_message_t *m = new_message("CTxnMisuseTopic", "k");
    struct local_arg a = {"k", RMQ_TRANSACTION_COMMIT, 0, 0};
    EXPECT_STATUS(rmq_transaction_producer_send(p, m, local_transaction, &a, NULL, NULL),
                  RMQ_ERR_INVALID_STATE);
    OK(rmq_transaction_producer_start(p));
    EXPECT_STATUS(rmq_transaction_producer_start(p), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_transaction_producer_send(p, m, NULL, &a, NULL, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_message_set_delay_level(m, 2));
    EXPECT_STATUS(rmq_transaction_producer_send(p, m, local_transaction, &a, NULL, NULL),
                  RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(a.calls == 0);
    EXPECT_STATUS(rmq_transaction_producer_send(NULL, m, local_transaction, &a, NULL, NULL),
                  RMQ_ERR_NULL_POINTER);
    EXPECT(strcmp(rmq_transaction_state_name(RMQ_TRANSACTION_COMMIT), "COMMIT_MESSAGE") == 0);
    EXPECT(strcmp(rmq_transaction_state_name(RMQ_TRANSACTION_ROLLBACK), "ROLLBACK_MESSAGE") == 0);
    EXPECT(strcmp(rmq_transaction_state_name(RMQ_TRANSACTION_UNKNOWN), "UNKNOW") == 0);
    EXPECT(strcmp(rmq_transaction_state_name(42), "UNKNOW") == 0);
    rmq_message_destroy(m);
    OK(rmq_transaction_producer_destroy(p));
    EXPECT_STATUS(rmq_transaction_producer_destroy(p), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_transaction_producer_destroy(NULL));
}

static const struct check_case CASES[] = {
    {"settle", test_settle},
    {"crash", test_crash},
    {"misuse", test_misuse},
};

int main(int argc, char **argv) {
    check_namesrv("test_transaction");
    self_exe = argv[0];
    if (argc == 4 && strcmp(argv[1], "child-crash") == 0) return child_crash(argv[2], argv[3]);
    alarm(600);
    return check_run("test_transaction", CASES, sizeof CASES / sizeof CASES[0], 8, argc, argv);
}
