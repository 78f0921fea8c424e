#include "lhandler.h"

#include <ctype.h>
#include <lua.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "lbridge.h"
#include "lcall.h"
#include "log.h"
#include "worker.h"
#include "ws_frame.h"

#define REFUSAL_MAX 200

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
    ev_timer tick; /* on_tick every tick_interval seconds (off when 0) */
};

static struct lworker *lw_of(const struct worker *w)
{
    return w->handler_state;
}

static void call_disconnect(struct lworker *lw, uint64_t id, unsigned code, const char *reason,
                            size_t len)
{
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_DISCONNECT);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushinteger(L, (lua_Integer)code);
    lua_pushlstring(L, reason ? reason : "", reason ? len : 0);
    lbridge_call(lw->b, 3, 0, "disconnect");
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
    struct lworker *lw = lw_of(c->w);
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
    struct lworker *lw = lw_of(c->w);
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_MESSAGE);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushlstring(L, (const char *)data, len);
    lua_pushboolean(L, opcode == WS_OP_BINARY);
    lbridge_call(lw->b, 3, 0, "message");
    after_call(lw);
}

static void lua_close_cb(struct conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    struct lworker *lw = lw_of(c->w);
    if (lw == NULL || lw->b == NULL)
        return;
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

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct lworker *lw = t->data;
    lua_State *L = lw->b->L;
    lbridge_push(lw->b, LB_TICK);
    lua_pushnumber(L, (lua_Number)(int64_t)(ev_now(loop) * 1000.0));
    lbridge_call(lw->b, 1, 0, "tick");
    after_call(lw);
}

static int lua_worker_start(struct worker *w)
{
    char err[512];
    struct lbridge *b = lbridge_new(w->cfg, w->id, 1, &w->stats, NULL, err, sizeof(err));
    if (b == NULL) {
        rc_error("lua: cannot load %s: %s", w->cfg->script, err);
        return RC_E_SCRIPT;
    }
    struct lworker *lw = rc_xcalloc(1, sizeof(*lw));
    lw->b = b;
    w->handler_state = lw;
    atomic_store_explicit(&w->generation, 1, memory_order_relaxed);
    if (w->cfg->tick_interval > 0) {
        ev_timer_init(&lw->tick, on_tick, w->cfg->tick_interval, w->cfg->tick_interval);
        lw->tick.data = lw;
        ev_timer_start(w->loop, &lw->tick);
    }
    return 0;
}

static void lua_worker_stop(struct worker *w)
{
    struct lworker *lw = lw_of(w);
    if (lw == NULL)
        return;
    if (w->loop)
        ev_timer_stop(w->loop, &lw->tick);
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
    ev_tstamp t0 = ev_time();
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
    lbridge_free(old);
    atomic_store_explicit(&w->generation, nb->generation, memory_order_relaxed);
    STAT_INC(&w->stats, reloads_total);
    rc_info("reload: generation %llu (%.1f ms)", (unsigned long long)nb->generation,
            (ev_time() - t0) * 1000.0);
}

const struct conn_handler lua_handler = {
    .on_upgrade = lua_upgrade,
    .on_message = lua_message,
    .on_close = lua_close_cb,
    .worker_start = lua_worker_start,
    .worker_stop = lua_worker_stop,
    .reload = lua_reload,
};
