/* test_bus_redis.c - the Redis bus against a real redis-server that the test
 * starts on a free port in a temp dir (--save "" --appendonly no). Two (or
 * three) buses in this process play the nodes; their host posts into a queue
 * the test thread drains, standing in for the workers.
 *
 *   - publishes from two nodes: each node delivers seq 1..N once each in
 *     order, the same bytes per seq on both; exactly one EVALSHA and one
 *     PUBLISH per publish (INFO commandstats); stamping and exclude;
 *   - a message that never reached the channel: the node backfills it from
 *     the stream before anything later; a replayed message is a duplicate;
 *   - garbage on a room channel is counted and skipped;
 *   - Redis down: publish is refused at once, health says down; Redis back
 *     with its data: resubscribe and backfill what was written meanwhile;
 *   - Redis back empty: a new epoch, seq restarts at 1;
 *   - direct messages, presence across nodes with a node that vanishes
 *     (its presence expires after node_ttl), nodes seen, store reads;
 *   - the count of a room of 100,000 connections on 2 nodes: one script,
 *     one HGET per node, a few bytes back (issue 11). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "bus_redis.h"
#include "busmsg.h"
#include "defs.h"
#include "err.h"
#include "redis_server.h"

/* ------------------------------------------------------------------------
 * redis-server
 * ------------------------------------------------------------------------ */

static struct redis_server g_rs;

static redisContext *rconn(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_rs.port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    struct timeval rw = {10, 0}; /* a test never blocks for good on a stuck Redis */
    redisSetTimeout(c, rw);
    return c;
}

static void redis_start(void)
{
    if (redis_server_start(&g_rs) != 0)
        fail_msg("redis-server did not start");
}

static void redis_kill(void)
{
    redis_server_kill(&g_rs);
}

/* SHUTDOWN SAVE: the restart loads the data back (a Redis with persistence) */
static void redis_shutdown_save(void)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "SHUTDOWN SAVE");
    freeReplyObject(r);
    redisFree(c);
    waitpid(g_rs.pid, NULL, 0);
    g_rs.pid = 0;
}

/* 1 if NODE is registered in rc:nodes */
static int redis_zscore_exists(const char *node)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "ZSCORE rc:nodes %s", node);
    int yes = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

/* calls=N of each of n commands, from ONE INFO commandstats (consistent) */
static void cmdstats(const char *const *cmds, long *out, int n)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "INFO commandstats");
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmds[i]);
        const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
        out[i] = p ? atol(p + strlen(key)) : 0;
    }
    freeReplyObject(r);
    redisFree(c);
}

/* calls=N of one command in INFO commandstats */
static long cmdstat(const char *cmd)
{
    long v;
    cmdstats(&cmd, &v, 1);
    return v;
}

/* ------------------------------------------------------------------------
 * a node: a bus and what its "workers" received
 * ------------------------------------------------------------------------ */

struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
};

#define MAXD 4096

struct node {
    struct bus *bus;
    struct store *store;
    pthread_mutex_t lock;
    struct job *head, *tail;
    uint64_t seqs[MAXD];
    char *data[MAXD];
    uint64_t excl[MAXD];
    int n;
    char epoch[32];
    int epochs;
    char direct[256];
    int ndirect;
    char kick[256];
    int nkick;
    int hold, held; /* under g_wake_lock: the bus thread's next post waits */
};

static pthread_mutex_t g_wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;

static void h_post(void *ctx, int worker, void (*fn)(void *), void *arg)
{
    struct node *nd = ctx;
    struct job *j = calloc(1, sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&nd->lock);
    if (nd->tail)
        nd->tail->next = j;
    else
        nd->head = j;
    nd->tail = j;
    pthread_mutex_unlock(&nd->lock);
    pthread_mutex_lock(&g_wake_lock);
    if (nd->hold) { /* stop the node's bus thread here until released */
        nd->held = 1;
        pthread_cond_broadcast(&g_wake);
        while (nd->hold)
            pthread_cond_wait(&g_wake, &g_wake_lock);
    }
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_wake_lock);
}

static int h_owner(void *ctx, const char *room, size_t len)
{
    return 0;
}

static void h_deliver(void *ctx, const char *room, size_t len, const struct store_msg *m,
                      uint64_t exclude)
{
    struct node *nd = ctx;
    if (nd->n >= MAXD)
        return;
    nd->seqs[nd->n] = m->seq;
    nd->data[nd->n] = strndup(m->data, m->len);
    nd->excl[nd->n] = exclude;
    nd->n++;
}

static long h_deliver_user(void *ctx, const char *user, size_t ulen, const void *data, size_t len,
                           int binary)
{
    struct node *nd = ctx;
    snprintf(nd->direct, sizeof(nd->direct), "%.*s:%d:%.*s", (int)ulen, user, binary, (int)len,
             (const char *)data);
    nd->ndirect++;
    return 1;
}

static long h_close_user(void *ctx, const char *user, size_t ulen, unsigned code,
                         const char *reason, size_t rlen)
{
    struct node *nd = ctx;
    snprintf(nd->kick, sizeof(nd->kick), "%.*s:%u:%.*s", (int)ulen, user, code, (int)rlen, reason);
    nd->nkick++;
    return 1;
}

static void h_epoch(void *ctx, const char *room, size_t len, const char *epoch)
{
    struct node *nd = ctx;
    snprintf(nd->epoch, sizeof(nd->epoch), "%s", epoch);
    nd->epochs++;
}

static struct node *nodes[3];

