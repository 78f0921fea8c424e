/* listener.h - TCP listening sockets on a worker loop (wloop.h) or, for the
 * admin endpoint, on libev: non-blocking accept in
 * batches, SO_REUSEPORT (each worker has its own socket on the same port and
 * the kernel spreads connections), TCP_NODELAY on accepted sockets, and the
 * spare-fd trick for EMFILE/ENFILE (libev manual, "The special problem of
 * accept()ing when you can't"): keep one fd open on /dev/null; when accept
 * fails for lack of fds, close it, accept and immediately close the pending
 * connection (so it is refused rather than left to spin the loop), reopen.
 */
#ifndef RC_NET_LISTENER_H
#define RC_NET_LISTENER_H

#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "wloop.h"

struct listener;
/* Called for each accepted, non-blocking, TCP_NODELAY socket. The callee owns fd. */
typedef void (*listener_accept_cb)(struct listener *l, int fd, const struct sockaddr_storage *peer,
                                   socklen_t peer_len);

struct listener {
    struct wio wio;       /* on a worker loop (listener_start) */
    struct wloop *wl;     /* borrowed, or NULL */
    ev_io io;             /* on libev (listener_start_ev) */
    struct ev_loop *loop; /* borrowed, or NULL */
    int fd;
    int spare_fd;
    listener_accept_cb on_accept;
    void *data;
    uint64_t refused_emfile; /* connections dropped for lack of fds */
};

/* Creates a bound, listening, non-blocking socket with SO_REUSEADDR and
 * SO_REUSEPORT. addr is an IPv4 or IPv6 literal; port 0 picks a free port.
 * `first`: the first socket of this process on the port; it fails with
 * -EADDRINUSE when another process already listens there (later sockets of
 * the group join the first one). Returns the fd, or -errno (RC_E_INVAL for a
 * bad address). */
int listener_bind(const char *addr, int port, int backlog, int first);

/* The port a bound socket listens on, or -errno. */
int listener_port(int fd);

/* Wraps an already bound fd (takes ownership) and starts accepting on loop.
 * fd < 0 sets up a listener that never accepts (closing it is a no-op). */
void listener_start(struct listener *l, struct wloop *loop, int fd, listener_accept_cb cb,
                    void *data);
/* The same on a libev loop (the admin endpoint on the main thread). */
void listener_start_ev(struct listener *l, struct ev_loop *loop, int fd, listener_accept_cb cb,
                       void *data);
/* Stops and closes the sockets. Safe to call twice. */
void listener_close(struct listener *l);

#endif
