/* The lite pull consumer through the C ABI against the real broker (RMQ_NAMESRV): every message
 * sent is polled (sets compared) and auto-commit at shutdown moves the group past them; a manual
 * commit is where a restart resumes; seek to an offset, the beginning, the end and a time; pause
 * stops a queue and resume restarts it; assign takes exactly the given queues; shutdown wakes a
 * waiting poll; a lite pull batch needs no ack and refuses reconsume; misuse is an error.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); "nothing comes" checks poll for a while and fail on anything that does come.
 *
 *   test_lite_pull            every case
 *   test_lite_pull all seek   the named cases only */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITHIN_SECONDS 60
#define POLL_MS 300
#define MAX_GOT 128
#define MAX_QUEUES 16
#define BATCH 8

/* Sends body "<prefix>-<i>" for i < n, to `queue` when not NULL; returns the last queue id. */
static int32_t send_n(rmq_producer_t *p, const char *topic, const char *prefix, int n,
                      const rmq_message_queue_t *queue) {
    int32_t qid = -1;
    for (int i = 0; i < n; i++) {
        char body[64];
        snprintf(body, sizeof body, "%s-%d", prefix, i);
        rmq_message_t *m = text_message(topic, body);
        rmq_send_result_t *r = NULL;
        rmq_status_t s = queue ? rmq_producer_send_sync_to_queue(p, m, queue, &r)
                               : rmq_producer_send_sync(p, m, &r);
        EXPECT(s == RMQ_OK);
        if (s == RMQ_OK) {
            OK(rmq_send_result_queue_id(r, &qid));
            rmq_send_result_destroy(r);
        }
        rmq_message_destroy(m);
    }
    return qid;
}

static rmq_lite_pull_consumer_t *new_consumer(const char *group, int auto_commit) {
    rmq_config_t *cfg = rmq_config_create();
    char instance[96];
    unique(instance, sizeof instance, "cl");
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    OK(rmq_config_set(cfg, "consumer.pull-batch-size", "8"));
    OK(rmq_config_set(cfg, "consumer.auto-commit", auto_commit ? "true" : "false"));
    OK(rmq_config_set(cfg, "instance-name", instance));
    rmq_lite_pull_consumer_t *c = NULL;
    OK(rmq_lite_pull_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    return c;
}

/* Queues copied out of a list, with storage for their names. */
typedef struct {
    char topic[128];
    char broker[64];
    rmq_message_queue_t q[MAX_QUEUES];
    size_t n;
} queues_t;

static void copy_list(rmq_message_queue_list_t *list, queues_t *out) {
    const rmq_message_queue_t *v = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    OK(rmq_message_queue_list_views(list, &v, &n));
    for (size_t i = 0; i < n && i < MAX_QUEUES; i++) {
        snprintf(out->topic, sizeof out->topic, "%.*s", (int)v[i].topic_len, v[i].topic);
        snprintf(out->broker, sizeof out->broker, "%.*s", (int)v[i].broker_name_len,
                 v[i].broker_name);
        out->q[i].queue_id = v[i].queue_id;
        out->n++;
    }
    for (size_t i = 0; i < out->n; i++) {
        out->q[i].topic = out->topic;
        out->q[i].topic_len = strlen(out->topic);
        out->q[i].broker_name = out->broker;
        out->q[i].broker_name_len = strlen(out->broker);
    }
    OK(rmq_message_queue_list_destroy(list));
}

/* A new topic (its first message, "create-0", made it): all its queues, and in `free_qs`
 * those without that message. */
static void new_topic(rmq_producer_t *p, const char *prefix, char *topic, size_t cap,
                      queues_t *all, queues_t *free_qs) {
    char group[96];
    unique(topic, cap, prefix);
    int32_t first = send_n(p, topic, "create", 1, NULL);
    unique(group, sizeof group, "CLiteProbe");
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_start(c));
    rmq_message_queue_list_t *list = NULL;
    OK(rmq_lite_pull_consumer_fetch_message_queues(c, topic, &list));
    copy_list(list, all);
    OK(rmq_lite_pull_consumer_destroy(c));
    *free_qs = *all;
    free_qs->n = 0;
    for (size_t i = 0; i < all->n; i++)
        if (all->q[i].queue_id != first) free_qs->q[free_qs->n++] = all->q[i];
    for (size_t i = 0; i < free_qs->n; i++) {
        free_qs->q[i].topic = free_qs->topic;
        free_qs->q[i].broker_name = free_qs->broker;
    }
}

