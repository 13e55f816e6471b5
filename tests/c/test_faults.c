/* Fault tests of the rmq ABI against the real broker (RMQ_NAMESRV): running out of file
 * descriptors on first use, shutdown with thousands of async sends in flight, destroying one
 * producer from another's callback, fork(), two producers of one group in one client
 * instance, and a message used by another thread while a send of it waits.
 *
 * Some cases need a process in which rmq has never been used, or fork() themselves, so main()
 * makes no rmq call at all: it forks one child per case, before anything of rmq exists, and
 * collects the counts each child writes to a pipe. A child that hangs is killed by its alarm,
 * which is the only timing bound; no assertion depends on how fast anything is.
 *
 *   test_faults            every case
 *   test_faults b d        the named cases only */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Upper bound of one case; only a hang reaches it. */
#define CASE_SECONDS 90

/* ---------------------------------------------------------------------------------- helpers */

/* Polls until *counter >= want or `seconds` pass (a failure bound, not a timing assumption). */
static int wait_count(atomic_int *counter, int want, int seconds) {
    double until = now_s() + seconds;
    while (atomic_load(counter) < want && now_s() < until) sleep_ms(2);
    return atomic_load(counter);
}

/* A producer of `group`; instance_name and threads may be NULL (defaults). NULL on failure. */
static rmq_producer_t *new_producer(const char *group, const char *instance_name,
                                    const char *threads, int start) {
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", namesrv));
    OK(rmq_config_set(cfg, "producer.group", group));
    if (instance_name) OK(rmq_config_set(cfg, "instance-name", instance_name));
    if (threads) OK(rmq_config_set(cfg, "client.callback-executor-threads", threads));
    rmq_producer_t *p = NULL;
    OK(rmq_producer_create(cfg, &p));
    rmq_config_destroy(cfg);
    if (p && start) OK(rmq_producer_start(p));
    return p;
}

/* Sends until the (auto-created) topic takes messages. */
static void warm_up(rmq_producer_t *p, const char *topic) {
    rmq_message_t *m = text_message(topic, "warm-up");
    rmq_status_t s = send_retrying(p, m, NULL);
    EXPECT(s == RMQ_OK);
    rmq_message_destroy(m);
}

/* Whether the calling thread's name starts with `prefix` (callbacks: "rmq-callback-"). */
static int thread_named(const char *prefix) {
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0) return 0;
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* One slot per async send, handed to the library as user_data. */
struct slot {
    atomic_int calls;
    atomic_int status;
};

/* ---------------------------------------------------- a. out of file descriptors on first use */

/* The review found one EMFILE at the first epoll_create1 turned every later call into
 * RMQ_ERR_PANIC for the life of the process. Now the runtime is built on first use, a failure
 * is RMQ_ERR_RESOURCE, and the next call builds it again. */
