#include "admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "handshake.h"
#include "http_parse.h"
#include "listener.h"
#include "log.h"
#include "mailbox.h"
#include "api.h"
#include "room.h"
#include "sbuf.h"
#include "stats.h"
#include "store_sqlite.h"
#include "tlsserver.h"
#include "worker.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_TIMEOUT 5.0  /* to send the whole request, and to read the answer */
#define ADMIN_API_WAIT 5.0 /* an API publish the workers did not answer: 503 */
#define ADMIN_SAMPLES 300  /* one a second: the dashboard's last five minutes */
#define ADMIN_TOP_ROOMS 10

/* One admin HTTP connection: one request, one response, then close.
 * Owned by adm.clients (slot index); `gen` tells a reused slot from the
 * client an API completion was meant for. */
struct admin_client {
    ev_io io;
    ev_timer timer;
    int fd;
    int in_use;
    int pending;     /* waiting for an API completion */
    uint32_t gen;    /* bumped per accept into this slot */
    ev_tstamp since; /* accept time: the oldest reader yields when full */
    char *in;        /* owned: head and body; ADMIN_HEAD_MAX + api_max_body */
    size_t in_len, in_cap;
    size_t head_len, body_len; /* set once the head parsed (head_len > 0) */
    char *out;                 /* owned: the whole response */
    size_t out_len, out_off;
};

/* A sample of the totals, once a second (rates and the dashboard's chart). */
struct sample {
    double t;
    uint64_t conns, msgs_in, msgs_out, drops;
    double in_rate, out_rate;
};

static struct {
    struct ev_loop *loop;
    struct server *srv;
    size_t max_body; /* cfg->api_max_body (a BOOT option: fixed) */
    struct listener lst;
    int started;
    int draining;
    uint64_t config_reloads, config_reload_failures;
    uint64_t evicted;             /* clients closed to make room for a new one */
    struct admin_client *clients; /* owned array of cfg->admin_max_clients */
    int nclients;
    uint32_t next_gen;
    ev_timer sampler;
    struct sample samples[ADMIN_SAMPLES]; /* ring */
    int nsamples, sample_head;
} adm;

