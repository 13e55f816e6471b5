/* The push consumer's C ABI against the real broker (RMQ_NAMESRV): what is produced is what is
 * consumed (sets compared) with every field of a received message, tag and SQL92 filters,
 * reconsume-later then success, shutdown and destroy refused from the consumer's own listener,
 * destroy waiting for a listener still running, no consumer thread left behind, misuse, and
 * fork().
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs.
 *
 *   test_consumer            every case
 *   test_consumer tags sql   the named cases only */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Upper bound of one wait; only a failure reaches it. */
#define WITHIN_SECONDS 90
#define MAX_MSGS 64

/* ---------------------------------------------------------------------------------- helpers */

/* Sends body "<prefix>-<i>" with `tags` (NULL: none) and property n=<i>; retries while the
 * topic is being auto-created. Writes the message id to id_out (if not NULL). */
static void send_one(rmq_producer_t *p, const char *topic, const char *prefix, int i,
                     const char *tags, char *id_out, size_t id_cap) {
    char body[64], n[16];
    snprintf(body, sizeof body, "%s-%d", prefix, i);
    snprintf(n, sizeof n, "%d", i);
    rmq_message_t *m = text_message(topic, body);
    if (tags) OK(rmq_message_set_tags(m, tags));
    OK(rmq_message_set_keys(m, body));
    OK(rmq_message_set_property(m, "n", n));
    rmq_send_result_t *r = NULL;
    rmq_status_t s = send_retrying(p, m, &r);
    EXPECT(s == RMQ_OK);
    if (s == RMQ_OK) {
        if (id_out) {
            const char *id;
            size_t len;
            OK(rmq_send_result_msg_id(r, &id, &len));
            snprintf(id_out, id_cap, "%.*s", (int)len, id);
        }
        rmq_send_result_destroy(r);
    }
    rmq_message_destroy(m);
}

/* A consumer of `group` with consume-from-where=first; extra key/value pairs end with NULL. */
#define new_consumer(...) create_consumer("cc", __VA_ARGS__)

static void thread_name(char out[17]) {
    memset(out, 0, 17);
    prctl(PR_GET_NAME, out, 0, 0, 0);
}

/* Threads of this process whose name starts with `prefix`. */
static int threads_named(const char *prefix) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f) && strncmp(name, prefix, strlen(prefix)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ what a listener records */

/* Bodies "<prefix>-<i>" for i < MAX_MSGS are counted per i (per prefix slot); anything else is
 * counted as foreign. Every field of a received message is checked as it arrives. */
struct record {
    pthread_mutex_t mu;
    char topic[160];
    char prefixes[4][16];
    int counts[4][MAX_MSGS];
    int foreign;
    int bad_fields;
    /* reconsume case: deliveries per index with reconsume_times 0 and 1 */
    int first_delivery[MAX_MSGS], second_delivery[MAX_MSGS];
    int fail_first;       /* return RECONSUME_LATER (delay 1) when reconsume_times is 0 */
    char ids[MAX_MSGS][64]; /* expected msg ids of prefixes[0], when known */
    char thread[17];      /* a listener thread's name */
    int calls;
    /* refusal case */
    rmq_push_consumer_t *self;
    int refused, not_refused;
    /* destroy-waits case */
    atomic_int running;
    int sleep_ms;
    /* handle-after-callback case */
    const rmq_received_message_t *kept;
};

static void record_init(struct record *r, const char *topic) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->topic, sizeof r->topic, "%s", topic);
}

/* Number of indexes below n of prefix slot `slot` seen at least once. */
static int distinct(struct record *r, int slot, int n) {
    pthread_mutex_lock(&r->mu);
    int k = 0;
    for (int i = 0; i < n; i++) k += r->counts[slot][i] > 0;
    pthread_mutex_unlock(&r->mu);
    return k;
}

static int wait_distinct(struct record *r, int slot, int n) {
    double until = now_s() + WITHIN_SECONDS;
    while (distinct(r, slot, n) < n && now_s() < until) sleep_ms(20);
    return distinct(r, slot, n);
}

