/* store.h - the history seam: where a room's sequenced messages are kept.
 *
 * The room actor's publish runs in four stages (DESIGN.md "The room
 * pipeline"); the store is the second:
 *
 *   publish (any worker) -> sequence (owner) -> store.append -> encode once -> fan-out
 *
 *   owner worker (room actor)                     implementation
 *   first use of a room ---- room_open ---------> last seq + epoch, from memory
 *   each seq, in order ----- append ------------> memory: ring; sqlite: queue -> writer thread;
 *                                                 redis: nothing (the publish script wrote it)
 *   any worker ------------- read --------------> answer later on that worker (host->post)
 *   main thread, SIGTERM --- flush -------------> returns when everything appended is durable
 *
 * Implementations: store_mem.c (today's ring), store_sqlite.c (the embedded
 * default), store_redis.c (cluster mode: the room's stream). A store never
 * sees a struct conn or a worker, only room names, seqs and bytes, and it
 * reaches the workers only through the host it was given (no include of
 * core/app headers: ext sits beside app, not above it).
 *
 * Threads and ownership:
 *   - room_open and append run on the room's owner worker and must never wait
 *     on I/O (a worker's loop never waits on SQLite or Redis). They copy what
 *     they keep, or take a reference to `frame` (frame_ref_get) and drop it
 *     when the entry leaves the store.
 *   - read may be called from any worker; it never calls back synchronously:
 *     cb runs exactly once, later, on worker `worker`'s thread (through
 *     host->post), unless read returned an error (then never).
 *   - flush and destroy run on the main thread after the workers stopped
 *     (destroy) or while they drain (flush).
 */
#ifndef RC_EXT_STORE_H
#define RC_EXT_STORE_H

#include <stddef.h>
#include <stdint.h>

struct frame_ref;

/* An epoch is a short printable string (no quotes, no backslash) that
 * changes only when a room's history is lost or reset (Centrifugo's epoch). */
#define STORE_EPOCH_MAX 16

/* How a store (or a bus) reaches the workers. Filled by the server. */
struct store_host {
    void *ctx;
    int nworkers;
    /* Runs fn(arg) later on worker `worker`'s thread, through its mailbox.
     * Any thread, never fails, never runs fn synchronously. */
    void (*post)(void *ctx, int worker, void (*fn)(void *arg), void *arg);
};

/* What a store knows of a room. */
struct store_room {
    uint64_t last_seq; /* the seq to continue from (0: a new room) */
    char epoch[STORE_EPOCH_MAX + 1];
};

/* One stored message. `data` is the payload as members received it (for
 * stamped JSON: with ,"seq":N,"ts":MS spliced in). */
struct store_msg {
    uint64_t seq;
    int64_t ts_ms;  /* wall clock, milliseconds since the epoch */
    uint32_t flags; /* ROOM_PUB_BINARY and friends (room.h) */
    const char *data;
    size_t len;
};

/* A read's answer handed over message by message, on the thread that has
 * it (the encoding of a large answer: DESIGN.md "A worker's loop never
 * waits on SQLite", and it should not copy megabytes another thread can
 * build, nor copy them twice). See store_query.sink.
 *
 *   begin(info, desc, bytes)   once, first
 *   row(m) ... row(m)          each message of the answer, in one order:
 *                              oldest first, or newest first when desc
 *   end(status)                once, last: cb will get the same status
 *                              (not 0: what the sink built is to be
 *                              dropped by cb; rows may have come before)
 *
 * m->data is valid during row() only (the SQLite store gives the bytes of
 * the statement's column, not a copy of its own). bytes: the store's guess of the payload
 * bytes to come (a hint for one allocation, not a promise; 0: none). A
 * sink touches nothing but its argument (no Lua, no worker state). */
struct store_sink {
    void (*begin)(void *arg, const struct store_room *info, int desc, size_t bytes);
    void (*row)(void *arg, const struct store_msg *m);
    void (*end)(void *arg, int status);
    /* 1: row() reads only m->flags, m->data and m->len; a store may then
     * leave m->seq and m->ts_ms 0 (the SQLite store does not fetch them:
     * two columns fewer per row). 0: every field. */
    int payload_only;
};