static void case_fd_limit(void) {
    struct rlimit old;
    if (getrlimit(RLIMIT_NOFILE, &old) != 0) {
        EXPECT(!"getrlimit");
        return;
    }
    int lowest = open("/dev/null", O_RDONLY); /* the lowest free descriptor number */
    EXPECT(lowest >= 0);
    if (lowest < 0) return;
    close(lowest);

    char group[96], topic[96];
    unique(group, sizeof group, "CFaultFd");
    unique(topic, sizeof topic, "CFaultFdTopic");
    /* Plain data first: none of it needs a descriptor. */
    rmq_config_t *cfg = rmq_config_create();
    rmq_message_t *m = text_message(topic, "after EMFILE");

    struct rlimit tight = {(rlim_t)lowest, old.rlim_max};
    EXPECT(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    int probe = open("/dev/null", O_RDONLY);
    EXPECT(probe < 0 && errno == EMFILE); /* the limit bites */
    if (probe >= 0) close(probe);

    rmq_status_t set_ns = rmq_config_set(cfg, "name-server", namesrv);
    rmq_status_t set_group = rmq_config_set(cfg, "producer.group", group);
    rmq_producer_t *p = NULL;
    rmq_status_t create = rmq_producer_create(cfg, &p);
    rmq_status_t start = p ? rmq_producer_start(p) : -1;
    char why[256];
    snprintf(why, sizeof why, "%s", rmq_last_error_message());
    /* The next call tries again (and, still out of descriptors, fails the same way). */
    rmq_status_t again = p ? rmq_producer_start(p) : -1;
    rmq_status_t send = p ? rmq_producer_send_sync(p, m, NULL) : -1;

    EXPECT(setrlimit(RLIMIT_NOFILE, &old) == 0);
    printf("  a: soft fd limit %d: config_set %d/%d, create %d, start %d (%s), start again %d, "
           "send before start %d\n",
           lowest, set_ns, set_group, create, start, why, again, send);
    OK(set_ns);
    OK(set_group);
    OK(create);
    EXPECT(start == RMQ_ERR_RESOURCE);
    EXPECT(start != RMQ_ERR_PANIC && again != RMQ_ERR_PANIC);
    EXPECT(strstr(why, "open files") != NULL || strstr(why, "descriptor") != NULL);
    EXPECT(again == RMQ_ERR_RESOURCE);
    EXPECT(send == RMQ_ERR_INVALID_STATE); /* never started */

    /* Descriptors are back: the same producer starts and sends; a new one works too. */
    if (p) {
        OK(rmq_producer_start(p));
        warm_up(p, topic);
        OK(rmq_producer_send_sync(p, m, NULL));
        OK(rmq_producer_destroy(p));
    }
    char group2[96];
    unique(group2, sizeof group2, "CFaultFd2");
    rmq_producer_t *p2 = new_producer(group2, NULL, NULL, 1);
    if (p2) {
        OK(rmq_producer_send_sync(p2, m, NULL));
        OK(rmq_producer_destroy(p2));
    }
    rmq_config_destroy(cfg);
    rmq_message_destroy(m);
}

/* ------------------------------------------------------- b. shutdown with sends in flight */

#define B_SENDS 5000
#define B_PROBES 16

static struct slot b_slots[B_SENDS];
static atomic_int b_done;

static void b_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct slot *s = user_data;
    atomic_store(&s->status, params->status);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&b_done, 1);
}

/* How many messages the broker holds for `topic`, read through a producer of another client
 * instance: B_PROBES sync sends go round-robin over every queue, and for each queue the last
 * offset seen + 1 is the queue's size when that probe was stored. The probes are counted too. */
static long stored_count(rmq_producer_t *probe, const char *topic, int *queues) {
    int64_t last[64];
    for (int i = 0; i < 64; i++) last[i] = -1;
    rmq_message_t *m = text_message(topic, "probe");
    for (int i = 0; i < B_PROBES; i++) {
        rmq_send_result_t *r = NULL;
        rmq_status_t s = rmq_producer_send_sync(probe, m, &r);
        EXPECT(s == RMQ_OK);
        if (s != RMQ_OK) continue;
        int32_t q = -1;
        int64_t off = -1;
        OK(rmq_send_result_queue_id(r, &q));
        OK(rmq_send_result_queue_offset(r, &off));
        EXPECT(q >= 0 && q < 64);
        if (q >= 0 && q < 64 && off > last[q]) last[q] = off;
        rmq_send_result_destroy(r);
    }
    rmq_message_destroy(m);
    long total = 0;
    *queues = 0;
    for (int i = 0; i < 64; i++) {
        if (last[i] >= 0) {
            total += (long)last[i] + 1;
            (*queues)++;
        }
    }
    return total;
}

/* The review found 10 000 in-flight async sends all completed OK after rmq_producer_shutdown
 * returned: the connection was dialled again. Now shutdown fails every pending send at once with
 * RMQ_ERR_CANCELLED and dials nothing; each callback still runs exactly once. */