static int run_jobs(void)
{
    int ran = 0;
    for (int i = 0; i < 3; i++) {
        struct node *nd = nodes[i];
        if (nd == NULL)
            continue;
        pthread_mutex_lock(&nd->lock);
        struct job *j = nd->head;
        nd->head = nd->tail = NULL;
        pthread_mutex_unlock(&nd->lock);
        while (j) {
            struct job *n = j->next;
            j->fn(j->arg);
            free(j);
            j = n;
            ran++;
        }
    }
    return ran;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sanitizer builds run several times slower (and the machine may be
 * shared): every wait is stretched, as rctest.py's tmo() does. */
#ifdef RC_SANITIZED
#define SLOW 4.0
#else
#define SLOW 1.0
#endif

/* Runs posted jobs until pred() holds or `secs` (stretched) pass. Returns pred(). */
static int pump(int (*pred)(void *), void *ud, double secs)
{
    double end = mono() + secs * SLOW;
    for (;;) {
        run_jobs();
        if (pred(ud))
            return 1;
        if (mono() > end)
            return 0;
        pthread_mutex_lock(&g_wake_lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g_wake, &g_wake_lock, &ts);
        pthread_mutex_unlock(&g_wake_lock);
    }
}

static struct node *node_new(const char *id, double ttl)
{
    struct node *nd = calloc(1, sizeof(*nd));
    pthread_mutex_init(&nd->lock, NULL);
    struct bus_host h = {
        .base = {.ctx = nd, .nworkers = 2, .post = h_post},
        .owner_of = h_owner,
        .deliver = h_deliver,
        .deliver_user = h_deliver_user,
        .close_user = h_close_user,
        .epoch_changed = h_epoch,
    };
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", g_rs.port);
    struct bus_redis_cfg cfg = {.url = url, .node_id = id, .node_ttl = ttl, .keep = 1000};
    char why[128];
    nd->bus = bus_redis_new(&cfg, &h, why, sizeof(why));
    if (nd->bus == NULL)
        fail_msg("bus_redis_new: %s", why);
    nd->store = store_redis_new(nd->bus, &h.base);
    return nd;
}

static void node_free(struct node *nd)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i] == nd)
            nodes[i] = NULL;
    nd->store->ops->destroy(nd->store);
    nd->bus->ops->destroy(nd->bus);
    struct job *j = nd->head;
    while (j) {
        struct job *n = j->next;
        free(j);
        j = n;
    }
    for (int i = 0; i < nd->n; i++)
        free(nd->data[i]);
    pthread_mutex_destroy(&nd->lock);
    free(nd);
}

static int pred_up(void *ud)
{
    struct node *nd = ud;
    char why[32];
    return nd->bus->ops->health(nd->bus, why, sizeof(why)) == 0;
}

static int pred_down(void *ud)
{
    return !pred_up(ud);
}

struct want {
    struct node *nd;
    int n;
};

static int pred_count(void *ud)
{
    struct want *w = ud;
    return w->nd->n >= w->n;
}

/* the room "r" is synced on nd: a probe publish comes back */
static void sync_room(struct node *nd, struct node *via)
{
    int before = nd->n;
    struct bus_publish p = {.room = "r", .room_len = 1, .data = "probe", .len = 5};
    for (int i = 0; i < 100; i++) {
        assert_true(pump(pred_up, via, 10));
        if (via->bus->ops->publish(via->bus, 0, &p, NULL, NULL) == 0) {
            struct want w = {nd, before + 1};
            if (pump(pred_count, &w, 0.5))
                return;
        }
    }
    fail_msg("room never synced");
}

static void expect_gap_free(struct node *nd, int from)
{
    for (int i = from + 1; i < nd->n; i++)
        if (nd->seqs[i] != nd->seqs[i - 1] + 1)
            fail_msg("seq %llu after %llu at %d", (unsigned long long)nd->seqs[i],
                     (unsigned long long)nd->seqs[i - 1], i);
}

struct same {
    struct node *a, *b;
};

/* both nodes delivered the same last seq */
static int pred_same(void *ud)
{
    struct same *s = ud;
    return s->a->n > 0 && s->b->n > 0 && s->a->seqs[s->a->n - 1] == s->b->seqs[s->b->n - 1];
}

static int pred_never(void *ud)
{
    return 0;
}

/* lets deliveries in flight (late probes) land, then both nodes agree */
static void settle(struct node *a, struct node *b)
{
    pump(pred_never, NULL, 0.3);
    struct same sm = {a, b};
    assert_true(pump(pred_same, &sm, 5));
}

struct acks {
    int ok, denied;
    uint64_t seen[MAXD];
};

static void on_ack(void *ud, int status, uint64_t seq)
{
    struct acks *a = ud;
    if (status == 0) {
        if (seq < MAXD)
            a->seen[seq]++;
        a->ok++;
    } else {
        a->denied++;
    }
}

static int pred_acks(void *ud)
{
    struct acks *a = ud;
    return a->ok + a->denied >= (int)a->seen[0];
}

/* ------------------------------------------------------------------------
 * tests
 * ------------------------------------------------------------------------ */

static int setup(void **state)
{
    if (redis_server_init(&g_rs, "rc-bus-redis") != 0)
        return -1;
    redis_start();
    return 0;
}

static int teardown(void **state)
{
    return redis_server_destroy(&g_rs);
}

static void test_order_two_nodes(void **state)
{
    struct node *a = nodes[0] = node_new("node-a", 5);
    struct node *b = nodes[1] = node_new("node-b", 5);
    assert_true(pump(pred_up, a, 10));
    assert_true(pump(pred_up, b, 10));
    a->bus->ops->room_interest(a->bus, "r", 1, 1);
    b->bus->ops->room_interest(b->bus, "r", 1, 1);
    sync_room(a, a);
    sync_room(b, a);
    settle(a, b);
    int a0 = a->n, b0 = b->n;
    redisContext *c = rconn();
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    redisFree(c);
    enum { N = 600 };
    struct acks *ak = calloc(1, sizeof(*ak));
    ak->seen[0] = N; /* slot 0 holds the target count (seqs start at 1) */
    for (int i = 0; i < N; i++) {
        struct node *src = i % 2 ? b : a;
        char msg[64];
        int len = snprintf(msg, sizeof(msg), "{\"from\":\"%s\",\"i\":%d}", i % 2 ? "b" : "a", i);
        struct bus_publish p = {.room = "r",
                                .room_len = 1,
                                .data = msg,
                                .len = (size_t)len,
                                .flags = ROOM_PUB_STAMP,
                                .exclude = (uint64_t)i + 1};
        assert_int_equal(src->bus->ops->publish(src->bus, 1, &p, on_ack, ak), 0);
    }
    assert_true(pump(pred_acks, ak, 20));
    assert_int_equal(ak->ok, N);
    struct want wa = {a, a0 + N}, wb = {b, b0 + N};
    assert_true(pump(pred_count, &wa, 20));
    assert_true(pump(pred_count, &wb, 20));
    assert_int_equal(a->n, a0 + N);
    assert_int_equal(b->n, b0 + N);
    expect_gap_free(a, 0);
    expect_gap_free(b, 0);
    uint64_t first = a->seqs[a0];
    for (int i = 0; i < N; i++) {
        assert_true(a->seqs[a0 + i] == b->seqs[b0 + i]);
        assert_string_equal(a->data[a0 + i], b->data[b0 + i]);
        /* every ack seq was issued once */
        assert_int_equal(ak->seen[first + (uint64_t)i], 1);
        /* stamped in Redis: ,"seq":N,"ts":T} */
        char want[32];
        snprintf(want, sizeof(want), ",\"seq\":%llu,\"ts\":", (unsigned long long)a->seqs[a0 + i]);
        assert_non_null(strstr(a->data[a0 + i], want));
        /* exclude applies on the origin node only */
        int from_b = strstr(a->data[a0 + i], "\"from\":\"b\"") != NULL;
        assert_true(from_b ? a->excl[a0 + i] == 0 : a->excl[a0 + i] != 0);
        assert_true(from_b ? b->excl[b0 + i] != 0 : b->excl[b0 + i] == 0);
    }
    /* one round trip per publish: one EVALSHA, inside it one INCR, one XADD,
     * one PUBLISH (and one GET of the epoch) */
    /* The nodes' heartbeats (one ZADD inside each) and presence refreshes
     * (one HINCRBY each) are EVALSHA calls too: a slow (sanitizer) run sees
     * some in the window. Every other EVALSHA is a publish. */
    static const char *const counted[] = {"evalsha", "zadd", "hincrby"};
    long calls[3];
    cmdstats(counted, calls, 3);
    assert_int_equal(calls[0] - calls[1] - calls[2], N);
    assert_int_equal(cmdstat("publish"), N);
    assert_int_equal(cmdstat("xadd"), N);
    assert_int_equal(cmdstat("incr"), N);
    /* "{}" is stamped into an empty object; binary goes as is */
    struct bus_publish pe = {
        .room = "r", .room_len = 1, .data = " {} ", .len = 4, .flags = ROOM_PUB_STAMP};
    assert_int_equal(a->bus->ops->publish(a->bus, 0, &pe, NULL, NULL), 0);
    struct want w1 = {b, b->n + 1};
    assert_true(pump(pred_count, &w1, 5));
    assert_memory_equal(b->data[b->n - 1], " {\"seq\":", 8);
    struct bus_redis_counters ca, cb;
    bus_redis_counters(a->bus, &ca);
    bus_redis_counters(b->bus, &cb);
    assert_true(ca.publishes + cb.publishes >= N);
    assert_int_equal(ca.duplicates + cb.duplicates, 0);
    assert_int_equal(ca.bad_messages + cb.bad_messages, 0);
    free(ak);
}

