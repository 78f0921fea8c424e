#include "bus_redis.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wcast-qual"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "alloc.h"
#include "busmsg.h"
#include "err.h"
#include "log.h"
#include "redisurl.h"
#include "strmap.h"

#define BACKFILL_MAX 1000 /* entries per XRANGE */
#define PEND_MAX 10000    /* messages held per room while it syncs or backfills */
#define BACKOFF_MIN 0.1   /* seconds, first reconnect delay (before jitter) */
#define BACKOFF_MAX 5.0   /* seconds, longest reconnect delay */
#define RTT_BUCKETS 32    /* publish round trip histogram: bucket i holds < 2^i us */
#define WAKE_BATCH 1024   /* requests run per loop iteration (replies are read between) */

/* ------------------------------------------------------------------------
 * The scripts. Every key a script touches is in KEYS or shares the room's
 * hash tag, so each runs on one shard of a Redis Cluster.
 * ------------------------------------------------------------------------ */

/* KEYS: seq, stream, epoch. ARGV: 1 channel, 2 mode (r raw | s stamp after
 * members | e stamp into "{}"), 3 payload (or its part before the final '}'),
 * 4 ts ms, 5 flags, 6 keep, 7 origin node, 8 exclude, 9 epoch candidate.
 * One INCR, one GET (or SET), one XADD, one PUBLISH. Returns {seq, epoch}. */
static const char PUB_LUA[] =
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local ep = redis.call('GET', KEYS[3])\n"
    "if seq == 1 then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  if not ep then ep = ARGV[9]; redis.call('SET', KEYS[3], ep) end\n"
    "elseif not ep then ep = ARGV[9]; redis.call('SET', KEYS[3], ep) end\n"
    "local s = string.format('%d', seq)\n"
    "local d = ARGV[3]\n"
    "if ARGV[2] == 's' then d = d .. ',\"seq\":' .. s .. ',\"ts\":' .. ARGV[4] .. '}'\n"
    "elseif ARGV[2] == 'e' then d = d .. '\"seq\":' .. s .. ',\"ts\":' .. ARGV[4] .. '}' end\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], s .. '-0', 'd', d, 't', ARGV[4], 'f', "
    "ARGV[5])\n"
    "redis.call('PUBLISH', ARGV[1], 'rc1 ' .. s .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ep "
    ".. ' ' .. ARGV[7] .. ' ' .. ARGV[8] .. '\\n' .. d)\n"
    "return {seq, ep}\n";

/* KEYS: seq, stream, epoch. ARGV: 1 first seq wanted (since + 1), 2 last
 * seq wanted ('+' for none), 3 limit (0: no entries), 4 newest (0|1),
 * 5 epoch candidate. Returns {last seq, epoch, entries oldest first}. */
static const char READ_LUA[] =
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local ep = redis.call('GET', KEYS[3])\n"
    "if not ep then ep = ARGV[5]; redis.call('SET', KEYS[3], ep) end\n"
    "local n = tonumber(ARGV[3])\n"
    "local e = {}\n"
    "if n > 0 then\n"
    "  if ARGV[4] == '1' then\n"
    "    local r = redis.call('XREVRANGE', KEYS[2], ARGV[2], ARGV[1], 'COUNT', n)\n"
    "    for i = #r, 1, -1 do e[#e + 1] = r[i] end\n"
    "  else e = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[2], 'COUNT', n) end\n"
    "end\n"
    "return {last, ep, e}\n";

/* KEYS: rc:nodes. ARGV: node, ttl ms. Registers the node until now + ttl on
 * Redis's clock, forgets expired nodes, returns the live ones. */
static const char HB_LUA[] = "local t = redis.call('TIME')\n"
                             "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
                             "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
                             "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
                             "return redis.call('ZRANGE', KEYS[1], 0, -1)\n";

/* Presence. A node's share of a room is ONE hash, rc:{room}:p:NODE: field
 * user -> that user's connections on NODE, and field "" (no user id is
 * empty) -> ALL of NODE's connections in the room, with a user or without.
 * Both live in one key, so one PEXPIRE gives them one expiry: a dead node's
 * members and its share of the count leave together, within node_ttl.
 * (A hash of per-node counts would need per-field expiry, HPEXPIRE, which
 * Redis 7.4 has and Debian 12's 7.0 does not.) rc:{room}:pn lists the nodes
 * that have a share. */

/* KEYS: rc:{room}:p:NODE, rc:{room}:pn. ARGV: 1 node, 2 ttl ms, 3 connections
 * delta, 4 user ('': none), 5 the user's delta. Returns NODE's connections. */
static const char PSET_LUA[] = "local c = redis.call('HINCRBY', KEYS[1], '', ARGV[3])\n"
                               "if c <= 0 then redis.call('HDEL', KEYS[1], '') end\n"
                               "if ARGV[4] ~= '' then\n"
                               "  local n = redis.call('HINCRBY', KEYS[1], ARGV[4], ARGV[5])\n"
                               "  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[4]) end\n"
                               "end\n"
                               "redis.call('SADD', KEYS[2], ARGV[1])\n"
                               "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                               "return c\n";

/* KEYS: as PSET. ARGV: 1 node, 2 ttl ms, 3 '1' for the first batch (the
 * share is replaced: DEL, then the count is SET, never added), 4 NODE's
 * connections, 5.. user, connections pairs. A node's whole share written
 * again (Redis may have lost it), in batches of FILL_BATCH users. */
static const char PFILL_LUA[] =
    "if ARGV[3] == '1' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  if tonumber(ARGV[4]) > 0 then redis.call('HSET', KEYS[1], '', ARGV[4]) end\n"
    "end\n"
    "for i = 5, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  redis.call('SADD', KEYS[2], ARGV[1])\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 1\n";

/* KEYS: rc:{room}:pn. ARGV: "rc:{room}:p:". The room's connections on every
 * live node (the "" fields), then the distinct users of all of them; nodes
 * whose hash expired leave the set. */
static const char PGET_LUA[] = "local seen, out = {}, {0}\n"
                               "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                               "  local k = ARGV[1] .. n\n"
                               "  local h = redis.call('HKEYS', k)\n"
                               "  if #h == 0 then redis.call('SREM', KEYS[1], n) end\n"
                               "  out[1] = out[1] + tonumber(redis.call('HGET', k, '') or '0')\n"
                               "  for _, x in ipairs(h) do\n"
                               "    if x ~= '' and not seen[x] then seen[x] = true; "
                               "out[#out + 1] = x end\n"
                               "  end\n"
                               "end\n"
                               "return out\n";

/* KEYS, ARGV: as PGET. The count alone: one HGET per node, never a member
 * (O(nodes), whatever the room's size); the reply is one integer. */
static const char PCOUNT_LUA[] =
    "local c = 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local v = redis.call('HGET', ARGV[1] .. n, '')\n"
    "  if v then c = c + tonumber(v)\n"
    "  elseif redis.call('EXISTS', ARGV[1] .. n) == 0 then redis.call('SREM', KEYS[1], n) end\n"
    "end\n"
    "return c\n";

enum {
    SCRIPT_PUB,
    SCRIPT_READ,
    SCRIPT_HB,
    SCRIPT_PSET,
    SCRIPT_PFILL,
    SCRIPT_PGET,
    SCRIPT_PCOUNT,
    NSCRIPTS
};
static const char *const SCRIPTS[NSCRIPTS] = {PUB_LUA,   READ_LUA, HB_LUA,    PSET_LUA,
                                              PFILL_LUA, PGET_LUA, PCOUNT_LUA};

/* ------------------------------------------------------------------------
 * state
 * ------------------------------------------------------------------------ */

enum rq_type { RQ_PUBLISH, RQ_ROOM, RQ_USER, RQ_DIRECT, RQ_PSET, RQ_PGET, RQ_PCOUNT, RQ_READ };

/* A worker's call, carried to the bus thread. Owned by whoever holds it: the
 * queue, then the bus thread (or hiredis as a reply's privdata), then the
 * worker it is posted back to, which frees it (req_free). */
struct breq {
    struct breq *next;
    struct bus_redis *b;
    int type, worker, on, binary, retried;
    uint32_t flags;
    char mode;        /* publish: 'r', 's' or 'e' */
    uint64_t exclude; /* publish: exclude; presence_set: member */
    int64_t ts_ms;
    bus_ack_cb ack;
    bus_user_cb each;
    bus_done_cb done;
    store_read_cb rcb;
    void *ud;
    struct store_query q;
    double t0;
    int status;
    uint64_t seq;
    char *user; /* owned */
    size_t ulen;
    char *data; /* owned */
    size_t len;
    /* answers carried back (owned) */
    char **users;
    size_t *ulens;
    size_t nusers;
    struct store_msg *msgs;
    size_t nmsgs;
    struct store_room info;
    size_t name_len;
    char name[];
};

/* A message held while its room syncs or backfills. Owned by the room. */
struct pend {
    struct pend *next;
    uint64_t seq;
    int64_t ts_ms;
    uint32_t flags;
    uint64_t exclude; /* 0 unless the message came from this node */
    char epoch[BUSMSG_EPOCH_MAX + 1];
    size_t len;
    char data[];
};

/* A room with local members, as the bus thread sees it. Owned by b->rooms;
 * touched by the bus thread only. */
struct broom {
    uint64_t gen; /* incarnation, so a late reply finds out its room went away */
    int interest; /* room_interest(on) calls minus (off) calls */
    int synced;   /* last/epoch known: messages can be delivered */
    int reading;  /* a sync or backfill read is in flight */
    int again;    /* the subscription was confirmed during that read: backfill after it */
    int joining;  /* first join: its backfill may overlap the channel (not duplicates) */
    uint64_t last;
    uint64_t base; /* where this node started (initial sync): older is not a duplicate */
    char epoch[BUSMSG_EPOCH_MAX + 1];
    struct pend *pend, *pend_tail; /* by seq, ascending */
    size_t npend;
    int owner;
    size_t len;
    char name[];
};

/* This node's share of a room's presence, as it writes it to Redis (bus
 * thread only). Owned by b->presence. */
struct proom {
    long conns;          /* connections in the room, with a user or without */
    long anon;           /* those without a user */
    struct strmap users; /* user -> (intptr) that user's connections */
};

/* What a node knows of a room, for store.room_open (any thread, known_lock). */
struct known {
    uint64_t last;
    char epoch[BUSMSG_EPOCH_MAX + 1];
};

