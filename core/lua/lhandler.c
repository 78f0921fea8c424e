#include "lhandler.h"

#include <ctype.h>
#include <lua.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "lbridge.h"
#include "lapi.h"
#include "lcall.h"
#include "log.h"
#include "strmap.h"
#include "api.h"
#include "mailbox.h"
#include "room.h"
#include "sbuf.h"
#include "worker.h"
#include "ws_frame.h"

#define REFUSAL_MAX 200
/* Messages queued behind a waiting handler at which the connection's reads
 * are held (resumed below half). What was already read still queues, so the
 * queue is bounded by this plus one read buffer of messages. */
#define WAITQ_HOLD 32
/* How often overdue waits are looked for while any exists (seconds). */
#define EXPIRE_PERIOD 0.05
/* rc.sleep's wait may end this much after the sleep itself before it counts
 * as timed out (milliseconds). */
#define SLEEP_SLACK_MS 5000

/* A message that arrived while its connection's handler was waiting. */
struct qmsg {
    struct qmsg *next;
    int binary;
    size_t len;
    char data[];
};

/* A connection whose message handler is waiting (lcall.h), and what queued
 * behind it. Owned by lw->waits (key: the 8 bytes of the conn id); exists
 * exactly while busy, or while its queue is being drained; freed by
 * msg_done (or worker stop).
 *
 *   message --> no cwait: run it --> RC_PENDING: cwait{busy} created
 *   message --> cwait: queued (WAITQ_HOLD: reads held)
 *   handler ends --> msg_done: run the queue in order until one waits again
 *   connection closes --> queue dropped, closed = 1: the waiting handler
 *                         still resumes, and finds its connection closed */
struct cwait {
    uint64_t id;
    int busy;
    int closed;
    int draining;
    struct qmsg *head, *tail;
    size_t n;
};

/* A state replaced by a reload while handlers still waited in it: they
 * finish in it; it is freed once none waits. Owned by lw->retired. */
struct retired {
    struct retired *next;
    struct lbridge *b;
};

/* One rc.sleep in progress. Owned by lw->sleepers; freed when it fires or
 * at worker stop. */
struct sleeper {
    struct sleeper *next, *prev;
    struct wtimer t;
    uint64_t ticket;
    struct lworker *lw;
};

/* A disconnect that happened while Lua was running. */
struct deferred {
    uint64_t id;
    uint16_t code;
    uint8_t reason_len;
    char reason[123];
};

struct lworker {
    struct lbridge *b;             /* owned: the current state */
    char refusal[REFUSAL_MAX + 1]; /* why->reason of the last refusal */
    struct deferred *dq;           /* owned array */
    size_t dq_len, dq_cap;
    struct worker *w;    /* borrowed: the owner */
    struct strmap waits; /* conn id -> struct cwait */
    struct retired *retired;
    struct sleeper *sleepers;
    struct wtimer expire;
    int stopping;
    struct wtimer tick; /* on_tick every tick_interval seconds (off when 0) */
};

static struct lworker *lw_of(const struct worker *w)
{
    return w->handler_state;
}

static void arm_expire(struct lworker *lw);

static void call_disconnect(struct lworker *lw, uint64_t id, unsigned code, const char *reason,
                            size_t len)
{
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_DISCONNECT);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushinteger(L, (lua_Integer)code);
    lua_pushlstring(L, reason ? reason : "", reason ? len : 0);
    if (lbridge_call_async(lw->b, 3, "disconnect", NULL, NULL, 0) == RC_PENDING)
        arm_expire(lw);
}

/* Delivers the disconnects queued during the handler that just returned. */
static void flush_deferred(struct lworker *lw)
{
    size_t i = 0;
    while (i < lw->dq_len) { /* disconnect handlers may queue more */
        struct deferred d = lw->dq[i++];
        call_disconnect(lw, d.id, d.code, d.reason, d.reason_len);
    }
    lw->dq_len = 0;
}

static void after_call(struct lworker *lw)
{
    if (lw->dq_len > 0 && lcall_depth() == 0)
        flush_deferred(lw);
}

