#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "wloop.h"

/* Plaintext gathered per SSL_write: one full TLS record (RFC 8446 §5.1). */
#define TLS_RECORD 16384

struct tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct tls_conn {
    SSL *ssl;
    int want;        /* WL_READ/WL_WRITE OpenSSL asked for in the last call */
    int handshaking; /* 1 until SSL_do_handshake succeeded */
    atomic_uint_fast64_t *fail_counter;
};

static struct rc_ratelimit tls_rl;

static void ssl_err_text(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "unknown error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

static int load_chain(SSL_CTX *ctx, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, cap, "cannot read tls_chain %s: %s", path, strerror(errno));
        return RC_E_TLS;
    }
    int n = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            fclose(f);
            snprintf(err, cap, "tls_chain %s: cannot add certificate", path);
            return RC_E_TLS;
        }
        n++;
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    if (n == 0) {
        snprintf(err, cap, "tls_chain %s: no PEM certificate in it", path);
        return RC_E_TLS;
    }
    return 0;
}

int tls_ctx_new(const char *cert, const char *key, const char *chain, struct tls_ctx **out,
                char *err, size_t cap)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_err_text(why, sizeof(why));
        snprintf(err, cap, "SSL_CTX_new: %s", why);
        return RC_E_TLS;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    long opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    opts |= SSL_OP_IGNORE_UNEXPECTED_EOF; /* a peer vanishing is an EOF, not an error */
#endif
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_err_text(why, sizeof(why));
        snprintf(err, cap, "tls_cert %s: %s", cert, why);
        goto fail;
    }
    if (chain && load_chain(ctx, chain, err, cap) != 0)
        goto fail;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_err_text(why, sizeof(why));
        snprintf(err, cap, "tls_key %s: %s", key, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err_text(why, sizeof(why));
        snprintf(err, cap, "tls_key %s does not match tls_cert %s: %s", key, cert, why);
        goto fail;
    }
    *out = rc_xmalloc(sizeof(**out));
    (*out)->ssl_ctx = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return RC_E_TLS;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    rc_free(ctx);
}

/* Maps an SSL_get_error result: -EAGAIN with tc->want set, 0 for a clean
 * close_notify, or RC_E_TLS/-errno. */
static ssize_t map_error(struct tls_conn *tc, int ret, int reading, const char *what)
{
    int e = SSL_get_error(tc->ssl, ret);
    /* Only the crossed need is reported: the connection already waits for
     * WL_READ to read and for WL_WRITE to write. */
    switch (e) {
    case SSL_ERROR_WANT_READ:
        tc->want = reading ? 0 : WL_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        tc->want = reading ? WL_WRITE : 0;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL: {
        int en = errno;
        ERR_clear_error();
        if (ret == 0 || en == 0)
            return 0; /* EOF without close_notify */
        return en == EWOULDBLOCK ? -EAGAIN : -en;
    }
    default: {
        char why[200];
        ssl_err_text(why, sizeof(why));
        rc_log_limited(&tls_rl, 5, RC_LOG_DEBUG, "tls %s: %s", what, why);
        return RC_E_TLS;
    }
    }
}

