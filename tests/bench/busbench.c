/* busbench.c - the cluster bus alone: N nodes (bus_redis instances in this
 * process, each with its own bus thread and one "worker" thread that runs
 * what the bus posts) against a redis-server, one room with an interest on
 * every node, M publishes spread over the nodes with at most W in flight.
 *
 *   busbench [-n nodes] [-m messages] [-w window] [-s bytes] [-p redis-port]
 *
 * Without -p it starts its own redis-server on a free port in a temp dir
 * (--save "" --appendonly no) and stops it at the end. Reports, as one JSON
 * line: publishes/s; deliveries per second per node; the process's CPU (bus
 * threads, workers, the publishing loop) per delivery and deliveries per
 * CPU-second; Redis CPU per publish
 * (INFO cpu); Redis commands per publish and client calls per publish (INFO
 * commandstats); publish->ack and publish->delivery p50/p99.
 * Only 127.0.0.1; bounded by -m.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "bus_redis.h"
#include "hist.h"
#include "redis_server.h"

#define MAXN 16

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
};

struct node {
    struct bus *bus;
    pthread_t thr;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct job *head, *tail;
    int stop;
    uint64_t delivered; /* worker thread only */
    uint64_t last_seq;
    uint64_t gaps;
    struct hist lat; /* publish -> delivery, ns */
    atomic_ullong done;
};

static struct node nodes[MAXN];
static atomic_long inflight;
static struct hist ack_lat; /* main... recorded on node 0's worker under ack_lock */
static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong acked, denied;

static void post(void *ctx, int worker, void (*fn)(void *), void *arg)
{
    struct node *nd = ctx;
    struct job *j = malloc(sizeof(*j));
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&nd->lock);
    if (nd->tail)
        nd->tail->next = j;
    else
        nd->head = j;
    nd->tail = j;
    pthread_cond_signal(&nd->cv);
    pthread_mutex_unlock(&nd->lock);
}

static void *worker(void *arg)
{
    struct node *nd = arg;
    for (;;) {
        pthread_mutex_lock(&nd->lock);
        while (nd->head == NULL && !nd->stop)
            pthread_cond_wait(&nd->cv, &nd->lock);
        struct job *j = nd->head;
        nd->head = nd->tail = NULL;
        int stop = nd->stop;
        pthread_mutex_unlock(&nd->lock);
        while (j) {
            struct job *n = j->next;
            j->fn(j->arg);
            free(j);
            j = n;
        }
        if (stop)
            return NULL;
    }
}

static int owner_of(void *ctx, const char *room, size_t len)
{
    return 0;
}

static void deliver(void *ctx, const char *room, size_t len, const struct store_msg *m,
                    uint64_t exclude)
{
    struct node *nd = ctx;
    uint64_t t0 = 0;
    if (m->len >= 16 && memcmp(m->data, "{\"t\":", 5) == 0)
        t0 = strtoull(m->data + 5, NULL, 10);
    if (t0)
        hist_record(&nd->lat, now_ns() - t0);
    if (nd->last_seq && m->seq != nd->last_seq + 1)
        nd->gaps++;
    nd->last_seq = m->seq;
    nd->delivered++;
    atomic_fetch_add(&nd->done, 1);
}

static long deliver_user(void *ctx, const char *u, size_t ul, const void *d, size_t l, int bin)
{
    return 0;
}

static void epoch_changed(void *ctx, const char *room, size_t len, const char *epoch)
{
}

struct ackctx {
    uint64_t t0;
};

static void on_ack(void *ud, int status, uint64_t seq)
{
    struct ackctx *a = ud;
    if (status == 0) {
        pthread_mutex_lock(&ack_lock);
        hist_record(&ack_lat, now_ns() - a->t0);
        pthread_mutex_unlock(&ack_lock);
        atomic_fetch_add(&acked, 1);
    } else {
        atomic_fetch_add(&denied, 1);
    }
    atomic_fetch_sub(&inflight, 1);
    free(a);
}