typedef struct {
    char body[64];
    int32_t qid;
    int64_t offset;
    int64_t store_ts;
} got_t;

typedef struct {
    got_t m[MAX_GOT];
    int n;
} gots_t;

/* Polls until `want` more messages came or WITHIN_SECONDS (for_ms > 0: for that long); appends
 * them. Returns how many came. */
static int poll_more(rmq_lite_pull_consumer_t *c, gots_t *g, int want, long for_ms) {
    int before = g->n;
    double until = now_s() + (for_ms > 0 ? (double)for_ms / 1000.0 : WITHIN_SECONDS);
    while ((for_ms > 0 || g->n - before < want) && now_s() < until) {
        rmq_received_batch_t *b = NULL;
        OK(rmq_lite_pull_consumer_poll(c, POLL_MS, &b));
        if (!b) continue;
        const rmq_received_view_t *v = NULL;
        size_t n = 0;
        OK(rmq_received_batch_views(b, &v, &n));
        EXPECT(n >= 1 && n <= BATCH);
        for (size_t i = 0; i < n && g->n < MAX_GOT; i++) {
            got_t *m = &g->m[g->n++];
            snprintf(m->body, sizeof m->body, "%.*s", (int)v[i].body_len, (const char *)v[i].body);
            m->qid = v[i].queue_id;
            m->offset = v[i].queue_offset;
            m->store_ts = v[i].store_timestamp;
        }
        OK(rmq_received_batch_destroy(b));
    }
    return g->n - before;
}

/* How many of g's messages (from index `from`) have body "<prefix>-<i>" for i < n, each
 * counted once; 0 if any other message or duplicate is there. */
static int exactly(const gots_t *g, int from, const char *prefix, int n) {
    int seen[MAX_GOT] = {0};
    size_t plen = strlen(prefix);
    for (int k = from; k < g->n; k++) {
        const char *b = g->m[k].body;
        if (strncmp(b, prefix, plen) != 0 || b[plen] != '-') return 0;
        int i = atoi(b + plen + 1);
        if (i < 0 || i >= n || seen[i]++) return 0;
    }
    return g->n - from == n;
}

static const got_t *find(const gots_t *g, const char *body) {
    for (int k = 0; k < g->n; k++)
        if (strcmp(g->m[k].body, body) == 0) return &g->m[k];
    return NULL;
}

/* ------------------------------------------------------------------------------------ cases */

