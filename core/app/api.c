#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "closecode.h"
#include "config.h"
#include "defs.h"
#include "err.h"
#include "frame_ref.h"
#include "http_parse.h"
#include "json_scan.h"
#include "log.h"
#include "mailbox.h"
#include "room.h"
#include "sbuf.h"
#include "store.h"
#include "users.h"
#include "worker.h"
#include "ws_frame.h"

#define API_MAX_MEMBERS 16
#define API_NAME_MAX 256 /* room and user ids */
#define API_HISTORY_MAX STORE_READ_MAX

/* A finished publish, from a worker to the admin loop. */
struct done {
    struct done *next;
    uint64_t req;
    int status;
    char *body; /* owned */
};

static struct {
    struct ev_loop *loop;
    struct server *srv;
    const struct rc_config *cfg;
    api_reply_fn reply;
    ev_async async;
    pthread_mutex_t lock;
    struct done *head, *tail; /* under lock */
    int started;
    int draining;
} api;

char *api_error_body(const char *code, const char *message)
{
    struct sbuf b = {0};
    sb_printf(&b, "{\"code\":\"%s\",\"message\":", code);
    sb_json_str(&b, message, strlen(message));
    sb_printf(&b, "}\n");
    return b.p;
}

static int err(char **out, int status, const char *code, const char *message)
{
    *out = api_error_body(code, message);
    return status;
}

/* ---------------------------------------------------------------- completions */

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop, (void)a, (void)revents;
    pthread_mutex_lock(&api.lock);
    struct done *d = api.head;
    api.head = api.tail = NULL;
    pthread_mutex_unlock(&api.lock);
    while (d) {
        struct done *next = d->next;
        api.reply(d->req, d->status, d->body); /* takes the body */
        rc_free(d);
        d = next;
    }
}

void api_complete(uint64_t req, int status, const char *body, size_t len)
{
    struct done *d = rc_xmalloc(sizeof(*d));
    d->next = NULL;
    d->req = req;
    d->status = status;
    d->body = rc_xmalloc(len + 2);
    memcpy(d->body, body, len);
    d->body[len] = '\n';
    d->body[len + 1] = '\0';
    pthread_mutex_lock(&api.lock);
    int was_empty = api.head == NULL;
    if (api.tail)
        api.tail->next = d;
    else
        api.head = d;
    api.tail = d;
    int started = api.started;
    pthread_mutex_unlock(&api.lock);
    if (was_empty && started)
        ev_async_send(api.loop, &api.async);
}

void api_init(struct ev_loop *loop, struct server *srv, const struct rc_config *cfg,
              api_reply_fn reply)
{
    api.loop = loop;
    api.srv = srv;
    api.cfg = cfg;
    api.reply = reply;
    pthread_mutex_init(&api.lock, NULL);
    ev_async_init(&api.async, on_async);
    ev_async_start(loop, &api.async);
    api.started = 1;
}

void api_set_draining(void)
{
    api.draining = 1;
}

void api_stop(void)
{
    if (!api.loop)
        return;
    pthread_mutex_lock(&api.lock);
    struct done *d = api.head;
    api.head = api.tail = NULL;
    api.started = 0;
    pthread_mutex_unlock(&api.lock);
    while (d) {
        struct done *next = d->next;
        rc_free(d->body);
        rc_free(d);
        d = next;
    }
    ev_async_stop(api.loop, &api.async);
    api.loop = NULL;
}

/* ---------------------------------------------------------------- helpers */

static int is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* A required (or optional: *out stays "" and 0 is returned) string member.
 * Returns its length, or -1 with the error in *o. */