struct bus_redis {
    struct bus base;
    /* configuration (immutable after new) */
    struct redis_url url;
    char password[REDISURL_CRED_MAX + 1];
    int has_password;
    char node[BUSMSG_NODE_MAX + 1];
    double node_ttl;
    uint32_t keep;
    /* the bus thread */
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wake;
    ev_timer retry, teardown_t, heartbeat, watchdog;
    pthread_mutex_t qlock;
    struct breq *qhead, *qtail; /* under qlock */
    struct breq *bhead, *btail; /* bus thread: taken from the queue, not run yet */
    atomic_int stopping;
    /* bus thread only */
    redisAsyncContext *cmd, *sub;
    int cmd_ready, sub_ready, failing, setup_left, attempt, said_goodbye;
    char sha[NSCRIPTS][41];
    uint64_t cmd_sent, cmd_done;
    double progress_at;
    struct strmap rooms;    /* room -> struct broom * */
    struct strmap users;    /* user -> (intptr) local connection count */
    struct strmap presence; /* room -> struct proom *: this node's share */
    uint64_t next_gen;
    uint64_t rnd;
    struct rc_ratelimit rl; /* this bus's warnings (per bus: tests run several) */
    /* any thread */
    atomic_int state; /* 0 down, 1 up, 2 connecting */
    atomic_long inflight, inflight_bytes;
    pthread_mutex_t known_lock;
    struct strmap known; /* room -> struct known * */
    pthread_mutex_t nodes_lock;
    char *nodes; /* owned: node ids, '\n'-separated */
    long nnodes;
    struct {
        atomic_ullong publishes, unavailable, deliveries, duplicates, backfills, backfilled, lost,
            bad, epochs, reconnects, directs_in, rtt_count, rtt_sum_us;
        atomic_ullong rtt[RTT_BUCKETS];
    } st;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd_next(struct bus_redis *b)
{
    /* xorshift64*: jitter and epoch candidates only, nothing secret */
    b->rnd ^= b->rnd >> 12;
    b->rnd ^= b->rnd << 25;
    b->rnd ^= b->rnd >> 27;
    return b->rnd * 2685821657736338717ULL;
}

static void new_epoch(struct bus_redis *b, char out[13])
{
    static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    uint64_t r = rnd_next(b);
    for (int i = 0; i < 12; i++) {
        out[i] = al[r % 62];
        r /= 62;
        if (i == 9)
            r = rnd_next(b);
    }
    out[12] = '\0';
}

/* "rc:{" room "}" suffix, malloc'd. */
static char *key_of(const char *room, size_t len, const char *suffix, size_t *klen)
{
    size_t sl = strlen(suffix);
    char *k = rc_xmalloc(len + sl + 6);
    memcpy(k, "rc:{", 4);
    memcpy(k + 4, room, len);
    k[4 + len] = '}';
    memcpy(k + 5 + len, suffix, sl);
    k[5 + len + sl] = '\0';
    *klen = len + sl + 5;
    return k;
}

/* ------------------------------------------------------------------------
 * requests: workers -> bus thread -> workers
 * ------------------------------------------------------------------------ */

static struct breq *req_new(struct bus_redis *b, int type, int worker, const char *name, size_t len)
{
    struct breq *q = rc_xcalloc(1, sizeof(*q) + len + 1);
    q->b = b;
    q->type = type;
    q->worker = worker;
    q->name_len = len;
    if (len)
        memcpy(q->name, name, len);
    return q;
}

static void req_free(struct breq *q)
{
    for (size_t i = 0; i < q->nusers; i++)
        rc_free(q->users[i]);
    rc_free(q->users);
    rc_free(q->ulens);
    if (q->msgs) {
        for (size_t i = 0; i < q->nmsgs; i++)
            rc_free((void *)q->msgs[i].data);
        rc_free(q->msgs);
    }
    rc_free(q->user);
    rc_free(q->data);
    atomic_fetch_sub(&q->b->inflight, 1);
    atomic_fetch_sub(&q->b->inflight_bytes, (long)q->len);
    rc_free(q);
}

/* Any thread: hands q to the bus thread. Returns 0 or RC_E_DENIED (queue
 * full: RC_BUS_MAX_INFLIGHT requests or RC_BUS_MAX_INFLIGHT_BYTES of
 * payload waiting or in flight; `counted` requests only, the others
 * (interest, presence bookkeeping) must not be lost). */
static int req_push(struct bus_redis *b, struct breq *q, int counted)
{
    long n = atomic_fetch_add(&b->inflight, 1);
    long bytes = atomic_fetch_add(&b->inflight_bytes, (long)q->len);
    if (counted && (n >= RC_BUS_MAX_INFLIGHT || bytes + (long)q->len > RC_BUS_MAX_INFLIGHT_BYTES)) {
        atomic_fetch_sub(&b->inflight, 1);
        atomic_fetch_sub(&b->inflight_bytes, (long)q->len);
        return RC_E_DENIED;
    }
    pthread_mutex_lock(&b->qlock);
    if (b->qtail)
        b->qtail->next = q;
    else
        b->qhead = q;
    b->qtail = q;
    pthread_mutex_unlock(&b->qlock);
    ev_async_send(b->loop, &b->wake);
    return 0;
}

/* On the worker: runs the request's callback, then frees it. */
static void answer_on_worker(void *arg)
{
    struct breq *q = arg;
    switch (q->type) {
    case RQ_PUBLISH:
    case RQ_DIRECT:
        q->ack(q->ud, q->status, q->seq);
        break;
    case RQ_PGET:
        for (size_t i = 0; q->status == 0 && i < q->nusers; i++)
            q->each(q->ud, q->users[i], q->ulens[i]);
        q->done(q->ud, q->status, q->status == 0 ? (long)q->seq : 0);
        break;
    case RQ_PCOUNT:
        q->done(q->ud, q->status, q->status == 0 ? (long)q->seq : 0);
        break;
    case RQ_READ:
        q->rcb(q->ud, q->status, &q->info, q->msgs, q->nmsgs);
        break;
    default:
        break;
    }
    req_free(q);
}

/* Bus thread: the request is answered (status, seq); its callback runs later
 * on its worker, or it is freed when nobody waits. */
static void finish(struct bus_redis *b, struct breq *q, int status, uint64_t seq)
{
    q->status = status;
    q->seq = seq;
    int waits = (q->type == RQ_PUBLISH || q->type == RQ_DIRECT) ? q->ack != NULL
                : q->type == RQ_PGET || q->type == RQ_PCOUNT    ? 1
                                                                : q->type == RQ_READ;
    if (waits && !atomic_load(&b->stopping)) {
        if (q->type == RQ_READ && status == 0) /* here, not on the worker */
            store_sink_feed(&q->q, &q->info, q->msgs, q->nmsgs);
        b->base.host.base.post(b->base.host.base.ctx, q->worker, answer_on_worker, q);
    } else {
        req_free(q);
    }
}

/* ------------------------------------------------------------------------
 * connections
 * ------------------------------------------------------------------------ */

static void bus_fail(struct bus_redis *b, const char *why);
static void start_sync(struct bus_redis *b, struct broom *r);

static int is_up(const struct bus_redis *b)
{
    return b->cmd_ready && b->sub_ready && !b->failing;
}

/* Sends a command on the command connection (bus thread). Returns 0 or -1
 * (the connection is gone: cb will not run). */
static int cmd_argv(struct bus_redis *b, redisCallbackFn *cb, void *pd, int argc, const char **argv,
                    const size_t *lens)
{
    if (b->cmd == NULL || b->failing)
        return -1;
    if (b->cmd_sent == b->cmd_done)
        b->progress_at = ev_now(b->loop);
    if (redisAsyncCommandArgv(b->cmd, cb, pd, argc, argv, lens) != REDIS_OK)
        return -1;
    b->cmd_sent++;
    return 0;
}

/* Every reply on the command connection passes here first. 0: a reply to
 * look at; -1: the context is going away (reply NULL). */
static int cmd_reply(struct bus_redis *b, void *reply)
{
    if (reply == NULL)
        return -1;
    b->cmd_done++;
    b->progress_at = ev_now(b->loop);
    return 0;
}

/* A request's reply, counted as cmd_reply does; NULL (the connection went
 * away) has answered the request RC_E_DENIED already. */
static redisReply *req_reply(struct breq *q, void *reply)
{
    if (cmd_reply(q->b, reply) != 0) {
        finish(q->b, q, RC_E_DENIED, 0);
        return NULL;
    }
    return reply;
}

static void on_plain(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = ac->data;
    if (cmd_reply(b, reply) != 0)
        return;
    redisReply *r = reply;
    if (r->type == REDIS_REPLY_ERROR) {
        rc_log_limited(&b->rl, 5, RC_LOG_WARN, "redis bus: %s: %s", (const char *)pd, r->str);
    }
}

static void go_up(struct bus_redis *b);

static void on_setup(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = ac->data;
    if (cmd_reply(b, reply) != 0)
        return;
    redisReply *r = reply;
    intptr_t what = (intptr_t)pd;
    if (r->type == REDIS_REPLY_ERROR) {
        rc_warn("redis bus: setup (%s) failed: %s",
                what < NSCRIPTS ? "SCRIPT LOAD"
                : what == 100   ? "AUTH"
                                : "SELECT",
                r->str);
        bus_fail(b, "setup");
        return;
    }
    if (what < NSCRIPTS) {
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            bus_fail(b, "SCRIPT LOAD");
            return;
        }
        memcpy(b->sha[what], r->str, 40);
        b->sha[what][40] = '\0';
    }
    if (--b->setup_left == 0) {
        b->cmd_ready = 1;
        go_up(b);
    }
}

static void on_sub_setup(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = ac->data;
    redisReply *r = reply;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        rc_warn("redis bus: subscriber AUTH failed: %s", r->str);
        bus_fail(b, "auth");
        return;
    }
    b->sub_ready = 1;
    go_up(b);
}

