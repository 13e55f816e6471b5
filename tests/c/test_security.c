/* ACL and TLS through the C ABI against real clusters that enforce them (scripts/run-tests.sh
 * starts them; see tests/broker_acl.rs and tests/broker_tls.rs for starting them by hand):
 * RMQ_NAMESRV_ACL1 (ACL 1.0 accounts), RMQ_NAMESRV_ACL2 (ACL 2.0 users), RMQ_NAMESRV_TLS with
 * its certificates in RMQ_TLS_DIR (client certificates required). A signed client and a verified
 * TLS client each send and consume (poll mode); a wrong secret, a missing permission, a server
 * certificate from another CA or for another name and a missing client certificate each fail
 * with a message that names the cause.
 *
 * Waits poll for an outcome with a generous upper bound (a failure bound, not a timing
 * assumption); the alarm kills a run that hangs. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MESSAGES 5
#define WITHIN_SECONDS 60

static const char *must_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr,
                "%s is not set: these tests need the ACL and TLS clusters that scripts/run-tests.sh "
                "starts (RMQ_NAMESRV_ACL1, RMQ_NAMESRV_ACL2, RMQ_NAMESRV_TLS, RMQ_TLS_DIR)\n",
                name);
        exit(2);
    }
    return v;
}

/* A config for `namesrv` with `pairs` (key, value, ..., NULL) set; a NULL value is skipped. */
static rmq_config_t *config(const char *namesrv, const char *const *pairs) {
    char instance[96];
    unique(instance, sizeof instance, "csec");
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "instance-name", instance));
    OK(rmq_config_set(cfg, "client.api-timeout", "10000"));
    OK(rmq_config_set(cfg, "producer.send-message-timeout", "10000"));
    for (; pairs && pairs[0]; pairs += 2) {
        if (pairs[1]) OK(rmq_config_set(cfg, pairs[0], pairs[1]));
    }
    return cfg;
}

static rmq_producer_t *producer(const char *namesrv, const char *const *pairs) {
    char group[96];
    unique(group, sizeof group, "CSecProducer");
    rmq_config_t *cfg = config(namesrv, pairs);
    OK(rmq_config_set(cfg, "producer.group", group));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    if (p) OK(rmq_producer_start(p));
    return p;
}

/* The send's error message, kept before later calls replace it. */
static char send_error[1024];

static rmq_status_t send_one(rmq_producer_t *p, const char *topic, const char *body) {
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, topic);
    rmq_message_set_body(m, (const uint8_t *)body, strlen(body));
    rmq_status_t st = rmq_producer_send_sync(p, m, NULL);
    snprintf(send_error, sizeof send_error, "%s", st == RMQ_OK ? "" : rmq_last_error_message());
    rmq_message_destroy(m);
    return st;
}

/* Sends MESSAGES messages with `pairs` and polls them back with a consumer of the same config. */
static void sends_and_consumes(const char *what, const char *namesrv, const char *const *pairs) {
    char topic[96], group[96];
    unique(topic, sizeof topic, "RmqAclCTopic");
    unique(group, sizeof group, "CSecConsumer");
    rmq_producer_t *p = producer(namesrv, pairs);
    if (!p) return;
    int sent_ok = 1;
    for (int i = 0; i < MESSAGES; i++) {
        char body[32];
        snprintf(body, sizeof body, "sec-%d", i);
        if (send_one(p, topic, body) != RMQ_OK) {
            fprintf(stderr, "%s: send failed: %s\n", what, send_error);
            sent_ok = 0;
        }
    }
    EXPECT(sent_ok);
    rmq_config_t *cfg = config(namesrv, pairs);
    OK(rmq_config_set(cfg, "consumer.group", group));
    OK(rmq_config_set(cfg, "consumer.consume-from-where", "first"));
    rmq_push_consumer_t *c = NULL;
    OK(rmq_push_consumer_create(cfg, &c));
    rmq_config_destroy(cfg);
    if (!c) {
        rmq_producer_destroy(p);
        return;
    }
    OK(rmq_push_consumer_subscribe(c, topic, "*"));
    OK(rmq_push_consumer_set_poll_mode(c));
    OK(rmq_push_consumer_start(c));
    int seen[MESSAGES] = {0}, distinct = 0;
    time_t deadline = time(NULL) + WITHIN_SECONDS;
    while (distinct < MESSAGES && time(NULL) < deadline) {
        rmq_received_batch_t *batch = NULL;
        if (rmq_push_consumer_poll(c, 32, 500, &batch) != RMQ_OK) break;
        if (!batch) continue;
        const rmq_received_view_t *v;
        size_t n;
        OK(rmq_received_batch_views(batch, &v, &n));
        for (size_t i = 0; i < n; i++) {
            int k;
            if (v[i].body_len < 16 && sscanf((const char *)v[i].body, "sec-%d", &k) == 1 && k >= 0 &&
                k < MESSAGES && !seen[k]) {
                seen[k] = 1;
                distinct++;
            }
        }
        OK(rmq_received_batch_ack(batch));
    }
    if (distinct != MESSAGES) fprintf(stderr, "%s: consumed %d of %d\n", what, distinct, MESSAGES);
    EXPECT(distinct == MESSAGES);
    OK(rmq_push_consumer_destroy(c));
    OK(rmq_producer_destroy(p));
}