static void case_all(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CLiteAll");
    unique(group, sizeof group, "CLiteAllGroup");
    rmq_producer_t *p = start_producer("CLiteProducer", NULL);
    send_n(p, topic, "all", 40, NULL);
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_subscribe(c, topic, "*"));
    OK(rmq_lite_pull_consumer_start(c));
    rmq_message_queue_list_t *list = NULL;
    queues_t owned;
    OK(rmq_lite_pull_consumer_assignment(c, &list));
    copy_list(list, &owned);
    EXPECT(owned.n >= 1);
    static gots_t g;
    memset(&g, 0, sizeof g);
    poll_more(c, &g, 40, 0);
    EXPECT(exactly(&g, 0, "all", 40));
    OK(rmq_lite_pull_consumer_shutdown(c));
    OK(rmq_lite_pull_consumer_destroy(c));

    send_n(p, topic, "later", 10, NULL);
    c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_subscribe(c, topic, "*"));
    OK(rmq_lite_pull_consumer_start(c));
    memset(&g, 0, sizeof g);
    poll_more(c, &g, 10, 0);
    EXPECT(exactly(&g, 0, "later", 10)); /* shutdown committed the first 40 */

    /* A lite pull batch: ack_each refuses reconsume (the batch stays valid), ack frees it. */
    send_n(p, topic, "batch", 2, NULL);
    rmq_received_batch_t *b = NULL;
    double until = now_s() + WITHIN_SECONDS;
    while (!b && now_s() < until) OK(rmq_lite_pull_consumer_poll(c, POLL_MS, &b));
    EXPECT(b != NULL);
    if (b) {
        size_t n = 0;
        OK(rmq_received_batch_count(b, &n));
        rmq_consume_status_t st[BATCH];
        for (size_t i = 0; i < n; i++) st[i] = RMQ_CONSUME_RECONSUME_LATER;
        EXPECT_STATUS(rmq_received_batch_ack_each(b, st, NULL, n), RMQ_ERR_INVALID_ARGUMENT);
        OK(rmq_received_batch_count(b, &n));
        OK(rmq_received_batch_ack(b));
        EXPECT_STATUS(rmq_received_batch_ack(b), RMQ_ERR_INVALID_HANDLE);
    }
    OK(rmq_lite_pull_consumer_destroy(c));
    rmq_producer_destroy(p);
}

static void case_commit(void) {
    char topic[128], group[128];
    queues_t all, free_qs;
    rmq_producer_t *p = start_producer("CLiteProducer", NULL);
    new_topic(p, "CLiteCommit", topic, sizeof topic, &all, &free_qs);
    unique(group, sizeof group, "CLiteCommitGroup");
    send_n(p, topic, "first", 30, NULL);
    rmq_lite_pull_consumer_t *c = new_consumer(group, 0);
    OK(rmq_lite_pull_consumer_assign(c, all.q, all.n));
    OK(rmq_lite_pull_consumer_start(c));
    static gots_t g;
    memset(&g, 0, sizeof g);
    EXPECT(poll_more(c, &g, 31, 0) == 31);
    OK(rmq_lite_pull_consumer_commit(c));
    int64_t sum = 0;
    for (size_t i = 0; i < all.n; i++) {
        int64_t o = 0;
        OK(rmq_lite_pull_consumer_committed(c, &all.q[i], &o));
        sum += o;
    }
    EXPECT(sum == 31);
    send_n(p, topic, "second", 10, NULL); /* polled, not committed */
    int from = g.n;
    poll_more(c, &g, 10, 0);
    EXPECT(exactly(&g, from, "second", 10));
    OK(rmq_lite_pull_consumer_destroy(c));

    c = new_consumer(group, 0);
    OK(rmq_lite_pull_consumer_assign(c, all.q, all.n));
    OK(rmq_lite_pull_consumer_start(c));
    memset(&g, 0, sizeof g);
    poll_more(c, &g, 10, 0);
    poll_more(c, &g, 0, 600);
    EXPECT(exactly(&g, 0, "second", 10)); /* resumed at the commit, nothing else */
    int64_t one = 1, o = -1;
    OK(rmq_lite_pull_consumer_commit_offsets(c, &all.q[0], &one, 1));
    OK(rmq_lite_pull_consumer_committed(c, &all.q[0], &o));
    EXPECT(o == 1);
    EXPECT_STATUS(rmq_lite_pull_consumer_commit_offsets(c, &all.q[0], NULL, 1),
                  RMQ_ERR_NULL_POINTER);
    OK(rmq_lite_pull_consumer_destroy(c));
    rmq_producer_destroy(p);
}

