#include "lapi.h"

#include "jwt.h"

#include <errno.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "closecode.h"
#include "conn.h"
#include "crypto.h"
#include "defs.h"
#include "err.h"
#include "frame_ref.h"
#include "kv.h"
#include "log.h"
#include "mailbox.h"
#include "room.h"
#include "lcall.h"
#include "store.h"
#include "users.h"
#include "worker.h"
#include "ws_frame.h"

/* The handler layer's asynchronous calls (lhandler.c registers them: it
 * sits above this module). */
static const struct lapi_async *async_ops;

/* The live connection `id` of the calling worker. *remote is set when the id
 * belongs to another worker of this server (then NULL is returned). */
static struct conn *find(uint64_t id, struct worker **wout, int *remote)
{
    struct worker *w = worker_current();
    *remote = 0;
    *wout = w;
    if (w == NULL)
        return NULL;
    int wid = worker_of_conn_id(id);
    if (wid != w->id) {
        *remote = wid < w->srv->nworkers;
        return NULL;
    }
    return conn_find(&w->cs, id);
}

/* A connection usable for per-connection calls, or the code to return. */
#define LOCAL_CONN(id, c, w)                                                                       \
    int remote_;                                                                                   \
    struct worker *w;                                                                              \
    struct conn *c = find((id), &w, &remote_);                                                     \
    if (c == NULL)                                                                                 \
        return remote_ ? RC_E_DENIED : RC_E_CLOSED;

/* Hands f (taken) to the worker that owns connection id (MAIL_SEND_CONN). */
static int post_frame(struct worker *w, uint64_t id, struct frame_ref *f)
{
    struct mail *m = mail_new(MAIL_SEND_CONN, NULL, 0, NULL, 0);
    m->conn_id = id;
    m->frame = f;
    mail_post(&w->mbox, &w->srv->workers[worker_of_conn_id(id)].mbox, m);
    return 0;
}

RC_FFI_EXPORT int rc_ffi_send(uint64_t id, const char *data, size_t len, int binary)
{
    int remote;
    struct worker *w;
    struct conn *c = find(id, &w, &remote);
    unsigned op = binary ? WS_OP_BINARY : WS_OP_TEXT;
    if (c != NULL) {
        c->sent_mark = 1;
        return conn_send(c, op, data, len);
    }
    if (!remote)
        return RC_E_CLOSED;
    struct frame_ref *f = frame_ref_encode(op, 0, data, len);
    if (f == NULL)
        return RC_E_NOMEM;
    return post_frame(w, id, f);
}

RC_FFI_EXPORT int rc_ffi_send3(uint64_t id, const char *a, size_t alen, const char *b, size_t blen,
                               const char *c3, size_t clen, int binary)
{
    int remote;
    struct worker *w;
    struct conn *c = find(id, &w, &remote);
    unsigned op = binary ? WS_OP_BINARY : WS_OP_TEXT;
    struct iovec parts[3] = {{.iov_base = (void *)(uintptr_t)a, .iov_len = alen},
                             {.iov_base = (void *)(uintptr_t)b, .iov_len = blen},
                             {.iov_base = (void *)(uintptr_t)c3, .iov_len = clen}};
    if (c != NULL) {
        c->sent_mark = 1;
        return conn_sendv(c, op, parts, 3);
    }
    if (!remote)
        return RC_E_CLOSED;
    struct frame_ref *f = frame_ref_encodev(op, 0, parts, 3);
    if (f == NULL)
        return RC_E_NOMEM;
    return post_frame(w, id, f);
}

RC_FFI_EXPORT int rc_ffi_close(uint64_t id, int code, const char *reason, size_t len)
{
    int remote;
    struct worker *w;
    struct conn *c = find(id, &w, &remote);
    if (c == NULL && !remote)
        return RC_E_CLOSED;
    if (code == 0)
        code = WS_CLOSE_NORMAL;
    /* RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them
     * the code; cut the reason at a UTF-8 character boundary. */
    if (reason == NULL)
        len = 0;
    if (len > 123) {
        len = 123;
        while (len > 0 && ((unsigned char)reason[len] & 0xC0) == 0x80)
            len--;
    }
    /* The payload carries the reason with its NUL (conn_close wants a C
     * string). Posting to ourselves defers the close to the mailbox drain, so
     * the disconnect handler never runs inside the handler that asked. */
    char tmp[124];
    memcpy(tmp, reason ? reason : "", len);
    tmp[len] = '\0';
    struct mail *m = mail_new(MAIL_CLOSE_CONN, NULL, 0, tmp, len + 1);
    if (m == NULL)
        return RC_E_NOMEM;
    m->conn_id = id;
    m->flags = (uint32_t)code;
    mail_post(&w->mbox, &w->srv->workers[worker_of_conn_id(id)].mbox, m);
    return 0;
}

RC_FFI_EXPORT int rc_ffi_join(uint64_t id, const char *room, size_t len)
{
    LOCAL_CONN(id, c, w);
    return room_join(&w->srv->rooms, c, room, len);
}

/* A held join's end action (lcall_at_end): the call that joined ended.
 * Owned by lcall until fn runs, then freed by it. */
struct hold_end {
    struct lcall_end e;
    uint64_t conn_id;
    uint64_t token; /* room_hold_token at the join */
    size_t len;
    char room[];
};

/* The handler that joined held is over (lua/API.md "Held joins"): a wait it
 * left open ends here rather than never (the member would hear nothing, and
 * up to recover_hold frames would stay held). */