static uint64_t load(const atomic_uint_fast64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static uint64_t worker_generation(const struct worker *w)
{
    return atomic_load_explicit(&w->generation, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * /metrics
 * ------------------------------------------------------------------------ */

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP roomcast_%s %s\n# TYPE roomcast_%s %s\n", name, help, name, type);
}

static uint64_t sum_slot(const struct server *srv, size_t off)
{
    uint64_t s = 0;
    for (int i = 0; i < srv->nworkers; i++)
        s += load((const atomic_uint_fast64_t *)((const char *)&srv->workers[i].stats + off));
    return s;
}

/* One line of the bus's own figures (bus.h stats): "roomcast_KEY VALUE"; a
 * key may carry labels (bus_node{id="..."}). */
static void metric_line(void *ud, const char *key, double value)
{
    sb_printf(ud, "roomcast_%s %.17g\n", key, value);
}

/* The same into /stats's "bus" object; labelled keys become the "nodes" list. */
struct stats_bus {
    struct sbuf *b;
    int first;
    struct sbuf nodes;
};

static void stats_line(void *ud, const char *key, double value)
{
    struct stats_bus *x = ud;
    static const char node[] = "bus_node{id=\"";
    if (strncmp(key, node, sizeof(node) - 1) == 0) {
        const char *id = key + sizeof(node) - 1;
        size_t n = strlen(id);
        n = n >= 2 ? n - 2 : 0; /* the id without its closing "} */
        sb_printf(&x->nodes, "%s\"", x->nodes.len ? "," : "");
        /* printable ASCII with the label's escapes (\" and \\), which are
         * JSON's too */
        sb_printf(&x->nodes, "%.*s", (int)n, id);
        sb_printf(&x->nodes, "\"");
        return;
    }
    if (strncmp(key, "bus_", 4) == 0)
        key += 4;
    sb_printf(x->b, "%s\"%s\":%.17g", x->first ? "" : ",", key, value);
    x->first = 0;
}

char *admin_render_metrics(const struct server *srv)
{
    struct sbuf b = {0};
    /* Every RC_STATS_MAP counter, one series per worker. */
#define RC_METRIC(name, kind, help)                                                                \
    family(&b, #name, #kind, help);                                                                \
    for (int i = 0; i < srv->nworkers; i++)                                                        \
        sb_printf(&b, "roomcast_%s{worker=\"%d\"} %llu\n", #name, i,                               \
                  (unsigned long long)load(&srv->workers[i].stats.name));
    RC_STATS_MAP(RC_METRIC)
#undef RC_METRIC

    family(&b, "closes_total", "counter",
           "Connections that stopped being open, by close code (1006: lost without a close)");
    for (int k = 0; k < RC_CLOSE_SLOTS; k++) {
        uint64_t v = sum_slot(srv, offsetof(struct worker_stats, closes_by_code) +
                                       (size_t)k * sizeof(atomic_uint_fast64_t));
        if (v == 0 && k != 0 && k != 1)
            continue;
        if (k < 16)
            sb_printf(&b, "roomcast_closes_total{code=\"%d\"} %llu\n", 1000 + k,
                      (unsigned long long)v);
        else
            sb_printf(&b, "roomcast_closes_total{code=\"%s\"} %llu\n",
                      k == 16 ? "application" : "other", (unsigned long long)v);
    }

    family(&b, "handshake_refusals_total", "counter", "Refused upgrades by HTTP status");
    static const int statuses[] = {
#define RC_HS_CODE(c) c,
        RC_HS_STATUS_MAP(RC_HS_CODE)
#undef RC_HS_CODE
    };
    for (int k = 0; k < RC_HS_SLOTS; k++) {
        uint64_t v = sum_slot(srv, offsetof(struct worker_stats, refusals_by_status) +
                                       (size_t)k * sizeof(atomic_uint_fast64_t));
        if (k < (int)(sizeof(statuses) / sizeof(statuses[0])))
            sb_printf(&b, "roomcast_handshake_refusals_total{status=\"%d\"} %llu\n", statuses[k],
                      (unsigned long long)v);
        else
            sb_printf(&b, "roomcast_handshake_refusals_total{status=\"other\"} %llu\n",
                      (unsigned long long)v);
    }

    family(&b, "handshake_refusals_by_reason_total", "counter",
           "Refused upgrades by reason (see README: Metrics)");
    for (int k = 0; k < RC_HS_REASONS; k++) {
        uint64_t v = sum_slot(srv, offsetof(struct worker_stats, refusals_by_reason) +
                                       (size_t)k * sizeof(atomic_uint_fast64_t));
        sb_printf(&b, "roomcast_handshake_refusals_by_reason_total{reason=\"%s\"} %llu\n",
                  rc_hs_reason_names[k], (unsigned long long)v);
    }

    family(&b, "jwt_refusals_by_reason_total", "counter",
           "Tokens refused by roomcast.jwt, by reason (see lua/API.md)");
    for (int k = 1; k < JWT_NREASONS; k++) {
        uint64_t v = sum_slot(srv, offsetof(struct worker_stats, jwt_refusals_by_reason) +
                                       (size_t)k * sizeof(atomic_uint_fast64_t));
        sb_printf(&b, "roomcast_jwt_refusals_by_reason_total{reason=\"%s\"} %llu\n",
                  jwt_reason_name(k), (unsigned long long)v);
    }

    family(&b, "dropped_messages_total", "counter", "Messages dropped, by reason");
    sb_printf(&b, "roomcast_dropped_messages_total{reason=\"slow_consumer\"} %llu\n",
              (unsigned long long)sum_slot(srv, offsetof(struct worker_stats, drops_total)));
    sb_printf(
        &b, "roomcast_dropped_messages_total{reason=\"rate_limit\"} %llu\n",
        (unsigned long long)sum_slot(srv, offsetof(struct worker_stats, msg_rate_drops_total)));

    family(&b, "refused_connections_total", "counter", "Connections refused by a limit, by reason");
    static const struct {
        const char *reason;
        size_t off;
    } refusals[] = {
        {"max_connections", offsetof(struct worker_stats, refused_max_conns_total)},
        {"per_ip", offsetof(struct worker_stats, refused_per_ip_total)},
        {"accept_rate", offsetof(struct worker_stats, refused_accept_rate_total)},
        {"origin", offsetof(struct worker_stats, refused_origin_total)},
        {"message_rate", offsetof(struct worker_stats, msg_rate_closes_total)},
        {"handshake_timeout", offsetof(struct worker_stats, handshake_timeouts_total)},
        {"tls_handshake", offsetof(struct worker_stats, tls_handshake_failures_total)},
    };
    for (size_t k = 0; k < sizeof(refusals) / sizeof(refusals[0]); k++)
        sb_printf(&b, "roomcast_refused_connections_total{reason=\"%s\"} %llu\n",
                  refusals[k].reason, (unsigned long long)sum_slot(srv, refusals[k].off));

    family(&b, "handler_seconds", "histogram", "Time spent in the message handler per message");
    static const uint64_t bounds[] = RC_HIST_BOUNDS_US;
    uint64_t cum = 0;
    for (int k = 0; k < RC_HIST_SLOTS; k++) {
        cum += sum_slot(srv, offsetof(struct worker_stats, handler_hist) +
                                 (size_t)k * sizeof(atomic_uint_fast64_t));
        if (k < RC_HIST_SLOTS - 1)
            sb_printf(&b, "roomcast_handler_seconds_bucket{le=\"%g\"} %llu\n",
                      (double)bounds[k] / 1e6, (unsigned long long)cum);
        else
            sb_printf(&b, "roomcast_handler_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)cum);
    }
    sb_printf(&b, "roomcast_handler_seconds_sum %.9f\n",
              (double)sum_slot(srv, offsetof(struct worker_stats, handler_ns_sum)) / 1e9);
    sb_printf(&b, "roomcast_handler_seconds_count %llu\n", (unsigned long long)cum);

    family(&b, "script_generation", "gauge", "Handler script generation (goes up on reload)");
    for (int i = 0; i < srv->nworkers; i++)
        sb_printf(&b, "roomcast_script_generation{worker=\"%d\"} %llu\n", i,
                  (unsigned long long)worker_generation(&srv->workers[i]));
    family(&b, "config_reloads_total", "counter", "SIGHUP config reloads applied");
    sb_printf(&b, "roomcast_config_reloads_total %llu\n", (unsigned long long)adm.config_reloads);
    family(&b, "config_reload_failures_total", "counter", "SIGHUP config reloads refused");
    sb_printf(&b, "roomcast_config_reload_failures_total %llu\n",
              (unsigned long long)adm.config_reload_failures);
    if (srv->bus && srv->bus->ops->stats)
        srv->bus->ops->stats(srv->bus, metric_line, &b);
    family(&b, "workers", "gauge", "Worker threads");
    sb_printf(&b, "roomcast_workers %d\n", srv->nworkers);
    family(&b, "draining", "gauge", "1 while the server drains after SIGTERM");
    sb_printf(&b, "roomcast_draining %d\n", adm.draining);
    family(&b, "uptime_seconds", "gauge", "Seconds since the server started");
    sb_printf(&b, "roomcast_uptime_seconds %.3f\n", ev_time() - srv->started);
    if (srv->store) {
        char why[96];
        family(&b, "store_degraded", "gauge", "1 while the history store cannot write");
        sb_printf(&b, "roomcast_store_degraded %d\n",
                  srv->store->ops->health(srv->store, why, sizeof(why)) != 0);
    }
    if (srv->store && strcmp(srv->store->ops->name, "sqlite") == 0) {
        struct store_sqlite_counters c;
        store_sqlite_counters(srv->store, &c);
#define RC_STORE_COUNTER(name, kind, help, v)                                                      \
    family(&b, "store_" name, kind, help);                                                         \
    sb_printf(&b, "roomcast_store_" name " %llu\n", (unsigned long long)(v));
        RC_STORE_COUNTER("appended_total", "counter", "Messages given to the history store",
                         c.appended)
        RC_STORE_COUNTER("committed_total", "counter", "Messages written to SQLite", c.committed)
        RC_STORE_COUNTER("batches_total", "counter", "SQLite transactions committed", c.batches)
        RC_STORE_COUNTER("write_errors_total", "counter", "SQLite transactions that failed",
                         c.write_errors)
        RC_STORE_COUNTER("dropped_total", "counter",
                         "Messages not stored (queue full while writes failed)", c.dropped)
        RC_STORE_COUNTER("refused_total", "counter",
                         "Publishes refused while degraded (store_errors = refuse)", c.refused)
        RC_STORE_COUNTER("reads_total", "counter", "History reads answered", c.reads)
        RC_STORE_COUNTER("trimmed_total", "counter", "Messages deleted by retention", c.trimmed)
        RC_STORE_COUNTER("pending", "gauge", "Messages queued for the writer", c.pending)
#undef RC_STORE_COUNTER
    }
    return b.p;
}

/* ------------------------------------------------------------------------
 * /stats
 * ------------------------------------------------------------------------ */

static void stats_fields(struct sbuf *b, const struct worker_stats *st, const struct server *srv)
{
    int first = 1;
#define RC_JSON_FIELD(name, kind, help)                                                            \
    sb_printf(b, "%s\"%s\":%llu", first ? "" : ",", #name,                                         \
              (unsigned long long)(st ? load(&st->name)                                            \
                                      : sum_slot(srv, offsetof(struct worker_stats, name))));      \
    first = 0;
    RC_STATS_MAP(RC_JSON_FIELD)
#undef RC_JSON_FIELD
}

struct top {
    char name[ROOM_NAME_MAX + 1];
    size_t len;
    long members;
    uint64_t seq;
};

struct top_ctx {
    struct top top[ADMIN_TOP_ROOMS];
    int n;
    long total;
};

/* Keeps the ADMIN_TOP_ROOMS rooms with the most members (then messages). */
static void top_cb(void *ud, const char *name, size_t len, long members, uint64_t seq)
{
    struct top_ctx *x = ud;
    x->total++;
    int at = x->n;
    while (at > 0 && (x->top[at - 1].members < members ||
                      (x->top[at - 1].members == members && x->top[at - 1].seq < seq)))
        at--;
    if (at >= ADMIN_TOP_ROOMS)
        return;
    int last = x->n < ADMIN_TOP_ROOMS ? x->n : ADMIN_TOP_ROOMS - 1;
    memmove(&x->top[at + 1], &x->top[at], (size_t)(last - at) * sizeof(x->top[0]));
    struct top *t = &x->top[at];
    t->len = len > ROOM_NAME_MAX ? ROOM_NAME_MAX : len;
    memcpy(t->name, name, t->len);
    t->members = members;
    t->seq = seq;
    if (x->n < ADMIN_TOP_ROOMS)
        x->n++;
}

static void render_top_rooms(struct sbuf *b, struct server *srv)
{
    struct top_ctx *x = rc_xcalloc(1, sizeof(*x));
    room_list(&srv->rooms, top_cb, x);
    sb_printf(b, "\"rooms_total\":%ld,\"rooms_top\":[", x->total);
    for (int i = 0; i < x->n; i++) {
        sb_printf(b, "%s{\"room_id\":", i ? "," : "");
        sb_json_str(b, x->top[i].name, x->top[i].len);
        sb_printf(b, ",\"members\":%ld,\"seq\":%llu}", x->top[i].members,
                  (unsigned long long)x->top[i].seq);
    }
    sb_printf(b, "]");
    rc_free(x);
}

static int admin_clients_in_use(void)
{
    int n = 0;
    for (int i = 0; i < adm.nclients; i++)
        n += adm.clients[i].in_use;
    return n;
}

char *admin_render_stats(const struct server *srv)
{
    struct sbuf b = {0};
    uint64_t gen = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        uint64_t g = worker_generation(&srv->workers[i]);
        gen = g > gen ? g : gen;
    }
    sb_printf(&b,
              "{\"version\":1,\"uptime\":%.3f,\"port\":%d,\"tls_port\":%d,\"workers\":%d,"
              "\"draining\":%s,\"generation\":%llu,\"totals\":{",
              ev_time() - srv->started, srv->port, tls_bound_port(), srv->nworkers,
              adm.draining ? "true" : "false", (unsigned long long)gen);
    stats_fields(&b, NULL, srv);
    sb_printf(&b, "},\"closes_by_code\":{");
    int first = 1;
    for (int k = 0; k < RC_CLOSE_SLOTS; k++) {
        uint64_t v = sum_slot(srv, offsetof(struct worker_stats, closes_by_code) +
                                       (size_t)k * sizeof(atomic_uint_fast64_t));
        if (v == 0)
            continue;
        if (k < 16)
            sb_printf(&b, "%s\"%d\":%llu", first ? "" : ",", 1000 + k, (unsigned long long)v);
        else
            sb_printf(&b, "%s\"%s\":%llu", first ? "" : ",", k == 16 ? "application" : "other",
                      (unsigned long long)v);
        first = 0;
    }
    sb_printf(&b, "},\"config_reloads\":%llu,\"config_reload_failures\":%llu,",
              (unsigned long long)adm.config_reloads,
              (unsigned long long)adm.config_reload_failures);
    /* The dashboard's figures: open connections, rates over the last
     * sampling second, the busiest rooms. */
    const struct sample *last =
        adm.nsamples ? &adm.samples[(adm.sample_head + ADMIN_SAMPLES - 1) % ADMIN_SAMPLES] : NULL;
    sb_printf(&b,
              "\"active_connections\":%llu,\"rates\":{\"msgs_in_per_sec\":%.1f,"
              "\"msgs_out_per_sec\":%.1f},",
              (unsigned long long)sum_slot(srv, offsetof(struct worker_stats, conns_open)),
              last ? last->in_rate : 0.0, last ? last->out_rate : 0.0);
    render_top_rooms(&b, (struct server *)srv);
    sb_printf(&b, ",\"admin\":{\"clients\":%d,\"evicted\":%llu},", admin_clients_in_use(),
              (unsigned long long)adm.evicted);
    if (srv->bus) {
        char why[32] = "";
        int down = srv->bus->ops->health ? srv->bus->ops->health(srv->bus, why, sizeof(why)) : 0;
        sb_printf(&b, "\"bus\":{\"kind\":\"%s\",\"state\":\"%s\"", srv->bus->ops->name,
                  down ? why : "up");
        if (srv->bus->ops->stats) {
            struct stats_bus x = {.b = &b, .first = 0};
            srv->bus->ops->stats(srv->bus, stats_line, &x);
            sb_printf(&b, ",\"nodes\":[%s]", x.nodes.p ? x.nodes.p : "");
            rc_free(x.nodes.p);
        }
        sb_printf(&b, "},");
    }
    sb_printf(&b, "\"per_worker\":[");
    for (int i = 0; i < srv->nworkers; i++) {
        sb_printf(&b, "%s{\"id\":%d,\"generation\":%llu,", i ? "," : "", i,
                  (unsigned long long)worker_generation(&srv->workers[i]));
        stats_fields(&b, &srv->workers[i].stats, srv);
        sb_printf(&b, "}");
    }
    sb_printf(&b, "]}\n");
    return b.p;
}

/* GET /stats/history: the samples of the last minutes, oldest first:
 * [unix time, open connections, messages in/s, messages out/s, drops]. */
static char *render_history(void)
{
    struct sbuf b = {0};
    sb_printf(&b, "{\"interval\":1,\"samples\":[");
    for (int i = 0; i < adm.nsamples; i++) {
        const struct sample *x =
            &adm.samples[(adm.sample_head + ADMIN_SAMPLES - adm.nsamples + i) % ADMIN_SAMPLES];
        sb_printf(&b, "%s[%.3f,%llu,%.1f,%.1f,%llu]", i ? "," : "", x->t,
                  (unsigned long long)x->conns, x->in_rate, x->out_rate,
                  (unsigned long long)x->drops);
    }
    sb_printf(&b, "]}\n");
    return b.p;
}

static void on_sample(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    const struct server *srv = adm.srv;
    struct sample x = {
        .t = ev_time(),
        .conns = sum_slot(srv, offsetof(struct worker_stats, conns_open)),
        .msgs_in = sum_slot(srv, offsetof(struct worker_stats, msgs_in_total)),
        .msgs_out = sum_slot(srv, offsetof(struct worker_stats, msgs_out_total)),
        .drops = sum_slot(srv, offsetof(struct worker_stats, drops_total)),
    };
    if (adm.nsamples > 0) {
        const struct sample *p =
            &adm.samples[(adm.sample_head + ADMIN_SAMPLES - 1) % ADMIN_SAMPLES];
        double dt = x.t - p->t;
        if (dt > 0) {
            x.in_rate = (double)(x.msgs_in - p->msgs_in) / dt;
            x.out_rate = (double)(x.msgs_out - p->msgs_out) / dt;
        }
    }
    adm.samples[adm.sample_head] = x;
    adm.sample_head = (adm.sample_head + 1) % ADMIN_SAMPLES;
    if (adm.nsamples < ADMIN_SAMPLES)
        adm.nsamples++;
}

/* ------------------------------------------------------------------------
 * the HTTP side
 * ------------------------------------------------------------------------ */

static void client_close(struct admin_client *ac)
{
    ev_io_stop(adm.loop, &ac->io);
    ev_timer_stop(adm.loop, &ac->timer);
    close(ac->fd);
    rc_free(ac->out);
    rc_free(ac->in);
    ac->out = ac->in = NULL;
    ac->in_use = 0;
    ac->pending = 0;
}

static void respond(struct admin_client *ac, int status, const char *ctype, const char *extra,
                    char *body /* owned */)
{
    struct sbuf b = {0};
    size_t blen = body ? strlen(body) : 0;
    sb_printf(&b,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
              status, http_status_text(status), ctype, blen, extra ? extra : "");
    if (body)
        sb_add(&b, body, blen);
    rc_free(body);
    ac->pending = 0;
    ac->out = b.p;
    ac->out_len = b.len;
    ac->out_off = 0;
    ev_io_stop(adm.loop, &ac->io);
    ev_io_set(&ac->io, ac->fd, EV_WRITE);
    ev_io_start(adm.loop, &ac->io);
    /* The answer gets its own time to drain. */
    ev_timer_stop(adm.loop, &ac->timer);
    ev_timer_set(&ac->timer, ADMIN_TIMEOUT, 0.);
    ev_timer_start(adm.loop, &ac->timer);
}

static char *text(const char *s)
{
    return rc_xstrdup(s);
}

static uint64_t req_id(const struct admin_client *ac)
{
    return (uint64_t)ac->gen << 32 | (uint64_t)(ac - adm.clients);
}

/* api.c's completion hook: the client may have timed out and its slot be
 * reused; the generation tells. */
static void api_reply(uint64_t req, int status, char *body)
{
    uint32_t slot = (uint32_t)req, gen = (uint32_t)(req >> 32);
    if (adm.started && slot < (uint32_t)adm.nclients) {
        struct admin_client *ac = &adm.clients[slot];
        if (ac->in_use && ac->pending && ac->gen == gen) {
            respond(ac, status, "application/json", NULL, body);
            return;
        }
    }
    rc_free(body);
}

/* The dashboard (dashboard.c, generated from core/app/dashboard.html). */
extern const char rc_dashboard_html[];

static void route(struct admin_client *ac, const struct http_request *req)
{
    const char *path, *q;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &q, &ql);
    if (pl >= 5 && memcmp(path, "/api/", 5) == 0) {
        const struct http_header *h = http_find_header(req, "authorization");
        char *body = NULL;
        const char *extra = NULL;
        int status = api_handle(req_id(ac), req->method, req->method_len, path, pl, q, ql,
                                h ? h->value : NULL, h ? h->value_len : 0, ac->in + ac->head_len,
                                ac->body_len, &body, &extra);
        if (status == API_PENDING) {
            ac->pending = 1;
            ev_io_stop(adm.loop, &ac->io); /* nothing more to read */
            ev_timer_stop(adm.loop, &ac->timer);
            ev_timer_set(&ac->timer, ADMIN_API_WAIT, 0.);
            ev_timer_start(adm.loop, &ac->timer);
            return;
        }
        respond(ac, status, "application/json", extra, body);
        return;
    }
    int is_get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    int which = (pl == 7 && memcmp(path, "/health", 7) == 0)            ? 1
                : (pl == 6 && memcmp(path, "/stats", 6) == 0)           ? 2
                : (pl == 8 && memcmp(path, "/metrics", 8) == 0)         ? 3
                : (pl == 1 && path[0] == '/')                           ? 4
                : (pl == 14 && memcmp(path, "/stats/history", 14) == 0) ? 5
                                                                        : 0;
    if (!which) {
        respond(ac, 404, "text/plain", NULL,
                text("not found: / /health /stats /stats/history /metrics /api/\n"));
        return;
    }
    if (!is_get) {
        respond(ac, 405, "text/plain", "Allow: GET\r\n", text("method not allowed\n"));
        return;
    }
    if (which == 1) {
        char why[96] = "";
        struct store *st = adm.srv->store;
        int degraded = st && st->ops->health(st, why, sizeof(why)) != 0;
        unsigned long long active =
            (unsigned long long)sum_slot(adm.srv, offsetof(struct worker_stats, conns_open));
        char bwhy[32] = "";
        struct bus *bus = adm.srv->bus;
        if (adm.draining) {
            struct sbuf db = {0};
            sb_printf(&db, "{\"status\":\"draining\",\"active_connections\":%llu}\n", active);
            respond(ac, 503, "application/json", NULL, db.p);
        } else if (bus && bus->ops->health && bus->ops->health(bus, bwhy, sizeof(bwhy)) != 0) {
            /* the cluster bus is not up: publishes are refused (unavailable) */
            respond(ac, 503, "application/json", NULL,
                    text("{\"status\":\"degraded\",\"bus\":\"down\"}\n"));
        } else if (degraded) {
            /* Live delivery goes on (store_errors = "deliver": 200) unless
             * publishes are refused (store_errors = "refuse": 503). */
            struct sbuf hb = {0};
            sb_printf(&hb, "{\"status\":\"degraded\",\"store\":\"");
            for (const char *p = why; *p; p++)
                if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                    sb_printf(&hb, "%c", *p);
            sb_printf(&hb, "\",\"active_connections\":%llu}\n", active);
            respond(ac, adm.srv->cfg->store_errors == RC_STORE_ERRORS_REFUSE ? 503 : 200,
                    "application/json", NULL, hb.p);
        } else {
            struct sbuf ob = {0};
            sb_printf(&ob, "{\"status\":\"ok\",\"active_connections\":%llu}\n", active);
            respond(ac, 200, "application/json", NULL, ob.p);
        }
        return;
    }
    if (which == 4) {
        /* The page holds no figures: it reads /stats (token and all) itself. */
        respond(ac, 200, "text/html; charset=utf-8",
                "Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'\r\n",
                text(rc_dashboard_html));
        return;
    }
    const char *token = rc_live_get()->admin_token;
    if (token && token[0]) {
        const struct http_header *h = http_find_header(req, "authorization");
        if (h == NULL || !http_bearer_ok(h->value, h->value_len, token)) {
            respond(ac, 401, "text/plain", "WWW-Authenticate: Bearer realm=\"roomcast\"\r\n",
                    text("unauthorized\n"));
            return;
        }
    }
    if (which == 2)
        respond(ac, 200, "application/json", NULL, admin_render_stats(adm.srv));
    else if (which == 5)
        respond(ac, 200, "application/json", NULL, render_history());
    else
        respond(ac, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                admin_render_metrics(adm.srv));
}

/* The head is parsed: find the body's length. 0 to go on reading, or 1
 * after answering (an error). */
static int head_done(struct admin_client *ac, const struct http_request *req, size_t head_len)
{
    ac->head_len = head_len;
    ac->body_len = 0;
    if (http_find_header(req, "transfer-encoding") != NULL) {
        respond(ac, 400, "application/json", NULL,
                api_error_body("chunked_body", "send the body with Content-Length"));
        return 1;
    }
    const struct http_header *cl = http_find_header(req, "content-length");
    if (cl == NULL)
        return 0;
    uint64_t v = 0;
    if (cl->value_len == 0 || cl->value_len > 18) {
        respond(ac, 400, "application/json", NULL,
                api_error_body("bad_request", "bad Content-Length"));
        return 1;
    }
    for (size_t i = 0; i < cl->value_len; i++) {
        char c = cl->value[i];
        if (c < '0' || c > '9') {
            respond(ac, 400, "application/json", NULL,
                    api_error_body("bad_request", "bad Content-Length"));
            return 1;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v > adm.max_body) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the body is %llu bytes; the limit is %zu (api_max_body)",
                 (unsigned long long)v, adm.max_body);
        respond(ac, 413, "application/json", NULL, api_error_body("too_big", msg));
        return 1;
    }
    ac->body_len = (size_t)v;
    return 0;
}

static void write_out(struct admin_client *ac)
{
    while (ac->out_off < ac->out_len) {
        ssize_t n = write(ac->fd, ac->out + ac->out_off, ac->out_len - ac->out_off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        if (n <= 0)
            break;
        ac->out_off += (size_t)n;
    }
    client_close(ac);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct admin_client *ac = w->data;
    if (ac->out) {
        write_out(ac);
        return;
    }
    if (ac->in_len == ac->in_cap) { /* the head, or a body of the announced size */
        client_close(ac);
        return;
    }
    ssize_t n = read(ac->fd, ac->in + ac->in_len, ac->in_cap - ac->in_len);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(ac);
        return;
    }
    size_t last = ac->in_len;
    ac->in_len += (size_t)n;
    struct http_header headers[32];
    struct http_request req = {.headers = headers, .num_headers = 32};
    if (ac->head_len == 0) {
        ssize_t r = http_parse_request(ac->in, ac->in_len, last, ADMIN_HEAD_MAX, &req);
        if (r == RC_NEED_MORE)
            return;
        if (r < 0) {
            int status = r == RC_E_PROTO ? 400 : 431;
            respond(ac, status, "text/plain", NULL, text("bad request\n"));
            return;
        }
        if (head_done(ac, &req, (size_t)r))
            return;
        size_t need = ac->head_len + ac->body_len;
        if (need > ac->in_cap) { /* grows once, to the announced body (<= api_max_body) */
            ac->in = rc_xrealloc(ac->in, need);
            ac->in_cap = need;
        }
    }
    if (ac->in_len < ac->head_len + ac->body_len)
        return;
    /* Parse again to get the header pointers for routing (cheap: one head). */
    req.num_headers = 32;
    http_parse_request(ac->in, ac->head_len, 0, ADMIN_HEAD_MAX, &req);
    route(ac, &req);
}

static void on_client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    struct admin_client *ac = t->data;
    if (ac->pending) {
        respond(ac, 503, "application/json", NULL,
                api_error_body("unavailable", "the room's worker did not answer in time"));
        return;
    }
    client_close(ac);
}