static void case_seek(void) {
    char topic[128], group[128];
    queues_t all, free_qs;
    rmq_producer_t *p = start_producer("CLiteProducer", NULL);
    new_topic(p, "CLiteSeek", topic, sizeof topic, &all, &free_qs);
    const rmq_message_queue_t *q = &free_qs.q[0];
    send_n(p, topic, "early", 5, q);
    sleep_ms(1100);
    send_n(p, topic, "late", 5, q);
    unique(group, sizeof group, "CLiteSeekGroup");
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_assign(c, q, 1));
    OK(rmq_lite_pull_consumer_start(c));
    static gots_t g, h;
    memset(&g, 0, sizeof g);
    EXPECT(poll_more(c, &g, 10, 0) == 10);
    const got_t *late0 = find(&g, "late-0"), *early4 = find(&g, "early-4"),
                *late4 = find(&g, "late-4");
    EXPECT(late0 && early4 && late4);
    if (!late0 || !early4 || !late4) return;

    OK(rmq_lite_pull_consumer_seek(c, q, late0->offset));
    memset(&h, 0, sizeof h);
    poll_more(c, &h, 5, 0);
    EXPECT(h.n == 5 && strcmp(h.m[0].body, "late-0") == 0 && strcmp(h.m[4].body, "late-4") == 0);

    OK(rmq_lite_pull_consumer_seek_to_begin(c, q));
    memset(&h, 0, sizeof h);
    poll_more(c, &h, 10, 0);
    EXPECT(h.n == 10 && strcmp(h.m[0].body, "early-0") == 0);

    OK(rmq_lite_pull_consumer_seek_to_end(c, q));
    memset(&h, 0, sizeof h);
    EXPECT(poll_more(c, &h, 0, 600) == 0);
    send_n(p, topic, "after", 1, q);
    poll_more(c, &h, 1, 0);
    EXPECT(h.n == 1 && strcmp(h.m[0].body, "after-0") == 0 && h.m[0].offset == late4->offset + 1);

    EXPECT(late0->store_ts - early4->store_ts >= 1000);
    OK(rmq_lite_pull_consumer_seek_to_timestamp(c, q, late0->store_ts));
    memset(&h, 0, sizeof h);
    poll_more(c, &h, 1, 0);
    EXPECT(h.n >= 1 && strcmp(h.m[0].body, "late-0") == 0);
    int64_t o = -1;
    OK(rmq_lite_pull_consumer_offset_for_timestamp(c, q, late0->store_ts, &o));
    EXPECT(o == late0->offset);

    EXPECT_STATUS(rmq_lite_pull_consumer_seek(c, q, late4->offset + 100), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_lite_pull_consumer_seek(c, &free_qs.q[1], 0), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_lite_pull_consumer_seek(c, NULL, 0), RMQ_ERR_NULL_POINTER);
    OK(rmq_lite_pull_consumer_destroy(c));
    rmq_producer_destroy(p);
}

static void case_pause(void) {
    char topic[128], group[128];
    queues_t all, free_qs;
    rmq_producer_t *p = start_producer("CLiteProducer", NULL);
    new_topic(p, "CLitePause", topic, sizeof topic, &all, &free_qs);
    const rmq_message_queue_t *q0 = &free_qs.q[0], *q1 = &free_qs.q[1];
    send_n(p, topic, "q0", 5, q0);
    send_n(p, topic, "q1", 5, q1);
    unique(group, sizeof group, "CLitePauseGroup");
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_assign(c, free_qs.q, 2));
    OK(rmq_lite_pull_consumer_pause(c, q0, 1));
    OK(rmq_lite_pull_consumer_start(c));
    static gots_t g;
    memset(&g, 0, sizeof g);
    poll_more(c, &g, 5, 0);
    poll_more(c, &g, 0, 1500);
    EXPECT(exactly(&g, 0, "q1", 5)); /* nothing of the paused queue */
    OK(rmq_lite_pull_consumer_resume(c, q0, 1));
    int from = g.n;
    poll_more(c, &g, 5, 0);
    EXPECT(exactly(&g, from, "q0", 5));

    OK(rmq_lite_pull_consumer_pause(c, q1, 1));
    send_n(p, topic, "q1later", 3, q1);
    from = g.n;
    EXPECT(poll_more(c, &g, 0, 1500) == 0);
    OK(rmq_lite_pull_consumer_resume(c, q1, 1));
    poll_more(c, &g, 3, 0);
    EXPECT(exactly(&g, from, "q1later", 3));
    OK(rmq_lite_pull_consumer_destroy(c));
    rmq_producer_destroy(p);
}