static void hold_end_cb(struct lcall_end *e, int rc)
{
    struct hold_end *h = rc_container_of(e, struct hold_end, e);
    struct worker *w = rc == RC_E_CLOSED ? NULL : worker_current();
    struct conn *c = w ? conn_find(&w->cs, h->conn_id) : NULL;
    long queued = 0;
    int r =
        c ? room_hold_end(&w->srv->rooms, c, h->room, h->len, h->token, &queued) : RC_E_NOT_FOUND;
    if (r >= 0) {
        char cause[192];
        snprintf(cause, sizeof(cause), "its handler (%.120s) %s",
                 w->cfg->script ? w->cfg->script : "script",
                 rc == 0              ? "ended"
                 : rc == RC_E_TIMEOUT ? "ran out of budget"
                                      : "raised");
        room_hold_ended(&w->stats, h->room, h->len, h->conn_id, cause,
                        r == ROOM_HOLD_END_RELEASED
                            ? "released after 0 (nothing was sent since the join)"
                            : "closing it 1011 (it was sent part of an answer)");
        if (r == ROOM_HOLD_END_CLOSE) {
            static const char why[] = "held join not released";
            rc_ffi_close(h->conn_id, WS_CLOSE_INTERNAL, why, sizeof(why) - 1);
        }
    }
    rc_free(h);
}

RC_FFI_EXPORT int rc_ffi_join_held(uint64_t id, const char *room, size_t len)
{
    LOCAL_CONN(id, c, w);
    int r = room_join_ex(&w->srv->rooms, c, room, len, ROOM_JOIN_HOLD);
    if (r != 0)
        return r;
    struct hold_end *h = rc_xmalloc(sizeof(*h) + len);
    h->e.fn = hold_end_cb;
    h->conn_id = id;
    h->token = room_hold_token(c, room, len);
    h->len = len;
    memcpy(h->room, room, len);
    if (lcall_at_end(&h->e) != 0)
        rc_free(h); /* no handler runs (a C caller): nothing to watch */
    return 0;
}

RC_FFI_EXPORT void rc_ffi_end_holds(int raised)
{
    lcall_end_now(raised ? RC_E_SCRIPT : 0);
}

RC_FFI_EXPORT int rc_ffi_hold_state(uint64_t id, const char *room, size_t len)
{
    LOCAL_CONN(id, c, w);
    (void)w;
    return room_hold_state(c, room, len);
}

RC_FFI_EXPORT double rc_ffi_release(uint64_t id, const char *room, size_t len, double after)
{
    if (!(after >= 0 && after <= 0x1p53))
        return RC_E_INVAL;
    LOCAL_CONN(id, c, w);
    return (double)room_release(&w->srv->rooms, c, room, len, (uint64_t)after);
}

RC_FFI_EXPORT int rc_ffi_leave(uint64_t id, const char *room, size_t len)
{
    LOCAL_CONN(id, c, w);
    return room_leave(&w->srv->rooms, c, room, len);
}

RC_FFI_EXPORT int rc_ffi_in_room(uint64_t id, const char *room, size_t len)
{
    LOCAL_CONN(id, c, w);
    (void)w;
    return room_is_member(c, room, len) ? 1 : 0;
}

struct rooms_walk {
    char *buf;
    size_t cap, used;
};

static void rooms_fn(void *ud, const char *name, size_t len)
{
    struct rooms_walk *rw = ud;
    if (rw->used + len + 1 <= rw->cap) {
        memcpy(rw->buf + rw->used, name, len);
        rw->buf[rw->used + len] = '\0';
    }
    rw->used += len + 1;
}

RC_FFI_EXPORT int rc_ffi_conn_rooms(uint64_t id, char *buf, size_t cap, size_t *used)
{
    *used = 0;
    LOCAL_CONN(id, c, w);
    (void)w;
    struct rooms_walk rw = {.buf = buf, .cap = cap};
    int count = room_names_of(c, rooms_fn, &rw);
    *used = rw.used;
    return rw.used > cap ? RC_E_LIMIT : count;
}

RC_FFI_EXPORT int rc_ffi_set_user(uint64_t id, const char *user, size_t len)
{
    LOCAL_CONN(id, c, w);
    (void)w;
    return conn_set_user(c, user, user ? len : 0);
}

static struct server *cur_server(void)
{
    struct worker *w = worker_current();
    return w ? w->srv : NULL;
}

RC_FFI_EXPORT int rc_ffi_get_user(uint64_t id, const char **user, size_t *len)
{
    *user = NULL;
    *len = 0;
    int remote;
    struct worker *w;
    struct conn *c = find(id, &w, &remote);
    if (c == NULL && remote) {
        /* A member of the same room on another worker (room:members() lists
         * them all): read its user from the index, copied under its lock. */
        static _Thread_local char name[USERS_NAME_MAX + 1];
        struct server *s = cur_server();
        *len = s ? users_name_of(&s->users, id, name, sizeof(name)) : 0;
        if (*len)
            *user = name;
        return 0;
    }
    if (c == NULL)
        return RC_E_CLOSED;
    if (conn_user(c)) {
        *user = conn_user(c);
        *len = strlen(*user);
    }
    return 0;
}

RC_FFI_EXPORT int rc_ffi_peer(uint64_t id, char *buf, size_t cap)
{
    LOCAL_CONN(id, c, w);
    (void)w;
    conn_peer_str(c, buf, cap);
    return (int)strlen(buf);
}

RC_FFI_EXPORT int rc_ffi_conn_get(uint64_t id, const char *key, size_t klen, const char **val,
                                  size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    LOCAL_CONN(id, c, w);
    (void)w;
    if (c->cold && c->cold->data)
        *val = kv_get(c->cold->data, key, klen, vlen);
    return 0;
}