/* A range read. Results always come oldest first (cb's msgs; a sink is
 * told the order it gets: begin's desc).
 *   since:  only seq > since;
 *   before: only seq < before (0: no upper bound);
 *   limit:  at most this many (1..STORE_READ_MAX);
 *   newest: when more match than limit, keep the newest `limit` (paging
 *           backwards, "the last 50"); else the oldest (replay after since). */
struct store_query {
    uint64_t since;
    uint64_t before;
    uint32_t limit;
    int newest;
    /* Optional (NULL: none). A store runs the sink (begin, rows, end) AT
     * MOST once per read, before cb and on any thread: the SQLite store on
     * its reader thread, straight from the database's rows; the Redis store
     * on its bus thread; the memory store on the asking worker just before
     * cb (store_sink_feed). cb then finds the sink's result through
     * sink_arg (the post to the worker orders the sink's writes before cb).
     * When the sink ran, cb's msgs may be NULL and n 0 (the SQLite store
     * keeps no copy of what it streamed). A caller must not rely on the
     * sink having run: cb does the work itself from msgs when it did not
     * (the read failed before any row, or the store stopped). */
    const struct store_sink *sink;
    void *sink_arg;
};
#define STORE_READ_MAX 1000

/* status: 0, or a negative RC_* code (RC_E_NOT_FOUND: no such room is not an
 * error: it gives status 0, n 0 and info->last_seq 0). info: the room's last
 * seq and epoch at the time of the read. msgs/n: valid during the call only. */
typedef void (*store_read_cb)(void *ud, int status, const struct store_room *info,
                              const struct store_msg *msgs, size_t n);

/* Runs q's sink (when it has one) over an answer held in an array, oldest
 * first: for the stores that have the whole answer at hand. Any thread. */
static inline void store_sink_feed(const struct store_query *q, const struct store_room *info,
                                   const struct store_msg *msgs, size_t n)
{
    if (q->sink == NULL)
        return;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += msgs[i].len;
    q->sink->begin(q->sink_arg, info, 0, bytes);
    for (size_t i = 0; i < n; i++)
        q->sink->row(q->sink_arg, &msgs[i]);
    q->sink->end(q->sink_arg, 0);
}

struct store;

struct store_ops {
    const char *name; /* "memory", "sqlite", "redis" */
    /* Owner worker: the room's state when its actor is created. Never waits
     * on I/O. Returns 0 or a negative code (the room then starts at seq 0
     * with a fresh epoch, and the error is logged). */
    int (*room_open)(struct store *st, const char *room, size_t len, struct store_room *out);
    /* Owner worker, in seq order per room. `frame` (may be NULL) holds the
     * encoded frame whose bytes at data are the payload: an implementation
     * may keep a reference instead of copying. Returns 0, or RC_E_DENIED
     * when the store refuses writes (store_errors = "refuse" while it is
     * degraded): the caller then refuses the publish with `unavailable`. */
    int (*append)(struct store *st, const char *room, size_t len, const struct store_msg *m,
                  struct frame_ref *frame);
    /* Any worker. 0 (cb will run once, later, on `worker`) or a negative code
     * (cb will not run). */
    int (*read)(struct store *st, int worker, const char *room, size_t len,
                const struct store_query *q, store_read_cb cb, void *ud);
    /* Any thread: 0 healthy, 1 degraded (why: a short reason, NUL-terminated). */
    int (*health)(struct store *st, char *why, size_t cap);
    /* Main thread: blocks until everything appended so far is durable. */
    void (*flush)(struct store *st);
    /* Main thread, workers stopped: flushes and frees everything. */
    void (*destroy)(struct store *st);
    /* Owner worker, may be NULL: the room's actor is gone (no members and
     * idle for a while). A memory store forgets the room (its seq starts
     * again at 0, as a restart would); a durable store ignores it. */
    void (*room_close)(struct store *st, const char *room, size_t len);
};

/* Every store starts with this; implementations embed it first. */
struct store {
    const struct store_ops *ops;
    struct store_host host;
};

#endif