/* hiredis frees `ac` after this callback: forget it, and take the bus down. */
static void conn_gone(struct bus_redis *b, const redisAsyncContext *ac, const char *why)
{
    if (b->cmd == ac)
        b->cmd = NULL;
    if (b->sub == ac)
        b->sub = NULL;
    bus_fail(b, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        conn_gone(ac->data, ac, ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_gone(ac->data, ac, status == REDIS_OK ? "disconnected" : ac->errstr);
}

static redisAsyncContext *open_conn(struct bus_redis *b)
{
    redisAsyncContext *ac = redisAsyncConnect(b->url.host, b->url.port);
    if (ac == NULL)
        return NULL;
    if (ac->err) {
        rc_debug("redis bus: connect: %s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = b;
    redisLibevAttach(b->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void send_auth(struct bus_redis *b, redisAsyncContext *ac, redisCallbackFn *cb)
{
    const char *argv[3] = {"AUTH", b->url.user, b->password};
    size_t lens[3] = {4, strlen(b->url.user), strlen(b->password)};
    if (b->url.user[0])
        redisAsyncCommandArgv(ac, cb, (void *)(intptr_t)100, 3, argv, lens);
    else
        redisAsyncCommandArgv(ac, cb, (void *)(intptr_t)100, 2,
                              (const char *[]){"AUTH", b->password},
                              (size_t[]){4, strlen(b->password)});
}

static void conn_start(struct bus_redis *b)
{
    b->failing = 0;
    b->cmd_ready = b->sub_ready = 0;
    b->cmd_sent = b->cmd_done = 0;
    atomic_store(&b->state, 2);
    b->cmd = open_conn(b);
    b->sub = open_conn(b);
    if (b->cmd == NULL || b->sub == NULL) {
        bus_fail(b, "cannot create a connection");
        return;
    }
    b->setup_left = 0;
    if (b->has_password) {
        send_auth(b, b->cmd, on_setup);
        b->cmd_sent++;
        b->setup_left++;
        send_auth(b, b->sub, on_sub_setup);
    } else {
        redisAsyncCommand(b->sub, on_sub_setup, NULL, "PING");
    }
    char db[16];
    snprintf(db, sizeof(db), "%d", b->url.db);
    cmd_argv(b, on_setup, (void *)(intptr_t)101, 2, (const char *[]){"SELECT", db},
             (size_t[]){6, strlen(db)});
    b->setup_left++;
    char name[BUSMSG_NODE_MAX + 16];
    snprintf(name, sizeof(name), "roomcast:%s", b->node);
    for (char *p = name; *p; p++)
        if (*p == ' ')
            *p = '_';
    cmd_argv(b, on_plain, "CLIENT SETNAME", 3, (const char *[]){"CLIENT", "SETNAME", name},
             (size_t[]){6, 7, strlen(name)});
    for (intptr_t i = 0; i < NSCRIPTS; i++) {
        cmd_argv(b, on_setup, (void *)i, 3, (const char *[]){"SCRIPT", "LOAD", SCRIPTS[i]},
                 (size_t[]){6, 4, strlen(SCRIPTS[i])});
        b->setup_left++;
    }
    b->progress_at = ev_now(b->loop);
}

static void free_pend(struct broom *r)
{
    while (r->pend) {
        struct pend *p = r->pend;
        r->pend = p->next;
        rc_free(p);
    }
    r->pend_tail = NULL;
    r->npend = 0;
}

static void reset_room(void *ud, const char *key, size_t klen, void *val)
{
    struct broom *r = val;
    r->synced = 0;
    r->reading = 0;
    r->again = 0;
    r->joining = 0;
    free_pend(r);
}

/* Frees both connections. Their pending callbacks run now with a NULL reply
 * (and on_disconnect finds neither: cmd and sub are cleared first). */
static void free_conns(struct bus_redis *b)
{
    redisAsyncContext *c = b->cmd, *s = b->sub;
    b->cmd = b->sub = NULL;
    if (c)
        redisAsyncFree(c);
    if (s)
        redisAsyncFree(s);
}

static void on_teardown(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct bus_redis *b = t->data;
    /* publishes in flight are answered unavailable, reads are dropped (the
     * rooms resync) */
    free_conns(b);
    b->cmd_ready = b->sub_ready = 0;
    strmap_foreach(&b->rooms, reset_room, NULL);
    if (atomic_load(&b->stopping))
        return;
    double d = BACKOFF_MIN;
    for (int i = 0; i < b->attempt && d < BACKOFF_MAX; i++)
        d *= 2;
    if (d > BACKOFF_MAX)
        d = BACKOFF_MAX;
    d *= 0.5 + (double)(rnd_next(b) % 1000) / 1000.0; /* jitter: 50%..150% */
    b->attempt++;
    ev_timer_set(&b->retry, d, 0);
    ev_timer_start(loop, &b->retry);
}

/* Bus thread, maybe inside a hiredis callback: marks the bus down and lets
 * a zero timer tear the connections down outside hiredis. */
static void bus_fail(struct bus_redis *b, const char *why)
{
    if (b->failing)
        return;
    b->failing = 1;
    int was = atomic_exchange(&b->state, 0);
    if (was == 1)
        rc_warn("redis bus: down (%s); clients stay connected, publishes answer unavailable",
                why ? why : "?");
    else
        rc_debug("redis bus: connect failed (%s)", why ? why : "?");
    ev_timer_set(&b->teardown_t, 0, 0);
    ev_timer_start(b->loop, &b->teardown_t);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct bus_redis *b = t->data;
    if (b->attempt > 0)
        atomic_fetch_add(&b->st.reconnects, 1);
    conn_start(b);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct bus_redis *b = t->data;
    if (b->failing || (b->cmd == NULL && b->sub == NULL))
        return;
    double now = ev_now(loop);
    if (!is_up(b) && now - b->progress_at > RC_BUS_CMD_TIMEOUT) {
        bus_fail(b, "connect timed out");
        return;
    }
    if (b->cmd_sent > b->cmd_done && now - b->progress_at > RC_BUS_CMD_TIMEOUT)
        bus_fail(b, "command timed out");
}

/* ------------------------------------------------------------------------
 * subscriptions and delivery (bus thread)
 * ------------------------------------------------------------------------ */

static void on_sub_msg(redisAsyncContext *ac, void *reply, void *pd);

static void sub_cmd(struct bus_redis *b, const char *verb, const char *chan, size_t clen)
{
    if (b->sub == NULL || !b->sub_ready || b->failing)
        return;
    const char *argv[2] = {verb, chan};
    size_t lens[2] = {strlen(verb), clen};
    redisAsyncCommandArgv(b->sub, on_sub_msg, b, 2, argv, lens);
}

static void room_sub(struct bus_redis *b, struct broom *r, const char *verb)
{
    size_t cl;
    char *ch = key_of(r->name, r->len, "", &cl);
    sub_cmd(b, verb, ch, cl);
    rc_free(ch);
}

static void user_sub(struct bus_redis *b, const char *user, size_t ulen, const char *verb)
{
    char *ch = rc_xmalloc(ulen + 8);
    memcpy(ch, "rc:u:{", 6);
    memcpy(ch + 6, user, ulen);
    ch[6 + ulen] = '}';
    sub_cmd(b, verb, ch, ulen + 7);
    rc_free(ch);
}

static void known_set(struct bus_redis *b, struct broom *r)
{
    pthread_mutex_lock(&b->known_lock);
    struct known *k = strmap_get(&b->known, r->name, r->len);
    if (k == NULL) {
        k = rc_xcalloc(1, sizeof(*k));
        strmap_put(&b->known, r->name, r->len, k);
    }
    k->last = r->last;
    memcpy(k->epoch, r->epoch, sizeof(k->epoch));
    pthread_mutex_unlock(&b->known_lock);
}

struct bdel {
    struct bus_redis *b;
    struct store_msg m;
    uint64_t exclude;
    int kind; /* 0 room message, 1 epoch change, 2 direct, 3 disconnect (exclude: code),
               * 4 the room's head (m.seq) */
    char *data;
    size_t name_len;
    char name[];
};

static void deliver_on_worker(void *arg)
{
    struct bdel *d = arg;
    const struct bus_host *h = &d->b->base.host;
    if (d->kind == 0)
        h->deliver(h->base.ctx, d->name, d->name_len, &d->m, d->exclude);
    else if (d->kind == 1)
        h->epoch_changed(h->base.ctx, d->name, d->name_len, d->data);
    else if (d->kind == 4)
        h->room_head(h->base.ctx, d->name, d->name_len, d->m.seq);
    else if (d->kind == 2)
        h->deliver_user(h->base.ctx, d->name, d->name_len, d->m.data, d->m.len,
                        (d->m.flags & ROOM_PUB_BINARY) != 0);
    else
        h->close_user(h->base.ctx, d->name, d->name_len, (unsigned)d->exclude, d->m.data, d->m.len);
    rc_free(d->data);
    rc_free(d);
}

static struct bdel *bdel_new(struct bus_redis *b, int kind, const char *name, size_t len,
                             const char *data, size_t dlen)
{
    struct bdel *d = rc_xcalloc(1, sizeof(*d) + len + 1);
    d->b = b;
    d->kind = kind;
    d->name_len = len;
    memcpy(d->name, name, len);
    d->data = rc_xmalloc(dlen + 1);
    if (dlen)
        memcpy(d->data, data, dlen);
    d->data[dlen] = '\0';
    d->m.data = d->data;
    d->m.len = dlen;
    return d;
}

static void post_epoch(struct bus_redis *b, struct broom *r)
{
    struct bdel *d = bdel_new(b, 1, r->name, r->len, r->epoch, strlen(r->epoch));
    b->base.host.base.post(b->base.host.base.ctx, r->owner, deliver_on_worker, d);
}

static void set_epoch(struct bus_redis *b, struct broom *r, const char *ep, size_t elen)
{
    int had = r->epoch[0] != '\0';
    if (elen == strlen(r->epoch) && memcmp(r->epoch, ep, elen) == 0)
        return;
    memcpy(r->epoch, ep, elen);
    r->epoch[elen] = '\0';
    if (had) {
        atomic_fetch_add(&b->st.epochs, 1);
        rc_info("redis bus: room %.*s has a new epoch %s (its history was lost)", (int)r->len,
                r->name, r->epoch);
        r->last = 0;
        r->base = 0;
    }
    post_epoch(b, r);
}

static void deliver(struct bus_redis *b, struct broom *r, uint64_t seq, int64_t ts, uint32_t flags,
                    uint64_t exclude, const char *data, size_t len)
{
    if (seq > r->last + 1 && r->last + 1 != 0) {
        atomic_fetch_add(&b->st.lost, seq - r->last - 1);
        rc_warn("redis bus: room %.*s: seq %llu..%llu are gone from its stream (trimmed); "
                "members see a jump",
                (int)r->len, r->name, (unsigned long long)r->last + 1, (unsigned long long)seq - 1);
    }
    struct bdel *d = bdel_new(b, 0, r->name, r->len, data, len);
    d->m.seq = seq;
    d->m.ts_ms = ts;
    d->m.flags = flags;
    d->exclude = exclude;
    r->last = seq;
    atomic_fetch_add(&b->st.deliveries, 1);
    known_set(b, r);
    b->base.host.base.post(b->base.host.base.ctx, r->owner, deliver_on_worker, d);
}

static void pend_add(struct bus_redis *b, struct broom *r, struct pend *p)
{
    if (r->npend >= PEND_MAX) {
        rc_free(p); /* the stream still has it: the next backfill brings it */
        return;
    }
    r->npend++;
    if (r->pend_tail == NULL || r->pend_tail->seq < p->seq) {
        p->next = NULL;
        if (r->pend_tail)
            r->pend_tail->next = p;
        else
            r->pend = p;
        r->pend_tail = p;
        return;
    }
    struct pend **pp = &r->pend;
    while (*pp && (*pp)->seq < p->seq)
        pp = &(*pp)->next;
    p->next = *pp;
    *pp = p;
}

static void read_room(struct bus_redis *b, struct broom *r, int initial);

/* One message of the room's channel (or a held one). no_backfill: take a
 * jump as final (right after a backfill, the stream has nothing more). */
static void process(struct bus_redis *b, struct broom *r, struct pend *p, int no_backfill)
{
    if (!r->synced || r->reading) {
        pend_add(b, r, p);
        return;
    }
    if (strcmp(p->epoch, r->epoch) != 0)
        set_epoch(b, r, p->epoch, strlen(p->epoch));
    if (p->seq <= r->last) {
        if (p->seq > r->base)
            atomic_fetch_add(&b->st.duplicates, 1);
        rc_free(p);
        return;
    }
    if (p->seq == r->last + 1 || no_backfill) {
        deliver(b, r, p->seq, p->ts_ms, p->flags, p->exclude, p->data, p->len);
        rc_free(p);
        return;
    }
    /* a gap: hold this one, fetch the missing ones from the stream first */
    pend_add(b, r, p);
    read_room(b, r, 0);
}

static void drain_pend(struct bus_redis *b, struct broom *r)
{
    struct pend *list = r->pend;
    r->pend = r->pend_tail = NULL;
    r->npend = 0;
    while (list) {
        struct pend *p = list;
        list = p->next;
        process(b, r, p, 1);
        if (r->reading) { /* an epoch change restarted a read: hold the rest */
            while (list) {
                struct pend *q = list;
                list = q->next;
                pend_add(b, r, q);
            }
        }
    }
}

struct rctx {
    struct bus_redis *b;
    uint64_t gen;
    int initial;
    uint64_t since;
    size_t len;
    char name[];
};

static int entry_seq(const redisReply *e, uint64_t *seq)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    const char *id = e->element[0]->str;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(id, &end, 10);
    if (errno || end == id || *end != '-' || v == 0)
        return -1;
    *seq = v;
    return 0;
}

/* The fields of a stream entry: d, t, f. */
static void entry_fields(const redisReply *e, const char **d, size_t *dl, int64_t *ts,
                         uint32_t *flags)
{
    const redisReply *f = e->element[1];
    *d = "";
    *dl = 0;
    *ts = 0;
    *flags = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        if (k->str[0] == 'd') {
            *d = v->str;
            *dl = v->len;
        } else if (k->str[0] == 't') {
            *ts = strtoll(v->str, NULL, 10);
        } else if (k->str[0] == 'f') {
            *flags = (uint32_t)strtoul(v->str, NULL, 10);
        }
    }
}

/* A read reply is {last, epoch, entries}. */
static int read_reply_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_INTEGER &&
           r->element[1]->type == REDIS_REPLY_STRING &&
           busmsg_valid_epoch(r->element[1]->str, r->element[1]->len) &&
           r->element[2]->type == REDIS_REPLY_ARRAY;
}

static void on_room_read(redisAsyncContext *ac, void *reply, void *pd)
{
    struct rctx *x = pd;
    struct bus_redis *b = x->b;
    if (cmd_reply(b, reply) != 0) {
        rc_free(x);
        return;
    }
    redisReply *rep = reply;
    struct broom *r = strmap_get(&b->rooms, x->name, x->len);
    if (r == NULL || r->gen != x->gen || !r->reading) {
        rc_free(x);
        return;
    }
    r->reading = 0;
    if (!read_reply_ok(rep)) {
        rc_warn("redis bus: room %.*s: bad read reply%s%s", (int)r->len, r->name,
                rep->type == REDIS_REPLY_ERROR ? ": " : "",
                rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        rc_free(x);
        bus_fail(b, "read");
        return;
    }
    uint64_t last_now = (uint64_t)rep->element[0]->integer;
    const char *ep = rep->element[1]->str;
    size_t elen = rep->element[1]->len;
    const redisReply *ents = rep->element[2];
    if (x->initial || r->epoch[0] == '\0') {
        /* the join point: everything after it reaches this node's members,
         * through the channel or (what the subscription did not bring) the
         * backfill that follows the subscription's confirmation */
        set_epoch(b, r, ep, elen);
        r->last = last_now;
        if (r->pend && strcmp(r->pend->epoch, r->epoch) == 0 && r->pend->seq - 1 < last_now)
            r->last = r->pend->seq - 1;
        r->base = r->last;
        known_set(b, r);
        if (r->last > 0 && b->base.host.room_head) {
            /* before any delivery (the owner's mailbox is FIFO) */
            struct bdel *d = bdel_new(b, 4, r->name, r->len, "", 0);
            d->m.seq = r->last;
            b->base.host.base.post(b->base.host.base.ctx, r->owner, deliver_on_worker, d);
        }
        rc_free(x);
        if (r->again) {
            r->again = 0;
            read_room(b, r, 0);
            return;
        }
        r->synced = 1;
        drain_pend(b, r);
        return;
    }
    if (elen != strlen(r->epoch) || memcmp(ep, r->epoch, elen) != 0) {
        /* Redis lost the room: adopt the new epoch and read it from its start */
        set_epoch(b, r, ep, elen);
        r->last = 0;
        r->base = 0;
        struct pend **pp = &r->pend; /* held messages of the old epoch are void */
        while (*pp) {
            if (strcmp((*pp)->epoch, r->epoch) != 0) {
                struct pend *dead = *pp;
                *pp = dead->next;
                rc_free(dead);
                r->npend--;
            } else {
                pp = &(*pp)->next;
            }
        }
        r->pend_tail = r->pend;
        while (r->pend_tail && r->pend_tail->next)
            r->pend_tail = r->pend_tail->next;
        rc_free(x);
        read_room(b, r, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < ents->elements; i++) {
        uint64_t seq;
        if (entry_seq(ents->element[i], &seq) != 0) {
            atomic_fetch_add(&b->st.bad, 1);
            continue;
        }
        if (seq <= r->last)
            continue;
        const char *d;
        size_t dl;
        int64_t ts;
        uint32_t fl;
        entry_fields(ents->element[i], &d, &dl, &ts, &fl);
        /* counted before the delivery is posted, so whoever sees the
         * message also sees it counted */
        if (n++ == 0)
            atomic_fetch_add(&b->st.backfills, 1);
        atomic_fetch_add(&b->st.backfilled, 1);
        deliver(b, r, seq, ts, fl, 0, d, dl);
    }
    rc_free(x);
    if ((ents->elements == BACKFILL_MAX && r->last < last_now) || r->again) {
        r->again = 0;
        read_room(b, r, 0);
        return;
    }
    if (r->joining && r->epoch[0] != '\0') {
        /* what the join's backfill brought may come on the channel too */
        r->base = r->last;
        r->joining = 0;
    }
    r->synced = 1;
    drain_pend(b, r);
}

/* Reads the room's head (initial) or what follows r->last (backfill). */
static void read_room(struct bus_redis *b, struct broom *r, int initial)
{
    if (r->reading || !is_up(b))
        return;
    struct rctx *x = rc_xmalloc(sizeof(*x) + r->len + 1);
    x->b = b;
    x->gen = r->gen;
    x->initial = initial;
    x->since = r->last;
    x->len = r->len;
    memcpy(x->name, r->name, r->len);
    size_t l1, l2, l3;
    char *k1 = key_of(r->name, r->len, ":seq", &l1);
    char *k2 = key_of(r->name, r->len, ":h", &l2);
    char *k3 = key_of(r->name, r->len, ":epoch", &l3);
    char from[24], lim[16], ep[13];
    snprintf(from, sizeof(from), "%llu", (unsigned long long)r->last + 1);
    snprintf(lim, sizeof(lim), "%d", initial ? 0 : BACKFILL_MAX);
    new_epoch(b, ep);
    const char *argv[] = {"EVALSHA", b->sha[SCRIPT_READ], "3", k1, k2, k3, from, "+", lim, "0", ep};
    size_t lens[] = {7, 40, 1, l1, l2, l3, strlen(from), 1, strlen(lim), 1, 12};
    r->reading = 1;
    if (cmd_argv(b, on_room_read, x, 11, argv, lens) != 0) {
        r->reading = 0;
        rc_free(x);
    }
    rc_free(k1);
    rc_free(k2);
    rc_free(k3);
}

/* The room's subscription is confirmed: from now on the channel brings
 * everything; read what came before it. A read already in flight (the
 * join's, sent with the SUBSCRIBE) is followed by a backfill. */
static void start_sync(struct bus_redis *b, struct broom *r)
{
    r->synced = 0;
    if (r->reading) {
        r->again = 1;
        return;
    }
    read_room(b, r, r->epoch[0] == '\0');
}

static void on_room_message(struct bus_redis *b, const char *room, size_t rlen, const char *p,
                            size_t n)
{
    struct broom *r = strmap_get(&b->rooms, room, rlen);
    if (r == NULL)
        return; /* arrived after we unsubscribed */
    struct busmsg m;
    if (busmsg_parse_room(p, n, &m) != 0) {
        atomic_fetch_add(&b->st.bad, 1);
        rc_log_limited(&b->rl, 5, RC_LOG_WARN, "redis bus: room %.*s: skipped a malformed message",
                       (int)rlen, room);
        return;
    }
    struct pend *x = rc_xmalloc(sizeof(*x) + m.len + 1);
    x->next = NULL;
    x->seq = m.seq;
    x->ts_ms = m.ts_ms;
    x->flags = m.flags;
    int mine = m.origin_len == strlen(b->node) && memcmp(m.origin, b->node, m.origin_len) == 0;
    x->exclude = mine ? m.exclude : 0;
    memcpy(x->epoch, m.epoch, m.epoch_len);
    x->epoch[m.epoch_len] = '\0';
    x->len = m.len;
    memcpy(x->data, m.data, m.len);
    process(b, r, x, 0);
}

static void on_direct_message(struct bus_redis *b, const char *user, size_t ulen, const char *p,
                              size_t n)
{
    int bin = 0;
    unsigned code = 0;
    const char *d;
    size_t dl;
    int kick = n >= 5 && memcmp(p, "rck1 ", 5) == 0;
    if (kick ? busmsg_parse_kick(p, n, &code, &d, &dl) != 0
             : busmsg_parse_direct(p, n, &bin, &d, &dl) != 0) {
        atomic_fetch_add(&b->st.bad, 1);
        return;
    }
    if (strmap_get(&b->users, user, ulen) == NULL)
        return;
    atomic_fetch_add(&b->st.directs_in, 1);
    struct bdel *x = bdel_new(b, kick ? 3 : 2, user, ulen, d, dl);
    x->m.flags = bin ? ROOM_PUB_BINARY : 0;
    x->exclude = code; /* kind 3: the close code */
    int w = (int)(strmap_hash(user, ulen) % (uint64_t)b->base.host.base.nworkers);
    b->base.host.base.post(b->base.host.base.ctx, w, deliver_on_worker, x);
}

static void on_sub_msg(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = pd;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    const char *ch = r->element[1]->str;
    size_t cl = r->element[1]->len;
    int direct = cl >= 7 && memcmp(ch, "rc:u:{", 6) == 0 && ch[cl - 1] == '}';
    int room = !direct && cl >= 6 && memcmp(ch, "rc:{", 4) == 0 && ch[cl - 1] == '}';
    if (strcmp(kind, "message") == 0) {
        if (r->element[2]->type != REDIS_REPLY_STRING) {
            atomic_fetch_add(&b->st.bad, 1);
            return;
        }
        if (direct)
            on_direct_message(b, ch + 6, cl - 7, r->element[2]->str, r->element[2]->len);
        else if (room)
            on_room_message(b, ch + 4, cl - 5, r->element[2]->str, r->element[2]->len);
        else
            atomic_fetch_add(&b->st.bad, 1);
    } else if (strcmp(kind, "subscribe") == 0 && room) {
        /* subscribed: from now on nothing is missed; read what we lack */
        struct broom *rm = strmap_get(&b->rooms, ch + 4, cl - 5);
        if (rm)
            start_sync(b, rm);
    }
}

/* ------------------------------------------------------------------------
 * presence and heartbeat (bus thread)
 * ------------------------------------------------------------------------ */

/* "rc:{room}:p:NODE" of this node, malloc'd. */
static char *share_key(struct bus_redis *b, const char *room, size_t rlen, size_t *klen)
{
    char suffix[BUSMSG_NODE_MAX + 8];
    snprintf(suffix, sizeof(suffix), ":p:%s", b->node);
    return key_of(room, rlen, suffix, klen);
}

/* One connection of `user` (NULL: none) joins (delta 1) or leaves (-1). */
static void pset_send(struct bus_redis *b, const char *room, size_t rlen, const char *user,
                      size_t ulen, long delta)
{
    if (!is_up(b))
        return; /* go_up writes the whole share again */
    size_t l1, l2;
    char *k1 = share_key(b, room, rlen, &l1);
    char *k2 = key_of(room, rlen, ":pn", &l2);
    char dl[24], ttl[24];
    snprintf(dl, sizeof(dl), "%ld", delta);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(b->node_ttl * 1000));
    const char *argv[] = {"EVALSHA", b->sha[SCRIPT_PSET], "2", k1, k2, b->node, ttl,
                          dl,        user ? user : "",    dl};
    size_t lens[] = {
        7, 40, 1, l1, l2, strlen(b->node), strlen(ttl), strlen(dl), user ? ulen : 0, strlen(dl)};
    cmd_argv(b, on_plain, "presence", 10, argv, lens);
    rc_free(k1);
    rc_free(k2);
}

#define FILL_BATCH 512 /* users per PFILL call: no script runs long */

/* A node's share of one room written again, in PFILL batches. */
struct fill {
    struct bus_redis *b;
    int first, n;
    const char *argv[9 + 2 * FILL_BATCH];
    size_t lens[9 + 2 * FILL_BATCH];
    char ttl[24], conns[24], nums[FILL_BATCH][24];
};

static void fill_flush(struct fill *f)
{
    f->argv[7] = f->first ? "1" : "0";
    f->lens[7] = 1;
    cmd_argv(f->b, on_plain, "presence", 9 + 2 * f->n, f->argv, f->lens);
    f->first = 0;
    f->n = 0;
}

static void fill_user(void *ud, const char *user, size_t ulen, void *val)
{
    struct fill *f = ud;
    if (f->n == FILL_BATCH)
        fill_flush(f);
    int i = 9 + 2 * f->n;
    snprintf(f->nums[f->n], sizeof(f->nums[0]), "%ld", (long)(intptr_t)val);
    f->argv[i] = user;
    f->lens[i] = ulen;
    f->argv[i + 1] = f->nums[f->n];
    f->lens[i + 1] = strlen(f->nums[f->n]);
    f->n++;
}

static void fill_room(struct bus_redis *b, const char *room, size_t rlen, const struct proom *pr)
{
    struct fill *f = rc_xmalloc(sizeof(*f));
    size_t l1, l2;
    char *k1 = share_key(b, room, rlen, &l1);
    char *k2 = key_of(room, rlen, ":pn", &l2);
    f->b = b;
    f->first = 1;
    f->n = 0;
    snprintf(f->ttl, sizeof(f->ttl), "%lld", (long long)(b->node_ttl * 1000));
    snprintf(f->conns, sizeof(f->conns), "%ld", pr->conns);
    const char *head[] = {"EVALSHA", b->sha[SCRIPT_PFILL], "2", k1, k2, b->node, f->ttl, "",
                          f->conns};
    size_t hl[] = {7, 40, 1, l1, l2, strlen(b->node), strlen(f->ttl), 0, strlen(f->conns)};
    memcpy(f->argv, head, sizeof(head));
    memcpy(f->lens, hl, sizeof(hl));
    strmap_foreach((struct strmap *)&pr->users, fill_user, f);
    if (f->first || f->n > 0)
        fill_flush(f);
    rc_free(k1);
    rc_free(k2);
    rc_free(f);
}

struct pwalk {
    struct bus_redis *b;
    int full;
};

/* A heartbeat's PEXPIRE of this node's share of a room (pd: the room's
 * name, malloc'd, NUL-terminated). 0: the key is gone although this node
 * has members there (it was silent longer than node_ttl, or someone
 * deleted it): write the share again rather than stay absent until the
 * next reconnection. */
static void on_refresh(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = ac->data;
    char *room = pd;
    if (cmd_reply(b, reply) == 0) {
        redisReply *r = reply;
        struct proom *pr = strmap_get(&b->presence, room, strlen(room));
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 && pr && is_up(b))
            fill_room(b, room, strlen(room), pr);
    }
    rc_free(room);
}

static void refresh_room(void *ud, const char *room, size_t rlen, void *val)
{
    struct pwalk *w = ud;
    struct bus_redis *b = w->b;
    if (w->full) {
        /* Redis may have lost it: write this node's whole share again,
         * the count SET (not added: what Redis kept is not counted twice) */
        fill_room(b, room, rlen, val);
        return;
    }
    size_t kl;
    char *k = share_key(b, room, rlen, &kl);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(b->node_ttl * 1000));
    char *name = rc_xstrndup(room, rlen);
    if (cmd_argv(b, on_refresh, name, 3, (const char *[]){"PEXPIRE", k, ttl},
                 (size_t[]){7, kl, strlen(ttl)}) != 0)
        rc_free(name);
    rc_free(k);
}

static void on_hb(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = ac->data;
    if (cmd_reply(b, reply) != 0)
        return;
    redisReply *r = reply;
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    size_t total = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            total += r->element[i]->len + 1;
    char *list = rc_xmalloc(total + 1);
    size_t o = 0;
    long n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        memcpy(list + o, r->element[i]->str, r->element[i]->len);
        o += r->element[i]->len;
        list[o++] = '\n';
        n++;
    }
    list[o] = '\0';
    pthread_mutex_lock(&b->nodes_lock);
    rc_free(b->nodes);
    b->nodes = list;
    b->nnodes = n;
    pthread_mutex_unlock(&b->nodes_lock);
}

static void heartbeat(struct bus_redis *b, int full)
{
    if (!is_up(b))
        return;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(b->node_ttl * 1000));
    const char *argv[] = {"EVALSHA", b->sha[SCRIPT_HB], "1", "rc:nodes", b->node, ttl};
    size_t lens[] = {7, 40, 1, 8, strlen(b->node), strlen(ttl)};
    cmd_argv(b, on_hb, NULL, 6, argv, lens);
    struct pwalk w = {b, full};
    strmap_foreach(&b->presence, refresh_room, &w);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    heartbeat(t->data, 0);
}

