#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bus_local.h"
#include "bus_redis.h"
#include "closecode.h"
#include "err.h"
#include "guard.h"
#include "log.h"
#include "store_mem.h"
#include "store_sqlite.h"

static _Thread_local struct worker *cur_worker;

struct worker *worker_current(void)
{
    return cur_worker;
}

/* The accept-time checks (draining, per-IP cap, accept rate): 1 to go on,
 * or 0 after closing fd. Worker thread. */
static int admit(void *ctx, int fd, const struct sockaddr_storage *peer)
{
    struct worker *w = ctx;
    if (w->draining || guard_accept(&w->stats, wloop_now(w->loop), peer) != 0) {
        close(fd);
        return 0;
    }
    return 1;
}

static void on_accept(struct listener *l, int fd, const struct sockaddr_storage *peer,
                      socklen_t peer_len)
{
    struct worker *w = l->data;
    (void)peer_len;
    if (!admit(w, fd, peer))
        return;
    struct server *s = w->srv;
    if (s->cfg->accept_handoff && s->nworkers > 1) {
        /* One acceptor, round-robin hand-over (see RESULTS.md for why
         * SO_REUSEPORT is the default). */
        struct worker *to = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
        if (to != w) {
            struct mail *m = mail_new(MAIL_NEW_CONN, NULL, 0, peer, sizeof(*peer));
            if (m == NULL) {
                close(fd);
                return;
            }
            m->conn_id = (uint64_t)fd;
            mail_post(&w->mbox, &to->mbox, m);
            return;
        }
    }
    conn_new(&w->cs, fd, peer);
}

/* MAIL_NEW_CONN: a socket worker 0 accepted for us (accept_handoff). */
static void on_new_conn(void *ctx, struct mail *m)
{
    struct worker *w = ctx;
    if (w->draining)
        close((int)m->conn_id);
    else
        conn_new(&w->cs, (int)m->conn_id, (const struct sockaddr_storage *)m->payload);
}

static void discard_new_conn(void *ctx, struct mail *m)
{
    close((int)m->conn_id); /* a handed-off socket nobody took */
}

/* MAIL_RELOAD: rebuild the handler state (Lua). */
static void on_reload(void *ctx, struct mail *m)
{
    struct worker *w = ctx;
    /* What this iteration posted so far goes before the (long) rebuild. */
    mailbox_flush_out(&w->mbox);
    if (w->handler->reload)
        w->handler->reload(w);
}

/* Before the loop sleeps: run self-posted mail, flush every dirty
 * connection (one writev each), then free what was released during this
 * iteration. The loop calls it at the top of every iteration, after the
 * previous one's callbacks and timers (and once as wloop_run starts).
 * Returns nonzero when the work left work (mail posted by a flush or a
 * release, a connection dirtied by a release hook): the poll then does not
 * block. */
static int before_sleep(struct wloop *loop, void *data)
{
    struct worker *w = data;
    if (w->mbox.local_head)
        mailbox_drain_local(&w->mbox); /* hands over what it posts (mailbox.h) */
    if (w->cs.dirty != NULL)
        conn_flush_dirty(&w->cs);
    if (!rc_list_empty(&w->cs.reap))
        conn_reap(&w->cs);
    /* What else this iteration posted to other workers (the publishes it
     * read, a release hook's mail), in one hand-over per worker. */
    mailbox_flush_out(&w->mbox);
    if (rc_unlikely(w->draining) && rc_list_empty(&w->cs.conns) && rc_list_empty(&w->cs.reap))
        wloop_break(loop);
    /* Not the reap list: a pinned connection stays there until its pin
     * goes, which a poll brings. */
    return w->mbox.local_head != NULL || w->cs.dirty != NULL;
}

static void on_drain_timeout(struct wloop *loop, struct wtimer *t)
{
    struct worker *w = t->data;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->cs.conns)
    {
        conn_release(rc_list_entry(pos, struct conn, link));
    }
}

/* SIGTERM: stop accepting, close 1001 paced over drain_time (drain.h), then
 * release what is left after close_timeout. A second signal (immediate)
 * releases everything now. */