/* INCR + XADD without PUBLISH: as if the channel lost the message */
static void inject_silent(uint64_t *seq)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "INCR rc:{r}:seq");
    *seq = (uint64_t)r->integer;
    freeReplyObject(r);
    r = redisCommand(c, "XADD rc:{r}:h %llu-0 d silent-%llu t 1 f 0", (unsigned long long)*seq,
                     (unsigned long long)*seq);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    redisFree(c);
}

static void test_gap_backfill_and_duplicates(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    struct bus_redis_counters c0, c1;
    settle(a, b);
    bus_redis_counters(a->bus, &c0);
    int a0 = a->n;
    uint64_t s1, s2;
    inject_silent(&s1);
    inject_silent(&s2);
    struct bus_publish p = {.room = "r", .room_len = 1, .data = "after", .len = 5};
    assert_int_equal(b->bus->ops->publish(b->bus, 0, &p, NULL, NULL), 0);
    struct want w = {a, a0 + 3};
    assert_true(pump(pred_count, &w, 5));
    assert_true(a->seqs[a0] == s1 && a->seqs[a0 + 1] == s2 && a->seqs[a0 + 2] == s2 + 1);
    assert_string_equal(a->data[a0 + 2], "after");
    char want[32];
    snprintf(want, sizeof(want), "silent-%llu", (unsigned long long)s1);
    assert_string_equal(a->data[a0], want);
    expect_gap_free(a, 0);
    bus_redis_counters(a->bus, &c1);
    assert_true(c1.backfills >= c0.backfills + 1);
    assert_true(c1.backfilled >= c0.backfilled + 2);
    /* the backfill itself drops the held channel copy of "after" as a
     * duplicate; let that happen before counting again */
    settle(a, b);
    bus_redis_counters(a->bus, &c0);
    /* a replay of the last message is a duplicate: counted, not delivered */
    char h[BUSMSG_HEADER_MAX + 8];
    int n = busmsg_format_room(h, s2 + 1, 1, 0, a->epoch, "node-b", 0);
    memcpy(h + n, "after", 5);
    redisContext *rc = rconn();
    freeReplyObject(redisCommand(rc, "PUBLISH rc:{r} %b", h, (size_t)n + 5));
    /* garbage of every kind on the room channel */
    freeReplyObject(redisCommand(rc, "PUBLISH rc:{r} %s", "hello from another program"));
    freeReplyObject(redisCommand(rc, "PUBLISH rc:{r} %s", "rc1 abc 0 0 e n 0\nx"));
    freeReplyObject(redisCommand(rc, "PUBLISH rc:{r} %s", "rc1 5 0 0"));
    redisFree(rc);
    sync_room(a, b); /* still working, and the probe is the next seq */
    expect_gap_free(a, 0);
    bus_redis_counters(a->bus, &c1);
    assert_int_equal(c1.duplicates, c0.duplicates + 1);
    assert_int_equal(c1.bad_messages, c0.bad_messages + 3);
}

static void test_outage_with_data(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    settle(a, b);
    int a0 = a->n;
    uint64_t last = a->seqs[a->n - 1];
    redis_shutdown_save();
    assert_true(pump(pred_down, a, 5));
    assert_true(pump(pred_down, b, 5));
    char why[32];
    assert_int_equal(a->bus->ops->health(a->bus, why, sizeof(why)), 1);
    assert_true(strcmp(why, "down") == 0 || strcmp(why, "connecting") == 0);
    /* publishes while down are refused at once, never queued */
    struct bus_publish p = {.room = "r", .room_len = 1, .data = "x", .len = 1};
    assert_int_equal(a->bus->ops->publish(a->bus, 0, &p, NULL, NULL), RC_E_DENIED);
    assert_int_equal(a->store->ops->read(a->store, 0, "r", 1,
                                         &(struct store_query){.since = 0, .limit = 10}, NULL,
                                         NULL),
                     RC_E_DENIED);
    usleep(500000);
    redis_start();
    /* written while the nodes were away (or just before they resubscribed:
     * no message on the channel announces them): the resync read after the
     * reconnection, or the gap the next message shows, brings them */
    uint64_t s1, s2;
    inject_silent(&s1);
    inject_silent(&s2);
    assert_true(s1 == last + 1);
    assert_true(pump(pred_up, a, 15));
    assert_true(pump(pred_up, b, 15));
    sync_room(a, b);
    struct want w = {a, a0 + 3};
    assert_true(pump(pred_count, &w, 5));
    assert_true(a->seqs[a0] == s1 && a->seqs[a0 + 1] == s2);
    sync_room(a, b);
    sync_room(b, a);
    expect_gap_free(a, 0);
    expect_gap_free(b, 0);
    struct bus_redis_counters c;
    bus_redis_counters(a->bus, &c);
    assert_true(c.reconnects >= 1);
    assert_true(c.backfills >= 2);
}