static ssize_t handshake(struct tls_conn *tc)
{
    int r = SSL_do_handshake(tc->ssl);
    if (r == 1) {
        tc->handshaking = 0;
        tc->want = 0;
        return 1;
    }
    ssize_t rc = map_error(tc, r, 1, "handshake");
    if (rc != -EAGAIN) {
        if (tc->fail_counter)
            atomic_store_explicit(tc->fail_counter,
                                  atomic_load_explicit(tc->fail_counter, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        return rc == 0 ? RC_E_TLS : rc;
    }
    return rc;
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    struct tls_conn *tc = t->impl;
    tc->want = 0;
    if (tc->handshaking) {
        ssize_t h = handshake(tc);
        if (h <= 0)
            return h;
    }
    /* Take every record that is ready, so a short result means "no more now"
     * (the caller stops reading when it gets less than it asked for). */
    size_t got = 0;
    while (got < len) {
        size_t want = len - got > INT32_MAX ? INT32_MAX : len - got;
        int n = SSL_read(tc->ssl, (char *)buf + got, (int)want);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ssize_t rc = map_error(tc, n, 1, "read");
        if (got > 0 && (rc == -EAGAIN || rc == 0))
            return (ssize_t)got; /* EOF or error shows up on the next call */
        return rc;
    }
    return (ssize_t)got;
}

static ssize_t tls_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    static _Thread_local unsigned char gather[TLS_RECORD];
    struct tls_conn *tc = t->impl;
    if (tc->handshaking) {
        ssize_t h = handshake(tc);
        if (h <= 0)
            return h == 0 ? RC_E_TLS : h;
    }
    tc->want = 0;
    size_t done = 0;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    while (i < iovcnt) {
        /* Gather the next record's worth of plaintext. */
        size_t n = 0;
        int j = i;
        size_t o = off;
        while (j < iovcnt && n < TLS_RECORD) {
            size_t take = iov[j].iov_len - o;
            if (take > TLS_RECORD - n)
                take = TLS_RECORD - n;
            memcpy(gather + n, (const char *)iov[j].iov_base + o, take);
            n += take;
            o += take;
            if (o == iov[j].iov_len) {
                j++;
                o = 0;
            }
        }
        if (n == 0)
            break;
        int w = SSL_write(tc->ssl, gather, (int)n);
        if (w <= 0) {
            ssize_t rc = map_error(tc, w, 0, "write");
            if (done > 0 && rc == -EAGAIN)
                return (ssize_t)done;
            return rc == 0 ? -EPIPE : rc;
        }
        done += (size_t)w;
        /* Advance (i, off) by w bytes. */
        size_t adv = (size_t)w;
        while (adv > 0) {
            size_t rest = iov[i].iov_len - off;
            if (adv < rest) {
                off += adv;
                adv = 0;
            } else {
                adv -= rest;
                i++;
                off = 0;
            }
        }
        while (i < iovcnt && iov[i].iov_len == 0)
            i++;
        if ((size_t)w < n)
            break; /* partial write: the socket is full */
    }
    return (ssize_t)done;
}

static int tls_shutdown(struct transport *t)
{
    struct tls_conn *tc = t->impl;
    /* close_notify (RFC 8446 §6.1) only on an established session; its
     * failure changes nothing, the TCP FIN follows anyway. */
    if (!tc->handshaking && SSL_is_init_finished(tc->ssl)) {
        if (SSL_shutdown(tc->ssl) < 0)
            ERR_clear_error();
    }
    return shutdown(t->fd, SHUT_WR) == -1 ? -errno : 0;
}

static void tls_destroy(struct transport *t)
{
    struct tls_conn *tc = t->impl;
    if (tc == NULL)
        return;
    SSL_free(tc->ssl);
    rc_free(tc);
    t->impl = NULL;
}

static int tls_want_events(const struct transport *t)
{
    const struct tls_conn *tc = t->impl;
    return tc ? tc->want : 0;
}

static int tls_handshaking(const struct transport *t)
{
    const struct tls_conn *tc = t->impl;
    return tc ? tc->handshaking : 0;
}

const struct transport_ops tls_transport_ops = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
    .want_events = tls_want_events,
    .handshaking = tls_handshaking,
};

int transport_init_tls(struct transport *t, int fd, struct tls_ctx *ctx,
                       atomic_uint_fast64_t *fail_counter)
{
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    if (ssl == NULL) {
        ERR_clear_error();
        return RC_E_NOMEM;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return RC_E_TLS;
    }
    SSL_set_accept_state(ssl);
    struct tls_conn *tc = rc_xcalloc(1, sizeof(*tc));
    tc->ssl = ssl;
    tc->handshaking = 1;
    tc->fail_counter = fail_counter;
    t->ops->destroy(t);
    t->ops = &tls_transport_ops;
    t->fd = fd;
    t->impl = tc;
    return 0;
}
