/* storebench - the SQLite history store's own append rate (store_sqlite.c):
 * N appends of S bytes spread over R rooms by one thread (as a room's owner
 * worker does), timed until flush() returns, i.e. until everything is
 * committed in batches by the writer thread. Also the same run with a
 * per-message commit (batch of 1) for scale. Prints one line per run and a
 * JSON line with --json.
 *
 * usage: storebench [-n N] [-s BYTES] [-r ROOMS] [-d DIR] [--json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_sqlite.h"

static void post(void *ctx, int worker, void (*fn)(void *), void *arg)
{
    (void)ctx;
    (void)worker;
    fn(arg); /* never used: this benchmark does not read */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run(const char *dir, const char *name, long n, size_t size, int rooms, uint32_t batch)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.db", dir, name);
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    o.path = path;
    o.batch_max = batch;
    o.keep = 0;
    o.max_age_ms = 0;
    o.pending_max = (uint32_t)n + 1000;
    struct store_host host = {.ctx = NULL, .nworkers = 1, .post = post};
    struct store *st = NULL;
    char err[512];
    if (store_sqlite_open(&o, &host, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "storebench: %s\n", err);
        exit(1);
    }
    char *payload = malloc(size);
    memset(payload, 'x', size);
    char room[32];
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int r = (int)(i % rooms);
        snprintf(room, sizeof(room), "room%d", r);
        struct store_msg m = {.seq = (uint64_t)(i / rooms) + 1,
                              .ts_ms = (int64_t)(t0 * 1000),
                              .data = payload,
                              .len = size};
        st->ops->append(st, room, strlen(room), &m, NULL);
    }
    st->ops->flush(st);
    double dt = now() - t0;
    struct store_sqlite_counters c;
    store_sqlite_counters(st, &c);
    st->ops->destroy(st);
    free(payload);
    if (c.committed < (uint64_t)n) {
        fprintf(stderr, "storebench: only %llu of %ld committed\n", (unsigned long long)c.committed,
                n);
        exit(1);
    }
    fprintf(stderr, "storebench: %-8s %ld x %zu B in %d rooms: %.3f s, %.0f msg/s, %llu commits\n",
            name, n, size, rooms, dt, (double)n / dt, (unsigned long long)c.batches);
    return (double)n / dt;
}

int main(int argc, char **argv)
{
    long n = 200000;
    size_t size = 100;
    int rooms = 10, json = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            size = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            rooms = atoi(argv[++i]);
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: storebench [-n N] [-s BYTES] [-r ROOMS] [-d DIR] [--json]\n");
            return 2;
        }
    }
    char tmpl[] = "/tmp/storebench.XXXXXX";
    if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL)
        return 1;
    if (n < 1 || rooms < 1 || size < 1)
        return 2;
    double batched = run(dir, "batched", n, size, rooms, 1000);
    long n1 = n / 20 > 0 ? n / 20 : 1;
    double single = run(dir, "single", n1, size, rooms, 1);
    if (json)
        printf("{\"appends_per_s_batched\":%.0f,\"appends_per_s_single\":%.0f,\"n\":%ld,"
               "\"size\":%zu,\"rooms\":%d}\n",
               batched, single, n, size, rooms);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (tmpl[0] && strcmp(dir, tmpl) == 0 && system(cmd) != 0)
        return 1;
    return 0;
}