static void test_outage_empty_new_epoch(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    char old[32];
    snprintf(old, sizeof(old), "%s", a->epoch);
    int epochs = a->epochs;
    redis_kill(); /* no persistence: it comes back empty */
    char dump[128];
    snprintf(dump, sizeof(dump), "%s/dump.rdb", g_rs.dir); /* the SHUTDOWN SAVE above wrote it */
    unlink(dump);
    assert_true(pump(pred_down, a, 5));
    redis_start();
    assert_true(pump(pred_up, a, 15));
    assert_true(pump(pred_up, b, 15));
    int a0 = a->n, b0 = b->n;
    sync_room(a, b);
    sync_room(b, a);
    settle(a, b);
    if (a->epochs <= epochs)
        fail_msg("no epoch change: %s -> %s (%d)", old, a->epoch, a->epochs);
    assert_string_not_equal(a->epoch, old);
    assert_string_equal(a->epoch, b->epoch);
    /* the new epoch starts at seq 1 on both */
    assert_true(a->n > a0 && b->n > b0);
    assert_true(a->seqs[a0] == 1 && b->seqs[b0] == 1);
    assert_true(b->seqs[b->n - 1] == a->seqs[a->n - 1]);
    expect_gap_free(a, a0);
    expect_gap_free(b, b0);
    struct bus_redis_counters c;
    bus_redis_counters(a->bus, &c);
    assert_true(c.epoch_changes >= 1);
}

static int pred_direct(void *ud)
{
    return ((struct node *)ud)->ndirect > 0;
}

static void test_direct_across_nodes(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    b->bus->ops->user_interest(b->bus, "bob", 3, 1);
    struct acks *ak = calloc(1, sizeof(*ak));
    ak->seen[0] = 1;
    /* the subscription takes a moment: resend until it lands */
    for (int i = 0; i < 50 && b->ndirect == 0; i++) {
        assert_int_equal(a->bus->ops->send_to_user(a->bus, 0, "bob", 3, "psst", 4, 0, on_ack, ak),
                         0);
        pump(pred_direct, b, 0.1);
    }
    assert_int_equal(b->ndirect > 0, 1);
    assert_string_equal(b->direct, "bob:0:psst");
    assert_true(pump(pred_acks, ak, 5));
    assert_true(ak->ok >= 1 && ak->seen[1] >= 1); /* "delivered": accepted by the bus */
    assert_int_equal(a->ndirect, 0);
    free(ak);
}

static int pred_kick(void *ud)
{
    return ((struct node *)ud)->nkick > 0;
}

/* A disconnect crosses nodes on the user's channel: the node with the
 * user's connections closes them with the code and reason given; the
 * asking node, where the user has none, closes nothing. */
static int g_kick_sent;

static int pred_kick_acks(void *ud)
{
    struct acks *a = ud;
    return a->ok + a->denied >= g_kick_sent;
}

static void test_disconnect_across_nodes(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    b->bus->ops->user_interest(b->bus, "erin", 4, 1);
    struct acks *ak = calloc(1, sizeof(*ak));
    g_kick_sent = 0;
    int directs = b->ndirect;
    /* the subscription takes a moment: resend until it lands */
    for (int i = 0; i < 50 && b->nkick == 0; i++) {
        assert_int_equal(
            a->bus->ops->disconnect_user(a->bus, 0, "erin", 4, 4001, "go away", 7, on_ack, ak), 0);
        g_kick_sent++;
        pump(pred_kick, b, 0.1);
    }
    assert_true(b->nkick > 0);
    assert_string_equal(b->kick, "erin:4001:go away");
    assert_int_equal(b->ndirect, directs);    /* not taken for a direct message */
    assert_true(pump(pred_kick_acks, ak, 5)); /* every ack came back before ak goes */
    assert_int_equal(ak->denied, 0);
    assert_true(ak->seen[1] >= 1); /* the last one reached one node: b */
    assert_int_equal(a->nkick, 0);
    assert_int_equal(
        a->bus->ops->disconnect_user(a->bus, 0, "erin", 4, 4001, NULL, 200, NULL, NULL),
        RC_E_INVAL); /* a reason longer than a close frame holds */
    b->bus->ops->user_interest(b->bus, "erin", 4, 0);
    free(ak);
}

/* A Redis that stops answering (SIGSTOP: a network cut looks the same): the
 * publish in flight is answered unavailable once the command times out, the
 * bus reports down, and comes back by itself after SIGCONT. */
static void test_frozen_redis(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    settle(a, b);
    struct acks *ak = calloc(1, sizeof(*ak));
    ak->seen[0] = 1;
    kill(g_rs.pid, SIGSTOP);
    /* every check that can fail comes after SIGCONT: a failed assert must not
     * leave Redis stopped for the tests that follow */
    struct bus_publish p = {.room = "r", .room_len = 1, .data = "lost?", .len = 5};
    int pub_rc = a->bus->ops->publish(a->bus, 0, &p, on_ack, ak);
    /* what waits for a silent Redis is bounded in bytes too: 1 MB messages
     * are refused at once past RC_BUS_MAX_INFLIGHT_BYTES (or once the
     * watchdog declared Redis down, on a slow machine) */
    size_t big = 1 << 20;
    char *payload = calloc(1, big);
    memset(payload, 'b', big);
    struct bus_publish pb = {.room = "big", .room_len = 3, .data = payload, .len = big};
    int accepted = 0, refused = 0;
    for (int i = 0; i < 80 && !refused; i++) {
        if (a->bus->ops->publish(a->bus, 0, &pb, NULL, NULL) == 0)
            accepted++;
        else
            refused = 1;
    }
    free(payload);
    int acked = pump(pred_acks, ak, RC_BUS_CMD_TIMEOUT + 3);
    int down = pump(pred_down, a, 1);
    int refused_down = a->bus->ops->publish(a->bus, 0, &p, NULL, NULL);
    kill(g_rs.pid, SIGCONT);
    /* back up before judging, so a failure here does not cascade */
    int up_a = pump(pred_up, a, 20), up_b = pump(pred_up, b, 20);
    assert_int_equal(pub_rc, 0);
    assert_int_equal(refused, 1);
    assert_true(accepted <= 64);
    assert_true(acked);
    assert_int_equal(ak->denied, 1); /* answered, never silently lost */
    assert_true(down);
    assert_int_equal(refused_down, RC_E_DENIED);
    assert_true(up_a && up_b);
    int a0 = a->n;
    sync_room(a, b);
    sync_room(b, a);
    settle(a, b);
    expect_gap_free(a, a0 > 0 ? a0 - 1 : 0);
    /* The publish was answered unavailable after the command timeout, but
     * its bytes may already sit in the frozen Redis's socket buffer, and
     * Redis runs them after SIGCONT unless the torn-down connection's reset
     * purged them first (a race). So an unavailable after a timeout is
     * ambiguous, like any timed-out request: the message arrives at most
     * once, in seq order, never twice (bus.h, README "Running a cluster"). */
    int lost = 0;
    for (int i = a0; i < a->n; i++)
        lost += strcmp(a->data[i], "lost?") == 0;
    assert_true(lost <= 1);
    free(ak);
}

