#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "closecode.h"
#include "drain.h"
#include "err.h"
#include "guard.h"
#include "log.h"
#include "mailbox.h"
#include "room.h"
#include "tlsserver.h"
#include "users.h"

static _Thread_local struct worker *cur_worker;

struct worker *worker_current(void)
{
    return cur_worker;
}

int worker_admit(struct worker *w, int fd, const struct sockaddr_storage *peer)
{
    if (w->draining || guard_accept(w, peer) != 0) {
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
    if (!worker_admit(w, fd, peer))
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
            mail_post(w, to, m);
            return;
        }
    }
    conn_new(w, fd, peer);
}

/* Before the loop sleeps: flush every dirty connection (one writev each),
 * then free what was released during this iteration. */
static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = p->data;
    mailbox_drain_local(w);
    while (!rc_list_empty(&w->dirty)) {
        struct conn *c = rc_list_first(&w->dirty, struct conn, dirty_link);
        conn_flush(c); /* unlinks c from dirty */
    }
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->reap)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (c->pin == 0)
            conn_free(c);
    }
    if (w->draining && rc_list_empty(&w->conns) && rc_list_empty(&w->reap))
        ev_break(loop, EVBREAK_ALL);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->conns)
    {
        conn_release(rc_list_entry(pos, struct conn, link));
    }
}

static void begin_drain(struct worker *w, int immediate)
{
    if (w->draining && !immediate)
        return;
    w->draining = 1;
    listener_close(&w->lst);
    if (!immediate) {
        /* close 1001 paced over drain_time (drain.h), then close_timeout for the peers */
        drain_begin(w);
        ev_timer_set(&w->drain_timer, w->cfg->drain_time + w->cfg->close_timeout, 0.);
        ev_timer_start(w->loop, &w->drain_timer);
        return;
    }
    drain_stop(w);
    listener_close(&w->tls_lst);
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->conns)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        if (immediate || c->state == CONN_HTTP)
            conn_release(c);
        else
            conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
    }
    ev_timer_stop(w->loop, &w->drain_timer); /* libev: never ev_timer_set an active timer */
    ev_timer_set(&w->drain_timer, immediate ? 0.001 : w->cfg->close_timeout, 0.);
    ev_timer_start(w->loop, &w->drain_timer);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
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
    cur_worker = w;
    ev_run(w->loop, 0);
    sendq_cache_flush();
    mail_cache_flush();
    return NULL;
}

static int worker_init(struct worker *w, struct server *s, int id, int fd)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->srv = s;
    w->cfg = s->cfg;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (w->loop == NULL)
        return RC_E_NOMEM;
    w->rbuf = rc_xmalloc(WORKER_RBUF_SIZE);
    rc_list_init(&w->conns);
    rc_list_init(&w->dirty);
    rc_list_init(&w->reap);
    w->slots = NULL;
    w->nslots = w->slots_cap = 0;
    w->free_slot = UINT32_MAX;
    mailbox_init(w);
    w->msg_cfg.max_message = w->cfg->max_message;
    w->msg_cfg.require_mask = 1;
    w->msg_cfg.reject_masked = 0;
    w->msg_cfg.allowed_rsv = 0;
    tlist_init(&w->hs_list, w->loop, w->cfg->handshake_timeout, conn_on_handshake_timeout, w);
    tlist_init(&w->idle_list, w->loop, w->cfg->ping_interval, conn_on_idle, w);
    tlist_init(&w->pong_list, w->loop, w->cfg->pong_timeout, conn_on_pong_timeout, w);
    tlist_init(&w->close_list, w->loop, w->cfg->close_timeout, conn_on_close_timeout, w);
    ev_prepare_init(&w->prepare, on_prepare);
    w->prepare.data = w;
    ev_prepare_start(w->loop, &w->prepare);
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    ev_init(&w->drain_timer, on_drain_timeout);
    w->drain_timer.data = w;
    listener_start(&w->lst, w->loop, fd, on_accept, w);
    return 0;
}

/* Releases every connection of w (main thread, after the worker stopped). */
static void worker_release_all(struct worker *w)
{
    cur_worker = w;
    struct rc_list *pos, *tmp;
    rc_list_foreach_safe(pos, tmp, &w->conns)
    {
        conn_release(rc_list_entry(pos, struct conn, link));
    }
    rc_list_foreach_safe(pos, tmp, &w->reap)
    {
        struct conn *c = rc_list_entry(pos, struct conn, link);
        c->pin = 0;
        conn_free(c);
    }
    cur_worker = NULL;
}

static void worker_destroy(struct worker *w)
{
    cur_worker = w;
    if (w->handler && w->handler->worker_stop)
        w->handler->worker_stop(w);
    cur_worker = NULL;
    listener_close(&w->lst);
    listener_close(&w->tls_lst);
    tlist_stop(&w->hs_list);
    tlist_stop(&w->idle_list);
    tlist_stop(&w->pong_list);
    tlist_stop(&w->close_list);
    mailbox_destroy(w);
    rc_free(w->slots);
    w->slots = NULL;
    if (w->loop)
        ev_loop_destroy(w->loop);
    w->loop = NULL;
    rc_free(w->rbuf);
    w->rbuf = NULL;
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
    s->workers = rc_xcalloc((size_t)n, sizeof(struct worker));
    for (int i = 0; i < n; i++) {
        int rc = worker_init(&s->workers[i], s, i, fds[i]);
        if (rc < 0)
            return rc;
        s->workers[i].handler = handler;
    }
    int trc = tls_server_init(s); /* wss:// listeners when tls_cert is set (tls.h) */
    if (trc < 0)
        return trc;
    rooms_init(s);
    users_init(s);
    for (int i = 0; i < n; i++) {
        if (handler->worker_start) {
            cur_worker = &s->workers[i];
            int rc = handler->worker_start(&s->workers[i]);
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
        ev_async_send(w->loop, &w->wake);
    }
}

void server_join(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        if (!s->workers[i].joined)
            pthread_join(s->workers[i].thread, NULL);
        s->workers[i].joined = 1;
    }
    for (int i = 0; i < s->nworkers; i++)
        worker_release_all(&s->workers[i]);
    rooms_destroy(s);
    users_destroy(s);
    for (int i = 0; i < s->nworkers; i++)
        worker_destroy(&s->workers[i]);
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
        mail_post(NULL, &s->workers[i], m);
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
