/* Sync send benchmark through the C ABI: N sends of S bytes from one thread.
 * Prints throughput, latency percentiles, client CPU per message and context switches per send.
 *   sync_send [name-server] [topic] [count] [size] [key=value ...]
 * The key=value arguments are further configuration (e.g. client.tls.enable=true, ACL keys).
 * Measure syscalls separately:  strace -c -f ./sync_send ... */
#define _DEFAULT_SOURCE
#include "rmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <dirent.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double cpu_us(const struct rusage *u) {
    return u->ru_utime.tv_sec * 1e6 + u->ru_utime.tv_usec + u->ru_stime.tv_sec * 1e6 + u->ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Context switches of every thread of this process since it started, per send, from
 * /proc/self/task/<tid>/status: shows which thread sleeps and wakes for each send. */
static void per_thread_switches(long sends) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    printf("  per thread (whole run incl. warm-up, per send): voluntary / involuntary switches\n");
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[64] = "?", line[256];
        long vol = 0, invol = 0;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
            fclose(f);
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "voluntary_ctxt_switches: %ld", &vol);
            sscanf(line, "nonvoluntary_ctxt_switches: %ld", &invol);
        }
        fclose(f);
        printf("    %-16s %.2f / %.2f\n", name, (double)vol / sends, (double)invol / sends);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    const char *ns = argc > 1 ? argv[1] : "127.0.0.1:9876";
    const char *topic = argc > 2 ? argv[2] : "RmqBenchSync";
    int count = argc > 3 ? atoi(argv[3]) : 10000;
    size_t size = argc > 4 ? (size_t)atol(argv[4]) : 1024;
    int warmup = 1000;

    rmq_config_t *cfg = rmq_config_create();
    rmq_config_set(cfg, "name-server", ns);
    rmq_config_set(cfg, "producer.group", "RmqBenchGroup");
    for (int i = 5; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = '\0';
        if (rmq_config_set(cfg, argv[i], eq + 1) != RMQ_OK) {
            fprintf(stderr, "config: %s\n", rmq_last_error_message());
            return 1;
        }
    }
    rmq_producer_t *p = NULL;
    if (rmq_producer_create(cfg, &p) != RMQ_OK || rmq_producer_start(p) != RMQ_OK) {
        fprintf(stderr, "producer: %s\n", rmq_last_error_message());
        return 1;
    }
    rmq_config_destroy(cfg);
    uint8_t *body = malloc(size);
    memset(body, 'x', size);
    rmq_message_t *m = rmq_message_create();
    rmq_message_set_topic(m, topic);
    rmq_message_set_body(m, body, size);

    for (int i = 0; i < warmup; i++) {
        if (rmq_producer_send_sync(p, m, NULL) != RMQ_OK) {
            fprintf(stderr, "warm-up send: %s\n", rmq_last_error_message());
            return 1;
        }
    }
    double *lat = malloc(sizeof(double) * count);
    int errors = 0;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    double start = now_us();
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        if (rmq_producer_send_sync(p, m, NULL) != RMQ_OK) errors++;
        lat[i] = now_us() - t0;
    }
    double elapsed = now_us() - start;
    getrusage(RUSAGE_SELF, &after);
    qsort(lat, count, sizeof(double), cmp_double);
    long csw = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw);
    printf("sync_send: %d msgs x %zu B, errors %d\n", count, size, errors);
    printf("  throughput   %.0f msg/s\n", count / (elapsed / 1e6));
    printf("  latency us   p50 %.1f  p99 %.1f  p999 %.1f  max %.1f\n", lat[count / 2],
           lat[(int)(count * 0.99)], lat[(int)(count * 0.999)], lat[count - 1]);
    printf("  client cpu   %.1f us/msg (user+sys, whole process)\n", (cpu_us(&after) - cpu_us(&before)) / count);
    printf("  ctx switches %.2f per send (voluntary+involuntary, whole process)\n", (double)csw / count);
    per_thread_switches(count + warmup);
    rmq_message_destroy(m);
    rmq_producer_destroy(p);
    free(body);
    free(lat);
    return errors ? 1 : 0;
}