RC_FFI_EXPORT int rc_ffi_conn_set(uint64_t id, const char *key, size_t klen, const char *val,
                                  size_t vlen)
{
    LOCAL_CONN(id, c, w);
    (void)w;
    if (c->cold == NULL || c->cold->data == NULL) {
        if (val == NULL)
            return 0;
        struct conn_cold *k = conn_cold(c);
        k->data = rc_xmalloc(sizeof(*k->data));
        kv_init(k->data);
    }
    return kv_set(c->cold->data, key, klen, val, vlen);
}

/* -- rooms ----------------------------------------------------------------- */

uint32_t lapi_wait_ms(void)
{
    struct server *s = cur_server();
    double ms = s != NULL ? s->cfg->lua_wait_timeout * 1000.0 : 5000.0;
    return ms < 1 ? 1 : ms > 3600e3 ? 3600000u : (uint32_t)ms;
}

RC_FFI_EXPORT int rc_ffi_publish(const char *room, size_t len, const char *data, size_t dlen,
                                 unsigned flags, uint64_t exclude)
{
    /* The owner assigns the seq later (the bus's ack): room:publish answers
     * 0 at once, opts.wait (rc_ffi_publish_wait) waits for it. */
    struct worker *w = worker_current();
    if (w == NULL)
        return RC_E_CLOSED;
    return room_publish(&w->srv->rooms, w->id, room, len, data, dlen, flags, exclude);
}

/* The bus's ack of a waited publish (or send_to_user: the count), on the
 * calling worker: ud is the ticket. co: ... -> ... seq  |  ... nil err ("unavailable": the store or
 * bus refused it; or the code's name). */
struct pub_answer {
    int status;
    uint64_t seq;
};

static int push_pub(lua_State *co, void *ud)
{
    const struct pub_answer *a = ud;
    if (a->status == 0) {
        lua_pushnumber(co, (lua_Number)a->seq);
        return 1;
    }
    lua_pushnil(co);
    lua_pushstring(co, a->status == RC_E_DENIED ? "unavailable" : rc_err_name(a->status));
    return 2;
}

static void on_pub_ack(void *ud, int status, uint64_t seq)
{
    struct worker *w = worker_current();
    struct pub_answer a = {.status = status, .seq = seq};
    if (w != NULL && async_ops != NULL)
        async_ops->complete(w, (uint64_t)(uintptr_t)ud, push_pub, &a);
}

RC_FFI_EXPORT double rc_ffi_publish_wait(const char *room, size_t len, const char *data,
                                         size_t dlen, unsigned flags, uint64_t exclude)
{
    struct worker *w = worker_current();
    if (w == NULL || w->srv->bus == NULL)
        return RC_E_CLOSED;
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    uint64_t t = lcall_wait_ticket(lapi_wait_ms());
    if (t == 0)
        return 0;
    struct bus_publish p = {.room = room,
                            .room_len = len,
                            .data = data,
                            .len = dlen,
                            .flags = flags,
                            .exclude = exclude};
    int rc = w->srv->bus->ops->publish(w->srv->bus, w->id, &p, on_pub_ack, (void *)(uintptr_t)t);
    if (rc < 0) {
        lcall_wait_cancel(t);
        return rc;
    }
    return (double)t;
}

RC_FFI_EXPORT long rc_ffi_room_count(const char *room, size_t len)
{
    struct server *s = cur_server();
    if (s == NULL)
        return 0;
    long n = room_count(&s->rooms, room, len);
    return n < 0 ? 0 : n;
}

struct ids_walk {
    uint64_t *ids;
    size_t cap, n;
};

static void members_fn(void *ud, uint64_t id)
{
    struct ids_walk *iw = ud;
    if (iw->n < iw->cap)
        iw->ids[iw->n] = id;
    iw->n++;
}

RC_FFI_EXPORT long rc_ffi_room_members(const char *room, size_t len, uint64_t *ids, size_t cap)
{
    struct server *s = cur_server();
    if (s == NULL)
        return 0;
    struct ids_walk iw = {.ids = ids, .cap = cap};
    long r = room_members(&s->rooms, room, len, members_fn, &iw);
    return r < 0 ? 0 : (long)iw.n;
}

struct buf_walk {
    char *buf;
    size_t cap, used;
    long count;
};

static void put_bytes(struct buf_walk *bw, const void *p, size_t n)
{
    if (bw->used + n <= bw->cap)
        memcpy(bw->buf + bw->used, p, n);
    bw->used += n;
}

static void presence_fn(void *ud, const char *user, size_t ulen)
{
    struct buf_walk *bw = ud;
    put_bytes(bw, user, ulen);
    put_bytes(bw, "", 1);
    bw->count++;
}

RC_FFI_EXPORT long rc_ffi_room_presence(const char *room, size_t len, char *buf, size_t cap,
                                        size_t *used)
{
    *used = 0;
    struct server *s = cur_server();
    if (s == NULL)
        return 0;
    struct buf_walk bw = {.buf = buf, .cap = cap};
    room_presence(&s->rooms, room, len, presence_fn, &bw);
    *used = bw.used;
    return bw.used > cap ? RC_E_LIMIT : bw.count;
}

/* Cluster-wide presence (a bus with a presence op, e.g. the Redis bus):
 * the users arrive one by one on this worker, then done completes the
 * waiting handler with them as an array. */
struct presence_wait {
    uint64_t ticket;
    char *buf; /* users, each followed by NUL */
    size_t len, cap;
    long n;
    long conns; /* the room's connections on every node */
    int status;
};

