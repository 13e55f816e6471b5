/* Producer routing through the C ABI against real brokers: namespaces (client.namespace), the
 * name server lookup URL (client.name-server-url, served by a small HTTP server on a thread
 * here), IPv6 and latency fault tolerance on the IPv6 two-broker cluster (RMQ_NAMESRV_V6).
 * Entry point: test_routing(), called from test_rmq.c's main. */
#include "rmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void test_routing(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                  int *failed);

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
#define EXPECT_STATUS(call, want) EXPECT((call) == (want))
#define OK(call) EXPECT_STATUS(call, RMQ_OK)

static int view_eq(const char *ptr, size_t len, const char *want) {
    return len == strlen(want) && memcmp(ptr, want, len) == 0;
}

/* A started producer for `config`, or NULL (counted as a failure). */
static rmq_producer_t *start(rmq_config_t *cfg) {
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    if (p && rmq_producer_start(p) != RMQ_OK) {
        EXPECT(!"producer started");
        rmq_producer_destroy(p);
        return NULL;
    }
    return p;
}

static rmq_send_result_t *send_text(rmq_producer_t *p, const char *t, const char *text) {
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, t);
    rmq_message_set_body(m, (const uint8_t *)text, strlen(text));
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, m, &r));
    rmq_message_destroy(m);
    return r;
}

static void offset_id(const rmq_send_result_t *r, char *out, size_t cap) {
    const char *id;
    size_t n;
    OK(rmq_send_result_offset_msg_id(r, &id, &n));
    snprintf(out, cap, "%.*s", (int)n, id);
}

static void test_namespace(const char *namesrv, const char *topic) {
    char ns[64], group[96], wrapped[200];
    snprintf(ns, sizeof ns, "CNs-%d", (int)getpid());
    snprintf(group, sizeof group, "CNsGroup_%d", (int)getpid());
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    EXPECT_STATUS(rmq_config_set(cfg, "client.namespace", "a%b"), RMQ_ERR_INVALID_CONFIG_VALUE);
    OK(rmq_config_set(cfg, "client.namespace", ns));
    rmq_producer_t *inside = start(cfg);
    snprintf(group, sizeof group, "CPlainGroup_%d", (int)getpid());
    cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", namesrv);
    rmq_config_set(cfg, "producer.group", group);
    rmq_producer_t *outside = start(cfg);
    if (!inside || !outside) goto out;

    rmq_send_result_t *r = send_text(inside, topic, "in a namespace");
    if (!r) goto out;
    const char *v;
    size_t n;
    OK(rmq_send_result_topic(r, &v, &n));
    EXPECT(view_eq(v, n, topic)); /* the result shows the topic given */
    char id[80];
    offset_id(r, id, sizeof id);
    rmq_send_result_destroy(r);

    rmq_message_t *stored = NULL;
    OK(rmq_producer_view_message(outside, id, &stored));
    if (stored) {
        snprintf(wrapped, sizeof wrapped, "%s%%%s", ns, topic);
        OK(rmq_message_topic(stored, &v, &n));
        EXPECT(view_eq(v, n, wrapped)); /* what the broker stored */
        OK(rmq_message_property(stored, "INSTANCE_ID", &v, &n));
        EXPECT(view_eq(v, n, ns));
        rmq_message_destroy(stored);
    }
    rmq_message_t *seen = NULL;
    OK(rmq_producer_view_message(inside, id, &seen));
    if (seen) {
        OK(rmq_message_topic(seen, &v, &n));
        EXPECT(view_eq(v, n, topic));
        rmq_message_destroy(seen);
    }
out:
    if (inside) rmq_producer_destroy(inside);
    if (outside) rmq_producer_destroy(outside);
}

/* A one-thread HTTP server answering every request with `body`. */
struct lookup_server {
    int fd;
    const char *body;
};

static void *serve_lookups(void *arg) {
    struct lookup_server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) return NULL; /* closed */
        char req[2048];
        ssize_t got = 0, k;
        while (got < (ssize_t)sizeof req - 1 && (k = read(c, req + got, sizeof req - 1 - got)) > 0) {
            got += k;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        char resp[512];
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                           strlen(s->body), s->body);
        if (write(c, resp, (size_t)len) < 0) { /* the client gave up: nothing to do */
        }
        close(c);
    }
}

static void test_lookup_url(const char *namesrv, const char *topic) {
    struct lookup_server s = {socket(AF_INET, SOCK_STREAM, 0), namesrv};
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    EXPECT(bind(s.fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(s.fd, 8) == 0 &&
           getsockname(s.fd, (struct sockaddr *)&a, &alen) == 0);
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, serve_lookups, &s) == 0);
    char url[128], group[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/rocketmq/nsaddr", ntohs(a.sin_port));
    snprintf(group, sizeof group, "CLookupGroup_%d", (int)getpid());
    rmq_config_t *cfg = rmq_config_create();
    EXPECT_STATUS(rmq_config_set(cfg, "client.name-server-url", "https://x/y"),
                  RMQ_ERR_INVALID_CONFIG_VALUE);
    OK(rmq_config_set(cfg, "client.name-server-url", url)); /* no name-server at all */
    OK(rmq_config_set(cfg, "producer.group", group));
    rmq_producer_t *p = start(cfg);
    if (p) {
        rmq_send_result_t *r = send_text(p, topic, "found through the lookup");
        EXPECT(r != NULL);
        rmq_send_result_destroy(r);
        rmq_producer_destroy(p);
    }
    shutdown(s.fd, SHUT_RDWR);
    close(s.fd);
    pthread_join(t, NULL);
}

static void test_ipv6_with_fault_tolerance(const char *v6_namesrv, const char *topic) {
    char group[96];
    snprintf(group, sizeof group, "CV6Group_%d", (int)getpid());
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", v6_namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    EXPECT_STATUS(rmq_config_set(cfg, "producer.send-latency-fault-enable", "yes"),
                  RMQ_ERR_INVALID_CONFIG_VALUE);
    OK(rmq_config_set(cfg, "producer.send-latency-fault-enable", "true"));
    rmq_producer_t *p = start(cfg);
    if (!p) return;
    for (int i = 0; i < 4; i++) {
        rmq_send_result_t *r = send_text(p, topic, "over ipv6");
        if (!r) continue;
        char id[80];
        offset_id(r, id, sizeof id);
        EXPECT(strlen(id) == 56); /* IPv6 store host: 16-byte address */
        const char *v;
        size_t n;
        OK(rmq_send_result_broker_name(r, &v, &n));
        EXPECT(view_eq(v, n, "broker-a") || view_eq(v, n, "broker-b"));
        rmq_message_t *stored = NULL;
        OK(rmq_producer_view_message(p, id, &stored));
        rmq_message_destroy(stored);
        rmq_send_result_destroy(r);
    }
    rmq_producer_destroy(p);
}

void test_routing(const char *namesrv, const char *v6_namesrv, const char *topic, int *passed,
                  int *failed) {
    n_passed = passed;
    n_failed = failed;
    test_namespace(namesrv, topic);
    test_lookup_url(namesrv, topic);
    test_ipv6_with_fault_tolerance(v6_namesrv, topic);
}