static void resub_room(void *ud, const char *key, size_t klen, void *val)
{
    room_sub(ud, val, "SUBSCRIBE");
}

static void resub_user(void *ud, const char *key, size_t klen, void *val)
{
    user_sub(ud, key, klen, "SUBSCRIBE");
}

static void go_up(struct bus_redis *b)
{
    if (!b->cmd_ready || !b->sub_ready || b->failing)
        return;
    b->attempt = 0;
    atomic_store(&b->state, 1);
    rc_info("redis bus: up (redis://%s:%d/%d, node %s, %zu rooms to resubscribe)", b->url.host,
            b->url.port, b->url.db, b->node, b->rooms.count);
    /* every room with local members: subscribe, then (on the confirmation)
     * read what was missed while down */
    strmap_foreach(&b->rooms, resub_room, b);
    strmap_foreach(&b->users, resub_user, b);
    heartbeat(b, 1);
}

/* ------------------------------------------------------------------------
 * the request loop (bus thread)
 * ------------------------------------------------------------------------ */

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *pd);

static void send_publish(struct bus_redis *b, struct breq *q)
{
    size_t l1, l2, l3, l4;
    char *k1 = key_of(q->name, q->name_len, ":seq", &l1);
    char *k2 = key_of(q->name, q->name_len, ":h", &l2);
    char *k3 = key_of(q->name, q->name_len, ":epoch", &l3);
    char *ch = key_of(q->name, q->name_len, "", &l4);
    char ts[24], fl[16], keep[16], ex[24], ep[13];
    snprintf(ts, sizeof(ts), "%lld", (long long)q->ts_ms);
    snprintf(fl, sizeof(fl), "%u", (unsigned)q->flags);
    snprintf(keep, sizeof(keep), "%u", (unsigned)b->keep);
    snprintf(ex, sizeof(ex), "%llu", (unsigned long long)q->exclude);
    new_epoch(b, ep);
    const char *body = q->retried ? PUB_LUA : b->sha[SCRIPT_PUB];
    const char *argv[] = {q->retried ? "EVAL" : "EVALSHA",
                          body,
                          "3",
                          k1,
                          k2,
                          k3,
                          ch,
                          &q->mode,
                          q->data,
                          ts,
                          fl,
                          keep,
                          b->node,
                          ex,
                          ep};
    size_t lens[] = {q->retried ? 4u : 7u,
                     strlen(body),
                     1,
                     l1,
                     l2,
                     l3,
                     l4,
                     1,
                     q->len,
                     strlen(ts),
                     strlen(fl),
                     strlen(keep),
                     strlen(b->node),
                     strlen(ex),
                     12};
    q->t0 = now_mono();
    if (cmd_argv(b, on_pub_reply, q, 15, argv, lens) != 0)
        finish(b, q, RC_E_DENIED, 0);
    rc_free(k1);
    rc_free(k2);
    rc_free(k3);
    rc_free(ch);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    struct breq *q = pd;
    struct bus_redis *b = q->b;
    if (cmd_reply(b, reply) != 0) {
        atomic_fetch_add(&b->st.unavailable, 1);
        finish(b, q, RC_E_DENIED, 0);
        return;
    }
    redisReply *r = reply;
    if (r->type == REDIS_REPLY_ERROR && !q->retried && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        q->retried = 1; /* the script cache was flushed: send the body once */
        send_publish(b, q);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        rc_log_limited(&b->rl, 5, RC_LOG_WARN, "redis bus: publish to %s failed: %s", q->name,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        atomic_fetch_add(&b->st.unavailable, 1);
        finish(b, q, RC_E_DENIED, 0);
        return;
    }
    double us = (now_mono() - q->t0) * 1e6;
    int bucket = 0;
    while (bucket < RTT_BUCKETS - 1 && us >= (double)(1ULL << bucket))
        bucket++;
    atomic_fetch_add(&b->st.rtt[bucket], 1);
    atomic_fetch_add(&b->st.rtt_count, 1);
    atomic_fetch_add(&b->st.rtt_sum_us, (unsigned long long)us);
    atomic_fetch_add(&b->st.publishes, 1);
    finish(b, q, 0, (uint64_t)r->element[0]->integer);
}

static void on_direct_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    struct breq *q = pd;
    struct bus_redis *b = q->b;
    redisReply *r = req_reply(q, reply);
    if (r == NULL)
        return;
    /* the ack's count: the nodes subscribed to the user's channel (0: the
     * user is connected nowhere) */
    finish(b, q, r->type == REDIS_REPLY_INTEGER ? 0 : RC_E_DENIED,
           r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0);
}