/* A free slot; when all are taken, the client that has been sending its
 * request for the longest yields (a slow or hostile client cannot keep the
 * probes of a load balancer out). NULL only when every client is busy with
 * an answer. */
static struct admin_client *take_slot(void)
{
    struct admin_client *oldest = NULL;
    for (int i = 0; i < adm.nclients; i++) {
        struct admin_client *ac = &adm.clients[i];
        if (!ac->in_use)
            return ac;
        if (!ac->out && !ac->pending && (oldest == NULL || ac->since < oldest->since))
            oldest = ac;
    }
    if (oldest) {
        adm.evicted++;
        client_close(oldest);
    }
    return oldest;
}

static void on_admin_accept(struct listener *l, int fd, const struct sockaddr_storage *peer,
                            socklen_t peer_len)
{
    (void)l, (void)peer, (void)peer_len;
    struct admin_client *ac = take_slot();
    if (ac == NULL) {
        close(fd);
        return;
    }
    ac->in_use = 1;
    ac->pending = 0;
    ac->gen = ++adm.next_gen;
    ac->fd = fd;
    ac->since = ev_now(adm.loop);
    ac->in_cap = ADMIN_HEAD_MAX;
    ac->in = rc_xmalloc(ac->in_cap);
    ac->in_len = ac->head_len = ac->body_len = 0;
    ac->out = NULL;
    ev_io_init(&ac->io, on_client_io, fd, EV_READ);
    ac->io.data = ac;
    ev_io_start(adm.loop, &ac->io);
    ev_timer_init(&ac->timer, on_client_timeout, ADMIN_TIMEOUT, 0.);
    ac->timer.data = ac;
    ev_timer_start(adm.loop, &ac->timer);
}