static int pred_n(void *ud)
{
    struct want *w = ud;
    return w->nd->n >= w->n;
}

/* Interest off and on again in a burst: the room ends up subscribed once
 * (every publish delivered exactly once); off at the end: nothing more. */
static void test_interest_churn(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    for (int i = 0; i < 5; i++) {
        a->bus->ops->room_interest(a->bus, "c", 1, 1);
        a->bus->ops->room_interest(a->bus, "c", 1, 0);
    }
    a->bus->ops->room_interest(a->bus, "c", 1, 1);
    int n0 = a->n;
    struct bus_publish p = {.room = "c", .room_len = 1, .data = "c1", .len = 2};
    struct want w = {a, n0 + 1};
    for (int i = 0; i < 50 && a->n == n0; i++) {
        assert_int_equal(b->bus->ops->publish(b->bus, 0, &p, NULL, NULL), 0);
        pump(pred_n, &w, 0.2);
    }
    assert_true(a->n > n0);
    pump(pred_never, NULL, 0.3);
    int n1 = a->n;
    for (int i = 0; i < 20; i++)
        assert_int_equal(b->bus->ops->publish(b->bus, 0, &p, NULL, NULL), 0);
    struct want w2 = {a, n1 + 20};
    assert_true(pump(pred_n, &w2, 5));
    pump(pred_never, NULL, 0.3);
    assert_int_equal(a->n, n1 + 20); /* once each */
    expect_gap_free(a, n0);
    a->bus->ops->room_interest(a->bus, "c", 1, 0);
    pump(pred_never, NULL, 0.3);
    int n2 = a->n;
    assert_int_equal(b->bus->ops->publish(b->bus, 0, &p, NULL, NULL), 0);
    pump(pred_never, NULL, 0.5);
    assert_int_equal(a->n, n2);
}

static long redis_int(const char *cmd)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, cmd);
    long v = r && r->type == REDIS_REPLY_STRING ? atol(r->str) : r ? (long)r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* A node's first join to a room: what is published between the moment the
 * node learns the room's seq and the moment its subscription takes effect
 * reaches it too, from the stream, once each and in order, without waiting
 * for a later message to reveal the gap. The node's bus thread is stopped
 * in the join's first post (the room's epoch, right after the seq was
 * learned) while messages go to the stream only (as if published before the
 * subscription was in place). */
static void test_first_join_window(void **state)
{
    struct node *b = nodes[1];
    struct node *j = nodes[2] = node_new("node-j", 5);
    assert_true(pump(pred_up, j, 10));
    pthread_mutex_lock(&g_wake_lock);
    j->hold = 1;
    j->held = 0;
    pthread_mutex_unlock(&g_wake_lock);
    j->bus->ops->room_interest(j->bus, "w", 1, 1);
    pthread_mutex_lock(&g_wake_lock);
    double end = mono() + 10 * SLOW;
    while (!j->held && mono() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&g_wake, &g_wake_lock, &ts);
    }
    int held = j->held;
    pthread_mutex_unlock(&g_wake_lock);
    assert_true(held);
    long learned = redis_int("GET rc:{w}:seq");
    redisContext *c = rconn();
    for (int i = 1; i <= 5; i++) {
        redisReply *r = redisCommand(c, "INCR rc:{w}:seq");
        long seq = r->integer;
        freeReplyObject(r);
        r = redisCommand(c, "XADD rc:{w}:h %ld-0 d window-%d t 1 f 0", seq, i);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    redisFree(c);
    pthread_mutex_lock(&g_wake_lock);
    j->hold = 0;
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_wake_lock);
    /* the window's five arrive without any later message */
    struct want w = {j, 5};
    assert_true(pump(pred_n, &w, 5));
    /* then live traffic through the channel */
    for (int i = 0; i < 20; i++) {
        struct bus_publish p = {.room = "w", .room_len = 1, .data = "live", .len = 4};
        assert_int_equal(b->bus->ops->publish(b->bus, 0, &p, NULL, NULL), 0);
    }
    struct want w2 = {j, 25};
    assert_true(pump(pred_n, &w2, 5));
    pump(pred_never, NULL, 0.3);
    assert_int_equal(j->n, 25); /* once each */
    assert_true(j->seqs[0] == (uint64_t)learned + 1);
    expect_gap_free(j, 0);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof(want), "window-%d", i + 1);
        assert_string_equal(j->data[i], want);
    }
    assert_string_equal(j->data[24], "live");
    j->bus->ops->room_interest(j->bus, "w", 1, 0);
    node_free(j);
}

struct pres {
    char users[8][32];
    int n, done, status;
    long count;
};

static void on_user(void *ud, const char *u, size_t n)
{
    struct pres *p = ud;
    if (p->n < 8)
        snprintf(p->users[p->n++], 32, "%.*s", (int)n, u);
}

static void on_done(void *ud, int status, long count)
{
    struct pres *p = ud;
    p->done = 1;
    p->status = status;
    p->count = count;
}

static int pred_done(void *ud)
{
    return ((struct pres *)ud)->done;
}

static int has(const struct pres *p, const char *u)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->users[i], u) == 0)
            return 1;
    return 0;
}

static void presence_of(struct node *nd, struct pres *p)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(nd->bus->ops->presence(nd->bus, 0, "lobby", 5, on_user, on_done, p), 0);
    assert_true(pump(pred_done, p, 5));
    assert_int_equal(p->status, 0);
}

/* the cluster-wide connection count of `room`, through the count-only path */
static long count_of(struct node *nd, const char *room)
{
    struct pres p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(nd->bus->ops->presence_count(nd->bus, 0, room, strlen(room), on_done, &p), 0);
    assert_true(pump(pred_done, &p, 5));
    assert_int_equal(p.status, 0);
    assert_int_equal(p.n, 0); /* no member is ever handed over */
    return p.count;
}