static rmq_consume_status_t recording_listener(const rmq_received_message_t *const *msgs,
                                               size_t count, rmq_consume_context_t *ctx,
                                               void *user_data) {
    struct record *r = user_data;
    atomic_fetch_add(&r->running, 1);
    if (r->sleep_ms) sleep_ms(r->sleep_ms);
    rmq_consume_status_t verdict = RMQ_CONSUME_SUCCESS;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    thread_name(r->thread);
    if (r->self) {
        if (rmq_push_consumer_destroy(r->self) == RMQ_ERR_INVALID_STATE &&
            rmq_push_consumer_shutdown(r->self) == RMQ_ERR_INVALID_STATE)
            r->refused++;
        else
            r->not_refused++;
    }
    if (count >= 1) r->kept = msgs[0];
    for (size_t m = 0; m < count; m++) {
        const uint8_t *body;
        size_t blen;
        const char *s;
        size_t slen;
        if (rmq_received_message_body(msgs[m], &body, &blen) != RMQ_OK) {
            r->bad_fields++;
            continue;
        }
        char text[80];
        snprintf(text, sizeof text, "%.*s", (int)(blen < 70 ? blen : 70), (const char *)body);
        char *dash = strrchr(text, '-');
        int slot = -1, idx = -1;
        if (dash) {
            *dash = 0;
            for (int k = 0; k < 4; k++)
                if (r->prefixes[k][0] && strcmp(r->prefixes[k], text) == 0) slot = k;
            idx = atoi(dash + 1);
            *dash = '-';
        }
        if (slot < 0 || idx < 0 || idx >= MAX_MSGS) {
            r->foreign += strncmp(text, "warm-up", 7) != 0;
            continue;
        }
        r->counts[slot][idx]++;
        /* Fields: topic, keys (= body), property n, ids, queue, timestamps, broker. */
        int ok = 1;
        ok &= rmq_received_message_topic(msgs[m], &s, &slen) == RMQ_OK && eq_view(s, slen, r->topic);
        ok &= rmq_received_message_keys(msgs[m], &s, &slen) == RMQ_OK && eq_view(s, slen, text);
        char n[16];
        snprintf(n, sizeof n, "%d", idx);
        ok &= rmq_received_message_property(msgs[m], "n", &s, &slen) == RMQ_OK && eq_view(s, slen, n);
        ok &= rmq_received_message_property(msgs[m], "absent", &s, &slen) == RMQ_ERR_NOT_FOUND;
        size_t props = 0;
        ok &= rmq_received_message_property_count(msgs[m], &props) == RMQ_OK && props >= 3;
        int found_n = 0;
        for (size_t p = 0; p < props; p++) {
            const char *pn, *pv;
            size_t pnl, pvl;
            ok &= rmq_received_message_property_at(msgs[m], p, &pn, &pnl, &pv, &pvl) == RMQ_OK;
            found_n |= eq_view(pn, pnl, "n") && eq_view(pv, pvl, n);
        }
        ok &= found_n;
        ok &= rmq_received_message_property_at(msgs[m], props, &s, &slen, &s, &slen) == RMQ_ERR_NOT_FOUND;
        ok &= rmq_received_message_msg_id(msgs[m], &s, &slen) == RMQ_OK && slen > 0;
        if (slot == 0 && r->ids[idx][0]) ok &= eq_view(s, slen, r->ids[idx]);
        ok &= rmq_received_message_offset_msg_id(msgs[m], &s, &slen) == RMQ_OK && slen > 0;
        ok &= rmq_received_message_broker_name(msgs[m], &s, &slen) == RMQ_OK && slen > 0;
        ok &= rmq_received_message_tags(msgs[m], &s, &slen) == RMQ_OK;
        int32_t qid = -1, times = -1;
        int64_t off = -1, born = 0, stored = 0;
        ok &= rmq_received_message_queue_id(msgs[m], &qid) == RMQ_OK && qid >= 0;
        ok &= rmq_received_message_queue_offset(msgs[m], &off) == RMQ_OK && off >= 0;
        ok &= rmq_received_message_reconsume_times(msgs[m], &times) == RMQ_OK && times >= 0;
        ok &= rmq_received_message_born_timestamp(msgs[m], &born) == RMQ_OK && born > 1600000000000LL;
        ok &= rmq_received_message_store_timestamp(msgs[m], &stored) == RMQ_OK && stored >= born - 60000;
        ok &= rmq_received_message_queue_id(msgs[m], NULL) == RMQ_ERR_NULL_POINTER;
        if (!ok) r->bad_fields++;
        if (times == 0) r->first_delivery[idx]++;
        if (times == 1) r->second_delivery[idx]++;
        if (r->fail_first && times == 0) verdict = RMQ_CONSUME_RECONSUME_LATER;
    }
    pthread_mutex_unlock(&r->mu);
    if (verdict == RMQ_CONSUME_RECONSUME_LATER) ctx->delay_level = 1; /* the broker's 1 s */
    atomic_fetch_sub(&r->running, 1);
    return verdict;
}