static void begin_drain(struct worker *w, int immediate)
{
    if (w->draining && !immediate)
        return;
    w->draining = 1;
    listener_close(&w->lst);
    tls_listener_close(&w->tls);
    double after = 0.001;
    if (!immediate) {
        drain_begin(&w->drain, &w->cs, w->cfg->drain_time);
        after = w->cfg->drain_time + w->cfg->close_timeout;
    } else {
        drain_stop(&w->drain);
        on_drain_timeout(w->loop, &w->drain_timer);
    }
    wtimer_start(w->loop, &w->drain_timer, after, 0.);
}

static void on_wake(struct wloop *loop, struct wasync *a)
{
    struct worker *w = a->data;
    int stop = atomic_load(&w->stop_requested);
    if (stop)
        begin_drain(w, stop == 2);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rc_log_set_thread_tag(w->id);
    char name[16]; /* top, perf and /proc/PID/task/TID/comm show it */
    snprintf(name, sizeof(name), "rc-worker%d", w->id);
    pthread_setname_np(pthread_self(), name);
    cur_worker = w;
    mailbox_bind_thread(&w->mbox);
    mailbox_batch(&w->mbox, 1);
    wloop_run(w->loop);
    mailbox_batch(&w->mbox, 0);
    sendq_cache_flush();
    mail_cache_flush();
    return NULL;
}

static uint64_t open_conns(void *ctx)
{
    return server_stat_sum(ctx, offsetof(struct worker_stats, conns_open));
}

static int worker_init(struct worker *w, struct server *s, int id, int fd)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->srv = s;
    w->cfg = s->cfg;
    w->handler = s->handler;
    w->loop = wloop_new();
    if (w->loop == NULL)
        return -errno;
    connset_init(&w->cs, id, w->loop, w->cfg, &w->stats, s->handler, w);
    mailbox_init(&w->mbox, w->loop);
    connset_receive(&w->cs, &w->mbox);
    mailbox_register(&w->mbox, MAIL_NEW_CONN, on_new_conn, discard_new_conn, w);
    mailbox_register(&w->mbox, MAIL_RELOAD, on_reload, NULL, w);
    /* Hook order is release order: the guard uncounts the address, then
     * the rooms let go; users follows conn_user(c) through its user hook. */
    guard_attach(&w->cs, open_conns, s);
    rooms_attach(&s->rooms, id, w->loop, &w->mbox, &w->stats, &w->cs);
    users_attach(&s->users, id, &w->cs, &w->mbox);
    host_attach(&s->host, id, &w->mbox);
    w->tls.cs = &w->cs;
    w->tls.admit = admit;
    w->tls.ctx = w;
    w->tls.lst.fd = w->tls.lst.spare_fd = -1;
    wloop_set_before_sleep(w->loop, before_sleep, w);
    wasync_start(w->loop, &w->wake, on_wake, w);
    wtimer_init(&w->drain_timer, on_drain_timeout, w);
    listener_start(&w->lst, w->loop, fd, on_accept, w);
    return 0;
}

static void worker_destroy(struct worker *w)
{
    cur_worker = w;
    if (w->handler && w->handler->worker_stop)
        w->handler->worker_stop(w);
    cur_worker = NULL;
    listener_close(&w->lst);
    tls_listener_close(&w->tls);
    drain_stop(&w->drain);
    mailbox_destroy(&w->mbox);
    connset_destroy(&w->cs);
    if (w->loop)
        wtimer_stop(w->loop, &w->drain_timer);
    wloop_free(w->loop);
    w->loop = NULL;
}

/* The store and the bus the config names (today: "memory", "local"). */
/* Cluster mode (cluster.redis set): the Redis bus, and its streams as the
 * history store (bus_redis.h). The default node id carries the BOUND port,
 * so -p 0 gives a real one. */