static void test_presence_and_nodes(void **state)
{
    struct node *a = nodes[0];
    struct node *c = nodes[2] = node_new("node-c", 1); /* dies without a word */
    assert_true(pump(pred_up, c, 10));
    a->bus->ops->presence_set(a->bus, "lobby", 5, 11, "alice", 5, 1);
    a->bus->ops->presence_set(a->bus, "lobby", 5, 12, "alice", 5, 1);
    c->bus->ops->presence_set(c->bus, "lobby", 5, 21, "carol", 5, 1);
    struct pres p;
    for (int i = 0; i < 50; i++) {
        presence_of(a, &p);
        if (p.n == 2)
            break;
        usleep(20000);
    }
    assert_int_equal(p.n, 2);
    assert_int_equal(p.count, 3); /* connections: alice's two and carol's */
    assert_true(has(&p, "alice") && has(&p, "carol"));
    /* one of alice's two connections leaves: she stays */
    a->bus->ops->presence_set(a->bus, "lobby", 5, 12, "alice", 5, 0);
    struct bus_redis_counters cn;
    for (int i = 0; i < 50; i++) {
        bus_redis_counters(a->bus, &cn);
        if (cn.nodes_seen == 3)
            break;
        usleep(100000);
        run_jobs();
    }
    assert_int_equal(cn.nodes_seen, 3);
    /* node c stops (SIGTERM): its presence and registration leave at once */
    node_free(c);
    presence_of(a, &p);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.users[0], "alice");
    assert_int_equal(redis_zscore_exists("node-c"), 0);
    /* node d is killed with SIGKILL: a process of its own that says nothing;
     * its share expires after node_ttl (1 s) */
    pid_t d = fork();
    if (d == 0) {
        /* exec: a fresh process (TSan does not allow threads after a fork
         * of a threaded process) */
        char port[16];
        snprintf(port, sizeof(port), "%d", g_rs.port);
        execl("/proc/self/exe", "test_bus_redis", "--node-d", port, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        presence_of(a, &p);
        if (has(&p, "dave") && p.count == 3) /* node d's two changes are two commands */
            break;
        usleep(50000);
    }
    assert_true(has(&p, "dave"));
    /* dave's connection and node d's anonymous one: both counted */
    assert_int_equal(p.count, 3);
    assert_int_equal(count_of(a, "lobby"), 3);
    kill(d, SIGKILL);
    waitpid(d, NULL, 0);
    double t0 = mono();
    long n;
    do {
        usleep(100000);
        n = count_of(a, "lobby");
    } while (n != 1 && mono() - t0 < 3 * SLOW);
    assert_int_equal(n, 1);                 /* node d's share of the count left ... */
    assert_true(mono() - t0 <= 1.5 * SLOW); /* node_ttl + one refresh period */
    presence_of(a, &p);
    assert_false(has(&p, "dave")); /* ... with its members (one key, one expiry) */
    assert_int_equal(p.count, 1);
    assert_true(has(&p, "alice")); /* a's own share is refreshed by its heartbeat */
}

/* INFO stats total_net_output_bytes, and how many bytes that INFO's own
 * reply adds to the counter (it is counted once written, after the
 * snapshot it reports) */
static long long net_out(long long *own)
{
    redisContext *c = rconn();
    redisReply *r = redisCommand(c, "INFO stats");
    const char *k = "total_net_output_bytes:";
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, k) : NULL;
    long long v = p ? atoll(p + strlen(k)) : -1;
    char head[32];
    *own = r ? (long long)r->len + snprintf(head, sizeof(head), "$%zu\r\n", r->len) + 2 : 0;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

struct many {
    long n, done, status, count;
};

static void on_many_user(void *ud, const char *u, size_t n)
{
    ((struct many *)ud)->n++;
}

static void on_many_done(void *ud, int status, long count)
{
    struct many *m = ud;
    m->done = 1;
    m->status = status;
    m->count = count;
}

static int pred_many(void *ud)
{
    return ((struct many *)ud)->done != 0;
}

struct big_count {
    struct node *nd;
    long want;
};

static int pred_big_count(void *ud)
{
    struct big_count *bc = ud;
    return count_of(bc->nd, "big") == bc->want;
}

/* Issue 11: presence counts stay cheap for rooms of 100k. Two nodes put
 * 100,000 connections in one room (node a: 50,000 users; node b: 40,000
 * users and 10,000 connections without a user, which count as on one
 * node). The count-only path costs one EVALSHA whose script reads one
 * count per node (HGET x 2, SMEMBERS x 1, never HKEYS/HGETALL) and whose
 * reply is one integer: Redis's output for it is a few bytes, against
 * hundreds of kilobytes for the users' list. A node that reconnects to a
 * Redis that kept its data writes its share again with the count SET, not
 * added. */