/* A presence read's reply: RQ_PCOUNT one integer (the count), RQ_PGET
 * {count, user, user, ...}. */
static void on_presence_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    struct breq *q = pd;
    struct bus_redis *b = q->b;
    redisReply *r = req_reply(q, reply);
    if (r == NULL)
        return;
    const redisReply *n = q->type == RQ_PCOUNT                               ? r
                          : r->type == REDIS_REPLY_ARRAY && r->elements >= 1 ? r->element[0]
                                                                             : NULL;
    if (n == NULL || n->type != REDIS_REPLY_INTEGER) {
        finish(b, q, RC_E_DENIED, 0);
        return;
    }
    if (q->type == RQ_PGET) {
        q->users = rc_xcalloc(r->elements + 1, sizeof(char *));
        q->ulens = rc_xcalloc(r->elements + 1, sizeof(size_t));
        for (size_t i = 1; i < r->elements; i++) {
            if (r->element[i]->type != REDIS_REPLY_STRING)
                continue;
            q->users[q->nusers] = rc_xstrndup(r->element[i]->str, r->element[i]->len);
            q->ulens[q->nusers++] = r->element[i]->len;
        }
    }
    finish(b, q, 0, n->integer > 0 ? (uint64_t)n->integer : 0);
}

static void on_read_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    struct breq *q = pd;
    struct bus_redis *b = q->b;
    redisReply *r = req_reply(q, reply);
    if (r == NULL)
        return;
    if (!read_reply_ok(r)) {
        finish(b, q, RC_E_DENIED, 0);
        return;
    }
    q->info.last_seq = (uint64_t)r->element[0]->integer;
    memcpy(q->info.epoch, r->element[1]->str, r->element[1]->len);
    q->info.epoch[r->element[1]->len] = '\0';
    const redisReply *e = r->element[2];
    q->msgs = rc_xcalloc(e->elements + 1, sizeof(*q->msgs));
    for (size_t i = 0; i < e->elements; i++) {
        uint64_t seq;
        if (entry_seq(e->element[i], &seq) != 0)
            continue;
        if (q->q.before && seq >= q->q.before)
            continue;
        const char *d;
        size_t dl;
        struct store_msg *m = &q->msgs[q->nmsgs++];
        entry_fields(e->element[i], &d, &dl, &m->ts_ms, &m->flags);
        m->seq = seq;
        m->data = rc_xstrndup(d, dl);
        m->len = dl;
    }
    finish(b, q, 0, 0);
}