static void case_shutdown_in_flight(void) {
    char group[96], probe_group[96], topic[96], inst[96], probe_inst[96];
    unique(group, sizeof group, "CFaultShut");
    unique(probe_group, sizeof probe_group, "CFaultShutProbe");
    unique(topic, sizeof topic, "CFaultShutTopic");
    unique(inst, sizeof inst, "faults-b");
    unique(probe_inst, sizeof probe_inst, "faults-b-probe");
    /* Own instances: the producer's shutdown closes its instance's connections, the probe's
     * connections are its own. */
    rmq_producer_t *p = new_producer(group, inst, NULL, 1);
    rmq_producer_t *probe = new_producer(probe_group, probe_inst, NULL, 1);
    if (!p || !probe) return;
    warm_up(p, topic);
    warm_up(probe, topic);

    int q0, q1, q2;
    long s0 = stored_count(probe, topic, &q0);

    rmq_message_t *m = text_message(topic, "in flight at shutdown");
    int accepted = 0, refused = 0;
    for (int i = 0; i < B_SENDS; i++) {
        if (rmq_producer_send_async(p, m, b_on_sent, &b_slots[i]) == RMQ_OK) {
            accepted++;
        } else {
            refused++;
        }
    }
    OK(rmq_producer_shutdown(p));
    int done_at_shutdown = atomic_load(&b_done);
    long s1 = stored_count(probe, topic, &q1);
    double t_shut = now_s();

    /* Sends after shutdown are refused and never call back. */
    EXPECT_STATUS(rmq_producer_send_async(p, m, b_on_sent, &b_slots[0]), RMQ_ERR_INVALID_STATE);
    EXPECT_STATUS(rmq_producer_send_sync(p, m, NULL), RMQ_ERR_INVALID_STATE);

    double t0 = now_s();
    OK(rmq_producer_destroy(p)); /* waits for every callback */
    double destroy_s = now_s() - t0;
    int done_at_destroy = atomic_load(&b_done);

    /* 2 s later the broker holds exactly the probes more: nothing of p was stored meanwhile. */
    double rest = 2.0 - (now_s() - t_shut);
    if (rest > 0) sleep_ms((long)(rest * 1000));
    long s2 = stored_count(probe, topic, &q2);

    int ok = 0, cancelled = 0, other = 0, not_once = 0;
    for (int i = 0; i < accepted; i++) {
        if (atomic_load(&b_slots[i].calls) != 1) not_once++;
        rmq_status_t s = atomic_load(&b_slots[i].status);
        if (s == RMQ_OK) {
            ok++;
        } else if (s == RMQ_ERR_CANCELLED) {
            cancelled++;
        } else {
            if (other++ < 5) fprintf(stderr, "  b: send %d ended with %s\n", i, rmq_status_name(s));
        }
    }
    long stored_by_p = s1 - s0 - B_PROBES;
    printf("  b: %d of %d accepted (%d refused); at shutdown %d callbacks had run; after destroy "
           "(%.3f s) %d: %d OK, %d cancelled, %d other; broker stored %ld of them "
           "(probe counts %ld -> %ld -> %ld over %d/%d/%d queues)\n",
           accepted, B_SENDS, refused, done_at_shutdown, destroy_s, done_at_destroy, ok,
           cancelled, other, stored_by_p, s0, s1, s2, q0, q1, q2);

    EXPECT(accepted == B_SENDS);
    EXPECT(done_at_destroy == accepted); /* destroy returned after the last callback */
    EXPECT(not_once == 0);
    EXPECT(atomic_load(&b_done) == accepted); /* none ran twice, none ran late */
    EXPECT(other == 0);
    EXPECT(ok + cancelled == accepted);
    EXPECT(cancelled > 0);
    EXPECT(destroy_s < 5.0);
    EXPECT(q0 > 0 && q0 == q1 && q1 == q2); /* every probe round saw every queue */
    EXPECT(stored_by_p >= ok);              /* every OK was stored */
    EXPECT(s2 - s1 == B_PROBES);            /* the count stopped growing at shutdown */
    rmq_message_destroy(m);
    OK(rmq_producer_destroy(probe));
}

/* A name server that accepts connections (the kernel does, from the backlog) and never
 * answers holds every send at its route lookup: all are in flight when shutdown comes, and all
 * must end with RMQ_ERR_CANCELLED at once, long before their timeout. Shutdown closes the
 * connections right after firing the cancel; a task woken by both used to pick either at random,
 * and about one round in three had some RMQ_ERR_CONNECTION_CLOSED: so several rounds. */
