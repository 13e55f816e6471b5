/* Completion queues through the C ABI against the real broker (RMQ_NAMESRV): 10 000 async sends
 * whose results are polled in batches, each tag exactly once; one queue shared by two
 * producers; the wake-up descriptor wakes an event loop and is cleared once all is taken; a queue destroyed with
 * sends in flight (no crash, no leak, the producer still closes); a producer destroyed with
 * sends in flight (every result delivered once); NULL, stale and misused handles.
 *
 *   test_completion_queue              every case
 *   test_completion_queue shared fd    the named cases only */
#include "check.h"

#include <poll.h>

#define BATCH 256

static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Sends tag through q with p, polling (into seen) while the queue is at capacity. */
static void send_tag(rmq_producer_t *p, rmq_completion_queue_t *q, rmq_message_t *m, uint64_t tag,
                     unsigned char *seen, size_t *ok, size_t *taken);

/* Takes up to BATCH results (waiting up to wait_ms), counting tags in seen; the number taken. */
static size_t take(rmq_completion_queue_t *q, int wait_ms, unsigned char *seen, size_t *ok) {
    static rmq_completion_t results[BATCH];
    size_t n = 0;
    OK(rmq_completion_queue_poll(q, results, BATCH, wait_ms, &n));
    for (size_t i = 0; i < n; i++) {
        seen[results[i].user_tag]++;
        if (results[i].status == RMQ_OK) {
            (*ok)++;
            EXPECT(strlen(results[i].msg_id) == 32);
            EXPECT(results[i].offset_msg_id[0] != '\0');
            EXPECT(results[i].broker_name[0] != '\0');
            EXPECT(results[i].queue_offset >= 0 && results[i].queue_id >= 0);
            EXPECT(results[i].error_message[0] == '\0');
        } else {
            EXPECT(results[i].error_message[0] != '\0');
            EXPECT(results[i].queue_offset == -1);
        }
    }
    return n;
}

static void send_tag(rmq_producer_t *p, rmq_completion_queue_t *q, rmq_message_t *m, uint64_t tag,
                     unsigned char *seen, size_t *ok, size_t *taken) {
    for (;;) {
        rmq_status_t s = rmq_producer_send_async_queued(p, m, q, tag);
        if (s == RMQ_OK) return;
        if (s != RMQ_ERR_IN_FLIGHT_FULL) {
            EXPECT(s == RMQ_OK);
            return;
        }
        *taken += take(q, 10000, seen, ok);
    }
}

/* Polls until `total` results were taken or a 30 s poll brings none. */
static void drain(rmq_completion_queue_t *q, size_t total, unsigned char *seen, size_t *ok,
                  size_t *taken) {
    while (*taken < total) {
        size_t n = take(q, 30000, seen, ok);
        EXPECT(n > 0);
        if (n == 0) return;
        *taken += n;
    }
}

static int each_once(const unsigned char *seen, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (seen[i] != 1) return 0;
    return 1;
}

static void ten_thousand(void) {
    enum { N = 10000 };
    static unsigned char seen[N];
    char topic[96];
    unique(topic, sizeof topic, "CqC");
    rmq_producer_t *p = start_producer("CqCGroup", NULL);
    rmq_message_t *m = text_message(topic, "warm-up");
    EXPECT(send_retrying(p, m, NULL) == RMQ_OK);
    rmq_completion_queue_t *q = NULL;
    OK(rmq_completion_queue_new(1024, &q));
    size_t ok = 0, taken = 0;
    for (uint64_t t = 0; t < N; t++) send_tag(p, q, m, t, seen, &ok, &taken);
    drain(q, N, seen, &ok, &taken);
    EXPECT(taken == N);
    EXPECT(ok == N);
    EXPECT(each_once(seen, 0, N));
    size_t owed = 99, waiting = 99;
    OK(rmq_completion_queue_counts(q, &owed, &waiting));
    EXPECT(owed == 0 && waiting == 0);
    OK(rmq_completion_queue_destroy(q));
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(p));
}

static void shared(void) {
    static unsigned char seen[2000];
    char topic[96];
    unique(topic, sizeof topic, "CqCShared");
    rmq_producer_t *a = start_producer("CqCSharedA", NULL);
    rmq_producer_t *b = start_producer("CqCSharedB", "CqCInstB");
    rmq_message_t *m = text_message(topic, "shared");
    EXPECT(send_retrying(a, m, NULL) == RMQ_OK);
    rmq_completion_queue_t *q = NULL;
    OK(rmq_completion_queue_new(300, &q));
    size_t ok = 0, taken = 0;
    for (uint64_t i = 0; i < 500; i++) {
        send_tag(a, q, m, i, seen, &ok, &taken);
        send_tag(b, q, m, 1000 + i, seen, &ok, &taken);
    }
    drain(q, 1000, seen, &ok, &taken);
    EXPECT(ok == 1000);
    EXPECT(each_once(seen, 0, 500) && each_once(seen, 1000, 1500));
    OK(rmq_producer_destroy(a));
    OK(rmq_producer_destroy(b));
    OK(rmq_completion_queue_destroy(q));
    rmq_message_destroy(m);
}