static void do_room(struct bus_redis *b, struct breq *q)
{
    struct broom *r = strmap_get(&b->rooms, q->name, q->name_len);
    if (q->on) {
        if (r == NULL) {
            r = rc_xcalloc(1, sizeof(*r) + q->name_len + 1);
            r->gen = ++b->next_gen;
            r->len = q->name_len;
            memcpy(r->name, q->name, q->name_len);
            r->owner = b->base.host.owner_of(b->base.host.base.ctx, q->name, q->name_len);
            strmap_put(&b->rooms, q->name, q->name_len, r);
        }
        if (r->interest++ == 0) {
            /* learn the room's seq now, on the command connection, so what is
             * published before the subscription takes effect is backfilled */
            if (r->epoch[0] == '\0') {
                r->joining = 1;
                read_room(b, r, 1);
            }
            room_sub(b, r, "SUBSCRIBE");
        }
    } else if (r && --r->interest <= 0) {
        room_sub(b, r, "UNSUBSCRIBE");
        strmap_del(&b->rooms, r->name, r->len);
        free_pend(r);
        rc_free(r);
    }
}

static void do_user(struct bus_redis *b, struct breq *q)
{
    intptr_t n = (intptr_t)strmap_get(&b->users, q->name, q->name_len);
    if (q->on) {
        strmap_put(&b->users, q->name, q->name_len, (void *)(n + 1));
        if (n == 0)
            user_sub(b, q->name, q->name_len, "SUBSCRIBE");
    } else if (n > 0) {
        if (n == 1) {
            strmap_del(&b->users, q->name, q->name_len);
            user_sub(b, q->name, q->name_len, "UNSUBSCRIBE");
        } else {
            strmap_put(&b->users, q->name, q->name_len, (void *)(n - 1));
        }
    }
}

static void free_proom(void *p)
{
    struct proom *pr = p;
    strmap_clear(&pr->users, NULL);
    rc_free(pr);
}

/* One connection (of q->user, or anonymous) joins or leaves the room: this
 * node's share changes here, then in Redis. A leave that was never joined
 * is ignored. */
static void do_pset(struct bus_redis *b, struct breq *q)
{
    struct proom *pr = strmap_get(&b->presence, q->name, q->name_len);
    if (pr == NULL) {
        if (!q->on)
            return;
        pr = rc_xcalloc(1, sizeof(*pr));
        strmap_init(&pr->users);
        strmap_put(&b->presence, q->name, q->name_len, pr);
    }
    if (q->user) {
        intptr_t n = (intptr_t)strmap_get(&pr->users, q->user, q->ulen);
        if (!q->on && n == 0)
            return;
        n += q->on ? 1 : -1;
        if (n > 0)
            strmap_put(&pr->users, q->user, q->ulen, (void *)n);
        else
            strmap_del(&pr->users, q->user, q->ulen);
    } else {
        if (!q->on && pr->anon == 0)
            return;
        pr->anon += q->on ? 1 : -1;
    }
    pr->conns += q->on ? 1 : -1;
    if (pr->conns <= 0) {
        strmap_del(&b->presence, q->name, q->name_len);
        free_proom(pr);
    }
    pset_send(b, q->name, q->name_len, q->user, q->ulen, q->on ? 1 : -1);
}

static void run_req(struct bus_redis *b, struct breq *q)
{
    switch (q->type) {
    case RQ_PUBLISH:
        if (!is_up(b)) {
            atomic_fetch_add(&b->st.unavailable, 1);
            finish(b, q, RC_E_DENIED, 0);
        } else {
            send_publish(b, q);
        }
        return;
    case RQ_ROOM:
        do_room(b, q);
        break;
    case RQ_USER:
        do_user(b, q);
        break;
    case RQ_PSET:
        do_pset(b, q);
        break;
    case RQ_DIRECT: {
        size_t cl = q->name_len + 7;
        char *ch = rc_xmalloc(cl + 1);
        memcpy(ch, "rc:u:{", 6);
        memcpy(ch + 6, q->name, q->name_len);
        ch[6 + q->name_len] = '}';
        if (!is_up(b) ||
            cmd_argv(b, on_direct_reply, q, 3, (const char *[]){"PUBLISH", ch, q->data},
                     (size_t[]){7, cl, q->len}) != 0)
            finish(b, q, RC_E_DENIED, 0);
        rc_free(ch);
        return;
    }
    case RQ_PGET:
    case RQ_PCOUNT: {
        size_t l1, l2;
        char *k1 = key_of(q->name, q->name_len, ":pn", &l1);
        char *k2 = key_of(q->name, q->name_len, ":p:", &l2);
        int count = q->type == RQ_PCOUNT;
        const char *argv[] = {"EVALSHA", b->sha[count ? SCRIPT_PCOUNT : SCRIPT_PGET], "1", k1, k2};
        size_t lens[] = {7, 40, 1, l1, l2};
        if (!is_up(b) || cmd_argv(b, on_presence_reply, q, 5, argv, lens) != 0)
            finish(b, q, RC_E_DENIED, 0);
        rc_free(k1);
        rc_free(k2);
        return;
    }
    case RQ_READ: {
        size_t l1, l2, l3;
        char *k1 = key_of(q->name, q->name_len, ":seq", &l1);
        char *k2 = key_of(q->name, q->name_len, ":h", &l2);
        char *k3 = key_of(q->name, q->name_len, ":epoch", &l3);
        char from[24], to[24], lim[16], ep[13];
        snprintf(from, sizeof(from), "%llu", (unsigned long long)q->q.since + 1);
        if (q->q.before > 1)
            snprintf(to, sizeof(to), "%llu", (unsigned long long)q->q.before - 1);
        else
            snprintf(to, sizeof(to), "+");
        snprintf(lim, sizeof(lim), "%u", (unsigned)(q->q.before == 1 ? 0 : q->q.limit));
        new_epoch(b, ep);
        const char *argv[] = {"EVALSHA", b->sha[SCRIPT_READ],     "3", k1, k2, k3, from, to,
                              lim,       q->q.newest ? "1" : "0", ep};
        size_t lens[] = {7, 40, 1, l1, l2, l3, strlen(from), strlen(to), strlen(lim), 1, 12};
        if (!is_up(b) || cmd_argv(b, on_read_reply, q, 11, argv, lens) != 0)
            finish(b, q, RC_E_DENIED, 0);
        rc_free(k1);
        rc_free(k2);
        rc_free(k3);
        return;
    }
    }
    req_free(q);
}

