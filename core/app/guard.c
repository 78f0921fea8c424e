#include "guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "closecode.h"
#include "conn.h"
#include "err.h"
#include "log.h"
#include "strmap.h"
#include "wloop.h"

/* The numbers (max_connections, rates, bursts, policy) are read from the
 * current rc_live snapshot (config.h) at each use, so one check sees one
 * consistent set and SIGHUP swaps them all at once. */
static struct {
    int track_ip; /* fixed at startup */
    char *const *origins;
    int norigins;
    pthread_mutex_t lock;    /* ip_counts and the accept bucket */
    struct strmap ip_counts; /* family + 16 address bytes -> count (as a pointer) */
    double tokens, last;
    uint64_t (*open_conns)(void *ctx); /* set by guard_attach before the workers start */
    void *open_ctx;
} lim = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct rc_ratelimit limit_rl;

/* A bucket size of 0 means "the rate". */
static double burst_of(double burst, double rate)
{
    return burst > 0 ? burst : rate;
}

void guard_init(const struct rc_config *cfg)
{
    lim.track_ip = cfg->max_conns_per_ip > 0;
    lim.origins = cfg->origins;
    lim.norigins = cfg->norigins;
    strmap_init(&lim.ip_counts);
    lim.tokens = burst_of(cfg->accept_burst, cfg->accept_rate);
    lim.last = wloop_time(); /* the workers' clock: wloop_now */
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
static int take_accept_token(const struct rc_live *l, double now)
{
    double rate = l->accept_rate;
    double burst = burst_of(l->accept_burst, rate);
    lim.tokens += (now - lim.last) * rate;
    lim.last = now;
    if (lim.tokens > burst)
        lim.tokens = burst;
    if (lim.tokens < 1)
        return 0;
    lim.tokens -= 1;
    return 1;
}

int guard_accept(struct worker_stats *st, double now, const struct sockaddr_storage *peer)
{
    const struct rc_live *l = rc_live_get();
    int cap = l->max_conns_per_ip;
    double rate = l->accept_rate;
    if (!lim.track_ip && rate <= 0)
        return 0;
    const void *addr = NULL;
    if (peer->ss_family == AF_INET)
        addr = &((const struct sockaddr_in *)peer)->sin_addr;
    else if (peer->ss_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)peer)->sin6_addr;
    pthread_mutex_lock(&lim.lock);
    if (rate > 0 && !take_accept_token(l, now)) {
        pthread_mutex_unlock(&lim.lock);
        STAT_INC(st, refused_accept_rate_total);
        rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "accept rate limit: connection refused");
        return RC_E_LIMIT;
    }
    if (lim.track_ip && addr) {
        uint8_t key[17];
        size_t kl = ip_key(key, peer->ss_family, addr);
        uintptr_t n = (uintptr_t)strmap_get(&lim.ip_counts, key, kl);
        if (cap > 0 && n >= (uintptr_t)cap) {
            pthread_mutex_unlock(&lim.lock);
            STAT_INC(st, refused_per_ip_total);
            rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "per-IP cap (%d): connection refused", cap);
            return RC_E_LIMIT;
        }
        strmap_put(&lim.ip_counts, key, kl, (void *)(n + 1));
    }
    pthread_mutex_unlock(&lim.lock);
    return 0;
}

static void on_release(void *ctx, struct conn *c)
{
    uint8_t addr[16];
    int family = lim.track_ip ? conn_peer_addr(c, addr) : 0;
    if (family != AF_INET && family != AF_INET6)
        return;
    uint8_t key[17];
    size_t kl = ip_key(key, family, addr);
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

static int gate_upgrade(void *ctx, struct conn *c, const struct http_request *req,
                        struct ws_refusal *why)
{
    struct worker_stats *st = c->cs->stats;
    if (lim.norigins > 0 && !origin_allowed(req)) {
        STAT_INC(st, refused_origin_total);
        *why = (struct ws_refusal){403, "origin not allowed", "origin"};
        return -1;
    }
    int max = rc_live_get()->max_conns;
    if (max > 0 && lim.open_conns && lim.open_conns(lim.open_ctx) >= (uint64_t)max) {
        STAT_INC(st, refused_max_conns_total);
        rc_log_limited(&limit_rl, 5, RC_LOG_WARN, "max_connections (%d) reached: 503", max);
        *why = (struct ws_refusal){503, "server full, try again later", "max_connections"};
        return -1;
    }
    return 0;
}

/* gate_message with a message rate configured (out of line: the gate's
 * usual answer, no limit, then needs no stack frame). */
static RC_NOINLINE int gate_message_bucket(const struct rc_live *l, struct conn *c)
{
    double rate = l->msg_rate;
    double burst = burst_of(l->msg_burst, rate);
    double now = wloop_now(c->cs->loop);
    struct conn_cold *k = conn_cold(c); /* the bucket lives there from the first message */
    double tokens = burst;
    if (k->rl_last != 0) {
        tokens = k->rl_tokens + (now - k->rl_last) * rate;
        if (tokens > burst)
            tokens = burst;
    }
    k->rl_last = now;
    if (tokens >= 1) {
        k->rl_tokens = (float)(tokens - 1);
        return 0;
    }
    k->rl_tokens = (float)tokens;
    if (l->msg_rate_policy == RC_RATE_CLOSE) {
        STAT_INC(c->cs->stats, msg_rate_closes_total);
        conn_fail(c, WS_CLOSE_POLICY, "message rate limit exceeded");
    } else {
        STAT_INC(c->cs->stats, msg_rate_drops_total);
    }
    return 1;
}

static int gate_message(void *ctx, struct conn *c)
{
    const struct rc_live *l = rc_live_get();
    if (l->msg_rate <= 0)
        return 0;
    return gate_message_bucket(l, c);
}

void guard_attach(struct connset *cs, uint64_t (*open_conns)(void *ctx), void *ctx)
{
    lim.open_conns = open_conns;
    lim.open_ctx = ctx;
    cs->gate_upgrade = gate_upgrade;
    cs->gate_message = gate_message;
    cs->gate_ctx = NULL;
    conn_hook_release(cs, on_release, NULL);
}