static void fd(void) {
    static unsigned char seen[64];
    char topic[96];
    unique(topic, sizeof topic, "CqCFd");
    rmq_producer_t *p = start_producer("CqCFd", NULL);
    rmq_message_t *m = text_message(topic, "fd");
    EXPECT(send_retrying(p, m, NULL) == RMQ_OK);
    rmq_completion_queue_t *q = NULL;
    OK(rmq_completion_queue_new(64, &q));
    int wake = -1;
    OK(rmq_completion_queue_fd(q, &wake));
    EXPECT(wake >= 0 && !readable(wake));
    size_t ok = 0, taken = 0;
    for (uint64_t t = 0; t < 10; t++) send_tag(p, q, m, t, seen, &ok, &taken);
    struct pollfd pf = {.fd = wake, .events = POLLIN};
    while (taken < 10) {
        EXPECT(poll(&pf, 1, 30000) == 1); /* an event loop's wait */
        size_t n;
        while ((n = take(q, 0, seen, &ok)) > 0) taken += n;
    }
    EXPECT(ok == 10 && each_once(seen, 0, 10));
    EXPECT(!readable(wake)); /* all taken, none in flight: cleared */
    OK(rmq_producer_destroy(p));
    OK(rmq_completion_queue_destroy(q));
    rmq_message_destroy(m);
}

static void destroy_queue_in_flight(void) {
    char topic[96];
    unique(topic, sizeof topic, "CqCDestroy");
    rmq_producer_t *p = start_producer("CqCDestroy", NULL);
    rmq_message_t *m = text_message(topic, "in flight");
    EXPECT(send_retrying(p, m, NULL) == RMQ_OK);
    rmq_completion_queue_t *q = NULL;
    OK(rmq_completion_queue_new(500, &q));
    for (uint64_t t = 0; t < 200; t++) OK(rmq_producer_send_async_queued(p, m, q, t));
    OK(rmq_completion_queue_destroy(q));
    /* The handle is dead; the sends still in flight drop their results when they arrive. */
    EXPECT_STATUS(rmq_producer_send_async_queued(p, m, q, 1), RMQ_ERR_INVALID_HANDLE);
    rmq_completion_t r;
    size_t n = 7;
    EXPECT_STATUS(rmq_completion_queue_poll(q, &r, 1, 0, &n), RMQ_ERR_INVALID_HANDLE);
    EXPECT(n == 7); /* outputs untouched on failure */
    EXPECT_STATUS(rmq_completion_queue_destroy(q), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_producer_destroy(p)); /* waits for every send: the dropped results included */
    rmq_message_destroy(m);
}

static void destroy_producer_in_flight(void) {
    static unsigned char seen[300];
    char topic[96];
    unique(topic, sizeof topic, "CqCShut");
    rmq_producer_t *p = start_producer("CqCShut", NULL);
    rmq_message_t *m = text_message(topic, "shut");
    EXPECT(send_retrying(p, m, NULL) == RMQ_OK);
    rmq_completion_queue_t *q = NULL;
    OK(rmq_completion_queue_new(1000, &q));
    for (uint64_t t = 0; t < 300; t++) OK(rmq_producer_send_async_queued(p, m, q, t));
    OK(rmq_producer_destroy(p));
    size_t waiting = 0;
    OK(rmq_completion_queue_counts(q, NULL, &waiting));
    EXPECT(waiting == 300); /* every result is in the queue once destroy returns */
    size_t ok = 0, taken = 0;
    drain(q, 300, seen, &ok, &taken);
    EXPECT(each_once(seen, 0, 300));
    OK(rmq_completion_queue_destroy(q));
    rmq_message_destroy(m);
}

static void misuse(void) {
    rmq_completion_queue_t *q = NULL;
    EXPECT_STATUS(rmq_completion_queue_new(0, &q), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(q == NULL);
    EXPECT_STATUS(rmq_completion_queue_new(8, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_completion_queue_destroy(NULL));
    size_t n = 0;
    rmq_completion_t r;
    EXPECT_STATUS(rmq_completion_queue_poll(NULL, &r, 1, 0, &n), RMQ_ERR_NULL_POINTER);
    OK(rmq_completion_queue_new(8, &q));
    EXPECT_STATUS(rmq_completion_queue_poll(q, NULL, 1, 0, &n), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_completion_queue_poll(q, &r, 1, 0, NULL), RMQ_ERR_NULL_POINTER);
    OK(rmq_completion_queue_poll(q, NULL, 0, 0, &n));
    EXPECT(n == 0);
    OK(rmq_completion_queue_poll(q, &r, 1, 20, &n)); /* times out empty */
    EXPECT(n == 0);
    rmq_message_t *m = text_message("CqMisuse", "x");
    EXPECT_STATUS(rmq_producer_send_async_queued(NULL, m, q, 1), RMQ_ERR_NULL_POINTER);
    rmq_producer_t *p = start_producer("CqCMisuse", NULL);
    EXPECT_STATUS(rmq_producer_send_async_queued(p, m, NULL, 1), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_producer_send_async_queued(p, NULL, q, 1), RMQ_ERR_NULL_POINTER);
    /* A queue handle where a producer belongs. */
    EXPECT_STATUS(rmq_producer_send_async_queued((rmq_producer_t *)q, m, q, 1),
                  RMQ_ERR_INVALID_HANDLE);
    size_t owed = 9;
    OK(rmq_completion_queue_counts(q, &owed, NULL));
    EXPECT(owed == 0); /* failed sends owe nothing */
    OK(rmq_producer_destroy(p));
    OK(rmq_completion_queue_destroy(q));
    rmq_message_destroy(m);
}

int main(int argc, char **argv) {
    check_namesrv("test_completion_queue");
    alarm(600);
    static const struct check_case cases[] = {
        {"misuse", misuse},
        {"fd", fd},
        {"ten_thousand", ten_thousand},
        {"shared", shared},
        {"destroy_queue", destroy_queue_in_flight},
        {"destroy_producer", destroy_producer_in_flight},
    };
    return check_run("test_completion_queue", cases, sizeof cases / sizeof cases[0], 16, argc,
                     argv);
}