#define B2_ROUNDS 20
#define B2_SENDS 200

static struct slot b2_slots[B2_SENDS];
static atomic_int b2_done;

static void b2_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct slot *s = user_data;
    atomic_store(&s->status, params->status);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&b2_done, 1);
}

static void case_shutdown_silent_name_server(void) {
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT(silent >= 0 && bind(silent, (struct sockaddr *)&addr, sizeof addr) == 0 &&
           listen(silent, 64) == 0 && getsockname(silent, (struct sockaddr *)&addr, &len) == 0);
    char ns[64];
    snprintf(ns, sizeof ns, "127.0.0.1:%d", (int)ntohs(addr.sin_port));
    int rounds_clean = 0, cancelled = 0, other = 0, not_once = 0;
    double slowest = 0;
    rmq_message_t *m = text_message("CFaultSilentTopic", "never routed");
    for (int round = 0; round < B2_ROUNDS; round++) {
        char group[96];
        unique(group, sizeof group, "CFaultSilent");
        rmq_config_t *cfg = rmq_config_create();
        OK(rmq_config_set(cfg, "name-server", ns));
        OK(rmq_config_set(cfg, "producer.group", group));
        OK(rmq_config_set(cfg, "producer.send-message-timeout", "20000"));
        OK(rmq_config_set(cfg, "client.api-timeout", "20000"));
        rmq_producer_t *p = NULL;
        OK(rmq_producer_create(cfg, &p));
        rmq_config_destroy(cfg);
        if (!p) break;
        OK(rmq_producer_start(p));
        memset(b2_slots, 0, sizeof b2_slots);
        atomic_store(&b2_done, 0);
        int accepted = 0;
        for (int i = 0; i < B2_SENDS; i++) {
            if (rmq_producer_send_async(p, m, b2_on_sent, &b2_slots[i]) == RMQ_OK) accepted++;
        }
        EXPECT(accepted == B2_SENDS);
        double t0 = now_s();
        OK(rmq_producer_shutdown(p));
        OK(rmq_producer_destroy(p));
        double took = now_s() - t0;
        if (took > slowest) slowest = took;
        int round_other = 0;
        for (int i = 0; i < accepted; i++) {
            if (atomic_load(&b2_slots[i].calls) != 1) not_once++;
            rmq_status_t st = atomic_load(&b2_slots[i].status);
            if (st == RMQ_ERR_CANCELLED) {
                cancelled++;
            } else {
                if (round_other++ == 0) {
                    fprintf(stderr, "  b2: round %d: a send ended with %s\n", round, rmq_status_name(st));
                }
                other++;
            }
        }
        if (round_other == 0) rounds_clean++;
        EXPECT(atomic_load(&b2_done) == accepted);
    }
    printf("  b2: %d rounds of %d sends: %d cancelled, %d otherwise; %d rounds all cancelled; "
           "shutdown + destroy took at most %.3f s\n",
           B2_ROUNDS, B2_SENDS, cancelled, other, rounds_clean, slowest);
    EXPECT(cancelled == B2_ROUNDS * B2_SENDS);
    EXPECT(other == 0);
    EXPECT(not_once == 0);
    EXPECT(slowest < 10.0); /* not the 20 s timeout */
    rmq_message_destroy(m);
    close(silent);
}

/* --------------------------------------------- c. destroy(B) from a callback of producer A */

#define C_SENDS 1000

struct c_run {
    rmq_producer_t *b;
    struct slot slots[C_SENDS];
    atomic_int issued;     /* B's sends are all issued; the count is in accepted */
    atomic_int accepted;
    atomic_int destroyed;  /* destroy(B) returned, inside A's callback */
    atomic_int b_total;
    atomic_int b_late;     /* B callbacks that ran after destroy(B) returned */
    atomic_int b_on_a_thread;
    atomic_int b_misnamed; /* B callbacks on a thread not named rmq-callback-N */
    atomic_int a_calls;
    atomic_int a_misnamed;
    _Atomic(pthread_t) a_thread;
    int destroy_status;
    int b_total_at_return;
    int b_outstanding_at_destroy;
};

