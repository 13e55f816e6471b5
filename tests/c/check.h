/* Helpers shared by the standalone C test programs (one executable each, built with -Werror):
 * the pass/fail counters with EXPECT/OK, sleeping and a monotonic clock, unique names, the
 * RMQ_NAMESRV lookup, a started producer, a send that waits out topic auto-creation, and the
 * named-case runner. One copy here instead of one per program, so they cannot drift apart.
 * Everything is static (inline for functions), so a program that uses only part of it still
 * compiles without unused-function warnings. */
#ifndef RMQ_TESTS_C_CHECK_H
#define RMQ_TESTS_C_CHECK_H

#include "rmq.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, rmq_last_error_message());                                  \
        }                                                                              \
    } while (0)
#define EXPECT_STATUS(call, want) EXPECT((call) == (want))
#define OK(call) EXPECT_STATUS(call, RMQ_OK)

/* The name server from RMQ_NAMESRV, set by check_namesrv. */
static const char *namesrv __attribute__((unused));

/* Sets namesrv from RMQ_NAMESRV; exits with 2 when it is unset or empty. */
static inline void check_namesrv(const char *prog) {
    namesrv = getenv("RMQ_NAMESRV");
    if (!namesrv || !*namesrv) {
        fprintf(stderr, "%s: set RMQ_NAMESRV to a running name server (host:port)\n", prog);
        exit(2);
    }
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "<prefix>_<pid>_<time>_<seq>": a name no other run or call uses. */
static inline void unique(char *buf, size_t cap, const char *prefix) {
    static int seq;
    snprintf(buf, cap, "%s_%d_%ld_%d", prefix, (int)getpid(), (long)time(NULL), ++seq);
}

static inline int eq_view(const char *p, size_t len, const char *want) {
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

/* A started producer of a unique group named after group_prefix, in a client instance of its
 * own when instance_prefix is not NULL. */
static inline rmq_producer_t *start_producer(const char *group_prefix,
                                             const char *instance_prefix) {
    char group[96], instance[96];
    unique(group, sizeof group, group_prefix);
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    if (instance_prefix) {
        unique(instance, sizeof instance, instance_prefix);
        OK(rmq_config_set(cfg, "instance-name", instance));
    }
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));
    return p;
}

/* A push consumer (not started) of `group` reading from the first offset, in a client instance
 * named after instance_prefix; extra key/value pairs follow `group` and end with NULL. */
static inline rmq_push_consumer_t *create_consumer(const char *instance_prefix, const char *group,
                                                   ...) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    char instance[96];
    unique(instance, sizeof instance, instance_prefix);
    OK(rmq_config_set(cfg, "instance-name", instance));
    va_list ap;
    va_start(ap, group);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        OK(rmq_config_set(cfg, k, v));
    }
    va_end(ap);
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    return c;
}

/* A message of `topic` with `body`; the caller destroys it. */
static inline rmq_message_t *text_message(const char *topic, const char *body) {
    rmq_message_t *m = rmq_message_create();
    OK(rmq_message_set_topic(m, topic));
    OK(rmq_message_set_body(m, (const uint8_t *)body, strlen(body)));
    return m;
}

/* rmq_producer_send_sync, tried again every 500 ms (up to 60 times) while the topic is being
 * auto-created; the last status. */
static inline rmq_status_t send_retrying(rmq_producer_t *p, const rmq_message_t *m,
                                         rmq_send_result_t **result) {
    rmq_status_t s = RMQ_ERR_TIMEOUT;
    for (int tries = 0; tries < 60 && (s = rmq_producer_send_sync(p, m, result)) != RMQ_OK; tries++)
        sleep_ms(500);
    return s;
}

/* Prints "<prog>: N passed, M failed" on stdout; the exit status (1 if any check failed). */
static inline int check_report(const char *prog) {
    printf("%s: %d passed, %d failed\n", prog, passed, failed);
    return failed ? 1 : 0;
}

struct check_case {
    const char *name;
    void (*run)(void);
};

/* Runs the cases named on the command line (all when none is), reporting each on stderr with its
 * name padded to `width`, then the totals on stdout; the exit status (1 if any check failed). */
static inline int check_run(const char *prog, const struct check_case *cases, size_t n, int width,
                            int argc, char **argv) {
    for (size_t i = 0; i < n; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], cases[i].name) == 0;
        if (!wanted) continue;
        int before = failed;
        cases[i].run();
        fprintf(stderr, "%s: %-*s %s\n", prog, width, cases[i].name,
                failed == before ? "ok" : "FAILED");
    }
    return check_report(prog);
}

#endif