static rmq_push_consumer_t *start_recording(struct record *r, const char *group,
                                            const char *expression, int sql92,
                                            const char *threads, const char *await_ms) {
    rmq_push_consumer_t *c = new_consumer(group, "consumer.consume-thread-number",
                                          threads ? threads : "8",
                                          "consumer.await-termination-millis-when-shutdown",
                                          await_ms ? await_ms : "5000", NULL);
    if (sql92)
        OK(rmq_push_consumer_subscribe_sql92(c, r->topic, expression));
    else
        OK(rmq_push_consumer_subscribe(c, r->topic, expression));
    OK(rmq_push_consumer_set_listener(c, recording_listener, r));
    OK(rmq_push_consumer_start(c));
    return c;
}

/* -------------------------------------------------------------------------------- the cases */

/* N produced, N consumed (sets compared), each with every field right. */
static void case_all(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeAll");
    unique(group, sizeof group, "CConsumeAllGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "all");
    const int n = 40;
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < n; i++) send_one(p, topic, "all", i, "TagA", r.ids[i], sizeof r.ids[i]);
    rmq_push_consumer_t *c = start_recording(&r, group, "*", 0, NULL, NULL);
    EXPECT(wait_distinct(&r, 0, n) == n);
    OK(rmq_push_consumer_shutdown(c));
    OK(rmq_push_consumer_shutdown(c)); /* idempotent */
    OK(rmq_push_consumer_destroy(c));
    EXPECT(r.foreign == 0);
    EXPECT(r.bad_fields == 0);
    EXPECT(strncmp(r.thread, "rmq-c", 5) == 0 && r.thread[5] >= '0' && r.thread[5] <= '9');
    /* The handles lent to the listener died with the call. */
    const char *s;
    size_t len;
    EXPECT_STATUS(rmq_received_message_topic(r.kept, &s, &len), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_producer_destroy(p));
}

/* "TagA || TagB" delivers exactly TagA and TagB. The unwanted ones go first, on every queue,
 * so once every wanted one arrived each queue was read past the unwanted ones. */
static void case_tags(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeTags");
    unique(group, sizeof group, "CConsumeTagsGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "a");
    strcpy(r.prefixes[1], "b");
    strcpy(r.prefixes[2], "c");
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < 12; i++) send_one(p, topic, "c", i, "TagC", NULL, 0);
    for (int i = 0; i < 10; i++) send_one(p, topic, "a", i, "TagA", NULL, 0);
    for (int i = 0; i < 10; i++) send_one(p, topic, "b", i, "TagB", NULL, 0);
    rmq_push_consumer_t *c = start_recording(&r, group, "TagA || TagB", 0, NULL, NULL);
    EXPECT(wait_distinct(&r, 0, 10) == 10);
    EXPECT(wait_distinct(&r, 1, 10) == 10);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(distinct(&r, 2, 12) == 0);
    EXPECT(r.foreign == 0);
    EXPECT(r.bad_fields == 0);
    OK(rmq_producer_destroy(p));
}