static struct c_run *c_cur;

static void c_on_b_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct c_run *run = c_cur;
    struct slot *s = user_data;
    if (atomic_load(&run->destroyed)) atomic_fetch_add(&run->b_late, 1);
    if (!thread_named("rmq-callback-")) atomic_fetch_add(&run->b_misnamed, 1);
    if (pthread_equal(pthread_self(), atomic_load(&run->a_thread))) {
        atomic_fetch_add(&run->b_on_a_thread, 1);
    }
    atomic_store(&s->status, params->status);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&run->b_total, 1);
}

static void c_on_a_sent(const rmq_send_callback_params_t *params, void *user_data) {
    struct c_run *run = user_data;
    (void)params;
    if (!thread_named("rmq-callback-")) atomic_fetch_add(&run->a_misnamed, 1);
    atomic_store(&run->a_thread, pthread_self());
    wait_count(&run->issued, 1, 30); /* so B surely has sends in flight */
    run->b_outstanding_at_destroy = atomic_load(&run->accepted) - atomic_load(&run->b_total);
    run->destroy_status = rmq_producer_destroy(run->b);
    run->b_total_at_return = atomic_load(&run->b_total);
    atomic_store(&run->destroyed, 1);
    atomic_fetch_add(&run->a_calls, 1);
}

/* The review found rmq_producer_destroy(B) called from producer A's callback returned while B's
 * callbacks were still to run. Now it waits for them, running them itself when they are queued
 * behind it on the same executor thread. */
static void destroy_from_other_callback(const char *topic, const char *threads, int shared) {
    char ga[96], gb[96], ia[96], ib[96];
    unique(ga, sizeof ga, "CFaultDestroyA");
    unique(gb, sizeof gb, "CFaultDestroyB");
    unique(ia, sizeof ia, "faults-c-a");
    unique(ib, sizeof ib, "faults-c-b");
    struct c_run *run = calloc(1, sizeof *run);
    c_cur = run;
    rmq_producer_t *a = new_producer(ga, ia, threads, 1);
    run->b = new_producer(gb, shared ? ia : ib, threads, 1);
    if (!a || !run->b) return;
    warm_up(a, topic);
    warm_up(run->b, topic);

    rmq_message_t *m = text_message(topic, "destroy from another callback");
    OK(rmq_producer_send_async(a, m, c_on_a_sent, run));
    int accepted = 0;
    for (int i = 0; i < C_SENDS; i++) {
        if (rmq_producer_send_async(run->b, m, c_on_b_sent, &run->slots[i]) == RMQ_OK) accepted++;
    }
    atomic_store(&run->accepted, accepted);
    atomic_store(&run->issued, 1);
    EXPECT(wait_count(&run->a_calls, 1, 60) == 1);

    int ok = 0, cancelled = 0, other = 0, not_once = 0;
    for (int i = 0; i < accepted; i++) {
        if (atomic_load(&run->slots[i].calls) != 1) not_once++;
        rmq_status_t s = atomic_load(&run->slots[i].status);
        if (s == RMQ_OK) {
            ok++;
        } else if (s == RMQ_ERR_CANCELLED) {
            cancelled++;
        } else {
            other++;
        }
    }
    printf("  c: threads %s, %s instance: %d B sends, %d pending at destroy(B); when it returned "
           "%d had called back (%d OK, %d cancelled, %d other), %d of them on A's callback thread\n",
           threads, shared ? "one shared" : "separate", accepted, run->b_outstanding_at_destroy,
           run->b_total_at_return, ok, cancelled, other, atomic_load(&run->b_on_a_thread));
    EXPECT(accepted == C_SENDS);
    EXPECT(run->destroy_status == RMQ_OK);
    EXPECT(run->b_total_at_return == accepted);
    EXPECT(atomic_load(&run->b_late) == 0);
    EXPECT(not_once == 0);
    EXPECT(ok + cancelled == accepted);
    EXPECT(atomic_load(&run->b_misnamed) == 0);
    EXPECT(atomic_load(&run->a_misnamed) == 0);
    if (shared && strcmp(threads, "1") == 0) {
        /* One thread, and A's callback holds it: whatever B still owed ran on it, inside destroy. */
        EXPECT(atomic_load(&run->b_on_a_thread) == run->b_outstanding_at_destroy);
    }
    if (!shared) EXPECT(atomic_load(&run->b_on_a_thread) == 0); /* B has its own executor */
    /* A was not affected, and B is gone. */
    OK(rmq_producer_send_sync(a, m, NULL));
    EXPECT_STATUS(rmq_producer_send_sync(run->b, m, NULL), RMQ_ERR_INVALID_HANDLE);
    OK(rmq_producer_destroy(a));
    EXPECT(atomic_load(&run->b_total) == accepted);
    rmq_message_destroy(m);
    free(run);
}