/* A send with `pairs` fails and the message contains both `needle` and `needle2`. */
static void send_fails_naming(const char *what, const char *namesrv, const char *const *pairs,
                              const char *topic, const char *needle, const char *needle2) {
    rmq_producer_t *p = producer(namesrv, pairs);
    if (!p) return;
    char t[96];
    if (!topic) {
        unique(t, sizeof t, "RmqAclCTopic");
        topic = t;
    }
    EXPECT(send_one(p, topic, "x") != RMQ_OK);
    const char *msg = send_error;
    int ok = strstr(msg, needle) && strstr(msg, needle2);
    if (!ok) fprintf(stderr, "%s: '%s' lacks '%s' or '%s'\n", what, msg, needle, needle2);
    EXPECT(ok);
    OK(rmq_producer_destroy(p));
}

int main(void) {
    alarm(600);
    const char *acl[2] = {must_env("RMQ_NAMESRV_ACL1"), must_env("RMQ_NAMESRV_ACL2")};
    const char *tls_ns = must_env("RMQ_NAMESRV_TLS");
    const char *dir = must_env("RMQ_TLS_DIR");

    const char *const app[] = {"client.access-key", "rmq-app", "client.secret-key", "rmq-app-secret", NULL};
    const char *const wrong[] = {"client.access-key", "rmq-app", "client.secret-key", "nope", NULL};
    for (int i = 0; i < 2; i++) {
        sends_and_consumes("acl signed", acl[i], app);
        send_fails_naming("acl wrong secret", acl[i], wrong, NULL, "signature", "client.secret-key");
        send_fails_naming("acl no permission", acl[i], app, "RmqNoPermTopic", "RmqNoPermTopic",
                          "lacks this right");
    }

    char ca[512], other[512], cert[512], key[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(other, sizeof other, "%s/other-ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/client.pem", dir);
    snprintf(key, sizeof key, "%s/client.key", dir);
    const char *const tls[] = {"client.tls.enable", "true", "client.tls.ca-file", ca,
                               "client.tls.cert-file", cert, "client.tls.key-file", key, NULL};
    const char *const tls_other_ca[] = {"client.tls.enable", "true", "client.tls.ca-file", other,
                                        "client.tls.cert-file", cert, "client.tls.key-file", key, NULL};
    const char *const tls_no_cert[] = {"client.tls.enable", "true", "client.tls.ca-file", ca, NULL};
    const char *const tls_wrong_host[] = {"client.tls.enable", "true", "client.tls.ca-file", ca,
                                          "client.tls.cert-file", cert, "client.tls.key-file", key,
                                          "client.tls.server-name", "mq.example.com", NULL};
    sends_and_consumes("tls", tls_ns, tls);
    send_fails_naming("tls other CA", tls_ns, tls_other_ca, NULL, "TLS handshake failed",
                      "client.tls.ca-file");
    send_fails_naming("tls no client certificate", tls_ns, tls_no_cert, NULL, "TLS",
                      "client.tls.cert-file");
    /* the broker's certificate is for 127.0.0.1 and localhost, not the name checked */
    send_fails_naming("tls wrong host", tls_ns, tls_wrong_host, NULL, "TLS handshake failed",
                      "does not carry the name checked");

    /* a TLS key without its switch is refused at create, naming the key */
    rmq_config_t *cfg = config(tls_ns, NULL);
    OK(rmq_config_set(cfg, "producer.group", "CSecMisconfigured"));
    OK(rmq_config_set(cfg, "client.tls.ca-file", ca));
    rmq_producer_t *p = NULL;
    EXPECT(rmq_producer_create(cfg, &p) == RMQ_ERR_INVALID_ARGUMENT && p == NULL);
    EXPECT(strstr(rmq_last_error_message(), "client.tls.enable") != NULL);
    rmq_config_destroy(cfg);

    return check_report("test_security");
}
