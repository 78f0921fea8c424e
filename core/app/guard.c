#include "guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "closecode.h"
#include "conn.h"
#include "err.h"
#include "log.h"
#include "strmap.h"
#include "worker.h"

static struct {
    atomic_int max_conns;
    atomic_int per_ip;
    _Atomic double accept_rate, accept_burst;
    _Atomic double msg_rate, msg_burst;
    atomic_int msg_close;
    int track_ip; /* fixed at startup */
    char *const *origins;
    int norigins;
    pthread_mutex_t lock;    /* ip_counts and the accept bucket */
    struct strmap ip_counts; /* family + 16 address bytes -> count (as a pointer) */
    double tokens, last;
} lim = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct rc_ratelimit limit_rl;

#define RELAXED memory_order_relaxed

void guard_configure(const struct rc_config *cfg)
{
    atomic_store_explicit(&lim.max_conns, cfg->max_conns, RELAXED);
    atomic_store_explicit(&lim.per_ip, cfg->max_conns_per_ip, RELAXED);
    atomic_store_explicit(&lim.accept_rate, cfg->accept_rate, RELAXED);
    atomic_store_explicit(&lim.accept_burst,
                          cfg->accept_burst > 0 ? cfg->accept_burst : cfg->accept_rate, RELAXED);
    atomic_store_explicit(&lim.msg_rate, cfg->msg_rate, RELAXED);
    atomic_store_explicit(&lim.msg_burst, cfg->msg_burst > 0 ? cfg->msg_burst : cfg->msg_rate,
                          RELAXED);
    atomic_store_explicit(&lim.msg_close, cfg->msg_rate_close, RELAXED);
}

void guard_init(const struct rc_config *cfg)
{
    guard_configure(cfg);
    lim.track_ip = cfg->max_conns_per_ip > 0;
    lim.origins = cfg->origins;
    lim.norigins = cfg->norigins;
    strmap_init(&lim.ip_counts);
    lim.tokens = atomic_load(&lim.accept_burst);
    lim.last = ev_time();
}

void guard_destroy(void)
{
    pthread_mutex_lock(&lim.lock);
    strmap_clear(&lim.ip_counts, NULL);
    pthread_mutex_unlock(&lim.lock);
}

/* 17-byte key: family, then the address zero-padded to 16 bytes. */
static size_t ip_key(uint8_t key[17], int family, const void *addr)
{
    memset(key, 0, 17);
    key[0] = (uint8_t)family;
    memcpy(key + 1, addr, family == AF_INET6 ? 16 : 4);
    return 17;
}

/* Refills the accept bucket; takes one token if there is one (lock held). */
static int take_accept_token(double now)
{
    double rate = atomic_load_explicit(&lim.accept_rate, RELAXED);
    double burst = atomic_load_explicit(&lim.accept_burst, RELAXED);
    lim.tokens += (now - lim.last) * rate;
    lim.last = now;
    if (lim.tokens > burst)
        lim.tokens = burst;
    if (lim.tokens < 1)
        return 0;
    lim.tokens -= 1;
    return 1;
}

int guard_accept(struct worker *w, const struct sockaddr_storage *peer)
{
    int cap = atomic_load_explicit(&lim.per_ip, RELAXED);
    double rate = atomic_load_explicit(&lim.accept_rate, RELAXED);
    if (!lim.track_ip && rate <= 0)
        return 0;
    const void *addr = NULL;
    if (peer->ss_family == AF_INET)
        addr = &((const struct sockaddr_in *)peer)->sin_addr;
    else if (peer->ss_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)peer)->sin6_addr;
    pthread_mutex_lock(&lim.lock);
    if (rate > 0 && !take_accept_token(ev_now(w->loop))) {
        pthread_mutex_unlock(&lim.lock);
        STAT_INC(&w->stats, refused_accept_rate_total);
        rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "accept rate limit: connection refused");
        return RC_E_LIMIT;
    }
    if (lim.track_ip && addr) {
        uint8_t key[17];
        size_t kl = ip_key(key, peer->ss_family, addr);
        uintptr_t n = (uintptr_t)strmap_get(&lim.ip_counts, key, kl);
        if (cap > 0 && n >= (uintptr_t)cap) {
            pthread_mutex_unlock(&lim.lock);
            STAT_INC(&w->stats, refused_per_ip_total);
            rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "per-IP cap (%d): connection refused", cap);
            return RC_E_LIMIT;
        }
        strmap_put(&lim.ip_counts, key, kl, (void *)(n + 1));
    }
    pthread_mutex_unlock(&lim.lock);
    return 0;
}

void guard_on_release(const struct conn *c)
{
    if (!lim.track_ip || (c->peer_family != AF_INET && c->peer_family != AF_INET6))
        return;
    uint8_t key[17];
    size_t kl = ip_key(key, c->peer_family, c->peer_addr);
    pthread_mutex_lock(&lim.lock);
    uintptr_t n = (uintptr_t)strmap_get(&lim.ip_counts, key, kl);
    if (n <= 1)
        strmap_del(&lim.ip_counts, key, kl);
    else
        strmap_put(&lim.ip_counts, key, kl, (void *)(n - 1));
    pthread_mutex_unlock(&lim.lock);
}

static int origin_allowed(const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "origin");
    /* Only browsers send Origin (RFC 6455 §10.2); the list protects their
     * users from cross-site pages, it cannot stop other clients. */
    if (h == NULL)
        return 1;
    for (int i = 0; i < lim.norigins; i++) {
        const char *o = lim.origins[i];
        if (strcmp(o, "*") == 0 ||
            (strlen(o) == h->value_len && strncasecmp(o, h->value, h->value_len) == 0))
            return 1;
    }
    return 0;
}

int guard_check_upgrade(struct conn *c, const struct http_request *req, struct ws_refusal *why)
{
    struct worker *w = c->w;
    if (lim.norigins > 0 && !origin_allowed(req)) {
        STAT_INC(&w->stats, refused_origin_total);
        *why = (struct ws_refusal){403, "origin not allowed", "origin"};
        return -1;
    }
    int max = atomic_load_explicit(&lim.max_conns, RELAXED);
    if (max > 0 &&
        server_stat_sum(w->srv, offsetof(struct worker_stats, conns_open)) >= (uint64_t)max) {
        STAT_INC(&w->stats, refused_max_conns_total);
        rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "max_connections (%d) reached: 503", max);
        *why = (struct ws_refusal){503, "server full, try again later", "max_connections"};
        return -1;
    }
    return 0;
}

int guard_message(struct conn *c)
{
    double rate = atomic_load_explicit(&lim.msg_rate, RELAXED);
    if (rate <= 0)
        return 0;
    double burst = atomic_load_explicit(&lim.msg_burst, RELAXED);
    double now = ev_now(c->w->loop);
    if (c->rl_last == 0) {
        c->rl_tokens = burst;
    } else {
        c->rl_tokens += (now - c->rl_last) * rate;
        if (c->rl_tokens > burst)
            c->rl_tokens = burst;
    }
    c->rl_last = now;
    if (c->rl_tokens >= 1) {
        c->rl_tokens -= 1;
        return 0;
    }
    if (atomic_load_explicit(&lim.msg_close, RELAXED)) {
        STAT_INC(&c->w->stats, msg_rate_closes_total);
        conn_fail(c, WS_CLOSE_POLICY, "message rate limit exceeded");
    } else {
        STAT_INC(&c->w->stats, msg_rate_drops_total);
    }
    return 1;
}
