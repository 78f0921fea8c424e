#include "admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "handshake.h"
#include "http_parse.h"
#include "listener.h"
#include "log.h"
#include "stats.h"
#include "store_sqlite.h"
#include "tlsserver.h"
#include "worker.h"

#define ADMIN_MAX_CLIENTS 64
#define ADMIN_HEAD_MAX 8192
#define ADMIN_TIMEOUT 5.0

struct admin_client {
    ev_io io;
    ev_timer timer;
    int fd;
    int in_use;
    char head[ADMIN_HEAD_MAX];
    size_t head_len;
    char *out; /* owned: the whole response */
    size_t out_len, out_off;
};

static struct {
    struct ev_loop *loop;
    struct server *srv;
    struct listener lst;
    int started;
    int draining;
    uint64_t config_reloads, config_reload_failures;
    struct admin_client clients[ADMIN_MAX_CLIENTS];
} adm;

/* ------------------------------------------------------------------------
 * a growing text buffer
 * ------------------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
};

static RC_PRINTF(2, 3) void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + (size_t)n + 1)
            ncap *= 2;
        b->p = rc_xrealloc(b->p, ncap);
        b->cap = ncap;
    }
}

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
    sb_printf(&b, "},\"config_reloads\":%llu,\"per_worker\":[",
              (unsigned long long)adm.config_reloads);
    for (int i = 0; i < srv->nworkers; i++) {
        sb_printf(&b, "%s{\"id\":%d,\"generation\":%llu,", i ? "," : "", i,
                  (unsigned long long)worker_generation(&srv->workers[i]));
        stats_fields(&b, &srv->workers[i].stats, srv);
        sb_printf(&b, "}");
    }
    sb_printf(&b, "]}\n");
    return b.p;
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
    ac->out = NULL;
    ac->in_use = 0;
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
        sb_printf(&b, "%s", body);
    rc_free(body);
    ac->out = b.p;
    ac->out_len = b.len;
    ac->out_off = 0;
    ev_io_stop(adm.loop, &ac->io);
    ev_io_set(&ac->io, ac->fd, EV_WRITE);
    ev_io_start(adm.loop, &ac->io);
}

static char *text(const char *s)
{
    return rc_xstrdup(s);
}

/* Constant-time comparison: the token must not leak through timing. */
static int token_ok(const char *value, size_t len, const char *token)
{
    static const char prefix[] = "Bearer ";
    size_t pl = sizeof(prefix) - 1;
    if (len < pl || strncasecmp(value, prefix, pl) != 0)
        return 0;
    value += pl;
    len -= pl;
    size_t tl = strlen(token);
    unsigned diff = (unsigned)(len ^ tl);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)value[i] ^ (unsigned char)token[i < tl ? i : 0];
    return diff == 0 && tl > 0;
}

static void route(struct admin_client *ac, const struct http_request *req)
{
    const char *path, *q;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &q, &ql);
    int is_get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    int known = (pl == 7 && memcmp(path, "/health", 7) == 0) ||
                (pl == 6 && memcmp(path, "/stats", 6) == 0) ||
                (pl == 8 && memcmp(path, "/metrics", 8) == 0);
    if (!known) {
        respond(ac, 404, "text/plain", NULL, text("not found: /health /stats /metrics\n"));
        return;
    }
    if (!is_get) {
        respond(ac, 405, "text/plain", "Allow: GET\r\n", text("method not allowed\n"));
        return;
    }
    if (pl == 7) {
        char why[96] = "";
        struct store *st = adm.srv->store;
        int degraded = st && st->ops->health(st, why, sizeof(why)) != 0;
        if (adm.draining) {
            respond(ac, 503, "application/json", NULL, text("{\"status\":\"draining\"}\n"));
        } else if (degraded) {
            /* Live delivery goes on (store_errors = "deliver": 200) unless
             * publishes are refused (store_errors = "refuse": 503). */
            struct sbuf hb = {0};
            sb_printf(&hb, "{\"status\":\"degraded\",\"store\":\"");
            for (const char *p = why; *p; p++)
                if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                    sb_printf(&hb, "%c", *p);
            sb_printf(&hb, "\"}\n");
            respond(ac, adm.srv->cfg->store_errors == RC_STORE_ERRORS_REFUSE ? 503 : 200,
                    "application/json", NULL, hb.p);
        } else {
            respond(ac, 200, "application/json", NULL, text("{\"status\":\"ok\"}\n"));
        }
        return;
    }
    const char *token = rc_live_get()->admin_token;
    if (token && token[0]) {
        const struct http_header *h = http_find_header(req, "authorization");
        if (h == NULL || !token_ok(h->value, h->value_len, token)) {
            respond(ac, 401, "text/plain", "WWW-Authenticate: Bearer realm=\"roomcast\"\r\n",
                    text("unauthorized\n"));
            return;
        }
    }
    if (pl == 6)
        respond(ac, 200, "application/json", NULL, admin_render_stats(adm.srv));
    else
        respond(ac, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                admin_render_metrics(adm.srv));
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_client *ac = w->data;
    if (ac->out) {
        while (ac->out_off < ac->out_len) {
            ssize_t n = write(ac->fd, ac->out + ac->out_off, ac->out_len - ac->out_off);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN)
                return;
            if (n <= 0) {
                client_close(ac);
                return;
            }
            ac->out_off += (size_t)n;
        }
        client_close(ac);
        return;
    }
    size_t last = ac->head_len;
    ssize_t n = read(ac->fd, ac->head + ac->head_len, sizeof(ac->head) - ac->head_len);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(ac);
        return;
    }
    ac->head_len += (size_t)n;
    struct http_header headers[32];
    struct http_request req = {.headers = headers, .num_headers = 32};
    ssize_t r = http_parse_request(ac->head, ac->head_len, last, sizeof(ac->head), &req);
    if (r == RC_NEED_MORE)
        return;
    if (r < 0) {
        int status = r == RC_E_PROTO ? 400 : 431;
        respond(ac, status, "text/plain", NULL, text("bad request\n"));
        return;
    }
    route(ac, &req);
}

static void on_client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    client_close(t->data);
}

static void on_admin_accept(struct listener *l, int fd, const struct sockaddr_storage *peer,
                            socklen_t peer_len)
{
    struct admin_client *ac = NULL;
    for (int i = 0; i < ADMIN_MAX_CLIENTS && ac == NULL; i++)
        if (!adm.clients[i].in_use)
            ac = &adm.clients[i];
    if (ac == NULL) {
        close(fd); /* a scraper that leaks connections must not take the loop */
        return;
    }
    ac->in_use = 1;
    ac->fd = fd;
    ac->head_len = 0;
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
    int fd = listener_bind(cfg->admin_addr, cfg->admin_port, 64, 1);
    if (fd < 0) {
        rc_log(cfg->set[RC_OPT_ID_admin] ? RC_LOG_ERROR : RC_LOG_WARN,
               "cannot listen on %s:%d (admin): %s%s", cfg->admin_addr, cfg->admin_port,
               rc_strerror(fd), cfg->set[RC_OPT_ID_admin] ? "" : "; admin endpoint disabled");
        return fd;
    }
    adm.loop = loop;
    adm.srv = srv;
    listener_start(&adm.lst, loop, fd, on_admin_accept, NULL);
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
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        if (adm.clients[i].in_use)
            client_close(&adm.clients[i]);
    adm.started = 0;
}