static void test_presence_count_100k(void **state)
{
    struct node *a = nodes[0], *b = nodes[1];
    enum { PER_NODE = 50000, ANON = 10000 };
    char u[32];
    for (long i = 0; i < PER_NODE; i++) {
        snprintf(u, sizeof(u), "ua%ld", i);
        a->bus->ops->presence_set(a->bus, "big", 3, 1000000 + (uint64_t)i, u, strlen(u), 1);
        if (i < PER_NODE - ANON) {
            snprintf(u, sizeof(u), "ub%ld", i);
            b->bus->ops->presence_set(b->bus, "big", 3, 2000000 + (uint64_t)i, u, strlen(u), 1);
        } else {
            b->bus->ops->presence_set(b->bus, "big", 3, 2000000 + (uint64_t)i, NULL, 0, 1);
        }
        if (i % 5000 == 4999)
            run_jobs();
    }
    struct big_count bc = {a, 2L * PER_NODE};
    assert_true(pump(pred_big_count, &bc, 60));
    /* the count path: one script, one HGET per node, one integer back */
    const char *cmds[] = {"evalsha", "hget", "smembers", "hkeys", "hgetall"};
    long before[5], after[5];
    long long own0, own1;
    cmdstats(cmds, before, 5);
    long long out0 = net_out(&own0);
    double t0 = mono();
    assert_int_equal(count_of(a, "big"), 2 * PER_NODE);
    double count_s = mono() - t0;
    long long out1 = net_out(&own1);
    cmdstats(cmds, after, 5);
    long long count_bytes = out1 - out0 - own0;
    assert_true(after[1] - before[1] == 2);                      /* hget: one per node */
    assert_true(after[2] - before[2] == 1);                      /* smembers */
    assert_true(after[3] == before[3] && after[4] == before[4]); /* no member read */
    /* the reply ":100000
" is 9 bytes; the rest is what the nodes'
     * heartbeats may have added meanwhile (a few replies of a few bytes) */
    assert_true(count_bytes >= 9 && count_bytes < 512);
    long evalshas = after[0] - before[0]; /* 1, plus any heartbeat in the window */
    /* the users' list, for comparison: every member crosses the wire */
    struct many m = {0};
    cmdstats(cmds, before, 5);
    out0 = net_out(&own0);
    t0 = mono();
    assert_int_equal(a->bus->ops->presence(a->bus, 0, "big", 3, on_many_user, on_many_done, &m), 0);
    assert_true(pump(pred_many, &m, 30));
    double list_s = mono() - t0;
    out1 = net_out(&own1);
    cmdstats(cmds, after, 5);
    long long list_bytes = out1 - out0 - own0;
    assert_int_equal(m.status, 0);
    assert_int_equal(m.count, 2 * PER_NODE);               /* connections, anonymous included */
    assert_int_equal(m.n, 2 * PER_NODE - ANON);            /* users */
    assert_true(after[3] - before[3] == 2);                /* hkeys: one per node */
    assert_true(list_bytes > 5LL * (2 * PER_NODE - ANON)); /* "$4
ua12
"... */
    /* the times are reported, never asserted (tests/bench: ratios in one run) */
    printf("presence of 100000 connections on 2 nodes: count %lld bytes out, %ld evalsha "
           "(heartbeats included), 2 hget, %.2f ms; users list %lld bytes out, %.2f ms\n",
           count_bytes, evalshas, count_s * 1e3, list_bytes, list_s * 1e3);
    fflush(stdout); /* before redis_start forks */
    /* node b's connections leave: the count follows at once */
    for (long i = 0; i < PER_NODE; i++) {
        if (i < PER_NODE - ANON) {
            snprintf(u, sizeof(u), "ub%ld", i);
            b->bus->ops->presence_set(b->bus, "big", 3, 2000000 + (uint64_t)i, u, strlen(u), 0);
        } else {
            b->bus->ops->presence_set(b->bus, "big", 3, 2000000 + (uint64_t)i, NULL, 0, 0);
        }
    }
    /* a leave never joined is ignored, anonymous or not */
    b->bus->ops->presence_set(b->bus, "big", 3, 3000000, NULL, 0, 0);
    b->bus->ops->presence_set(b->bus, "big", 3, 3000001, "nobody", 6, 0);
    bc.nd = b;
    bc.want = PER_NODE;
    assert_true(pump(pred_big_count, &bc, 60));
    assert_int_equal(redis_int("EXISTS rc:{big}:p:node-b"), 0);
    /* Redis keeps its data across a restart, and a stale count besides: the
     * reconnected node writes its share again with the count SET */
    redisContext *c = rconn();
    freeReplyObject(redisCommand(c, "HSET rc:{big}:p:node-a %b 7", "", (size_t)0));
    redisFree(c);
    redis_shutdown_save();
    assert_true(pump(pred_down, a, 5));
    redis_start();
    assert_true(pump(pred_up, a, 15));
    assert_true(pump(pred_up, b, 15));
    bc.nd = a; /* asked after a's own refill, on the same connection */
    assert_true(pump(pred_big_count, &bc, 10));
    assert_int_equal(count_of(b, "big"), PER_NODE);
    assert_int_equal(redis_int("HLEN rc:{big}:p:node-a"), PER_NODE + 1); /* users and "" */
    /* a share gone from Redis while its node lives (deleted here; or the
     * node was silent longer than node_ttl): the next heartbeat (every
     * node_ttl / 3) writes it again */
    assert_int_equal(redis_int("DEL rc:{big}:p:node-a"), 1);
    /* 0 until the heartbeat; a heartbeat already on its way when the DEL
     * ran (a slow, sanitized run) has written all of it back */
    long after_del = count_of(a, "big");
    assert_true(after_del == 0 || after_del == PER_NODE);
    assert_true(pump(pred_big_count, &bc, 5));
    assert_int_equal(redis_int("HLEN rc:{big}:p:node-a"), PER_NODE + 1);
    for (long i = 0; i < PER_NODE; i++) {
        snprintf(u, sizeof(u), "ua%ld", i);
        a->bus->ops->presence_set(a->bus, "big", 3, 1000000 + (uint64_t)i, u, strlen(u), 0);
    }
    bc.want = 0;
    assert_true(pump(pred_big_count, &bc, 60));
}

struct rd {
    int done, status;
    uint64_t last;
    char epoch[32];
    uint64_t seqs[64];
    size_t n;
};

static void on_read(void *ud, int status, const struct store_room *info,
                    const struct store_msg *msgs, size_t n)
{
    struct rd *r = ud;
    r->done = 1;
    r->status = status;
    if (info) {
        r->last = info->last_seq;
        snprintf(r->epoch, sizeof(r->epoch), "%s", info->epoch);
    }
    for (size_t i = 0; i < n && i < 64; i++)
        r->seqs[r->n++] = msgs[i].seq;
}

static int pred_read(void *ud)
{
    return ((struct rd *)ud)->done;
}

/* store_query.sink: once (begin, rows oldest first, end), on the bus
 * thread, before cb, with what cb gets */
struct sunk {
    int begins, ends, on_bus_thread, desc;
    size_t n;
    uint64_t first;
    pthread_t caller;
};

static void sink_begin(void *arg, const struct store_room *info, int desc, size_t bytes)
{
    (void)info;
    (void)bytes;
    struct sunk *k = arg;
    k->begins++;
    k->desc = desc;
    k->on_bus_thread = !pthread_equal(pthread_self(), k->caller);
}

static void sink_row(void *arg, const struct store_msg *m)
{
    struct sunk *k = arg;
    if (k->n++ == 0)
        k->first = m->seq;
}

static void sink_end(void *arg, int status)
{
    struct sunk *k = arg;
    k->ends += status == 0;
}

static const struct store_sink test_sink = {.begin = sink_begin, .row = sink_row, .end = sink_end};