static void presence_each(void *ud, const char *user, size_t ulen)
{
    struct presence_wait *pw = ud;
    if (pw->len + ulen + 1 > pw->cap) {
        size_t cap = pw->cap ? pw->cap * 2 : 256;
        while (cap < pw->len + ulen + 1)
            cap *= 2;
        pw->buf = rc_xrealloc(pw->buf, cap);
        pw->cap = cap;
    }
    memcpy(pw->buf + pw->len, user, ulen);
    pw->buf[pw->len + ulen] = '\0';
    pw->len += ulen + 1;
    pw->n++;
}

static int push_presence(lua_State *co, void *ud)
{
    const struct presence_wait *pw = ud;
    if (pw->status != 0) {
        lua_pushnil(co);
        lua_pushstring(co, pw->status == RC_E_DENIED ? "unavailable" : rc_err_name(pw->status));
        return 2;
    }
    lua_createtable(co, (int)pw->n, 0);
    size_t off = 0;
    for (long i = 1; off < pw->len; i++) {
        size_t l = strlen(pw->buf + off);
        lua_pushlstring(co, pw->buf + off, l);
        lua_rawseti(co, -2, (int)i);
        off += l + 1;
    }
    lua_pushnil(co);
    lua_pushnumber(co, (lua_Number)pw->conns);
    return 3; /* users, nil, connections */
}

static void presence_done(void *ud, int status, long count)
{
    struct presence_wait *pw = ud;
    struct worker *w = worker_current();
    pw->status = status;
    pw->conns = count;
    if (w != NULL && async_ops != NULL)
        async_ops->complete(w, pw->ticket, push_presence, pw);
    rc_free(pw->buf);
    rc_free(pw);
}

RC_FFI_EXPORT double rc_ffi_room_presence_wait(const char *room, size_t len)
{
    struct worker *w = worker_current();
    if (w == NULL || w->srv->bus == NULL || w->srv->bus->ops->presence == NULL)
        return RC_E_NOT_FOUND; /* no cluster presence: the local answer */
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    uint64_t t = lcall_wait_ticket(lapi_wait_ms());
    if (t == 0)
        return 0;
    struct presence_wait *pw = rc_xcalloc(1, sizeof(*pw));
    pw->ticket = t;
    struct bus *b = w->srv->bus;
    int rc = b->ops->presence(b, w->id, room, len, presence_each, presence_done, pw);
    if (rc < 0) {
        rc_free(pw);
        lcall_wait_cancel(t);
        return rc;
    }
    return (double)t;
}

/* A store read's answer, pushed on the waiting handler's coroutine:
 *   co: ... -> ... msgs info     msgs = { {seq=, ts=, payload=, binary=true|nil}, ... }
 *                                info = { last_seq=, epoch= }
 *   or  ... -> ... nil err        err = "unavailable" */
struct read_answer {
    int status;
    const struct store_room *info;
    const struct store_msg *msgs;
    size_t n;
};

static int push_read(lua_State *co, void *ud)
{
    const struct read_answer *a = ud;
    if (a->status < 0) {
        lua_pushnil(co);
        lua_pushstring(co, "unavailable");
        return 2;
    }
    lua_createtable(co, (int)a->n, 0);
    for (size_t i = 0; i < a->n; i++) {
        const struct store_msg *m = &a->msgs[i];
        lua_createtable(co, 0, 4);
        lua_pushnumber(co, (lua_Number)m->seq);
        lua_setfield(co, -2, "seq");
        lua_pushnumber(co, (lua_Number)m->ts_ms);
        lua_setfield(co, -2, "ts");
        lua_pushlstring(co, m->data, m->len);
        lua_setfield(co, -2, "payload");
        if (m->flags & ROOM_PUB_BINARY) {
            lua_pushboolean(co, 1);
            lua_setfield(co, -2, "binary");
        }
        lua_rawseti(co, -2, (int)i + 1);
    }
    lua_createtable(co, 0, 2);
    lua_pushnumber(co, (lua_Number)a->info->last_seq);
    lua_setfield(co, -2, "last_seq");
    lua_pushstring(co, a->info->epoch);
    lua_setfield(co, -2, "epoch");
    return 2;
}

static int json_object_text(const struct store_msg *m)
{
    return !(m->flags & ROOM_PUB_BINARY) && m->len >= 2 && m->data[0] == '{' &&
           m->data[m->len - 1] == '}';
}

/* room:history{json = true}'s buffer (Lua sees a userdata of this struct):
 * the JSON array at f->data[off, off + len), with at least BLOB_HEADROOM
 * bytes before it and BLOB_TAILROOM after. A userdata, not a string: no interning (LuaJIT
 * hashes and compares a new string against every one of its length and
 * hash: up to 2 MB of memcmp per answer), and not LuaJIT memory: its
 * allocator maps every block of megabytes anew and unmaps it at GC (page
 * faults on each read), where malloc reuses its heap.
 *
 * The first conn:send(head, blob, tail) to a local connection that takes it
 * plain turns the block into that one frame in place (header and head
 * before the array, tail after: at most a move of the array by a few
 * bytes) and queues it by reference: no copy of megabytes, no new block.
 * The array's bytes never change after that; later sends copy them. */
#define BLOB_HEADROOM 512
#define BLOB_TAILROOM 512
struct json_blob {
    struct frame_ref *f;
    size_t off, len;
    int framed; /* f is a queued frame now: only [off, off + len) is ours */
};