static int g_port;

static redisContext *rconn(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* INFO field as a double (0 when absent) */
static double info_num(const char *section, const char *field)
{
    redisContext *c = rconn();
    if (!c)
        return 0;
    redisReply *r = redisCommand(c, "INFO %s", section);
    double v = 0;
    char key[96];
    snprintf(key, sizeof(key), "%s:", field);
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
    if (p)
        v = atof(p + strlen(key));
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* total calls over every command, and EVALSHA calls */
static void cmd_calls(double *total, double *evalsha)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "INFO commandstats");
    *total = *evalsha = 0;
    for (const char *p = r->str; (p = strstr(p, "cmdstat_")) != NULL; p++) {
        const char *k = strstr(p, ":calls=");
        if (!k)
            break;
        double v = atof(k + 7);
        if (strncmp(p, "cmdstat_info:", 13) == 0 || strncmp(p, "cmdstat_config", 14) == 0)
            continue;
        *total += v;
        if (strncmp(p, "cmdstat_evalsha:", 16) == 0)
            *evalsha = v;
    }
    freeReplyObject(r);
    redisFree(c);
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    int n = 2, window = 256, size = 64;
    long m = 20000;
    int opt;
    while ((opt = getopt(argc, argv, "n:m:w:s:p:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'm':
            m = atol(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'p':
            g_port = atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-n nodes] [-m messages] [-w window] [-s bytes] "
                    "[-p redis-port]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 1 || n > MAXN || m < 1 || window < 1 || size < 48 || size > 65536)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct redis_server rs = {0}; /* rs.dir[0]: our own server */
    if (g_port == 0) {
        if (redis_server_init(&rs, "rc-busbench") != 0)
            return 1;
        if (redis_server_start(&rs) != 0) {
            fprintf(stderr, "busbench: redis-server did not start\n");
            redis_server_destroy(&rs);
            return 1;
        }
        g_port = rs.port;
    }
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", g_port);
    for (int i = 0; i < n; i++) {
        struct node *nd = &nodes[i];
        pthread_mutex_init(&nd->lock, NULL);
        pthread_cond_init(&nd->cv, NULL);
        hist_reset(&nd->lat);
        struct bus_host h = {.base = {.ctx = nd, .nworkers = 1, .post = post},
                             .owner_of = owner_of,
                             .deliver = deliver,
                             .deliver_user = deliver_user,
                             .epoch_changed = epoch_changed};
        char id[32], why[128];
        snprintf(id, sizeof(id), "bench-%d", i);
        struct bus_redis_cfg cfg = {.url = url, .node_id = id, .node_ttl = 10, .keep = 1000};
        nd->bus = bus_redis_new(&cfg, &h, why, sizeof(why));
        if (!nd->bus) {
            fprintf(stderr, "busbench: %s\n", why);
            return 1;
        }
        pthread_create(&nd->thr, NULL, worker, nd);
    }
    for (int i = 0; i < n; i++) {
        char why[16];
        for (int k = 0; k < 500 && nodes[i].bus->ops->health(nodes[i].bus, why, sizeof(why)); k++)
            usleep(10000);
        nodes[i].bus->ops->room_interest(nodes[i].bus, "bench", 5, 1);
    }
    /* warm up until every node delivers (subscribed and synced) */
    for (int k = 0; k < 500; k++) {
        struct bus_publish p = {.room = "bench", .room_len = 5, .data = "{}", .len = 2};
        nodes[0].bus->ops->publish(nodes[0].bus, 0, &p, NULL, NULL);
        usleep(10000);
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= atomic_load(&nodes[i].done) > 0;
        if (all)
            break;
    }
    usleep(100000);
    uint64_t base[MAXN];
    for (int i = 0; i < n; i++)
        base[i] = atomic_load(&nodes[i].done);
    redisContext *c = rconn();
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    redisFree(c);
    double rcpu0 = info_num("cpu", "used_cpu_sys") + info_num("cpu", "used_cpu_user");
    double cpu0 = cpu_self();
    char *payload = malloc((size_t)size + 1);
    uint64_t t0 = now_ns();
    for (long i = 0; i < m; i++) {
        while (atomic_load(&inflight) >= window)
            usleep(50);
        int len =
            snprintf(payload, (size_t)size, "{\"t\":%llu,\"p\":\"", (unsigned long long)now_ns());
        memset(payload + len, 'x', (size_t)(size - len - 2));
        payload[size - 2] = '"';
        payload[size - 1] = '}';
        struct ackctx *a = malloc(sizeof(*a));
        a->t0 = now_ns();
        atomic_fetch_add(&inflight, 1);
        struct bus_publish p = {.room = "bench",
                                .room_len = 5,
                                .data = payload,
                                .len = (size_t)size,
                                .flags = ROOM_PUB_STAMP};
        struct node *src = &nodes[i % n];
        if (src->bus->ops->publish(src->bus, 0, &p, on_ack, a) != 0) {
            atomic_fetch_sub(&inflight, 1);
            atomic_fetch_add(&denied, 1);
            free(a);
        }
    }
    /* wait for every delivery (bounded) */
    for (int k = 0; k < 3000; k++) {
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= atomic_load(&nodes[i].done) - base[i] >= (uint64_t)atomic_load(&acked);
        if (all && atomic_load(&inflight) == 0)
            break;
        usleep(10000);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    double cpu = cpu_self() - cpu0;
    double rcpu = info_num("cpu", "used_cpu_sys") + info_num("cpu", "used_cpu_user") - rcpu0;
    double total, evalsha;
    cmd_calls(&total, &evalsha);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&nodes[i].lock);
        nodes[i].stop = 1;
        pthread_cond_signal(&nodes[i].cv);
        pthread_mutex_unlock(&nodes[i].lock);
        pthread_join(nodes[i].thr, NULL);
    }
    struct hist dl;
    hist_reset(&dl);
    uint64_t deliveries = 0, gaps = 0;
    for (int i = 0; i < n; i++) {
        hist_merge(&dl, &nodes[i].lat);
        deliveries += atomic_load(&nodes[i].done) - base[i];
        gaps += nodes[i].gaps;
    }
    uint64_t ok = atomic_load(&acked);
    printf("{\"nodes\":%d,\"messages\":%ld,\"window\":%d,\"bytes\":%d,\"acked\":%llu,"
           "\"denied\":%llu,\"publishes_per_s\":%.0f,\"deliveries_per_node_per_s\":%.0f,"
           "\"process_cpu_us_per_delivery\":%.2f,\"deliveries_per_cpu_s\":%.0f,"
           "\"redis_cpu_us_per_publish\":%.2f,\"redis_commands_per_publish\":%.2f,"
           "\"client_calls_per_publish\":%.2f,\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,"
           "\"delivery_p50_ms\":%.3f,\"delivery_p99_ms\":%.3f,\"gaps\":%llu}\n",
           n, m, window, size, (unsigned long long)ok, (unsigned long long)atomic_load(&denied),
           ok / secs, deliveries / secs / n, deliveries ? cpu * 1e6 / deliveries : 0,
           cpu > 0 ? deliveries / cpu : 0, ok ? rcpu * 1e6 / ok : 0, ok ? total / ok : 0,
           ok ? evalsha / ok : 0, hist_quantile(&ack_lat, 0.5) / 1e6,
           hist_quantile(&ack_lat, 0.99) / 1e6, hist_quantile(&dl, 0.5) / 1e6,
           hist_quantile(&dl, 0.99) / 1e6, (unsigned long long)gaps);
    for (int i = 0; i < n; i++)
        nodes[i].bus->ops->destroy(nodes[i].bus);
    if (rs.dir[0] && redis_server_destroy(&rs) != 0)
        return 1;
    free(payload);
    return gaps ? 1 : 0;
}