static void on_goodbye(redisAsyncContext *ac, void *reply, void *pd)
{
    struct bus_redis *b = pd;
    cmd_reply(b, reply);
    ev_break(b->loop, EVBREAK_ALL);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void drop_share(void *ud, const char *room, size_t rlen, void *val)
{
    struct bus_redis *b = ud;
    size_t l1, l2;
    char *k1 = share_key(b, room, rlen, &l1);
    char *k2 = key_of(room, rlen, ":pn", &l2);
    cmd_argv(b, on_plain, "goodbye", 2, (const char *[]){"DEL", k1}, (size_t[]){3, l1});
    cmd_argv(b, on_plain, "goodbye", 3, (const char *[]){"SREM", k2, b->node},
             (size_t[]){4, l2, strlen(b->node)});
    rc_free(k1);
    rc_free(k2);
}

/* Stopping (SIGTERM): what the workers queued last (their members leaving)
 * still goes out, then this node's presence and registration are removed so
 * the other nodes see it leave at once, not after node_ttl. Bounded: the
 * loop ends when the last reply arrives or after a second. */
static void say_goodbye(struct bus_redis *b)
{
    if (!is_up(b)) {
        ev_break(b->loop, EVBREAK_ALL);
        return;
    }
    strmap_foreach(&b->presence, drop_share, b);
    const char *argv[] = {"ZREM", "rc:nodes", b->node};
    size_t lens[] = {4, 8, strlen(b->node)};
    if (cmd_argv(b, on_goodbye, b, 3, argv, lens) != 0) {
        ev_break(b->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&b->retry, on_stop_timeout, 1.0, 0);
    ev_timer_start(b->loop, &b->retry);
}

/* Runs what the workers queued, WAKE_BATCH at a time: a burst (100k
 * members joining at once) must not keep the loop from reading replies, or
 * the watchdog would take the bus's own work for a silent Redis. */
static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    struct bus_redis *b = a->data;
    pthread_mutex_lock(&b->qlock);
    if (b->qhead) {
        if (b->btail)
            b->btail->next = b->qhead;
        else
            b->bhead = b->qhead;
        b->btail = b->qtail;
    }
    b->qhead = b->qtail = NULL;
    pthread_mutex_unlock(&b->qlock);
    for (int n = 0; b->bhead && n < WAKE_BATCH; n++) {
        struct breq *q = b->bhead;
        b->bhead = q->next;
        if (b->bhead == NULL)
            b->btail = NULL;
        q->next = NULL;
        run_req(b, q);
    }
    if (b->bhead)
        ev_async_send(loop, &b->wake); /* the rest after this iteration's I/O */
    if (atomic_load(&b->stopping) && !b->said_goodbye && b->bhead == NULL) {
        b->said_goodbye = 1;
        ev_timer_stop(loop, &b->retry);
        ev_timer_stop(loop, &b->teardown_t);
        ev_timer_stop(loop, &b->heartbeat);
        say_goodbye(b);
    }
}

static void *bus_main(void *arg)
{
    struct bus_redis *b = arg;
    rc_log_set_thread_tag(99);
    conn_start(b);
    ev_run(b->loop, 0);
    return NULL;
}

/* ------------------------------------------------------------------------
 * bus_ops (any worker)
 * ------------------------------------------------------------------------ */

/* Where to splice ,"seq":N,"ts":MS into a JSON object: the index of its
 * final '}' (-1: not an object); *empty for "{}". */
static long splice_point(const char *p, size_t n, int *empty)
{
    size_t a = 0;
    while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\n' || p[a] == '\r'))
        a++;
    long z = (long)n - 1;
    while (z >= 0 && (p[z] == ' ' || p[z] == '\t' || p[z] == '\n' || p[z] == '\r'))
        z--;
    if (a >= n || z < 0 || p[a] != '{' || p[z] != '}' || (long)a >= z)
        return -1;
    long k = z - 1;
    while (k > (long)a && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r'))
        k--;
    *empty = k == (long)a;
    return z;
}

/* Hands a worker's call (counted against the queue's bounds) to the bus
 * thread. Returns 0, or RC_E_DENIED with q and its data freed (the queue is
 * full: the caller answers unavailable). */
static int req_submit(struct bus_redis *b, struct breq *q)
{
    if (req_push(b, q, 1) != 0) {
        rc_free(q->data);
        rc_free(q);
        return RC_E_DENIED;
    }
    return 0;
}

static int rb_publish(struct bus *bb, int worker, const struct bus_publish *p, bus_ack_cb ack,
                      void *ud)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    if (atomic_load(&b->state) != 1 || p->room_len == 0) {
        atomic_fetch_add(&b->st.unavailable, 1);
        return RC_E_DENIED;
    }
    struct breq *q = req_new(b, RQ_PUBLISH, worker, p->room, p->room_len);
    q->flags = p->flags;
    q->exclude = p->exclude;
    q->ack = ack;
    q->ud = ud;
    q->ts_ms = now_ms();
    size_t n = p->len;
    q->mode = 'r';
    if (p->flags & ROOM_PUB_STAMP) {
        int empty = 0;
        long cut = splice_point(p->data, p->len, &empty);
        if (cut >= 0) {
            n = (size_t)cut;
            q->mode = empty ? 'e' : 's';
        }
    }
    q->data = rc_try_malloc(n + 1);
    if (q->data == NULL) {
        rc_free(q);
        return RC_E_NOMEM;
    }
    if (n)
        memcpy(q->data, p->data, n);
    q->len = n;
    int rc = req_submit(b, q);
    if (rc != 0)
        atomic_fetch_add(&b->st.unavailable, 1);
    return rc;
}

static void rb_room_interest(struct bus *bb, const char *room, size_t len, int on)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    struct breq *q = req_new(b, RQ_ROOM, 0, room, len);
    q->on = on;
    req_push(b, q, 0);
}

static void rb_user_interest(struct bus *bb, const char *user, size_t len, int on)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    struct breq *q = req_new(b, RQ_USER, 0, user, len);
    q->on = on;
    req_push(b, q, 0);
}

/* A direct message (send or kick) to `user`'s channel: head[0..hl) then
 * body[0..blen), answered by on_direct_reply. */
static int direct_submit(struct bus_redis *b, int worker, const char *user, size_t ulen,
                         const char *head, size_t hl, const void *body, size_t blen, bus_ack_cb ack,
                         void *ud)
{
    struct breq *q = req_new(b, RQ_DIRECT, worker, user, ulen);
    q->ack = ack;
    q->ud = ud;
    q->data = rc_try_malloc(hl + blen + 1);
    if (q->data == NULL) {
        rc_free(q);
        return RC_E_NOMEM;
    }
    memcpy(q->data, head, hl);
    if (blen)
        memcpy(q->data + hl, body, blen);
    q->len = hl + blen;
    return req_submit(b, q);
}

static int rb_send_to_user(struct bus *bb, int worker, const char *user, size_t ulen,
                           const void *data, size_t len, int binary, bus_ack_cb ack, void *ud)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    if (atomic_load(&b->state) != 1 || ulen == 0)
        return RC_E_DENIED;
    return direct_submit(b, worker, user, ulen, binary ? "rcd1 1\n" : "rcd1 0\n", 7, data, len, ack,
                         ud);
}

static int rb_disconnect_user(struct bus *bb, int worker, const char *user, size_t ulen,
                              unsigned code, const char *reason, size_t rlen, bus_ack_cb ack,
                              void *ud)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    if (atomic_load(&b->state) != 1 || ulen == 0)
        return RC_E_DENIED;
    if (rlen > BUSMSG_KICK_REASON_MAX)
        return RC_E_INVAL;
    char head[24];
    int hl = snprintf(head, sizeof(head), "rck1 %u\n", code);
    return direct_submit(b, worker, user, ulen, head, (size_t)hl, reason, rlen, ack, ud);
}

static void rb_presence_set(struct bus *bb, const char *room, size_t len, uint64_t member,
                            const char *user, size_t ulen, int on)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    struct breq *q = req_new(b, RQ_PSET, 0, room, len);
    q->on = on;
    q->exclude = member;
    if (user && ulen) { /* anonymous: counted, not listed */
        q->user = rc_xstrndup(user, ulen);
        q->ulen = ulen;
    }
    req_push(b, q, 0);
}

/* A presence read (RQ_PGET: users and count; RQ_PCOUNT: the count alone). */
static int presence_req(struct bus_redis *b, int type, int worker, const char *room, size_t len,
                        bus_user_cb each, bus_done_cb done, void *ud)
{
    if (atomic_load(&b->state) != 1 || len == 0)
        return RC_E_DENIED;
    struct breq *q = req_new(b, type, worker, room, len);
    q->each = each;
    q->done = done;
    q->ud = ud;
    return req_submit(b, q);
}

static int rb_presence(struct bus *bb, int worker, const char *room, size_t len, bus_user_cb each,
                       bus_done_cb done, void *ud)
{
    return presence_req((struct bus_redis *)bb, RQ_PGET, worker, room, len, each, done, ud);
}

static int rb_presence_count(struct bus *bb, int worker, const char *room, size_t len,
                             bus_done_cb done, void *ud)
{
    return presence_req((struct bus_redis *)bb, RQ_PCOUNT, worker, room, len, NULL, done, ud);
}

static int rb_health(struct bus *bb, char *why, size_t cap)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    int s = atomic_load(&b->state);
    if (cap)
        snprintf(why, cap, "%s", s == 1 ? "up" : s == 2 ? "connecting" : "down");
    return s == 1 ? 0 : 1;
}