static long get_name(const struct json_member *m, size_t n, const char *key, int required,
                     char *out, size_t cap, char **o, int *status)
{
    out[0] = '\0';
    const struct json_member *v = json_find(m, n, key);
    char msg[160];
    if (v == NULL) {
        if (!required)
            return 0;
        snprintf(msg, sizeof(msg), "%s is required", key);
        *status = err(o, 400, "missing_field", msg);
        return -1;
    }
    ssize_t l = v->type == JSON_STRING ? json_string_decode(v->val, v->val_len, out, cap) : -1;
    if (l <= 0) {
        snprintf(msg, sizeof(msg), "%s must be a non-empty string of at most %zu bytes", key,
                 cap - 1);
        *status = err(o, 400, "invalid_field", msg);
        return -1;
    }
    return (long)l;
}

/* Parses the body as a JSON object into m. Returns the member count or -1
 * (error set). */
static long parse_body(const char *body, size_t blen, struct json_member *m, char **o, int *status)
{
    ssize_t n = json_scan_object(body, blen, m, API_MAX_MEMBERS);
    if (n < 0) {
        *status = err(o, 400, "bad_json", "the body must be one JSON object");
        return -1;
    }
    return n > API_MAX_MEMBERS ? API_MAX_MEMBERS : (long)n;
}

/* A POST body: a JSON object that names a room or a user (the required
 * string member `key`) and, for a message, carries content or data. */
struct api_body {
    struct json_member m[API_MAX_MEMBERS];
    size_t n;
    char name[API_NAME_MAX + 1];
    size_t name_len;
    const struct json_member *c, *d; /* parse_message: "content", "data" */
};

/* parse_body into in->m, then the member `key` into in->name. Returns 0, or
 * the error status (error set). */
static int parse_named(const char *body, size_t blen, const char *key, struct api_body *in,
                       char **o)
{
    int status = 0;
    long n = parse_body(body, blen, in->m, o, &status);
    if (n < 0)
        return status;
    in->n = (size_t)n;
    long l = get_name(in->m, in->n, key, 1, in->name, sizeof(in->name), o, &status);
    if (l < 0)
        return status;
    in->name_len = (size_t)l;
    return 0;
}

/* parse_named, then the message: "content" (a string) or "data" (any JSON),
 * one of them required (the absent one NULL). Returns 0 or the error status. */
static int parse_message(const char *body, size_t blen, const char *key, struct api_body *in,
                         char **o)
{
    int status = parse_named(body, blen, key, in, o);
    if (status != 0)
        return status;
    in->c = json_find(in->m, in->n, "content");
    in->d = json_find(in->m, in->n, "data");
    if (in->c == NULL && in->d == NULL)
        return err(o, 400, "missing_field", "content (a string) or data (any JSON) is required");
    if (in->c && in->c->type != JSON_STRING)
        return err(o, 400, "invalid_field", "content must be a string");
    return 0;
}