static int json_blob_gc(lua_State *L)
{
    struct json_blob *b = lua_touserdata(L, 1);
    if (b != NULL && b->f != NULL) {
        frame_ref_put(b->f);
        b->f = NULL;
    }
    return 0;
}

RC_FFI_EXPORT const char *rc_ffi_blob_data(const void *ud)
{
    const struct json_blob *b = ud;
    return (const char *)b->f->data + b->off;
}

/* json:free(): the block goes now (to the big-block cache, or back to
 * malloc), not at the userdata's GC. The Lua side never uses b after it. */
RC_FFI_EXPORT void rc_ffi_blob_free(void *ud)
{
    struct json_blob *b = ud;
    if (b->f != NULL) {
        frame_ref_put(b->f);
        b->f = NULL;
    }
}

RC_FFI_EXPORT int rc_ffi_send_blob(uint64_t id, const char *a, size_t alen, void *ud,
                                   const char *c3, size_t clen)
{
    struct json_blob *b = ud;
    const char *json = (const char *)b->f->data + b->off;
    int remote;
    struct worker *w;
    struct conn *c = find(id, &w, &remote);
    size_t len = alen + b->len + clen;
    if (c == NULL || b->framed || alen > BLOB_HEADROOM - WS_MAX_HEADER || clen > BLOB_TAILROOM ||
        atomic_load_explicit(&b->f->refs, memory_order_relaxed) != 1 || conn_compresses(c, len))
        return rc_ffi_send3(id, a, alen, json, b->len, c3, clen, 0);
    c->sent_mark = 1;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_encode_header(hdr, 1, 0, WS_OP_TEXT, len, NULL);
    uint8_t *d = b->f->data;
    /* Header and head end where the array starts, the tail follows it: the
     * frame is d[from, ...), queued from there while c's data lane is
     * empty (the usual answer to a request); else moved to d[0]. */
    size_t from = b->off - hl - alen;
    memcpy(d + from, hdr, hl);
    if (alen)
        memcpy(d + from + hl, a, alen);
    if (clen)
        memcpy(d + b->off + b->len, c3, clen);
    b->f->len = b->off + b->len + clen;
    int rc = from > 0 ? conn_send_reply_ref_from(c, b->f, from) : -EAGAIN;
    if (rc != -EAGAIN) {
        b->framed = rc == 0;
        return rc;
    }
    if (from > 0) {
        memmove(d + hl + alen, d + b->off, b->len + clen);
        memcpy(d, hdr, hl);
        if (alen)
            memcpy(d + hl, a, alen);
        b->off = hl + alen;
        b->f->len = hl + len;
    }
    b->framed = 1;
    return conn_send_reply_ref(c, b->f);
}

/* RC_READ_JSON's answer: co: ... -> ... json info n len: json a json_blob
 * userdata of a buffer of len bytes holding "[p1,p2,...]", the text
 * entries that are JSON object texts ({...}; binary entries and other texts
 * are skipped), n how many. The payloads a script published as JSON are
 * spliced as they are, in one buffer instead of a table of up to
 * STORE_READ_MAX strings. */
/* One RC_READ_JSON read: the ticket of the waiting handler, and the array
 * built by json_sink (on the store's thread: the SQLite reader straight
 * from its rows, the Redis bus thread) or, when the store did not run the
 * sink, by push_read_json on the worker.
 *
 * The array is f->data[lo, hi), with at least BLOB_HEADROOM bytes before it
 * and BLOB_TAILROOM after it (rc_ffi_send_blob writes the frame's header
 * and head before it, its tail after it). Rows that come oldest first are
 * appended from the headroom on; rows that come newest first (a `newest`
 * read: the SQLite store yields them in that order) are placed from the
 * tailroom backwards, so the array is oldest first either way and no row is
 * moved:
 *
 *   oldest first:  | head room |[p1,p2,...,pk      free      | tail room |
 *                               lo -----------> hi
 *   newest first:  | head room |      free      pk,...,pN-1,pN]| tail room |
 *                                               lo <----------- hi
 */
struct json_read {
    uint64_t ticket;
    int began;           /* the sink ran (begin, rows, end) */
    int desc;            /* rows come newest first */
    struct frame_ref *f; /* owned until pushed; NULL: allocation failed */
    size_t lo, hi;       /* the array so far */
    size_t n;            /* entries in it */
};

/* A bigger block for `more` bytes more, the array moved into it. 0, or -1
 * (j->f is NULL then: the answer is "unavailable"). */
static int json_grow(struct json_read *j, size_t more)
{
    size_t used = j->hi - j->lo;
    size_t cap = 2 * j->f->cap;
    if (cap < BLOB_HEADROOM + used + more + 2 + BLOB_TAILROOM)
        cap = BLOB_HEADROOM + used + more + 2 + BLOB_TAILROOM;
    struct frame_ref *g = frame_ref_try_new(cap, 0);
    if (g != NULL) {
        size_t lo = j->desc ? g->cap - BLOB_TAILROOM - used : BLOB_HEADROOM;
        memcpy(g->data + lo, j->f->data + j->lo, used);
        j->lo = lo;
        j->hi = lo + used;
    }
    frame_ref_put(j->f);
    j->f = g;
    return g != NULL ? 0 : -1;
}

/* store_sink: any thread; touches nothing but j (no Lua, no worker state). */
static void json_begin(void *arg, const struct store_room *info, int desc, size_t bytes)
{
    (void)info;
    struct json_read *j = arg;
    j->began = 1;
    j->desc = desc;
    /* the payloads, a comma each (an eighth covers rows of 8 bytes and up;
     * smaller ones grow the block), the brackets */
    j->f = frame_ref_try_new(BLOB_HEADROOM + bytes + bytes / 8 + 64 + BLOB_TAILROOM, 0);
    if (j->f == NULL)
        return;
    if (desc) {
        j->hi = j->f->cap - BLOB_TAILROOM;
        j->lo = j->hi - 1;
        j->f->data[j->lo] = ']';
    } else {
        j->lo = BLOB_HEADROOM;
        j->hi = j->lo + 1;
        j->f->data[j->lo] = '[';
    }
}