int admin_start(struct ev_loop *loop, struct server *srv, const struct rc_config *cfg)
{
    if (cfg->admin_addr == NULL)
        return 1;
    int fd = listener_bind(cfg->admin_addr, cfg->admin_port, 511, 1);
    if (fd < 0) {
        rc_log(cfg->set[RC_OPT_ID_admin] ? RC_LOG_ERROR : RC_LOG_WARN,
               "cannot listen on %s:%d (admin): %s%s", cfg->admin_addr, cfg->admin_port,
               rc_strerror(fd), cfg->set[RC_OPT_ID_admin] ? "" : "; admin endpoint disabled");
        return fd;
    }
    adm.loop = loop;
    adm.srv = srv;
    adm.max_body = cfg->api_max_body;
    adm.nclients = cfg->admin_max_clients > 0 ? cfg->admin_max_clients : 256;
    adm.clients = rc_xcalloc((size_t)adm.nclients, sizeof(*adm.clients));
    listener_start_ev(&adm.lst, loop, fd, on_admin_accept, NULL);
    api_init(loop, srv, cfg, api_reply);
    ev_timer_init(&adm.sampler, on_sample, 0., 1.);
    ev_timer_start(loop, &adm.sampler);
    adm.started = 1;
    int port = listener_port(fd);
    int v6 = strchr(cfg->admin_addr, ':') != NULL;
    rc_info("admin listening on http://%s%s%s:%d/", v6 ? "[" : "", cfg->admin_addr, v6 ? "]" : "",
            port);
    return 0;
}

void admin_set_draining(void)
{
    adm.draining = 1;
    api_set_draining();
}

void admin_count_config_reload(int ok)
{
    if (ok)
        adm.config_reloads++;
    else
        adm.config_reload_failures++;
}

void admin_stop(void)
{
    if (!adm.started)
        return;
    listener_close(&adm.lst);
    ev_timer_stop(adm.loop, &adm.sampler);
    for (int i = 0; i < adm.nclients; i++)
        if (adm.clients[i].in_use)
            client_close(&adm.clients[i]);
    api_stop();
    rc_free(adm.clients);
    adm.clients = NULL;
    adm.nclients = 0;
    mail_cache_flush(); /* mails the API allocated on this thread */
    adm.started = 0;
}