/* -- waiting handlers ----------------------------------------------------------- */

static void expire_cb(struct wloop *loop, struct wtimer *t);

/* Looks for overdue waits while any exists. */
static void arm_expire(struct lworker *lw)
{
    if (!wtimer_active(&lw->expire))
        wtimer_start(lw->w->loop, &lw->expire, EXPIRE_PERIOD, EXPIRE_PERIOD);
}

/* Frees the retired states nobody waits in any more. */
static void reap_retired(struct lworker *lw)
{
    struct retired **pp = &lw->retired;
    while (*pp != NULL) {
        struct retired *r = *pp;
        if (lcall_parked(r->b->L) > 0) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        rc_debug("reload: generation %llu retired", (unsigned long long)r->b->generation);
        lbridge_free(r->b);
        rc_free(r);
    }
}

static void free_queue(struct cwait *cw)
{
    while (cw->head != NULL) {
        struct qmsg *q = cw->head;
        cw->head = q->next;
        rc_free(q);
    }
    cw->tail = NULL;
    cw->n = 0;
}

static void msg_done(void *ud, uint64_t id, int rc);

/* Runs entry.message for connection id; when it waits, the connection gets
 * (or keeps) its cwait, busy. */
static void run_message(struct lworker *lw, uint64_t id, const void *data, size_t len, int binary)
{
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_MESSAGE);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushlstring(L, (const char *)data, len);
    lua_pushboolean(L, binary);
    if (lbridge_call_async(lw->b, 3, "message", msg_done, lw, id) == RC_PENDING) {
        struct cwait *cw = strmap_get(&lw->waits, &id, sizeof(id));
        if (cw == NULL) {
            cw = rc_xcalloc(1, sizeof(*cw));
            cw->id = id;
            strmap_put(&lw->waits, &id, sizeof(id), cw);
        }
        cw->busy = 1;
        arm_expire(lw);
    }
}

/* A waiting message handler of connection id ended (any rc: its error was
 * logged and answered by the chain): run what queued behind it, in order. */
static void msg_done(void *ud, uint64_t id, int rc)
{
    (void)rc;
    struct lworker *lw = ud;
    struct cwait *cw = strmap_get(&lw->waits, &id, sizeof(id));
    if (cw == NULL)
        return;
    cw->busy = 0;
    cw->draining = 1;
    while (!cw->busy && cw->head != NULL && !cw->closed && !lw->stopping) {
        struct qmsg *q = cw->head;
        cw->head = q->next;
        if (cw->head == NULL)
            cw->tail = NULL;
        cw->n--;
        run_message(lw, id, q->data, q->len, q->binary);
        rc_free(q);
        after_call(lw);
    }
    cw->draining = 0;
    struct conn *c = cw->closed ? NULL : conn_find(&lw->w->cs, id);
    if (!cw->busy) {
        free_queue(cw);
        strmap_del(&lw->waits, &id, sizeof(id));
        rc_free(cw);
        cw = NULL;
    }
    if (c != NULL && c->reads_held && (cw == NULL || cw->n < WAITQ_HOLD / 2))
        conn_hold_reads(c, 0);
}

static void expire_cb(struct wloop *loop, struct wtimer *t)
{
    struct lworker *lw = t->data;
    lcall_expire(lcall_now_ms());
    reap_retired(lw);
    if (lcall_parked(NULL) == 0)
        wtimer_stop(loop, t);
}

int lhandler_complete(struct worker *w, uint64_t ticket, int (*push)(lua_State *co, void *ud),
                      void *ud)
{
    struct lworker *lw = lw_of(w);
    if (lw == NULL || lw->stopping)
        return RC_E_CLOSED;
    int rc = lcall_complete(ticket, push, ud);
    reap_retired(lw);
    return rc;
}

static int push_true(lua_State *co, void *ud)
{
    (void)ud;
    lua_pushboolean(co, 1);
    return 1;
}