void bus_redis_counters(struct bus *bb, struct bus_redis_counters *o)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    o->publishes = atomic_load(&b->st.publishes);
    o->publish_unavailable = atomic_load(&b->st.unavailable);
    o->deliveries = atomic_load(&b->st.deliveries);
    o->duplicates = atomic_load(&b->st.duplicates);
    o->backfills = atomic_load(&b->st.backfills);
    o->backfilled = atomic_load(&b->st.backfilled);
    o->lost = atomic_load(&b->st.lost);
    o->bad_messages = atomic_load(&b->st.bad);
    o->epoch_changes = atomic_load(&b->st.epochs);
    o->reconnects = atomic_load(&b->st.reconnects);
    o->directs_in = atomic_load(&b->st.directs_in);
    pthread_mutex_lock(&b->nodes_lock);
    o->nodes_seen = b->nnodes;
    pthread_mutex_unlock(&b->nodes_lock);
    o->up = atomic_load(&b->state) == 1;
}

static void rb_stats(struct bus *bb, void (*line)(void *ud, const char *key, double value),
                     void *ud)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    struct bus_redis_counters c;
    bus_redis_counters(bb, &c);
    line(ud, "bus_up", c.up);
    line(ud, "bus_publishes", (double)c.publishes);
    line(ud, "bus_publish_unavailable", (double)c.publish_unavailable);
    line(ud, "bus_deliveries", (double)c.deliveries);
    line(ud, "bus_duplicates", (double)c.duplicates);
    line(ud, "bus_backfills", (double)c.backfills);
    line(ud, "bus_backfilled_messages", (double)c.backfilled);
    line(ud, "bus_lost_messages", (double)c.lost);
    line(ud, "bus_bad_messages", (double)c.bad_messages);
    line(ud, "bus_epoch_changes", (double)c.epoch_changes);
    line(ud, "bus_reconnects", (double)c.reconnects);
    line(ud, "bus_nodes_seen", (double)c.nodes_seen);
    unsigned long long n = atomic_load(&b->st.rtt_count);
    line(ud, "bus_publish_rtt_avg_ms", n ? atomic_load(&b->st.rtt_sum_us) / 1000.0 / n : 0);
    /* p99 from the log2 histogram: the upper bound of the bucket holding it */
    unsigned long long want = n - n / 100, acc = 0;
    double p99 = 0;
    for (int i = 0; n && i < RTT_BUCKETS; i++) {
        acc += atomic_load(&b->st.rtt[i]);
        if (acc >= want) {
            p99 = (double)(1ULL << i) / 1000.0;
            break;
        }
    }
    line(ud, "bus_publish_rtt_p99_ms", p99);
    /* the nodes seen, one line each: bus_node{id="..."} 1 */
    pthread_mutex_lock(&b->nodes_lock);
    for (const char *p = b->nodes; p && *p;) {
        const char *e = strchr(p, '\n');
        /* a label value: " and \ escaped (Prometheus text format); /stats
         * undoes it */
        char key[2 * BUSMSG_NODE_MAX + 24];
        size_t k = (size_t)snprintf(key, sizeof(key), "bus_node{id=\"");
        for (const char *q = p; q < e && k + 5 < sizeof(key); q++) {
            if (*q == '"' || *q == '\\')
                key[k++] = '\\';
            key[k++] = *q;
        }
        snprintf(key + k, sizeof(key) - k, "\"}");
        line(ud, key, 1);
        p = e + 1;
    }
    pthread_mutex_unlock(&b->nodes_lock);
}

static void free_broom(void *p)
{
    struct broom *r = p;
    free_pend(r);
    rc_free(r);
}

static void rb_destroy(struct bus *bb)
{
    struct bus_redis *b = (struct bus_redis *)bb;
    atomic_store(&b->stopping, 1);
    ev_async_send(b->loop, &b->wake);
    pthread_join(b->thread, NULL);
    /* the thread is gone: free its connections (replies in flight are
     * dropped; nobody waits for them now) */
    b->failing = 1;
    free_conns(b);
    for (int i = 0; i < 2; i++) {
        struct breq *q = i ? b->bhead : b->qhead;
        while (q) {
            struct breq *n = q->next;
            req_free(q);
            q = n;
        }
    }
    strmap_clear(&b->rooms, free_broom);
    strmap_clear(&b->users, NULL);
    strmap_clear(&b->presence, free_proom);
    strmap_clear(&b->known, rc_free);
    rc_free(b->nodes);
    ev_loop_destroy(b->loop);
    pthread_mutex_destroy(&b->qlock);
    pthread_mutex_destroy(&b->known_lock);
    pthread_mutex_destroy(&b->nodes_lock);
    rc_free(b);
}

static const struct bus_ops redis_bus_ops = {
    .name = "redis",
    .publish = rb_publish,
    .room_interest = rb_room_interest,
    .user_interest = rb_user_interest,
    .send_to_user = rb_send_to_user,
    .disconnect_user = rb_disconnect_user,
    .presence_set = rb_presence_set,
    .presence = rb_presence,
    .presence_count = rb_presence_count,
    .health = rb_health,
    .stats = rb_stats,
    .destroy = rb_destroy,
};

struct bus *bus_redis_new(const struct bus_redis_cfg *cfg, const struct bus_host *host, char *why,
                          size_t cap)
{
    struct redis_url url;
    if (redis_url_parse(cfg->url, &url, why, cap) != 0)
        return NULL;
    if (cfg->node_id == NULL || !busmsg_valid_node(cfg->node_id, strlen(cfg->node_id))) {
        snprintf(why, cap, "node_id must be 1..64 printable characters without spaces");
        return NULL;
    }
    if (!(cfg->node_ttl >= 1.0 && cfg->node_ttl <= 3600.0)) {
        snprintf(why, cap, "node_ttl must be between 1 and 3600 seconds");
        return NULL;
    }
    struct bus_redis *b = rc_xcalloc(1, sizeof(*b));
    b->base.ops = &redis_bus_ops;
    b->base.host = *host;
    b->url = url;
    const char *pw = cfg->password ? cfg->password : url.has_password ? url.password : NULL;
    if (pw) {
        snprintf(b->password, sizeof(b->password), "%s", pw);
        b->has_password = 1;
    }
    snprintf(b->node, sizeof(b->node), "%s", cfg->node_id);
    b->node_ttl = cfg->node_ttl;
    b->keep = cfg->keep ? cfg->keep : 1;
    b->rnd =
        (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ strmap_hash(b->node, strlen(b->node));
    if (b->rnd == 0)
        b->rnd = 1;
    strmap_init(&b->rooms);
    strmap_init(&b->users);
    strmap_init(&b->presence);
    strmap_init(&b->known);
    pthread_mutex_init(&b->qlock, NULL);
    pthread_mutex_init(&b->known_lock, NULL);
    pthread_mutex_init(&b->nodes_lock, NULL);
    b->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&b->wake, on_wake);
    b->wake.data = b;
    ev_async_start(b->loop, &b->wake);
    ev_timer_init(&b->retry, on_retry, 0, 0);
    b->retry.data = b;
    ev_timer_init(&b->teardown_t, on_teardown, 0, 0);
    b->teardown_t.data = b;
    double hb = b->node_ttl / 3;
    ev_timer_init(&b->heartbeat, on_heartbeat, hb, hb);
    b->heartbeat.data = b;
    ev_timer_start(b->loop, &b->heartbeat);
    ev_timer_init(&b->watchdog, on_watchdog, 0.5, 0.5);
    b->watchdog.data = b;
    ev_timer_start(b->loop, &b->watchdog);
    int rc = pthread_create(&b->thread, NULL, bus_main, b);
    if (rc != 0) {
        snprintf(why, cap, "cannot start the bus thread: %s", strerror(rc));
        ev_loop_destroy(b->loop);
        rc_free(b);
        return NULL;
    }
    return &b->base;
}

void bus_redis_default_node_id(char *out, size_t cap, int port)
{
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "node");
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            *p = '_';
    unsigned char rnd[6];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd)) {
        uint64_t x = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 20);
        memcpy(rnd, &x, sizeof(rnd));
    }
    if (f)
        fclose(f);
    static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char suffix[7];
    for (int i = 0; i < 6; i++)
        suffix[i] = al[rnd[i] % 36];
    suffix[6] = '\0';
    /* keep the suffix whole: cut the host name if the id would not fit */
    char tail[24];
    int tl = snprintf(tail, sizeof(tail), ":%d-%s", port, suffix);
    size_t room = cap > (size_t)tl + 1 ? cap - (size_t)tl - 1 : 0;
    if (room > BUSMSG_NODE_MAX - (size_t)tl)
        room = BUSMSG_NODE_MAX - (size_t)tl;
    snprintf(out, cap, "%.*s%s", (int)room, host, tail);
}

/* ------------------------------------------------------------------------
 * store_redis: the rooms' streams as the history store
 * ------------------------------------------------------------------------ */

struct store_redis {
    struct store base;
    struct bus_redis *b; /* borrowed */
};

static int sr_room_open(struct store *st, const char *room, size_t len, struct store_room *out)
{
    struct bus_redis *b = ((struct store_redis *)st)->b;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&b->known_lock);
    struct known *k = strmap_get(&b->known, room, len);
    if (k) {
        out->last_seq = k->last;
        memcpy(out->epoch, k->epoch, sizeof(out->epoch));
    }
    pthread_mutex_unlock(&b->known_lock);
    return 0;
}

static int sr_append(struct store *st, const char *room, size_t len, const struct store_msg *m,
                     struct frame_ref *frame)
{
    return 0; /* the publish script already appended it to the stream */
}

static int sr_read(struct store *st, int worker, const char *room, size_t len,
                   const struct store_query *qy, store_read_cb cb, void *ud)
{
    struct bus_redis *b = ((struct store_redis *)st)->b;
    if (qy->limit == 0 || qy->limit > STORE_READ_MAX || len == 0)
        return RC_E_INVAL;
    if (atomic_load(&b->state) != 1)
        return RC_E_DENIED;
    struct breq *q = req_new(b, RQ_READ, worker, room, len);
    q->q = *qy;
    q->rcb = cb;
    q->ud = ud;
    return req_submit(b, q);
}

static int sr_health(struct store *st, char *why, size_t cap)
{
    return rb_health(&((struct store_redis *)st)->b->base, why, cap);
}

static void sr_flush(struct store *st)
{
}

static void sr_destroy(struct store *st)
{
    rc_free(st);
}

static const struct store_ops redis_store_ops = {
    .name = "redis",
    .room_open = sr_room_open,
    .append = sr_append,
    .read = sr_read,
    .health = sr_health,
    .flush = sr_flush,
    .destroy = sr_destroy,
};

struct store *store_redis_new(struct bus *bus, const struct store_host *host)
{
    struct store_redis *s = rc_xcalloc(1, sizeof(*s));
    s->base.ops = &redis_store_ops;
    s->base.host = *host;
    s->b = (struct bus_redis *)bus;
    return &s->base;
}