static void test_store_reads(void **state)
{
    struct node *a = nodes[0];
    for (int i = 0; i < 10; i++) {
        struct bus_publish p = {.room = "hist", .room_len = 4, .data = "m", .len = 1};
        assert_int_equal(a->bus->ops->publish(a->bus, 0, &p, NULL, NULL), 0);
    }
    usleep(200000);
    run_jobs();
    struct rd r = {0};
    struct store_query q = {.since = 3, .limit = 4};
    assert_int_equal(a->store->ops->read(a->store, 0, "hist", 4, &q, on_read, &r), 0);
    assert_true(pump(pred_read, &r, 5));
    assert_int_equal(r.status, 0);
    assert_true(r.last == 10);
    assert_int_equal(r.n, 4);
    assert_true(r.seqs[0] == 4 && r.seqs[3] == 7);
    memset(&r, 0, sizeof(r));
    struct sunk k = {.caller = pthread_self()};
    q.sink = &test_sink;
    q.sink_arg = &k;
    assert_int_equal(a->store->ops->read(a->store, 0, "hist", 4, &q, on_read, &r), 0);
    assert_true(pump(pred_read, &r, 5));
    assert_int_equal(k.begins, 1);
    assert_int_equal(k.ends, 1);
    assert_int_equal(k.desc, 0);
    assert_true(k.on_bus_thread);
    assert_int_equal(k.n, r.n);
    assert_int_equal(k.n, 4);
    assert_true(k.first == 4);
    memset(&r, 0, sizeof(r));
    q = (struct store_query){.since = 0, .before = 9, .limit = 3, .newest = 1};
    assert_int_equal(a->store->ops->read(a->store, 0, "hist", 4, &q, on_read, &r), 0);
    assert_true(pump(pred_read, &r, 5));
    assert_int_equal(r.n, 3);
    assert_true(r.seqs[0] == 6 && r.seqs[2] == 8);
    /* a room nobody used: status 0, nothing, last 0, an epoch */
    memset(&r, 0, sizeof(r));
    q = (struct store_query){.since = 0, .limit = 10};
    assert_int_equal(a->store->ops->read(a->store, 0, "nope", 4, &q, on_read, &r), 0);
    assert_true(pump(pred_read, &r, 5));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 0);
    assert_true(r.last == 0);
    assert_true(busmsg_valid_epoch(r.epoch, strlen(r.epoch)));
    assert_int_equal(
        a->store->ops->read(a->store, 0, "x", 1, &(struct store_query){.limit = 0}, on_read, &r),
        RC_E_INVAL);
    node_free(nodes[1]);
    node_free(nodes[0]);
}

/* AUTH: the password from the config (password_env's value) or the URL */
static void test_auth(void **state)
{
    redisContext *c = rconn();
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass s3cret"));
    redisFree(c);
    struct bus_host h = {.base = {.nworkers = 1, .post = h_post}};
    char url[96], why[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", g_rs.port);
    struct bus_redis_cfg cfg = {
        .url = url, .password = "s3cret", .node_id = "auth-1", .node_ttl = 10, .keep = 1};
    struct bus *ok = bus_redis_new(&cfg, &h, why, sizeof(why));
    snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d/1", g_rs.port);
    cfg.password = NULL;
    cfg.node_id = "auth-2";
    struct bus *ok2 = bus_redis_new(&cfg, &h, why, sizeof(why));
    cfg.password = "wrong";
    cfg.node_id = "auth-3";
    struct bus *bad = bus_redis_new(&cfg, &h, why, sizeof(why));
    int up = 0;
    for (int i = 0; i < 500 && up != 2; i++) {
        usleep(20000);
        up = (ok->ops->health(ok, why, sizeof(why)) == 0) + (ok2->ops->health(ok2, why, 16) == 0);
    }
    assert_int_equal(up, 2);
    usleep(300000);
    assert_int_equal(bad->ops->health(bad, why, sizeof(why)), 1);
    bad->ops->destroy(bad);
    ok2->ops->destroy(ok2);
    ok->ops->destroy(ok);
    c = rconn();
    freeReplyObject(redisCommand(c, "AUTH s3cret"));
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", ""));
    redisFree(c);
}

static void test_default_node_id(void **state)
{
    char a[80], b[80], small[20];
    bus_redis_default_node_id(a, sizeof(a), 8080);
    bus_redis_default_node_id(b, sizeof(b), 8080);
    assert_true(busmsg_valid_node(a, strlen(a)));
    assert_string_not_equal(a, b); /* the random suffix */
    assert_non_null(strstr(a, ":8080-"));
    assert_int_equal(strlen(strstr(a, ":8080-")), 12);
    bus_redis_default_node_id(small, sizeof(small), 65535);
    assert_true(busmsg_valid_node(small, strlen(small)));
    assert_non_null(strstr(small, ":65535-"));
}

static void test_bad_config(void **state)
{
    struct bus_host h = {.base = {.nworkers = 1, .post = h_post}};
    char why[128];
    struct bus_redis_cfg cfg = {.url = "http://x", .node_id = "n", .node_ttl = 10, .keep = 1};
    assert_null(bus_redis_new(&cfg, &h, why, sizeof(why)));
    assert_non_null(strstr(why, "redis://"));
    cfg.url = "redis://127.0.0.1:1";
    cfg.node_id = "has space";
    assert_null(bus_redis_new(&cfg, &h, why, sizeof(why)));
    assert_non_null(strstr(why, "node_id"));
    cfg.node_id = "n";
    cfg.node_ttl = 0;
    assert_null(bus_redis_new(&cfg, &h, why, sizeof(why)));
    /* unreachable at start: not an error, the bus keeps trying */
    cfg.node_ttl = 10;
    struct bus *b = bus_redis_new(&cfg, &h, why, sizeof(why));
    assert_non_null(b);
    usleep(300000);
    assert_int_equal(b->ops->health(b, why, sizeof(why)), 1);
    b->ops->destroy(b);
}

/* The SIGKILLed node of test_presence_and_nodes, run as its own process. */
RC_NORETURN static void node_d_main(const char *port)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    g_rs.port = atoi(port);
    struct node *nd = node_new("node-d", 1);
    for (int i = 0; i < 500 && !pred_up(nd); i++)
        usleep(10000);
    nd->bus->ops->presence_set(nd->bus, "lobby", 5, 31, "dave", 4, 1);
    nd->bus->ops->presence_set(nd->bus, "lobby", 5, 32, NULL, 0, 1); /* no user: counted */
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--node-d") == 0)
        node_d_main(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_two_nodes),
        cmocka_unit_test(test_gap_backfill_and_duplicates),
        cmocka_unit_test(test_outage_with_data),
        cmocka_unit_test(test_outage_empty_new_epoch),
        cmocka_unit_test(test_direct_across_nodes),
        cmocka_unit_test(test_frozen_redis),
        cmocka_unit_test(test_interest_churn),
        cmocka_unit_test(test_first_join_window),
        cmocka_unit_test(test_disconnect_across_nodes),
        cmocka_unit_test(test_presence_and_nodes),
        cmocka_unit_test(test_presence_count_100k),
        cmocka_unit_test(test_store_reads),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_default_node_id),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
