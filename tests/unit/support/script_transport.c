#include "script_transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void script_init(struct script *s)
{
    memset(s, 0, sizeof(*s));
}

void script_free(struct script *s)
{
    free(s->in);
    free(s->out);
    memset(s, 0, sizeof(*s));
}

static void grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    *p = realloc(*p, n);
    if (*p == NULL)
        abort();
    *cap = n;
}

void script_input(struct script *s, const void *p, size_t n)
{
    grow(&s->in, &s->in_cap, s->in_len + n);
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
}

static ssize_t sc_read(struct transport *t, void *buf, size_t len)
{
    struct script *s = t->impl;
    if (s->read_error)
        return s->read_error;
    size_t avail = s->in_len - s->in_off;
    if (avail == 0)
        return s->in_eof ? 0 : -EAGAIN;
    if (len > avail)
        len = avail;
    if (s->read_max && len > s->read_max)
        len = s->read_max;
    memcpy(buf, s->in + s->in_off, len);
    s->in_off += len;
    s->reads++;
    return (ssize_t)len;
}

static ssize_t sc_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    struct script *s = t->impl;
    if (s->write_error)
        return s->write_error;
    if (s->write_eagain)
        return -EAGAIN;
    size_t room = s->write_max ? s->write_max : (size_t)-1, done = 0;
    if (s->write_limited && room > s->write_room)
        room = s->write_room;
    for (int i = 0; i < iovcnt && room > 0; i++) {
        size_t n = iov[i].iov_len < room ? iov[i].iov_len : room;
        grow(&s->out, &s->out_cap, s->out_len + n);
        memcpy(s->out + s->out_len, iov[i].iov_base, n);
        s->out_len += n;
        done += n;
        room -= n;
    }
    if (done == 0)
        return -EAGAIN;
    if (s->write_limited)
        s->write_room -= done;
    s->writevs++;
    return (ssize_t)done;
}

static int sc_shutdown(struct transport *t)
{
    struct script *s = t->impl;
    s->shutdowns++;
    return 0;
}

static void sc_destroy(struct transport *t)
{
    struct script *s = t->impl;
    s->destroyed++;
}

static int sc_want_events(const struct transport *t)
{
    return 0;
}

static int sc_handshaking(const struct transport *t)
{
    return 0;
}

static const struct transport_ops script_ops = {
    .name = "script",
    .read = sc_read,
    .writev = sc_writev,
    .shutdown = sc_shutdown,
    .destroy = sc_destroy,
    .want_events = sc_want_events,
    .handshaking = sc_handshaking,
};

void script_attach(struct transport *t, struct script *s)
{
    t->ops = &script_ops;
    t->impl = s;
}
