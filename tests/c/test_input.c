/* Input rules through the C ABI: text entering a message refuses NUL and the property
 * separators 0x01/0x02 through both the NUL-terminated setters and their pointer + length
 * (_n) variants, caller-controlled lengths are refused before memory is read or allocated, and
 * a refused call leaves the message unchanged. The injection case runs against the real
 * broker. Entry point: test_input(), called from test_rmq.c's main. */
#include "rmq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_input(const char *namesrv, const char *topic, int *passed, int *failed);

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

/* The injection the review found: a tag carrying "\x02DELAY\x011" became a DELAY property. */
static const char INJECTED_TAG[] = "TagA\x02" "DELAY\x01" "1";

static int view_is(rmq_status_t (*get)(const rmq_message_t *, const char **, size_t *),
                   const rmq_message_t *m, const char *want) {
    const char *v = NULL;
    size_t n = 0;
    if (get(m, &v, &n) != RMQ_OK) return 0;
    return n == strlen(want) && memcmp(v, want, n) == 0;
}

static size_t property_count(const rmq_message_t *m) {
    size_t n = 0;
    rmq_message_property_count(m, &n);
    return n;
}

static int has_property(const rmq_message_t *m, const char *name) {
    const char *v;
    size_t n;
    return rmq_message_property(m, name, &v, &n) == RMQ_OK;
}

/* The state every refused call must leave untouched. */
static rmq_message_t *known_message(void) {
    rmq_message_t *m = rmq_message_create();
    OK(rmq_message_set_topic(m, "InputTopic"));
    OK(rmq_message_set_tags(m, "TagA"));
    OK(rmq_message_set_keys(m, "k1 k2"));
    OK(rmq_message_set_property(m, "color", "blue"));
    OK(rmq_message_set_body(m, (const uint8_t *)"body", 4));
    return m;
}

static void expect_known(const rmq_message_t *m) {
    EXPECT(view_is(rmq_message_topic, m, "InputTopic"));
    EXPECT(view_is(rmq_message_tags, m, "TagA"));
    EXPECT(view_is(rmq_message_keys, m, "k1 k2"));
    EXPECT(property_count(m) == 4); /* WAIT, TAGS, KEYS, color */
    EXPECT(!has_property(m, "DELAY"));
    const uint8_t *b;
    size_t n;
    EXPECT(rmq_message_body(m, &b, &n) == RMQ_OK && n == 4 && memcmp(b, "body", 4) == 0);
}

/* Refused with RMQ_ERR_INVALID_ARGUMENT and a message naming the offending byte. */
#define REFUSED(call, needle)                                                 \
    do {                                                                      \
        EXPECT_STATUS(call, RMQ_ERR_INVALID_ARGUMENT);                        \
        EXPECT(strstr(rmq_last_error_message(), needle) != NULL);             \
    } while (0)

static void separators_in_plain_setters(void) {
    rmq_message_t *m = known_message();
    const char *bad[] = {INJECTED_TAG, "a\x01" "b", "a\x02", "\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REFUSED(rmq_message_set_tags(m, bad[i]), "0x0");
        REFUSED(rmq_message_set_keys(m, bad[i]), "0x0");
        REFUSED(rmq_message_set_topic(m, bad[i]), "0x0");
        REFUSED(rmq_message_set_property(m, bad[i], "v"), "0x0");
        REFUSED(rmq_message_set_property(m, "n", bad[i]), "0x0");
    }
    REFUSED(rmq_message_set_tags(m, INJECTED_TAG), "tags contains the property separator 0x02 at byte 4");
    expect_known(m);
    rmq_message_destroy(m);
}

static void separators_and_nul_in_n_setters(void) {
    rmq_message_t *m = known_message();
    /* sizes include bytes past an embedded NUL: the old C-string path would have cut there */
    static const char nul_tag[] = "Tag\0A";
    static const char nul_topic[] = "Input\0Topic";
    size_t inj = sizeof INJECTED_TAG - 1;
    REFUSED(rmq_message_set_tags_n(m, INJECTED_TAG, inj), "0x02");
    REFUSED(rmq_message_set_keys_n(m, INJECTED_TAG, inj), "0x02");
    REFUSED(rmq_message_set_topic_n(m, INJECTED_TAG, inj), "0x02");
    REFUSED(rmq_message_set_property_n(m, INJECTED_TAG, inj, "v", 1), "0x02");
    REFUSED(rmq_message_set_property_n(m, "n", 1, INJECTED_TAG, inj), "0x02");
    REFUSED(rmq_message_set_tags_n(m, nul_tag, sizeof nul_tag - 1), "NUL");
    REFUSED(rmq_message_set_keys_n(m, nul_tag, sizeof nul_tag - 1), "NUL");
    REFUSED(rmq_message_set_topic_n(m, nul_topic, sizeof nul_topic - 1), "NUL");
    REFUSED(rmq_message_set_property_n(m, "n\0x", 3, "v", 1), "NUL");
    REFUSED(rmq_message_set_property_n(m, "n", 1, "v\0", 2), "NUL");
    /* a trailing NUL counted in the length is refused too, not dropped */
    REFUSED(rmq_message_set_tags_n(m, "TagB", 5), "NUL");
    EXPECT_STATUS(rmq_message_set_tags_n(m, "\xc3\x28", 2), RMQ_ERR_INVALID_UTF8);
    EXPECT_STATUS(rmq_message_set_tags_n(m, NULL, 3), RMQ_ERR_NULL_POINTER);
    EXPECT_STATUS(rmq_message_set_property_n(m, "n", 1, NULL, 1), RMQ_ERR_NULL_POINTER);
    expect_known(m);

    /* valid input: the length is authoritative, no terminator needed */
    OK(rmq_message_set_topic_n(m, "OtherTopicXXXX", 10));
    EXPECT(view_is(rmq_message_topic, m, "OtherTopic"));
    OK(rmq_message_set_tags_n(m, "TagBxx", 4));
    EXPECT(view_is(rmq_message_tags, m, "TagB"));
    OK(rmq_message_set_keys_n(m, "k3 k4!", 5));
    EXPECT(view_is(rmq_message_keys, m, "k3 k4"));
    OK(rmq_message_set_property_n(m, "size=", 4, "large!", 5));
    const char *v;
    size_t n;
    OK(rmq_message_property(m, "size", &v, &n));
    EXPECT(n == 5 && memcmp(v, "large", 5) == 0);
    /* NULL with length 0 is empty: removes tags and keys */
    OK(rmq_message_set_tags_n(m, NULL, 0));
    EXPECT(view_is(rmq_message_tags, m, ""));
    OK(rmq_message_set_keys_n(m, NULL, 0));
    EXPECT(view_is(rmq_message_keys, m, ""));
    rmq_message_destroy(m);
}