/* An SQL92 expression over a property delivers exactly the matching messages. */
static void case_sql(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeSql");
    unique(group, sizeof group, "CConsumeSqlGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "s");
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < 40; i++) send_one(p, topic, "s", i, NULL, NULL, 0);
    rmq_push_consumer_t *c = start_recording(&r, group, "n >= 30", 1, NULL, NULL);
    double until = now_s() + WITHIN_SECONDS;
    int got = 0;
    while (now_s() < until) {
        pthread_mutex_lock(&r.mu);
        got = 0;
        for (int i = 30; i < 40; i++) got += r.counts[0][i] > 0;
        pthread_mutex_unlock(&r.mu);
        if (got == 10) break;
        sleep_ms(20);
    }
    EXPECT(got == 10);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(distinct(&r, 0, 30) == 0);
    EXPECT(r.bad_fields == 0);
    OK(rmq_producer_destroy(p));
}

/* RECONSUME_LATER (delay level 1) on the first delivery, then success on the second. */
static void case_reconsume(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeRetry");
    unique(group, sizeof group, "CConsumeRetryGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "r");
    r.fail_first = 1;
    const int n = 4;
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < n; i++) send_one(p, topic, "r", i, "TagA", NULL, 0);
    rmq_push_consumer_t *c = start_recording(&r, group, "*", 0, NULL, NULL);
    double until = now_s() + WITHIN_SECONDS;
    int done = 0;
    while (now_s() < until) {
        pthread_mutex_lock(&r.mu);
        done = 0;
        for (int i = 0; i < n; i++) done += r.first_delivery[i] > 0 && r.second_delivery[i] > 0;
        pthread_mutex_unlock(&r.mu);
        if (done == n) break;
        sleep_ms(20);
    }
    EXPECT(done == n);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(r.bad_fields == 0);
    OK(rmq_producer_destroy(p));
}

/* From its own listener, shutdown and destroy are refused (the handle stays valid); afterwards
 * destroy works and no thread of the consumer is left. */
static void case_refused_and_threads(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeSelf");
    unique(group, sizeof group, "CConsumeSelfGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "x");
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < 10; i++) send_one(p, topic, "x", i, "TagA", NULL, 0);
    rmq_push_consumer_t *c = new_consumer(group, "consumer.consume-thread-number", "4", NULL);
    r.self = c;
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_listener(c, recording_listener, &r));
    OK(rmq_push_consumer_start(c));
    EXPECT(wait_distinct(&r, 0, 10) == 10);
    pthread_mutex_lock(&r.mu);
    char prefix[17];
    snprintf(prefix, sizeof prefix, "%s", r.thread);
    pthread_mutex_unlock(&r.mu);
    char *dash = strrchr(prefix, '-'); /* "rmq-c<id>-N" -> "rmq-c<id>-" */
    if (dash) dash[1] = 0;
    EXPECT(threads_named(prefix) > 0);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(r.refused > 0);
    EXPECT(r.not_refused == 0);
    double until = now_s() + WITHIN_SECONDS;
    while (threads_named(prefix) != 0 && now_s() < until) sleep_ms(20);
    EXPECT(threads_named(prefix) == 0);
    EXPECT_STATUS(rmq_push_consumer_start(c), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_producer_destroy(p));
}

/* A listener still running past await-termination: shutdown may return while it runs, but
 * destroy returns only after it has returned, so user_data may be freed then. */
static void case_destroy_waits(void) {
    struct record r;
    char topic[128], group[128];
    unique(topic, sizeof topic, "CConsumeWait");
    unique(group, sizeof group, "CConsumeWaitGroup");
    record_init(&r, topic);
    strcpy(r.prefixes[0], "w");
    r.sleep_ms = 300;
    rmq_producer_t *p = start_producer("CConsumeProducer", NULL);
    for (int i = 0; i < 8; i++) send_one(p, topic, "w", i, "TagA", NULL, 0);
    rmq_push_consumer_t *c = start_recording(&r, group, "*", 0, "4", "1");
    double until = now_s() + WITHIN_SECONDS;
    while (atomic_load(&r.running) == 0 && now_s() < until) sleep_ms(1);
    EXPECT(atomic_load(&r.running) > 0);
    OK(rmq_push_consumer_destroy(c));
    EXPECT(atomic_load(&r.running) == 0);
    OK(rmq_producer_destroy(p));
}