/* Percent-decodes one path segment (a room id). Returns its length or -1. */
static long decode_segment(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || rc_hexval(s[i + 1]) < 0 || rc_hexval(s[i + 2]) < 0)
                return -1;
            c = (unsigned char)(rc_hexval(s[i + 1]) << 4 | rc_hexval(s[i + 2]));
            i += 2;
        }
        if (c < 0x20 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* A query parameter as a non-negative integer: 1 found, 0 absent, -1 bad. */
static int query_u64(const char *q, size_t ql, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *p = q, *end = q + ql;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1;
            if (v == e)
                return -1;
            uint64_t x = 0;
            for (const char *d = v; d < e; d++) {
                if (*d < '0' || *d > '9' || x > UINT64_MAX / 10 - 10)
                    return -1;
                x = x * 10 + (uint64_t)(*d - '0');
            }
            *out = x;
            return 1;
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

/* ---------------------------------------------------------------- endpoints */

/* A publish on its way to the room's owner: room, NUL, body, NUL. */
struct pub_job {
    uint64_t req;
    size_t room_len, body_len;
    char data[];
};

/* On the room's owner worker (mail_call). */
static void run_publish(void *arg)
{
    struct pub_job *j = arg;
    struct worker *w = worker_current();
    if (w) /* NULL: the server is stopping and runs what was queued */
        w->handler->api_publish(w, j->req, j->data, j->room_len, j->data + j->room_len + 1,
                                j->body_len);
    rc_free(j);
}

/* Answers an API request from a bus ack: 200 {"<key>":n}, or 503
 * unavailable. ud is the request id (freed here). */
static void complete_count(void *ud, int status, uint64_t n, const char *key)
{
    uint64_t *req = ud;
    char out[160];
    if (status == 0) {
        snprintf(out, sizeof(out), "{\"%s\":%llu}", key, (unsigned long long)n);
        api_complete(*req, 200, out, strlen(out));
    } else {
        snprintf(out, sizeof(out), "{\"code\":\"unavailable\",\"message\":\"%s\"}",
                 rc_strerror(status));
        api_complete(*req, 503, out, strlen(out));
    }
    rc_free(req);
}

/* The bus's ack, on the publishing worker: the seq goes to the admin loop. */
static void on_publish_ack(void *ud, int status, uint64_t seq)
{
    complete_count(ud, status, seq, "seq");
}

void api_publish_payload(struct worker *w, uint64_t req, const char *room, size_t rl,
                         const void *payload, size_t plen, unsigned flags)
{
    uint64_t *ud = rc_xmalloc(sizeof(*ud));
    *ud = req;
    int rc =
        room_publish_ack(&w->srv->rooms, w->id, room, rl, payload, plen, flags, on_publish_ack, ud);
    if (rc != 0) { /* the ack will not run */
        rc_free(ud);
        char out[160];
        snprintf(out, sizeof(out), "{\"code\":\"%s\",\"message\":\"%s\"}",
                 rc == RC_E_INVAL ? "invalid_field" : "unavailable", rc_strerror(rc));
        api_complete(req, rc == RC_E_INVAL ? 400 : 503, out, strlen(out));
    }
}

static int publish(uint64_t req, const char *body, size_t blen, char **o)
{
    struct api_body in;
    int status = parse_message(body, blen, "room_id", &in, o);
    if (status != 0)
        return status;
    if (api.srv->handler->api_publish == NULL)
        return err(o, 404, "no_publish_hook",
                   "the running handler has no API publish hook (run a script)");
    if (api.draining)
        return err(o, 503, "draining", "the server is shutting down");
    struct pub_job *j = rc_xmalloc(sizeof(*j) + in.name_len + 1 + blen + 1);
    j->req = req;
    j->room_len = in.name_len;
    j->body_len = blen;
    memcpy(j->data, in.name, in.name_len + 1);
    memcpy(j->data + in.name_len + 1, body, blen);
    j->data[in.name_len + 1 + blen] = '\0';
    /* The hook runs on the room's owner; the publish then goes through the
     * bus like a member's (sequenced, stored, delivered), and its ack brings
     * the seq back (api_publish_payload). */
    int owner = rooms_owner_of(&api.srv->rooms, in.name, in.name_len);
    mail_call(NULL, &api.srv->workers[owner].mbox, run_publish, j);
    return API_PENDING;
}

/* A direct message on its way to a worker: user, NUL, payload. */
struct send_job {
    uint64_t req;
    size_t user_len, len;
    char data[];
};

/* The bus's ack, on that worker: how many connections got it (local bus),
 * or 1 once a cluster bus took it (bus.h). */
static void on_send_ack(void *ud, int status, uint64_t n)
{
    complete_count(ud, status, n, "delivered");
}

/* On a worker (mail_call): bus.send_to_user, answered by on_send_ack. */
static void run_send(void *arg)
{
    struct send_job *j = arg;
    struct worker *w = worker_current();
    if (w) {
        struct bus *b = w->srv->bus;
        uint64_t *ud = rc_xmalloc(sizeof(*ud));
        *ud = j->req;
        int rc = b->ops->send_to_user(b, w->id, j->data, j->user_len, j->data + j->user_len + 1,
                                      j->len, 0, on_send_ack, ud);
        if (rc != 0) /* the ack will not run: answer now (frees ud) */
            on_send_ack(ud, rc, 0);
    }
    rc_free(j);
}

static int send_user(uint64_t req, const char *body, size_t blen, char **o)
{
    struct api_body in;
    int status = parse_message(body, blen, "user_id", &in, o);
    if (status != 0)
        return status;
    /* The shape of scripts/chat.lua's direct messages, from api_sender. */
    struct sbuf p = {0};
    sb_printf(&p, "{\"type\":\"direct\",\"from\":");
    const char *from = api.cfg->api_sender ? api.cfg->api_sender : "server";
    sb_json_str(&p, from, strlen(from));
    if (in.c) {
        sb_printf(&p, ",\"content\":");
        sb_add(&p, in.c->val, in.c->val_len);
    } else {
        sb_printf(&p, ",\"data\":");
        sb_add(&p, in.d->val, in.d->val_len);
    }
    sb_printf(&p, "}");
    /* Through the bus, as a member's direct message goes: from a worker. */
    struct send_job *j = rc_xmalloc(sizeof(*j) + in.name_len + 1 + p.len);
    j->req = req;
    j->user_len = in.name_len;
    j->len = p.len;
    memcpy(j->data, in.name, in.name_len + 1);
    memcpy(j->data + in.name_len + 1, p.p, p.len);
    rc_free(p.p);
    int wid = rooms_owner_of(&api.srv->rooms, in.name, in.name_len); /* any worker; spread */
    mail_call(NULL, &api.srv->workers[wid].mbox, run_send, j);
    return API_PENDING;
}

/* A disconnect on its way to a worker: user, NUL, reason, NUL. */
struct kick_job {
    uint64_t req;
    unsigned code;
    size_t user_len, reason_len;
    char data[];
};

/* The bus's ack: how many connections were closed (local bus), or how many
 * nodes the bus handed it to (cluster). */
static void on_kick_ack(void *ud, int status, uint64_t n)
{
    complete_count(ud, status, n, "closed");
}

/* On a worker (mail_call): bus.disconnect_user, answered by on_kick_ack. */
static void run_kick(void *arg)
{
    struct kick_job *j = arg;
    struct worker *w = worker_current();
    if (w) {
        struct bus *b = w->srv->bus;
        uint64_t *ud = rc_xmalloc(sizeof(*ud));
        *ud = j->req;
        int rc = b->ops->disconnect_user(b, w->id, j->data, j->user_len, j->code,
                                         j->data + j->user_len + 1, j->reason_len, on_kick_ack, ud);
        if (rc != 0) /* the ack will not run: answer now (frees ud) */
            on_kick_ack(ud, rc, 0);
    }
    rc_free(j);
}

static int disconnect(uint64_t req, const char *body, size_t blen, char **o)
{
    struct api_body in;
    int status = parse_named(body, blen, "user_id", &in, o);
    if (status != 0)
        return status;
    unsigned code = 1000;
    const struct json_member *c = json_find(in.m, in.n, "code");
    if (c) {
        char num[16];
        if (c->type != JSON_NUMBER || c->val_len >= sizeof(num))
            return err(o, 400, "invalid_field", "code must be 1000 or 3000-4999");
        memcpy(num, c->val, c->val_len);
        num[c->val_len] = '\0';
        char *end;
        long v = strtol(num, &end, 10);
        /* RFC 6455 §7.4.2: what an endpoint may send; 1000 or the registered/private ranges */
        if (*end || !(v == 1000 || (v >= 3000 && v <= 4999)))
            return err(o, 400, "invalid_field", "code must be 1000 or 3000-4999");
        code = (unsigned)v;
    }
    char reason[124];
    long rl = get_name(in.m, in.n, "reason", 0, reason, sizeof(reason), o, &status);
    if (rl < 0)
        return status;
    /* Through the bus from a worker, as a direct message goes: on one node
     * it closes the user's connections here; in a cluster every node with a
     * connection of the user closes its own. */
    struct kick_job *j = rc_xmalloc(sizeof(*j) + in.name_len + 1 + (size_t)rl + 1);
    j->req = req;
    j->code = code;
    j->user_len = in.name_len;
    j->reason_len = (size_t)rl;
    memcpy(j->data, in.name, in.name_len + 1);
    memcpy(j->data + in.name_len + 1, reason, (size_t)rl + 1);
    int wid = rooms_owner_of(&api.srv->rooms, in.name, in.name_len); /* any worker; spread */
    mail_call(NULL, &api.srv->workers[wid].mbox, run_kick, j);
    return API_PENDING;
}

struct list_ctx {
    struct sbuf *b;
    int first;
};

static void room_cb(void *ud, const char *name, size_t len, long members, uint64_t seq)
{
    struct list_ctx *x = ud;
    sb_printf(x->b, "%s{\"room_id\":", x->first ? "" : ",");
    sb_json_str(x->b, name, len);
    sb_printf(x->b, ",\"members\":%ld,\"seq\":%llu}", members, (unsigned long long)seq);
    x->first = 0;
}

static int rooms(char **o)
{
    struct sbuf b = {0};
    sb_printf(&b, "{\"rooms\":[");
    struct list_ctx x = {&b, 1};
    room_list(&api.srv->rooms, room_cb, &x);
    sb_printf(&b, "]}\n");
    *o = b.p;
    return 200;
}

static void user_cb(void *ud, const char *user, size_t len)
{
    struct list_ctx *x = ud;
    if (!x->first)
        sb_add(x->b, ",", 1);
    sb_json_str(x->b, user, len);
    x->first = 0;
}

/* A cluster-wide presence read: asked on the room's owner worker, answered
 * by the bus there (the users one by one, then done). */
struct pres_job {
    uint64_t req;
    struct sbuf b;
    int first;
    int count_only; /* GET .../count: bus.presence_count, no users */
    size_t room_len;
    char room[];
};

static void pres_each(void *ud, const char *user, size_t len)
{
    struct pres_job *j = ud;
    if (!j->first)
        sb_add(&j->b, ",", 1);
    sb_json_str(&j->b, user, len);
    j->first = 0;
}

static void pres_done(void *ud, int status, long count)
{
    struct pres_job *j = ud;
    if (status != 0) {
        char out[160];
        snprintf(out, sizeof(out), "{\"code\":\"unavailable\",\"message\":\"%s\"}",
                 rc_strerror(status));
        api_complete(j->req, 503, out, strlen(out));
    } else if (count == 0 && room_count(&api.srv->rooms, j->room, j->room_len) < 0) {
        const char *out = "{\"code\":\"room_not_found\",\"message\":\"no such room\"}";
        api_complete(j->req, 404, out, strlen(out));
    } else {
        sb_printf(&j->b, "%s\"count\":%ld}", j->count_only ? "," : "],", count);
        api_complete(j->req, 200, j->b.p, j->b.len);
    }
    rc_free(j->b.p);
    rc_free(j);
}

/* On the room's owner worker (mail_call): bus.presence, answered later. */
static void run_presence(void *arg)
{
    struct pres_job *j = arg;
    struct worker *w = worker_current();
    if (w == NULL) {
        rc_free(j->b.p);
        rc_free(j);
        return;
    }
    struct bus *b = w->srv->bus;
    int rc = j->count_only
                 ? b->ops->presence_count(b, w->id, j->room, j->room_len, pres_done, j)
                 : b->ops->presence(b, w->id, j->room, j->room_len, pres_each, pres_done, j);
    if (rc != 0) /* pres_done will not run: answer now (frees j) */
        pres_done(j, rc, 0);
}

/* GET /api/rooms/<room>/presence (count_only 0) or /count (1). */
static int presence(uint64_t req, const char *room, size_t rl, int count_only, char **o)
{
    if (api.srv->bus && api.srv->bus->ops->presence) { /* a cluster: every node's */
        struct pres_job *j = rc_xcalloc(1, sizeof(*j) + rl + 1);
        j->req = req;
        j->first = 1;
        j->count_only = count_only && api.srv->bus->ops->presence_count != NULL;
        j->room_len = rl;
        memcpy(j->room, room, rl);
        sb_printf(&j->b, "{\"room_id\":");
        sb_json_str(&j->b, room, rl);
        if (!j->count_only)
            sb_printf(&j->b, ",\"users\":[");
        int owner = rooms_owner_of(&api.srv->rooms, room, rl);
        mail_call(NULL, &api.srv->workers[owner].mbox, run_presence, j);
        return API_PENDING;
    }
    long count = room_count(&api.srv->rooms, room, rl);
    if (count < 0)
        return err(o, 404, "room_not_found", "no such room");
    struct sbuf b = {0};
    sb_printf(&b, "{\"room_id\":");
    sb_json_str(&b, room, rl);
    if (!count_only) {
        sb_printf(&b, ",\"users\":[");
        struct list_ctx x = {&b, 1};
        room_presence(&api.srv->rooms, room, rl, user_cb, &x);
        sb_printf(&b, "]");
    }
    sb_printf(&b, ",\"count\":%ld}\n", count);
    *o = b.p;
    return 200;
}

/* A history read: asked on the room's owner, answered there by the store. */
struct hist_job {
    uint64_t req;
    struct store_query q;
    size_t room_len;
    char room[];
};

/* The store's answer, on the worker that asked (host.post). */
static void on_history(void *ud, int status, const struct store_room *info,
                       const struct store_msg *msgs, size_t n)
{
    struct hist_job *j = ud;
    struct sbuf b = {0};
    int http = 200;
    if (status != 0) {
        http = 503;
        sb_printf(&b, "{\"code\":\"unavailable\",\"message\":\"%s\"}", rc_strerror(status));
    } else if (n == 0 && info->last_seq == 0 &&
               room_count(&api.srv->rooms, j->room, j->room_len) < 0) {
        http = 404;
        sb_printf(&b, "{\"code\":\"room_not_found\",\"message\":\"no such room\"}");
    } else {
        sb_printf(&b, "{\"room_id\":");
        sb_json_str(&b, j->room, j->room_len);
        sb_printf(&b, ",\"epoch\":");
        sb_json_str(&b, info->epoch, strlen(info->epoch));
        sb_printf(&b, ",\"last_seq\":%llu,\"messages\":[", (unsigned long long)info->last_seq);
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            const struct store_msg *m = &msgs[i];
            if (m->len == 0 || m->data[0] != '{' || (m->flags & ROOM_PUB_BINARY))
                continue; /* binary or non-JSON payloads are not listed */
            if (!first)
                sb_add(&b, ",", 1);
            sb_add(&b, m->data, m->len);
            first = 0;
        }
        sb_printf(&b, "]}");
    }
    api_complete(j->req, http, b.p, b.len);
    rc_free(b.p);
    rc_free(j);
}

/* On the room's owner worker (mail_call): store.read, answered later. */
static void run_history(void *arg)
{
    struct hist_job *j = arg;
    struct worker *w = worker_current();
    if (w == NULL) {
        rc_free(j);
        return;
    }
    struct store *st = w->srv->store;
    int rc = st->ops->read(st, w->id, j->room, j->room_len, &j->q, on_history, j);
    if (rc != 0) { /* on_history will not run */
        char out[160];
        snprintf(out, sizeof(out), "{\"code\":\"%s\",\"message\":\"%s\"}",
                 rc == RC_E_INVAL ? "invalid_field" : "unavailable", rc_strerror(rc));
        api_complete(j->req, rc == RC_E_INVAL ? 400 : 503, out, strlen(out));
        rc_free(j);
    }
}

static int history(uint64_t req, const char *room, size_t rl, const char *q, size_t ql, char **o)
{
    uint64_t since = 0, before = 0, limit = 50;
    if (query_u64(q, ql, "since", &since) < 0 || query_u64(q, ql, "before", &before) < 0 ||
        query_u64(q, ql, "limit", &limit) < 0)
        return err(o, 400, "invalid_field", "since, before and limit are non-negative integers");
    if (limit < 1)
        limit = 1;
    if (limit > API_HISTORY_MAX)
        limit = API_HISTORY_MAX;
    struct hist_job *j = rc_xmalloc(sizeof(*j) + rl + 1);
    j->req = req;
    /* The newest `limit` after since (and before `before`), oldest first. */
    j->q = (struct store_query){
        .since = since, .before = before, .limit = (uint32_t)limit, .newest = 1};
    j->room_len = rl;
    memcpy(j->room, room, rl);
    j->room[rl] = '\0';
    int owner = rooms_owner_of(&api.srv->rooms, room, rl);
    mail_call(NULL, &api.srv->workers[owner].mbox, run_history, j);
    return API_PENDING;
}

int api_handle(uint64_t req, const char *method, size_t mlen, const char *path, size_t plen,
               const char *query, size_t qlen, const char *auth, size_t alen, const char *body,
               size_t blen, char **o, const char **extra)
{
    *extra = NULL;
    const char *token = api.cfg->api_token;
    if (token == NULL || token[0] == '\0')
        return err(o, 404, "api_disabled", "the HTTP API is off (set api_token)");
    if (!http_bearer_ok(auth, alen, token)) {
        *extra = "WWW-Authenticate: Bearer realm=\"roomcast-api\"\r\n";
        return err(o, 401, "unauthorized", "missing or wrong bearer token");
    }
    int get = is(method, mlen, "GET"), post = is(method, mlen, "POST");
    const char *p = path + 5; /* after "/api/" */
    size_t pl = plen - 5;
    if (is(p, pl, "publish") || is(p, pl, "send") || is(p, pl, "disconnect")) {
        if (!post) {
            *extra = "Allow: POST\r\n";
            return err(o, 405, "method_not_allowed", "use POST");
        }
        if (is(p, pl, "publish"))
            return publish(req, body, blen, o);
        if (is(p, pl, "send"))
            return send_user(req, body, blen, o);
        return disconnect(req, body, blen, o);
    }
    if (is(p, pl, "rooms") || (pl > 6 && memcmp(p, "rooms/", 6) == 0)) {
        if (!get) {
            *extra = "Allow: GET\r\n";
            return err(o, 405, "method_not_allowed", "use GET");
        }
        if (pl == 5)
            return rooms(o);
        const char *r = p + 6, *end = p + pl;
        const char *slash = memchr(r, '/', (size_t)(end - r));
        if (slash == NULL || slash == r)
            return err(o, 404, "not_found", "GET /api/rooms/<room>/presence, /count or /history");
        char room[API_NAME_MAX + 1];
        long rl = decode_segment(r, (size_t)(slash - r), room, sizeof(room));
        if (rl <= 0)
            return err(o, 400, "invalid_field", "bad room id in the path");
        const char *what = slash + 1;
        size_t wl = (size_t)(end - what);
        if (is(what, wl, "presence") || is(what, wl, "count"))
            return presence(req, room, (size_t)rl, is(what, wl, "count"), o);
        if (is(what, wl, "history"))
            return history(req, room, (size_t)rl, query, qlen, o);
        return err(o, 404, "not_found", "GET /api/rooms/<room>/presence, /count or /history");
    }
    return err(o, 404, "not_found",
               "endpoints: POST /api/publish, /api/send, /api/disconnect; GET /api/rooms, "
               "/api/rooms/<room>/presence, /api/rooms/<room>/count, /api/rooms/<room>/history");
}