static void case_destroy_from_other_callback(void) {
    char topic[96];
    unique(topic, sizeof topic, "CFaultDestroyTopic");
    destroy_from_other_callback(topic, "1", 1);
    destroy_from_other_callback(topic, "1", 0);
    destroy_from_other_callback(topic, "4", 1);
    destroy_from_other_callback(topic, "4", 0);
}

/* ------------------------------------------------------------------------------- d. fork */

static atomic_int d_async_calls;

static void d_on_sent(const rmq_send_callback_params_t *params, void *user_data) {
    (void)params;
    (void)user_data;
    atomic_fetch_add(&d_async_calls, 1);
}

/* In the child: the parent's producer refuses with RMQ_ERR_FORKED, destroying it frees only the
 * handle, and a producer made here works. Exit code 0 if every check passed. */
static void fork_child(rmq_producer_t *old, const char *group, const char *topic, int report) {
    passed = failed = 0;
    alarm(30);
    rmq_message_t *m = text_message(topic, "from the child");
    rmq_send_result_t *r = NULL;
    EXPECT_STATUS(rmq_producer_send_sync(old, m, &r), RMQ_ERR_FORKED);
    EXPECT(strstr(rmq_last_error_message(), "fork") != NULL);
    EXPECT_STATUS(rmq_producer_send_async(old, m, d_on_sent, NULL), RMQ_ERR_FORKED);
    EXPECT_STATUS(rmq_producer_send_oneway(old, m), RMQ_ERR_FORKED);
    EXPECT_STATUS(rmq_producer_start(old), RMQ_ERR_FORKED);
    EXPECT_STATUS(rmq_producer_shutdown(old), RMQ_ERR_FORKED);
    OK(rmq_producer_destroy(old));
    EXPECT_STATUS(rmq_producer_send_sync(old, m, NULL), RMQ_ERR_INVALID_HANDLE);

    double t0 = now_s();
    rmq_producer_t *p = new_producer(group, NULL, NULL, 1); /* the same configuration */
    if (p) {
        OK(rmq_producer_send_sync(p, m, &r));
        if (r) {
            const char *t;
            size_t n;
            OK(rmq_send_result_topic(r, &t, &n));
            EXPECT(n == strlen(topic) && memcmp(t, topic, n) == 0);
            rmq_send_result_destroy(r);
        }
        OK(rmq_producer_send_async(p, m, d_on_sent, NULL));
        EXPECT(wait_count(&d_async_calls, 1, 10) == 1); /* only the new producer's send */
        OK(rmq_producer_destroy(p));
    }
    double took = now_s() - t0;
    EXPECT(took < 10.0);
    EXPECT(atomic_load(&d_async_calls) == 1);
    rmq_message_destroy(m);
    printf("  d: child %d: new producer sent in %.3f s; %d passed, %d failed\n", (int)getpid(),
           took, passed, failed);
    fflush(stdout);
    int counts[2] = {passed, failed};
    if (write(report, counts, sizeof counts) != (ssize_t)sizeof counts) failed++;
    /* _exit: the parent's objects the child must not touch are deliberately left as they are. */
    _exit(failed == 0 ? 0 : 1);
}