static rmq_consume_status_t never_called(const rmq_received_message_t *const *msgs, size_t count,
                                         rmq_consume_context_t *ctx, void *user_data) {
    (void)msgs, (void)count, (void)ctx, (void)user_data;
    return RMQ_CONSUME_SUCCESS;
}

/* Bad input and wrong order get clear statuses, never a crash. */
static void case_misuse(void) {
    rmq_push_consumer_t *c = NULL;
    EXPECT_STATUS(rmq_push_consumer_create(NULL, &c), RMQ_ERR_NULL_POINTER);
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    EXPECT(rmq_push_consumer_create(cfg, &c) != RMQ_OK); /* no consumer.group */
    EXPECT(c == NULL);
    OK(rmq_config_set(cfg, "consumer.group", "DEFAULT_CONSUMER"));
    EXPECT_STATUS(rmq_push_consumer_create(cfg, &c), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_config_set(cfg, "consumer.consume-from-where", "middle"),
                  RMQ_ERR_INVALID_CONFIG_VALUE);
    rmq_config_destroy(cfg);

    char group[96];
    unique(group, sizeof group, "CConsumeMisuse");
    c = new_consumer(group, NULL);
    EXPECT_STATUS(rmq_push_consumer_start(c), RMQ_ERR_INVALID_STATE); /* no listener */
    EXPECT_STATUS(rmq_push_consumer_set_listener(c, NULL, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_push_consumer_set_listener(c, never_called, NULL));
    EXPECT_STATUS(rmq_push_consumer_start(c), RMQ_ERR_INVALID_STATE); /* no subscription */
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, NULL, "*"), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, "T", NULL), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, "bad topic", "*"), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, "T", "||"), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_push_consumer_subscribe_sql92(c, "T", ""), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, "%RETRY%G", "*"), RMQ_ERR_INVALID_ARGUMENT);
    OK(rmq_push_consumer_shutdown(c));
    EXPECT_STATUS(rmq_push_consumer_subscribe(c, "T", "*"), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_push_consumer_start(c), RMQ_ERR_INVALID_STATE);
    OK(rmq_push_consumer_destroy(c));
    EXPECT_STATUS(rmq_push_consumer_destroy(c), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_push_consumer_destroy(NULL));
    EXPECT_STATUS(rmq_push_consumer_start(NULL), RMQ_ERR_NULL_POINTER);

    /* Another type's handle is not a consumer. */
    rmq_message_t *m = rmq_message_create();
    EXPECT_STATUS(rmq_push_consumer_start((rmq_push_consumer_t *)m), RMQ_ERR_INVALID_HANDLE);
    int32_t q;
    EXPECT_STATUS(rmq_received_message_queue_id((const rmq_received_message_t *)m, &q),
                  RMQ_ERR_INVALID_HANDLE);
    rmq_message_destroy(m);
}

/* A consumer made before fork() is RMQ_ERR_FORKED in the child; destroying it there works. */
static void case_fork(void) {
    char group[96];
    unique(group, sizeof group, "CConsumeFork");
    rmq_push_consumer_t *c = new_consumer(group, NULL);
    OK(rmq_push_consumer_subscribe(c, "CForkTopic", "*"));
    OK(rmq_push_consumer_set_listener(c, never_called, NULL));
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        bad += rmq_push_consumer_start(c) != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_subscribe(c, "T2", "*") != RMQ_ERR_FORKED;
        bad += rmq_push_consumer_destroy(c) != RMQ_OK;
        _exit(bad);
    }
    int st = 0;
    EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    OK(rmq_push_consumer_destroy(c));
}

static const struct check_case CASES[] = {
    {"misuse", case_misuse},   {"fork", case_fork},           {"all", case_all},
    {"tags", case_tags},       {"sql", case_sql},             {"reconsume", case_reconsume},
    {"self", case_refused_and_threads}, {"wait", case_destroy_waits},
};

int main(int argc, char **argv) {
    check_namesrv("test_consumer");
    alarm(600);
    return check_run("test_consumer", CASES, sizeof CASES / sizeof CASES[0], 10, argc, argv);
}