static void case_assign(void) {
    char topic[128], group[128];
    queues_t all, free_qs, mine, got_qs;
    rmq_producer_t *p = start_producer("CLiteProducer", NULL);
    new_topic(p, "CLiteAssign", topic, sizeof topic, &all, &free_qs);
    mine = free_qs;
    mine.n = 0;
    for (size_t i = 0; i < free_qs.n; i += 2) mine.q[mine.n++] = free_qs.q[i];
    for (size_t i = 0; i < free_qs.n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s%d", i % 2 == 0 ? "mine" : "other", (int)i);
        send_n(p, topic, prefix, 3, &free_qs.q[i]);
    }
    unique(group, sizeof group, "CLiteAssignGroup");
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    OK(rmq_lite_pull_consumer_start(c));
    rmq_message_queue_list_t *list = NULL;
    OK(rmq_lite_pull_consumer_assignment(c, &list));
    copy_list(list, &got_qs);
    EXPECT(got_qs.n == 0);
    OK(rmq_lite_pull_consumer_assign(c, mine.q, mine.n));
    OK(rmq_lite_pull_consumer_assignment(c, &list));
    copy_list(list, &got_qs);
    EXPECT(got_qs.n == mine.n);
    static gots_t g;
    memset(&g, 0, sizeof g);
    poll_more(c, &g, (int)mine.n * 3, 0);
    poll_more(c, &g, 0, 600);
    EXPECT(g.n == (int)mine.n * 3);
    for (int k = 0; k < g.n; k++) EXPECT(strncmp(g.m[k].body, "mine", 4) == 0);
    OK(rmq_lite_pull_consumer_destroy(c));
    rmq_producer_destroy(p);
}

static rmq_lite_pull_consumer_t *waiting_consumer;

static void *wait_poll(void *out) {
    rmq_received_batch_t *b = NULL;
    *(rmq_status_t *)out = rmq_lite_pull_consumer_poll(waiting_consumer, -1, &b);
    return NULL;
}

static void case_wake(void) {
    char topic[128], group[128];
    unique(topic, sizeof topic, "CLiteWake");
    unique(group, sizeof group, "CLiteWakeGroup");
    rmq_lite_pull_consumer_t *c = new_consumer(group, 1);
    rmq_received_batch_t *b = NULL;
    EXPECT_STATUS(rmq_lite_pull_consumer_poll(c, 0, &b), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_lite_pull_consumer_poll(c, 0, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_lite_pull_consumer_subscribe(c, topic, "*"));
    rmq_message_queue_t q = {topic, strlen(topic), "broker-a", 8, 0};
    EXPECT_STATUS(rmq_lite_pull_consumer_assign(c, &q, 1), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_lite_pull_consumer_assign(c, NULL, 1), RMQ_ERR_NULL_POINTER);
    OK(rmq_lite_pull_consumer_start(c));
    waiting_consumer = c;
    rmq_status_t got = RMQ_OK;
    pthread_t t;
    pthread_create(&t, NULL, wait_poll, &got);
    sleep_ms(300);
    OK(rmq_lite_pull_consumer_shutdown(c));
    pthread_join(t, NULL);
    EXPECT(got == RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_lite_pull_consumer_start(c), RMQ_ERR_INVALID_STATE);
    OK(rmq_lite_pull_consumer_destroy(c));
    EXPECT_STATUS(rmq_lite_pull_consumer_destroy(c), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_lite_pull_consumer_destroy(NULL));
    OK(rmq_message_queue_list_destroy(NULL));
}

static const struct check_case CASES[] = {
    {"all", case_all},     {"commit", case_commit}, {"seek", case_seek},
    {"pause", case_pause}, {"assign", case_assign}, {"wake", case_wake},
};

int main(int argc, char **argv) {
    check_namesrv("test_lite_pull");
    alarm(600);
    return check_run("test_lite_pull", CASES, sizeof CASES / sizeof CASES[0], 8, argc, argv);
}