static int make_cluster_bus(struct server *s, const struct bus_host *h)
{
    const struct rc_config *c = s->cfg;
    char node[80];
    if (c->cluster_node_id)
        snprintf(node, sizeof(node), "%s", c->cluster_node_id);
    else
        bus_redis_default_node_id(node, sizeof(node), s->port);
    const char *pw = c->cluster_password_env && c->cluster_password_env[0]
                         ? getenv(c->cluster_password_env)
                         : NULL;
    struct bus_redis_cfg bc = {
        .url = c->cluster_redis,
        .password = pw && pw[0] ? pw : NULL,
        .node_id = node,
        .node_ttl = c->cluster_node_ttl,
        .keep = c->history_size > UINT32_MAX ? UINT32_MAX : (uint32_t)c->history_size,
    };
    char why[160];
    s->bus = bus_redis_new(&bc, h, why, sizeof(why));
    if (s->bus == NULL) {
        rc_error("cluster: %s", why);
        return RC_E_INVAL;
    }
    s->store = store_redis_new(s->bus, &h->base);
    rc_info("cluster: node %s (Redis bus, connecting in the background)", node);
    return 0;
}

static int make_store_bus(struct server *s)
{
    struct bus_host h = host_bus(&s->host);
    if (s->cfg->cluster_redis)
        return make_cluster_bus(s, &h);
    switch (s->cfg->history_store) {
    case RC_STORE_MEMORY:
        s->store = store_mem_new(&h.base, s->cfg->history_size);
        break;
    case RC_STORE_SQLITE: {
        struct store_sqlite_opts o;
        store_sqlite_defaults(&o);
        o.path = s->cfg->history_path;
        o.keep = (uint32_t)s->cfg->history_keep;
        o.max_age_ms = (int64_t)(s->cfg->history_max_age * 1000.0);
        o.flush_ms = (uint32_t)s->cfg->history_flush_ms;
        o.refuse_on_error = s->cfg->store_errors == RC_STORE_ERRORS_REFUSE;
        char err[640];
        int rc = store_sqlite_open(&o, &h.base, &s->store, err, sizeof(err));
        if (rc < 0) {
            rc_error("history: %s", err);
            return RC_E_CONFIG;
        }
        rc_info("history: SQLite %s (keep %d per room, max_age %gs, flush %d ms)",
                s->cfg->history_path, s->cfg->history_keep, s->cfg->history_max_age,
                s->cfg->history_flush_ms);
        break;
    }
    default:
        rc_error("history: unknown store kind %d", s->cfg->history_store);
        return RC_E_INVAL;
    }
    switch (s->cfg->bus) {
    case RC_BUS_LOCAL:
        s->bus = bus_local_new(&h, s->store);
        break;
    default:
        rc_error("bus: unknown kind %d", s->cfg->bus);
        return RC_E_INVAL;
    }
    return 0;
}

int server_init(struct server *s, struct rc_config *cfg, const struct conn_handler *handler)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    int n = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > RC_MAX_WORKERS)
        n = RC_MAX_WORKERS;
    int fds[RC_MAX_WORKERS];
    int port = cfg->port;
    for (int i = 0; i < n; i++) {
        if (i > 0 && cfg->accept_handoff) {
            fds[i] = -1; /* only worker 0 accepts */
            continue;
        }
        fds[i] = listener_bind(cfg->bind_addr, port, 4096, i == 0);
        if (fds[i] < 0) {
            int e = fds[i];
            rc_error("cannot listen on %s:%d: %s", cfg->bind_addr, port, rc_strerror(e));
            for (int j = 0; j < i; j++)
                if (fds[j] >= 0)
                    close(fds[j]);
            return e;
        }
        if (i == 0)
            port = listener_port(fds[0]);
    }
    s->port = port;
    s->nworkers = n;
    s->handler = handler;
    host_init(&s->host, &s->rooms, &s->users, n);
    int rc = make_store_bus(s);
    if (rc < 0)
        return rc;
    rooms_init(&s->rooms, n, cfg, s->store, s->bus);
    users_init(&s->users, n, s->bus);
    s->workers = rc_xcalloc((size_t)n, sizeof(struct worker));
    for (int i = 0; i < n; i++) {
        rc = worker_init(&s->workers[i], s, i, fds[i]);
        if (rc < 0)
            return rc;
    }
    struct tls_listener *tls[RC_MAX_WORKERS];
    for (int i = 0; i < n; i++)
        tls[i] = &s->workers[i].tls;
    rc = tls_server_init(cfg, tls, n); /* wss:// listeners when tls_cert is set (tls.h) */
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        if (handler->worker_start) {
            cur_worker = &s->workers[i];
            rc = handler->worker_start(&s->workers[i]);
            cur_worker = NULL;
            if (rc < 0)
                return rc;
        }
    }
    s->started = ev_time();
    const char *a = cfg->bind_addr;
    int v6 = strchr(a, ':') != NULL;
    rc_info("listening on ws://%s%s%s:%d/", v6 ? "[" : "", a, v6 ? "]" : "", port);
    return 0;
}