static void json_row(void *arg, const struct store_msg *m)
{
    struct json_read *j = arg;
    if (j->f == NULL || !json_object_text(m))
        return;
    size_t need = m->len + 1; /* and a comma, or the closing bracket */
    if (j->desc) {
        if (j->lo - BLOB_HEADROOM < need + 1 && json_grow(j, need) != 0)
            return;
        if (j->n > 0)
            j->f->data[--j->lo] = ',';
        j->lo -= m->len;
        memcpy(j->f->data + j->lo, m->data, m->len);
    } else {
        if (j->f->cap - BLOB_TAILROOM - j->hi < need + 1 && json_grow(j, need) != 0)
            return;
        if (j->n > 0)
            j->f->data[j->hi++] = ',';
        memcpy(j->f->data + j->hi, m->data, m->len);
        j->hi += m->len;
    }
    j->n++;
}

static void json_end(void *arg, int status)
{
    (void)status; /* a failed read: cb answers "unavailable" and frees f */
    struct json_read *j = arg;
    if (j->f == NULL)
        return;
    if (j->desc)
        j->f->data[--j->lo] = '[';
    else
        j->f->data[j->hi++] = ']';
    RC_ASSERT(j->lo >= BLOB_HEADROOM && j->hi + BLOB_TAILROOM <= j->f->cap);
}

/* payload_only: json_row reads flags and bytes (the stored text has its
 * seq and ts in it already) */
static const struct store_sink json_sink = {
    .begin = json_begin, .row = json_row, .end = json_end, .payload_only = 1};

struct json_answer {
    struct read_answer a;
    struct json_read *j;
};

static int push_read_json(lua_State *co, void *ud)
{
    const struct json_answer *ja = ud;
    const struct read_answer *a = &ja->a;
    struct json_read *j = ja->j;
    if (a->status < 0)
        return push_read(co, (void *)(uintptr_t)a);
    if (!j->began) { /* a store that did not run the sink: here, on the worker */
        struct store_query q = {.sink = &json_sink, .sink_arg = j};
        store_sink_feed(&q, a->info, a->msgs, a->n);
    }
    if (j->f == NULL) {
        lua_pushnil(co);
        lua_pushstring(co, "unavailable");
        return 2;
    }
    struct json_blob *b = lua_newuserdata(co, sizeof *b);
    *b = (struct json_blob){.f = j->f, .off = j->lo, .len = j->hi - j->lo};
    j->f = NULL; /* the userdata's now */
    lua_createtable(co, 0, 1);
    lua_pushcfunction(co, json_blob_gc);
    lua_setfield(co, -2, "__gc");
    lua_setmetatable(co, -2);
    size_t n = j->n, total = b->len;
    lua_createtable(co, 0, 2);
    lua_pushnumber(co, (lua_Number)a->info->last_seq);
    lua_setfield(co, -2, "last_seq");
    lua_pushstring(co, a->info->epoch);
    lua_setfield(co, -2, "epoch");
    lua_pushnumber(co, (lua_Number)n);
    lua_pushnumber(co, (lua_Number)total);
    return 4;
}

/* store_read_cb, on the worker that asked: ud is the ticket. */
static void on_store_read(void *ud, int status, const struct store_room *info,
                          const struct store_msg *msgs, size_t n)
{
    struct worker *w = worker_current();
    struct read_answer a = {.status = status, .info = info, .msgs = msgs, .n = n};
    if (w != NULL && async_ops != NULL)
        async_ops->complete(w, (uint64_t)(uintptr_t)ud, push_read, &a);
}

static void on_store_read_json(void *ud, int status, const struct store_room *info,
                               const struct store_msg *msgs, size_t n)
{
    struct json_read *j = ud;
    struct worker *w = worker_current();
    struct json_answer ja = {.a = {.status = status, .info = info, .msgs = msgs, .n = n}, .j = j};
    if (w != NULL && async_ops != NULL)
        async_ops->complete(w, j->ticket, push_read_json, &ja);
    if (j->f != NULL) /* the handler was gone (timeout, close, reload) */
        frame_ref_put(j->f);
    rc_free(j);
}

RC_FFI_EXPORT double rc_ffi_room_read(const char *room, size_t len, double since, double before,
                                      double limit, unsigned mode)
{
    struct server *s = cur_server();
    struct worker *w = worker_current();
    if (s == NULL || w == NULL || s->store == NULL)
        return RC_E_CLOSED;
    if (!(limit >= 1 && limit <= STORE_READ_MAX) || !(since >= 0 && since <= 0x1p53) ||
        !(before >= 0 && before <= 0x1p53))
        return RC_E_INVAL;
    _Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "tickets travel as the read's ud");
    uint64_t t = lcall_wait_ticket(lapi_wait_ms());
    if (t == 0)
        return 0;
    struct store_query q = {.since = (uint64_t)since,
                            .before = (uint64_t)before,
                            .limit = (uint32_t)limit,
                            .newest = (mode & RC_READ_NEWEST) != 0};
    void *ud = (void *)(uintptr_t)t;
    struct json_read *j = NULL;
    if (mode & RC_READ_JSON) {
        /* the array is built off this worker by the store's thread */
        j = rc_xcalloc(1, sizeof(*j));
        j->ticket = t;
        q.sink = &json_sink;
        q.sink_arg = j;
        ud = j;
    }
    int rc = s->store->ops->read(s->store, w->id, room, len, &q,
                                 j != NULL ? on_store_read_json : on_store_read, ud);
    if (rc < 0) {
        rc_free(j);
        lcall_wait_cancel(t);
        return rc;
    }
    return (double)t;
}

