#include "tlsserver.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "tls.h"

/* One context for the process: written by tls_server_init before the
 * workers start, then only read. */
static struct tls_ctx *tls_ctx;
static atomic_int bound_port;

static void on_tls_accept(struct listener *l, int fd, const struct sockaddr_storage *peer,
                          socklen_t peer_len)
{
    struct tls_listener *t = l->data;
    (void)peer_len;
    if (!t->admit(t->ctx, fd, peer))
        return;
    struct conn *c = conn_new(t->cs, fd, peer);
    if (transport_init_tls(&c->t, fd, tls_ctx, &t->cs->stats->tls_handshake_failures_total) != 0)
        conn_release(c);
}

int tls_check_config(const struct rc_config *cfg, char *err, size_t cap)
{
    if (cfg->tls_cert == NULL)
        return 0;
    struct tls_ctx *ctx;
    char why[384];
    if (tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_chain, &ctx, why, sizeof(why)) != 0) {
        snprintf(err, cap, "roomcast: %s", why);
        return RC_E_TLS;
    }
    tls_ctx_free(ctx);
    return 0;
}

int tls_server_init(const struct rc_config *cfg, struct tls_listener *const *parts, int n)
{
    for (int i = 0; i < n; i++) {
        parts[i]->lst.fd = -1;
        parts[i]->lst.spare_fd = -1;
    }
    if (cfg->tls_cert == NULL)
        return 0;
    char why[384];
    if (tls_ctx == NULL &&
        tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_chain, &tls_ctx, why, sizeof(why)) != 0) {
        rc_error("TLS: %s", why);
        return RC_E_TLS;
    }
    int port = cfg->tls_port;
    for (int i = 0; i < n; i++) {
        int fd = listener_bind(cfg->bind_addr, port, 4096, i == 0);
        if (fd < 0) {
            rc_error("cannot listen on %s:%d (TLS): %s", cfg->bind_addr, port, rc_strerror(fd));
            for (int j = 0; j < i; j++)
                listener_close(&parts[j]->lst);
            return fd;
        }
        if (i == 0)
            port = listener_port(fd);
        listener_start(&parts[i]->lst, parts[i]->cs->loop, fd, on_tls_accept, parts[i]);
    }
    atomic_store(&bound_port, port);
    const char *a = cfg->bind_addr;
    int v6 = strchr(a, ':') != NULL;
    rc_info("listening on wss://%s%s%s:%d/", v6 ? "[" : "", a, v6 ? "]" : "", port);
    return 0;
}

int tls_bound_port(void)
{
    return atomic_load(&bound_port);
}

void tls_listener_close(struct tls_listener *t)
{
    listener_close(&t->lst);
}