static void lengths_are_checked_first(void) {
    rmq_message_t *m = known_message();
    char small[8] = "TagA";
    /* absurd lengths with an 8-byte buffer: refused before the buffer is read (ASan run) */
    REFUSED(rmq_message_set_tags_n(m, small, SIZE_MAX), "longer than 32767");
    REFUSED(rmq_message_set_keys_n(m, small, (size_t)PTRDIFF_MAX + 1), "longer than 32767");
    REFUSED(rmq_message_set_topic_n(m, small, 128), "longer than 127");
    REFUSED(rmq_message_set_property_n(m, small, SIZE_MAX, "v", 1), "longer than 32767");
    REFUSED(rmq_message_set_property_n(m, "n", 1, small, SIZE_MAX), "longer than 32767");
    /* through the NUL-terminated setters too */
    char *big = malloc(32769);
    memset(big, 'x', 32768);
    big[32768] = '\0';
    REFUSED(rmq_message_set_tags(m, big), "longer than 32767");
    REFUSED(rmq_message_set_property(m, "n", big), "longer than 32767");
    big[128] = '\0';
    REFUSED(rmq_message_set_topic(m, big), "longer than 127");
    /* values that fit alone but not together */
    big[20000] = '\0';
    memset(big, 'y', 20000);
    OK(rmq_message_set_property(m, "p1", big));
    REFUSED(rmq_message_set_property(m, "p2", big), "at most 32767");
    OK(rmq_message_set_property(m, "p1", "small"));
    free(big);

    /* body: lengths no buffer can have, or over the frame limit, never reach memory */
    const uint8_t buf[4] = {1, 2, 3, 4};
    EXPECT_STATUS(rmq_message_set_body(m, buf, SIZE_MAX), RMQ_ERR_MESSAGE_TOO_LARGE);
    EXPECT(strstr(rmq_last_error_message(), "frame limit") != NULL);
    EXPECT_STATUS(rmq_message_set_body(m, buf, (size_t)PTRDIFF_MAX + 1), RMQ_ERR_MESSAGE_TOO_LARGE);
    EXPECT_STATUS(rmq_message_set_body(m, buf, (size_t)16 * 1024 * 1024), RMQ_ERR_MESSAGE_TOO_LARGE);
    EXPECT_STATUS(rmq_message_set_body(m, NULL, SIZE_MAX), RMQ_ERR_MESSAGE_TOO_LARGE);
    const uint8_t *b;
    size_t n;
    EXPECT(rmq_message_body(m, &b, &n) == RMQ_OK && n == 4 && memcmp(b, "body", 4) == 0);
    rmq_message_destroy(m);
}

/* The proof against the broker: the injected tag is refused locally, the message keeps its
 * good tag, sends, and the stored copy has no DELAY property; a normal message still sends. */
static void injection_refused_against_broker(const char *namesrv, const char *topic) {
    char group[96];
    snprintf(group, sizeof group, "CTestInput_%d", (int)getpid());
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(p));

    rmq_message_t *m = rmq_message_create();
    OK(rmq_message_set_topic(m, topic));
    OK(rmq_message_set_body(m, (const uint8_t *)"injection", 9));
    EXPECT_STATUS(rmq_message_set_tags(m, INJECTED_TAG), RMQ_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rmq_message_set_tags_n(m, INJECTED_TAG, sizeof INJECTED_TAG - 1),
                  RMQ_ERR_INVALID_ARGUMENT);
    EXPECT(view_is(rmq_message_tags, m, ""));
    EXPECT(!has_property(m, "DELAY"));

    /* contrast: the same message with a normal tag sends and is stored as an ordinary one */
    OK(rmq_message_set_tags(m, "TagA"));
    rmq_send_result_t *r = NULL;
    OK(rmq_producer_send_sync(p, m, &r));
    if (r) {
        const char *id;
        size_t id_len;
        OK(rmq_send_result_offset_msg_id(r, &id, &id_len));
        char offset_id[80];
        snprintf(offset_id, sizeof offset_id, "%.*s", (int)id_len, id);
        rmq_message_t *back = NULL;
        OK(rmq_producer_view_message(p, offset_id, &back));
        if (back) {
            EXPECT(view_is(rmq_message_tags, back, "TagA"));
            EXPECT(!has_property(back, "DELAY"));
            rmq_message_destroy(back);
        }
        rmq_send_result_destroy(r);
    }
    rmq_message_destroy(m);
    rmq_producer_destroy(p);
}

void test_input(const char *namesrv, const char *topic, int *passed, int *failed) {
    n_passed = passed;
    n_failed = failed;
    separators_in_plain_setters();
    separators_and_nul_in_n_setters();
    lengths_are_checked_first();
    injection_refused_against_broker(namesrv, topic);
}