static void sleeper_cb(struct wloop *loop, struct wtimer *t)
{
    (void)loop;
    struct sleeper *s = t->data;
    struct lworker *lw = s->lw;
    if (s->prev)
        s->prev->next = s->next;
    else
        lw->sleepers = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uint64_t ticket = s->ticket;
    rc_free(s);
    lhandler_complete(lw->w, ticket, push_true, NULL);
}

uint64_t lhandler_sleep(struct worker *w, double ms)
{
    struct lworker *lw = w ? lw_of(w) : NULL;
    if (lw == NULL || !(ms >= 0) || ms > 86400e3)
        return 0;
    uint64_t t = lcall_wait_ticket((uint32_t)ms + SLEEP_SLACK_MS);
    if (t == 0)
        return 0;
    struct sleeper *s = rc_xcalloc(1, sizeof(*s));
    s->ticket = t;
    s->lw = lw;
    wtimer_init(&s->t, sleeper_cb, s);
    wtimer_start(w->loop, &s->t, ms / 1000.0, 0);
    s->next = lw->sleepers;
    if (s->next)
        s->next->prev = s;
    lw->sleepers = s;
    return t;
}

/* -- connection callbacks ------------------------------------------------------- */

static void push_headers(lua_State *L, const struct http_request *req)
{
    char name[128];
    lua_createtable(L, 0, (int)req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len >= sizeof(name))
            continue;
        for (size_t k = 0; k < h->name_len; k++)
            name[k] = (char)tolower((unsigned char)h->name[k]);
        lua_pushlstring(L, name, h->name_len);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isstring(L, -1)) {
            /* RFC 9110 §5.3: repeated fields combine into one list */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        }
        lua_rawset(L, -3);
    }
}

/* Copies a refusal reason into the worker's buffer, keeping it printable
 * (it goes into an HTTP status line). */
static const char *keep_reason(struct lworker *lw, const char *s, size_t len)
{
    if (len > REFUSAL_MAX)
        len = REFUSAL_MAX;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        lw->refusal[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    lw->refusal[len] = '\0';
    return lw->refusal;
}

static int lua_upgrade(struct conn *c, const struct http_request *req, const struct ws_upgrade *up,
                       struct ws_refusal *why, const char **subprotocol)
{
    (void)up;
    (void)subprotocol;
    struct lworker *lw = lw_of(conn_worker(c));
    lua_State *L = lw->b->L;
    const char *path, *query;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &query, &ql);
    char peer[64];
    conn_peer_str(c, peer, sizeof(peer));

    lbridge_push(lw->b, LB_CONNECT);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushlstring(L, path, pl);
    lua_pushlstring(L, query ? query : "", query ? ql : 0);
    push_headers(L, req);
    lua_pushstring(L, peer);
    int rc = lbridge_call(lw->b, 5, 3, "connect");
    int result = 0;
    if (rc != 0) {
        why->status = 500;
        why->reason = "the connect handler failed";
        why->kind = "script_error";
        result = -1;
    } else if (!lua_toboolean(L, -3)) {
        lua_Integer st = lua_tointeger(L, -2);
        why->status = (st >= 400 && st <= 599) ? (int)st : 403;
        size_t len = 0;
        const char *s = lua_tolstring(L, -1, &len);
        why->reason = s ? keep_reason(lw, s, len) : "Forbidden";
        why->kind = "script";
        result = -1;
    }
    if (rc == 0)
        lua_pop(L, 3);
    after_call(lw);
    return result;
}

static void lua_message(struct conn *c, unsigned opcode, const uint8_t *data, size_t len)
{
    struct lworker *lw = lw_of(conn_worker(c));
    if (lw->waits.count > 0) {
        struct cwait *cw = strmap_get(&lw->waits, &c->id, sizeof(c->id));
        if (cw != NULL) {
            /* Its handler waits: this one runs after it, in order. */
            struct qmsg *q = rc_xmalloc(sizeof(*q) + len);
            q->next = NULL;
            q->binary = opcode == WS_OP_BINARY;
            q->len = len;
            memcpy(q->data, data, len);
            if (cw->tail)
                cw->tail->next = q;
            else
                cw->head = q;
            cw->tail = q;
            if (++cw->n >= WAITQ_HOLD)
                conn_hold_reads(c, 1);
            return;
        }
    }
    run_message(lw, c->id, data, len, opcode == WS_OP_BINARY);
    after_call(lw);
}