static void case_fork(void) {
    char group[96], topic[96];
    unique(group, sizeof group, "CFaultFork");
    unique(topic, sizeof topic, "CFaultForkTopic");
    rmq_producer_t *p = new_producer(group, NULL, NULL, 1);
    if (!p) return;
    warm_up(p, topic);
    rmq_message_t *m = text_message(topic, "from the parent");
    OK(rmq_producer_send_sync(p, m, NULL));

    int fds[2];
    EXPECT(pipe(fds) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    EXPECT(child >= 0);
    if (child == 0) {
        close(fds[0]);
        fork_child(p, group, topic, fds[1]);
    }
    close(fds[1]);
    int counts[2] = {0, 1};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int wstatus = 0;
    EXPECT(waitpid(child, &wstatus, 0) == child);
    EXPECT(got == (ssize_t)sizeof counts);
    EXPECT(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    passed += counts[0];
    failed += counts[1];

    /* The child did not break the parent's connection: replies still reach their senders. */
    for (int i = 0; i < 5; i++) {
        rmq_send_result_t *r = NULL;
        OK(rmq_producer_send_sync(p, m, &r));
        rmq_send_result_destroy(r);
    }
    OK(rmq_producer_send_async(p, m, d_on_sent, NULL));
    EXPECT(wait_count(&d_async_calls, 1, 10) == 1);
    OK(rmq_producer_destroy(p));
    rmq_message_destroy(m);
}

/* ----------------------------------------------- e. one group twice in one client instance */

static void case_group_twice(void) {
    char group[96], inst[96], other_inst[96];
    unique(group, sizeof group, "CFaultTwice");
    unique(inst, sizeof inst, "faults-e");
    unique(other_inst, sizeof other_inst, "faults-e-other");
    rmq_producer_t *first = new_producer(group, inst, NULL, 1);
    rmq_producer_t *second = new_producer(group, inst, NULL, 0);
    rmq_producer_t *elsewhere = new_producer(group, other_inst, NULL, 0);
    if (!first || !second || !elsewhere) return;
    EXPECT_STATUS(rmq_producer_start(second), RMQ_ERR_INVALID_STATE);
    EXPECT(strstr(rmq_last_error_message(), "already registered") != NULL);
    OK(rmq_producer_start(elsewhere)); /* another instance: allowed */
    OK(rmq_producer_destroy(second));
    OK(rmq_producer_destroy(elsewhere));
    OK(rmq_producer_destroy(first));
    /* Once the first has left, the group may join that instance again. */
    rmq_producer_t *again = new_producer(group, inst, NULL, 1);
    OK(rmq_producer_destroy(again));
}

/* ----------------------------------------------------------------------------------- main */

/* f. The message is not locked while a send of it waits on the network: another thread reads
 * and changes it meanwhile. The send goes to a name server that never answers, so it is still
 * waiting (its timeout is 20 s) when the other thread's calls return; before, those calls
 * blocked until the send gave up. */
struct f_send {
    rmq_producer_t *producer;
    rmq_message_t *message;
    atomic_int done;
    rmq_status_t status;
};

static void *f_sender(void *arg) {
    struct f_send *f = arg;
    f->status = rmq_producer_send_sync(f->producer, f->message, NULL);
    atomic_store(&f->done, 1);
    return NULL;
}

static void case_message_usable_during_send(void) {
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT(silent >= 0 && bind(silent, (struct sockaddr *)&addr, sizeof addr) == 0 &&
           listen(silent, 8) == 0 && getsockname(silent, (struct sockaddr *)&addr, &len) == 0);
    char ns[64];
    snprintf(ns, sizeof ns, "127.0.0.1:%d", (int)ntohs(addr.sin_port));
    rmq_config_t *cfg = rmq_config_create();
    OK(rmq_config_set(cfg, "name-server", ns));
    OK(rmq_config_set(cfg, "producer.group", "CFaultMessageLock"));
    OK(rmq_config_set(cfg, "producer.send-message-timeout", "20000"));
    OK(rmq_config_set(cfg, "client.api-timeout", "20000"));
    struct f_send f = {NULL, text_message("CFaultLockTopic", "first body"), 0, -1};
    OK(rmq_producer_create(cfg, &f.producer));
    rmq_config_destroy(cfg);
    OK(rmq_producer_start(f.producer));
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, f_sender, &f) == 0);
    sleep_ms(300); /* the send is now waiting for its route */
    const char *view;
    size_t view_len;
    OK(rmq_message_topic(f.message, &view, &view_len));
    OK(rmq_message_set_body(f.message, (const uint8_t *)"second body", 11));
    OK(rmq_message_set_tags(f.message, "Changed"));
    EXPECT(atomic_load(&f.done) == 0); /* those calls did not wait for the send */
    OK(rmq_producer_shutdown(f.producer)); /* ends the waiting send */
    pthread_join(t, NULL);
    EXPECT(f.status == RMQ_ERR_CANCELLED); /* ended by the shutdown, and said so */
    OK(rmq_producer_destroy(f.producer));
    rmq_message_destroy(f.message);
    close(silent);
}