/* room:set_policy(name): 0 drop, 1 close, 2 latest (enum slow_policy). */
RC_FFI_EXPORT int rc_ffi_room_set_policy(const char *room, size_t len, int policy)
{
    struct server *s = cur_server();
    return s ? room_set_policy(&s->rooms, room, len, policy) : RC_E_CLOSED;
}

RC_FFI_EXPORT int rc_ffi_room_get(const char *room, size_t len, const char *key, size_t klen,
                                  char **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    struct server *s = cur_server();
    if (s == NULL)
        return RC_E_CLOSED;
    int rc = room_kv_get(&s->rooms, room, len, key, klen, val, vlen);
    return rc == RC_E_NOT_FOUND ? 0 : rc;
}

RC_FFI_EXPORT int rc_ffi_room_set(const char *room, size_t len, const char *key, size_t klen,
                                  const char *val, size_t vlen)
{
    struct server *s = cur_server();
    if (s == NULL)
        return RC_E_CLOSED;
    return room_kv_set(&s->rooms, room, len, key, klen, val, vlen);
}

RC_FFI_EXPORT void rc_ffi_free(void *p)
{
    rc_free(p);
}

/* -- misc ------------------------------------------------------------------ */

RC_FFI_EXPORT long rc_ffi_send_to_user(const char *user, size_t ulen, const char *data, size_t dlen,
                                       int binary)
{
    struct worker *w = worker_current();
    if (w == NULL)
        return 0;
    struct bus *b = w->srv->bus;
    if (b != NULL && b->ops->presence != NULL) {
        /* a cluster bus, and a handler that cannot wait: handed to the bus
         * (1: accepted), or RC_E_DENIED when the bus is down */
        int rc = b->ops->send_to_user(b, w->id, user, ulen, data, dlen, binary, NULL, NULL);
        return rc < 0 ? rc : 1;
    }
    return users_send(&w->srv->users, w->id, user, ulen, data, dlen, binary);
}

static void on_user_ack(void *ud, int status, uint64_t n)
{
    struct worker *w = worker_current();
    struct pub_answer a = {.status = status, .seq = n};
    if (w != NULL && async_ops != NULL)
        async_ops->complete(w, (uint64_t)(uintptr_t)ud, push_pub, &a); /* n or nil, err */
}

/* bus_done_cb of a count-only presence read, on the worker that asked: ud
 * is the ticket; the answer is the count (or nil, "unavailable"). */
static void on_count_done(void *ud, int status, long count)
{
    on_pub_ack(ud, status, count > 0 ? (uint64_t)count : 0); /* count or nil, err */
}

RC_FFI_EXPORT double rc_ffi_room_count_wait(const char *room, size_t len)
{
    struct worker *w = worker_current();
    if (w == NULL || w->srv->bus == NULL || w->srv->bus->ops->presence_count == NULL)
        return RC_E_NOT_FOUND; /* one node: rc_ffi_room_count */
    if (len == 0 || len > ROOM_NAME_MAX)
        return RC_E_INVAL;
    uint64_t t = lcall_wait_ticket(lapi_wait_ms());
    if (t == 0)
        return 0;
    struct bus *b = w->srv->bus;
    int rc = b->ops->presence_count(b, w->id, room, len, on_count_done, (void *)(uintptr_t)t);
    if (rc < 0) {
        lcall_wait_cancel(t);
        return rc;
    }
    return (double)t;
}

RC_FFI_EXPORT double rc_ffi_send_to_user_wait(const char *user, size_t ulen, const char *data,
                                              size_t dlen, int binary)
{
    struct worker *w = worker_current();
    if (w == NULL || w->srv->bus == NULL || w->srv->bus->ops->presence == NULL)
        return RC_E_NOT_FOUND; /* one node: the synchronous count */
    uint64_t t = lcall_wait_ticket(lapi_wait_ms());
    if (t == 0)
        return 0;
    struct bus *b = w->srv->bus;
    int rc = b->ops->send_to_user(b, w->id, user, ulen, data, dlen, binary, on_user_ack,
                                  (void *)(uintptr_t)t);
    if (rc < 0) {
        lcall_wait_cancel(t);
        return rc;
    }
    return (double)t;
}

RC_FFI_EXPORT void rc_ffi_log(int level, const char *msg, size_t len)
{
    if (level < RC_LOG_DEBUG || level > RC_LOG_ERROR)
        level = RC_LOG_INFO;
    if ((enum rc_log_level)level < rc_log_get_level())
        return;
    if (len > 4000)
        len = 4000;
    rc_log((enum rc_log_level)level, "%.*s", (int)len, msg);
}