static void lua_close_cb(struct conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    struct lworker *lw = lw_of(conn_worker(c));
    if (lw == NULL || lw->b == NULL)
        return;
    if (lw->waits.count > 0) {
        /* Its messages still queued are dropped; a waiting handler resumes
         * later and finds the connection closed. */
        struct cwait *cw = strmap_get(&lw->waits, &c->id, sizeof(c->id));
        if (cw != NULL) {
            free_queue(cw);
            cw->closed = 1;
        }
    }
    if (lcall_depth() > 0) {
        /* Reached from inside an FFI call: no re-entering the VM. */
        if (lw->dq_len == lw->dq_cap) {
            lw->dq_cap = lw->dq_cap ? lw->dq_cap * 2 : 8;
            lw->dq = rc_xrealloc(lw->dq, lw->dq_cap * sizeof(*lw->dq));
        }
        struct deferred *d = &lw->dq[lw->dq_len++];
        d->id = c->id;
        d->code = (uint16_t)code;
        if (len > sizeof(d->reason))
            len = sizeof(d->reason);
        d->reason_len = (uint8_t)len;
        if (len)
            memcpy(d->reason, reason, len);
        return;
    }
    call_disconnect(lw, c->id, code, (const char *)reason, len);
    after_call(lw);
}

/* -- worker callbacks --------------------------------------------------------------- */

static void on_tick(struct wloop *loop, struct wtimer *t)
{
    struct lworker *lw = t->data;
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_TICK);
    lua_pushnumber(L, (lua_Number)(int64_t)(wloop_wall(loop) * 1000.0)); /* wall clock, ms */
    if (lbridge_call_async(lw->b, 1, "tick", NULL, NULL, 0) == RC_PENDING)
        arm_expire(lw);
    after_call(lw);
}

static const struct lapi_async async_ops = {.sleep = lhandler_sleep, .complete = lhandler_complete};

static int lua_worker_start(struct worker *w)
{
    lapi_set_async(&async_ops);
    char err[512];
    struct lbridge *b = lbridge_new(w->cfg, w->id, 1, &w->stats, NULL, err, sizeof(err));
    if (b == NULL) {
        rc_error("lua: cannot load %s: %s", w->cfg->script, err);
        return RC_E_SCRIPT;
    }
    struct lworker *lw = rc_xcalloc(1, sizeof(*lw));
    lw->b = b;
    lw->w = w;
    strmap_init(&lw->waits);
    wtimer_init(&lw->expire, expire_cb, lw);
    wtimer_init(&lw->tick, on_tick, lw);
    w->handler_state = lw;
    atomic_store_explicit(&w->generation, 1, memory_order_relaxed);
    if (w->cfg->tick_interval > 0) {
        wtimer_start(w->loop, &lw->tick, w->cfg->tick_interval, w->cfg->tick_interval);
    }
    return 0;
}

static void free_cwait(void *p)
{
    free_queue(p);
    rc_free(p);
}

static void lua_worker_stop(struct worker *w)
{
    struct lworker *lw = lw_of(w);
    if (lw == NULL)
        return;
    if (w->loop) {
        wtimer_stop(w->loop, &lw->tick);
        wtimer_stop(w->loop, &lw->expire);
    }
    /* Waiting handlers end here (their done sees stopping: nothing more runs). */
    lw->stopping = 1;
    while (lw->sleepers != NULL) {
        struct sleeper *sl = lw->sleepers;
        lw->sleepers = sl->next;
        if (w->loop)
            wtimer_stop(w->loop, &sl->t);
        rc_free(sl);
    }
    while (lw->retired != NULL) {
        struct retired *r = lw->retired;
        lw->retired = r->next;
        lcall_drop_state(r->b->L);
        lbridge_free(r->b);
        rc_free(r);
    }
    lcall_drop_state(lw->b->L);
    strmap_clear(&lw->waits, free_cwait);
    lbridge_free(lw->b);
    rc_free(lw->dq);
    rc_free(lw);
    w->handler_state = NULL;
}

