/* conn.h - one client connection: the state machine from the HTTP upgrade to
 * the closed socket, its send queue, its receiver, and its timers.
 *
 *   HTTP --101--> OPEN --close sent/received--> CLOSING --both done--> LINGER --EOF/timeout-->
 * released
 *     \--error response---------------------------------------------> LINGER
 *
 * LINGER: our side is shut down (FIN sent after the close frame); we keep
 * reading and discarding until the peer's EOF so the kernel never answers
 * unread bytes with an RST that could destroy the close frame in flight.
 *
 * Ownership: created by the worker's accept callback, owned by the worker
 * (worker->conns and its id map), freed only by the worker's ev_prepare
 * reaper after conn_release() put it on worker->reap. conn_close() and
 * conn_release() may be called any number of times and never free.
 * Every function here runs on the owning worker's thread only.
 */
#ifndef RC_APP_CONN_H
#define RC_APP_CONN_H

#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "heartbeat.h"
#include "kv.h"
#include "http_parse.h"
#include "handshake.h"
#include "list.h"
#include "sendq.h"
#include "transport.h"
#include "ws_msg.h"

struct worker;
struct conn;
struct local_room;

#define RC_MAX_HEADERS_PARSE 128

enum conn_state {
    CONN_HTTP = 0,
    CONN_OPEN,
    CONN_CLOSING,
    CONN_LINGER,
    CONN_DEAD,
};

/* What the application (echo, Lua) does with a connection. All callbacks run
 * on the connection's worker; none may free the connection. */
struct conn_handler {
    /* Before the 101. Return 0 to accept (optionally setting *subprotocol to a
     * static or conn-lifetime string), or fill *why and return -1 to refuse. */
    int (*on_upgrade)(struct conn *c, const struct http_request *req, const struct ws_upgrade *up,
                      struct ws_refusal *why, const char **subprotocol);
    void (*on_open)(struct conn *c);
    void (*on_message)(struct conn *c, unsigned opcode, const uint8_t *data, size_t len);
    /* Once, when an OPEN connection stops being open (code 1006 when the TCP
     * connection was lost without a close frame). */
    void (*on_close)(struct conn *c, unsigned code, const uint8_t *reason, size_t reason_len);
    /* Per worker, on the worker's thread: set up (e.g. a Lua state; return 0
     * or a negative error to abort startup), tear down, reload (MAIL_RELOAD),
     * and a periodic tick. Any may be NULL. worker_start runs in the main
     * thread before the worker threads start. */
    int (*worker_start)(struct worker *w);
    void (*worker_stop)(struct worker *w);
    void (*reload)(struct worker *w);
};

/* One room this connection is in (c->rooms[i]). */
struct conn_room {
    struct local_room *room; /* borrowed: the worker's local room */
    uint32_t index;          /* position of c in room->members */
};

struct conn {
    uint64_t id;      /* seq (21 bits) | slot (24) | worker (8): see conn_find */
    struct worker *w; /* borrowed: the owner */
    struct transport t;
    ev_io io;
    uint8_t state;
    uint8_t events;     /* events the io watcher is started with (0 = stopped) */
    unsigned dirty : 1; /* on w->dirty */
    unsigned close_sent : 1;
    unsigned close_recv : 1;
    unsigned failing : 1; /* we failed the connection: don't wait for the peer's close */
    unsigned read_paused : 1;
    unsigned write_blocked : 1;
    unsigned released : 1;
    unsigned notified : 1;  /* on_close delivered */
    unsigned opened : 1;    /* reached OPEN (on_open ran) */
    unsigned upgrading : 1; /* inside on_upgrade: sends and joins are allowed */
    uint16_t close_code;    /* code sent or received, for on_close */
    uint16_t peer_port;
    uint32_t pin; /* > 0: someone up the stack holds it; the reaper waits */
    uint8_t peer_addr[16];
    uint8_t peer_family;
    struct rc_list link;       /* on w->conns, then on w->reap */
    struct rc_list dirty_link; /* on w->dirty */
    struct tnode tn;           /* on one of the worker's timeout lists */
    struct sendq q;
    struct ws_msg rx;
    char *head; /* owned: request head being read; NULL after the upgrade */
    uint32_t head_len, head_cap;
    void *app;               /* the handler's per-connection state */
    char *user;              /* owned: the user id (conn_set_user), NULL when anonymous */
    struct kv *data;         /* owned, created on first set: conn.data */
    struct conn_room *rooms; /* owned array */
    uint16_t nrooms, rooms_cap;
    ev_tstamp soft_since; /* when the queue went over the soft limit, 0 if under */
    double rl_tokens;     /* inbound message rate bucket (guard.c) */
    ev_tstamp rl_last;    /* its last refill, 0 before the first message */
};

/* The live connection with this id on worker w, or NULL (closed, or on
 * another worker). */
struct conn *conn_find(struct worker *w, uint64_t id);

/* Creates a connection for an accepted socket (takes fd) and starts reading. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr_storage *peer);

/* Queues one data frame (copying the payload). Returns 0, RC_E_CLOSED when the
 * connection is not open, RC_E_LIMIT when the send queue is over its hard
 * limit (the frame is dropped and counted), RC_E_NOMEM. */
int conn_send(struct conn *c, unsigned opcode, const void *data, size_t len);

/* Queues a shared, already encoded frame (a reference is taken) under the
 * configured slow-consumer policy: the limits are the hard limit (at once)
 * and the soft limit exceeded for sendq_soft_seconds (Redis's client output
 * buffer limits). Same returns as conn_send. */
int conn_send_ref(struct conn *c, struct frame_ref *f);

/* Queues a shared room frame under a slow-consumer policy (enum slow_policy):
 * over the limits (conn_send_ref's doc) SLOW_DROP drops it, SLOW_CLOSE drops
 * everything pending and closes 1008, SLOW_LATEST drops pending frames with
 * the same tag (room) and queues this one. Same returns as conn_send. */
int conn_deliver(struct conn *c, struct frame_ref *f, int policy);

/* Starts the closing handshake with code/reason (reason may be NULL). Idempotent. */
void conn_close(struct conn *c, unsigned code, const char *reason);

/* Fails the connection (RFC 6455 §7.1.7): sends a close with code and closes
 * the TCP connection after it is flushed, without waiting for the peer. */
void conn_fail(struct conn *c, unsigned code, const char *reason);

/* Tears down now: stops watchers, closes the fd, unlinks, queues for reaping. */
void conn_release(struct conn *c);

/* Writes as much of the send queue as the socket takes (called by the
 * worker's ev_prepare for dirty connections and on EV_WRITE). */
void conn_flush(struct conn *c);

/* Frees a released connection (the reaper). */
void conn_free(struct conn *c);

/* Formats the peer as "ip:port" into buf. Returns buf. */
const char *conn_peer_str(const struct conn *c, char *buf, size_t cap);

/* The heartbeat/timeout callbacks the worker wires to its tlists. */
void conn_on_handshake_timeout(struct tlist *tl, struct tnode *n);
void conn_on_idle(struct tlist *tl, struct tnode *n);
void conn_on_pong_timeout(struct tlist *tl, struct tnode *n);
void conn_on_close_timeout(struct tlist *tl, struct tnode *n);

#endif