RC_FFI_EXPORT double rc_ffi_now(void)
{
    struct worker *w = worker_current();
    double t;
    if (w && w->loop) {
        t = wloop_wall(w->loop); /* read once per loop iteration */
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    return (double)(int64_t)(t * 1000.0);
}

/* -- JWT --------------------------------------------------------------------- */

static struct jwt_str opt_str(const char *p, size_t len)
{
    struct jwt_str s = {p, len};
    return s;
}

RC_FFI_EXPORT const char *rc_ffi_jwt_name(int kind, int i)
{
    return kind == 0 ? jwt_reason_name(i) : jwt_alg_name(i);
}

RC_FFI_EXPORT struct jwt_keyset *rc_ffi_jwt_keyset_new(uint32_t allowed)
{
    return jwt_keyset_new(allowed);
}

RC_FFI_EXPORT void rc_ffi_jwt_keyset_free(struct jwt_keyset *ks)
{
    jwt_keyset_free(ks);
}

RC_FFI_EXPORT int rc_ffi_jwt_add_secret(struct jwt_keyset *ks, const char *kid, size_t kidlen,
                                        const char *secret, size_t len, char *err, size_t errcap)
{
    return jwt_keyset_add_secret(ks, opt_str(kid, kidlen), secret, len, err, errcap);
}

RC_FFI_EXPORT int rc_ffi_jwt_add_pem(struct jwt_keyset *ks, const char *kid, size_t kidlen,
                                     const char *pem, size_t len, char *err, size_t errcap)
{
    return jwt_keyset_add_pem(ks, opt_str(kid, kidlen), pem, len, err, errcap);
}

RC_FFI_EXPORT int rc_ffi_jwt_add_jwk(struct jwt_keyset *ks, const struct jwt_jwk *jwk, char *err,
                                     size_t errcap)
{
    return jwt_keyset_add_jwk(ks, jwk, err, errcap);
}

RC_FFI_EXPORT int rc_ffi_jwt_header(const char *token, size_t tlen, char *out, size_t cap,
                                    size_t *hlen)
{
    return jwt_decode_header(token, tlen, out, cap, hlen);
}

RC_FFI_EXPORT int rc_ffi_jwt_verify(const struct jwt_keyset *ks, int alg, const char *kid,
                                    size_t kidlen, const char *token, size_t tlen, char *out,
                                    size_t cap, size_t *plen)
{
    return jwt_verify(ks, alg, opt_str(kid, kidlen), token, tlen, out, cap, plen);
}

RC_FFI_EXPORT void rc_ffi_jwt_refused(int r)
{
    struct worker *w = worker_current();
    if (w == NULL || r <= 0 || r >= JWT_NREASONS)
        return;
    STAT_INC(&w->stats, jwt_refusals_by_reason[r]);
}

/* -- the symbol table ---------------------------------------------------------- */

#define RC_FFI_LIST(XX)                                                                            \
    XX(rc_ffi_send)                                                                                \
    XX(rc_ffi_send3)                                                                               \
    XX(rc_ffi_send_blob)                                                                           \
    XX(rc_ffi_blob_data)                                                                           \
    XX(rc_ffi_blob_free)                                                                           \
    XX(rc_ffi_close)                                                                               \
    XX(rc_ffi_join)                                                                                \
    XX(rc_ffi_join_held)                                                                           \
    XX(rc_ffi_hold_state)                                                                          \
    XX(rc_ffi_release)                                                                             \
    XX(rc_ffi_end_holds)                                                                           \
    XX(rc_ffi_leave)                                                                               \
    XX(rc_ffi_in_room)                                                                             \
    XX(rc_ffi_conn_rooms)                                                                          \
    XX(rc_ffi_set_user)                                                                            \
    XX(rc_ffi_get_user)                                                                            \
    XX(rc_ffi_peer)                                                                                \
    XX(rc_ffi_conn_get)                                                                            \
    XX(rc_ffi_conn_set)                                                                            \
    XX(rc_ffi_publish)                                                                             \
    XX(rc_ffi_publish_wait)                                                                        \
    XX(rc_ffi_room_count)                                                                          \
    XX(rc_ffi_room_members)                                                                        \
    XX(rc_ffi_room_presence)                                                                       \
    XX(rc_ffi_room_presence_wait)                                                                  \
    XX(rc_ffi_room_count_wait)                                                                     \
    XX(rc_ffi_room_read)                                                                           \
    XX(rc_ffi_room_set_policy)                                                                     \
    XX(rc_ffi_room_get)                                                                            \
    XX(rc_ffi_room_set)                                                                            \
    XX(rc_ffi_free)                                                                                \
    XX(rc_ffi_send_to_user)                                                                        \
    XX(rc_ffi_send_to_user_wait)                                                                   \
    XX(rc_ffi_log)                                                                                 \
    XX(rc_ffi_now)                                                                                 \
    XX(rc_ffi_jwt_name)                                                                            \
    XX(rc_ffi_jwt_keyset_new)                                                                      \
    XX(rc_ffi_jwt_keyset_free)                                                                     \
    XX(rc_ffi_jwt_add_secret)                                                                      \
    XX(rc_ffi_jwt_add_pem)                                                                         \
    XX(rc_ffi_jwt_add_jwk)                                                                         \
    XX(rc_ffi_jwt_header)                                                                          \
    XX(rc_ffi_jwt_verify)                                                                          \
    XX(rc_ffi_jwt_refused)                                                                         \
    XX(rc_ffi_sleep)

#define RC_FFI_PTR(name) (void *)name,
#define RC_FFI_NAME(name) #name,
void *const rc_ffi_symbols[] = {RC_FFI_LIST(RC_FFI_PTR) NULL};
const char *const rc_ffi_names[] = {RC_FFI_LIST(RC_FFI_NAME) NULL};

void lapi_set_async(const struct lapi_async *ops)
{
    async_ops = ops;
}

RC_FFI_EXPORT double rc_ffi_sleep(double ms)
{
    struct worker *w = worker_current();
    return w && async_ops ? (double)async_ops->sleep(w, ms) : 0;
}