int server_start(struct server *s)
{
    /* Workers never take signals: the main thread's loop handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < s->nworkers; i++) {
        int e = pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
        if (e != 0) {
            rc = -e;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&s->running, 1);
    return rc;
}

void server_stop(struct server *s, int immediate)
{
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        int want = immediate ? 2 : 1;
        if (atomic_load(&w->stop_requested) < want)
            atomic_store(&w->stop_requested, want);
        wasync_send(w->loop, &w->wake);
    }
}

void server_join(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        if (!s->workers[i].joined)
            pthread_join(s->workers[i].thread, NULL);
        s->workers[i].joined = 1;
    }
    /* Release every connection (running their hooks and on_close) as
     * their worker, on this thread. */
    for (int i = 0; i < s->nworkers; i++) {
        cur_worker = &s->workers[i];
        conn_release_all(&s->workers[i].cs);
        cur_worker = NULL;
    }
    /* Calls still queued (publishes, store answers) run while every
     * module is still there; other mail is dropped. A call may post to
     * another worker: repeat until every mailbox stays empty. */
    for (int busy = 1; busy;) {
        busy = 0;
        for (int i = 0; i < s->nworkers; i++) {
            cur_worker = &s->workers[i];
            mailbox_bind_thread(&s->workers[i].mbox);
            busy |= mailbox_quiesce(&s->workers[i].mbox) != 0;
            mailbox_bind_thread(NULL);
            cur_worker = NULL;
        }
    }
    /* The store next (it flushes what was appended: SIGTERM loses nothing
     * acknowledged), before the mailboxes go: its threads may still post a
     * read's answer, which the quiesce below delivers (or drops with the
     * mailbox, never into freed memory). */
    if (s->store)
        s->store->ops->destroy(s->store);
    s->store = NULL;
    for (int i = 0; i < s->nworkers; i++) {
        cur_worker = &s->workers[i];
        mailbox_bind_thread(&s->workers[i].mbox);
        mailbox_quiesce(&s->workers[i].mbox);
        mailbox_bind_thread(NULL);
        cur_worker = NULL;
    }
    /* The bus before the mailboxes too: a cluster bus's thread posts to
     * them until its destroy joins it (what it posts after the quiesce is
     * dropped with the mailbox). */
    if (s->bus)
        s->bus->ops->destroy(s->bus);
    s->bus = NULL;
    for (int i = 0; i < s->nworkers; i++)
        worker_destroy(&s->workers[i]);
    rooms_destroy(&s->rooms);
    users_destroy(&s->users);
    /* What the teardown above recycled on this (the main) thread. */
    sendq_cache_flush();
    mail_cache_flush();
    rc_free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}

void server_reload(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        struct mail *m = mail_new(MAIL_RELOAD, NULL, 0, NULL, 0);
        mail_post(NULL, &s->workers[i].mbox, m);
    }
}

uint64_t server_stat_sum(const struct server *s, size_t offset)
{
    uint64_t sum = 0;
    for (int i = 0; i < s->nworkers; i++) {
        const atomic_uint_fast64_t *p =
            (const atomic_uint_fast64_t *)((const char *)&s->workers[i].stats + offset);
        sum += atomic_load_explicit(p, memory_order_relaxed);
    }
    return sum;
}