static void lua_reload(struct worker *w)
{
    struct lworker *lw = lw_of(w);
    if (lw == NULL)
        return;
    double t0 = wloop_time();
    struct lbridge *old = lw->b;
    /* save_state is a read: the old state keeps serving if the load fails. */
    char *saved = lbridge_save_state(old);
    after_call(lw);
    char err[512];
    struct lbridge *nb =
        lbridge_new(w->cfg, w->id, old->generation + 1, &w->stats, saved, err, sizeof(err));
    rc_free(saved);
    if (nb == NULL) {
        STAT_INC(&w->stats, reload_failures_total);
        rc_error("reload failed, generation %llu stays: %s", (unsigned long long)old->generation,
                 err);
        return;
    }
    lw->b = nb;
    if (lcall_parked(old->L) > 0) {
        /* Handlers waiting in the old state finish there (their connections'
         * later messages run in the new one); it is freed after the last. */
        struct retired *r = rc_xcalloc(1, sizeof(*r));
        r->b = old;
        r->next = lw->retired;
        lw->retired = r;
    } else {
        lbridge_free(old);
    }
    atomic_store_explicit(&w->generation, nb->generation, memory_order_relaxed);
    STAT_INC(&w->stats, reloads_total);
    rc_info("reload: generation %llu (%.1f ms)", (unsigned long long)nb->generation,
            (wloop_time() - t0) * 1000.0);
}

/* The API's publish on the room's owner: entry.api_publish decides the
 * payload, then it goes through the bus like a member's publish; the bus's
 * ack completes the request with the seq (api_publish_payload). */
static void lua_api_publish(struct worker *w, uint64_t req, const char *room, size_t rlen,
                            const char *body, size_t blen)
{
    struct lworker *lw = lw_of(w);
    lua_State *L = lw->b->L;
    int top = lua_gettop(L);
    lbridge_push(lw->b, LB_API_PUBLISH);
    lua_pushlstring(L, room, rlen);
    lua_pushlstring(L, body, blen);
    lua_pushstring(L, w->cfg->api_sender ? w->cfg->api_sender : "server");
    char out[256];
    int status;
    if (lbridge_call(lw->b, 3, 3, "api_publish") != 0) {
        status = 503;
        snprintf(out, sizeof(out),
                 "{\"code\":\"script_error\",\"message\":\"the script's publish hook failed "
                 "(see the server log)\"}");
    } else if (lua_type(L, top + 1) != LUA_TSTRING) {
        /* refused: nil, code, message */
        size_t cl = 0, ml = 0;
        const char *code = lua_tolstring(L, top + 2, &cl);
        const char *msg = lua_tolstring(L, top + 3, &ml);
        struct sbuf b = {0};
        sb_printf(&b, "{\"code\":");
        sb_json_str(&b, code ? code : "rejected", code ? cl : 8);
        sb_printf(&b, ",\"message\":");
        sb_json_str(&b, msg ? msg : "refused by the script", msg ? ml : 21);
        sb_printf(&b, "}");
        status = code && strcmp(code, "no_publish_hook") == 0 ? 404 : 400;
        api_complete(req, status, b.p, b.len);
        rc_free(b.p);
        lua_settop(L, top);
        after_call(lw);
        return;
    } else {
        size_t pl;
        const char *p = lua_tolstring(L, top + 1, &pl);
        unsigned flags = lua_tointeger(L, top + 2) ? ROOM_PUB_STAMP : 0;
        api_publish_payload(w, req, room, rlen, p, pl, flags); /* copies p */
        lua_settop(L, top);
        after_call(lw);
        return;
    }
    lua_settop(L, top);
    api_complete(req, status, out, strlen(out));
    after_call(lw);
}

const struct conn_handler lua_handler = {
    .api_publish = lua_api_publish,
    .on_upgrade = lua_upgrade,
    .on_message = lua_message,
    .on_close = lua_close_cb,
    .worker_start = lua_worker_start,
    .worker_stop = lua_worker_stop,
    .reload = lua_reload,
};