static const struct {
    const char *name;
    const char *what;
    void (*run)(void);
} CASES[] = {
    {"a", "out of file descriptors on first use", case_fd_limit},
    {"b", "shutdown with async sends in flight", case_shutdown_in_flight},
    {"b2", "shutdown with sends held by a silent name server", case_shutdown_silent_name_server},
    {"c", "destroy(B) from a callback of A", case_destroy_from_other_callback},
    {"d", "fork()", case_fork},
    {"e", "one group twice in one client instance", case_group_twice},
    {"f", "a message stays usable while a send of it waits", case_message_usable_during_send},
};

/* Runs case `i` in a child forked while this process has not used rmq; adds its counts. */
static int run_case(size_t i, int *total_passed, int *total_failed) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 0;
    }
    if (child == 0) {
        close(fds[0]);
        alarm(CASE_SECONDS);
        CASES[i].run();
        int counts[2] = {passed, failed};
        if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts) failed++;
        fflush(stdout);
        exit(failed == 0 ? 0 : 1);
    }
    close(fds[1]);
    int counts[2] = {0, 0};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int wstatus = 0;
    waitpid(child, &wstatus, 0);
    int clean = got == (ssize_t)sizeof counts && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 &&
                counts[1] == 0;
    *total_passed += counts[0];
    *total_failed += counts[1];
    if (WIFSIGNALED(wstatus)) {
        fprintf(stderr, "case %s: killed by signal %d%s\n", CASES[i].name, WTERMSIG(wstatus),
                WTERMSIG(wstatus) == SIGALRM ? " (hung)" : "");
    } else if (got != (ssize_t)sizeof counts || (WEXITSTATUS(wstatus) != 0 && counts[1] == 0)) {
        fprintf(stderr, "case %s: exited with %d before reporting its checks\n", CASES[i].name,
                WEXITSTATUS(wstatus));
    }
    if (!clean) (*total_failed)++;
    printf("%s %s: %s (%d checks, %.1f s)\n", clean ? "ok  " : "FAIL", CASES[i].name,
           CASES[i].what, counts[0] + counts[1], now_s() - t0);
    return 1;
}

int main(int argc, char **argv) {
    namesrv = getenv("RMQ_NAMESRV");
    if (!namesrv) {
        fprintf(stderr, "RMQ_NAMESRV is not set: run via `make test`, or start a cluster with "
                        "scripts/rocketmq-local.sh up and set RMQ_NAMESRV=127.0.0.1:9876\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int total_passed = 0, total_failed = 0;
    size_t ncases = sizeof CASES / sizeof CASES[0];
    for (size_t i = 0; i < ncases; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], CASES[i].name) == 0;
        if (wanted && !run_case(i, &total_passed, &total_failed)) total_failed++;
    }
    printf("%d passed, %d failed\n", total_passed, total_failed);
    return total_failed == 0 ? 0 : 1;
}
