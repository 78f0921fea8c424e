#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "defs.h"
#include "err.h"
#include "log.h"

/* SO_REUSEPORT lets any process of the same user join a port's listeners
 * and silently take a share of its connections, so a second server started
 * by mistake would not fail. A plain socket cannot bind a port that has
 * listeners (reuseport or not): trying one first makes "address in use" an
 * error again, as nginx and Redis report it. */
static int probe_free(const struct sockaddr_storage *ss, socklen_t sl)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is fine */
    int rc = bind(fd, (const struct sockaddr *)ss, sl) == -1 ? -errno : 0;
    close(fd);
    return rc;
}

int listener_bind(const char *addr, int port, int backlog, int first)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        return RC_E_INVAL;
    }
    if (first && port != 0) {
        int rc = probe_free(&ss, sl);
        if (rc < 0)
            return rc;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, backlog) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int listener_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_batch(struct listener *l)
{
    static struct rc_ratelimit rl;
    /* Accept in a bounded batch so one busy listener cannot starve the loop. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if ((e == EMFILE || e == ENFILE) && l->spare_fd >= 0) {
                close(l->spare_fd);
                int victim = accept(l->fd, NULL, NULL);
                if (victim >= 0) {
                    close(victim);
                    l->refused_emfile++;
                }
                l->spare_fd = open_spare();
                rc_log_limited(&rl, 1, RC_LOG_WARN, "accept: out of file descriptors (%s)",
                               strerror(e));
                continue;
            }
            /* ECONNABORTED and friends: the connection is gone; go on. */
            if (e == ECONNABORTED || e == EPROTO)
                continue;
            rc_log_limited(&rl, 1, RC_LOG_WARN, "accept: %s", strerror(e));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        l->on_accept(l, fd, &peer, pl);
    }
}

static void on_readable(struct wio *io, unsigned revents)
{
    (void)revents;
    accept_batch(rc_container_of(io, struct listener, wio));
}

static void on_readable_ev(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    accept_batch(w->data);
}

/* 1 when there is a socket to watch. */
static int setup(struct listener *l, int fd, listener_accept_cb cb, void *data)
{
    l->wl = NULL;
    l->loop = NULL;
    l->fd = fd;
    l->spare_fd = -1;
    if (fd < 0)
        return 0; /* this worker does not accept (handoff mode) */
    l->spare_fd = open_spare();
    l->on_accept = cb;
    l->data = data;
    l->refused_emfile = 0;
    return 1;
}

void listener_start(struct listener *l, struct wloop *loop, int fd, listener_accept_cb cb,
                    void *data)
{
    if (!setup(l, fd, cb, data))
        return;
    l->wl = loop;
    wio_init(&l->wio, fd, on_readable);
    wio_set(loop, &l->wio, WL_READ);
}

void listener_start_ev(struct listener *l, struct ev_loop *loop, int fd, listener_accept_cb cb,
                       void *data)
{
    if (!setup(l, fd, cb, data))
        return;
    l->loop = loop;
    ev_io_init(&l->io, on_readable_ev, fd, EV_READ);
    l->io.data = l;
    ev_io_start(loop, &l->io);
}

void listener_close(struct listener *l)
{
    if (l->fd >= 0) {
        if (l->wl)
            wio_stop(l->wl, &l->wio);
        if (l->loop)
            ev_io_stop(l->loop, &l->io);
        close(l->fd);
        l->fd = -1;
    }
    if (l->spare_fd >= 0) {
        close(l->spare_fd);
        l->spare_fd = -1;
    }
}
