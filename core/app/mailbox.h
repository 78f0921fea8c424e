/* mailbox.h - messages between workers: an MPSC queue per worker (a short
 * mutex around an intrusive list; producers only append) drained on an
 * wakeup (wasync, wloop.h) by the owning worker. A worker posting to itself skips the lock
 * and the wakeup: the mail goes on a local list drained before the loop sleeps, so
 * nothing a handler posts runs inside the handler (no re-entrancy).
 *
 *   worker A --mail_post--> [lock| m1 -> m2 -> m3 |unlock] --wasync---> worker B drains all
 *                                                                          |
 *                                      B's receiver for m->type (ctx, m) <-'
 *
 * The mailbox knows no mail but MAIL_CALL: every other type is handled by the
 * receiver its module registered on the worker's mailbox (h2o's
 * h2o_multithread_register_receiver), with that module's own context:
 *
 *   MAIL_CALL       mailbox itself: runs fn(arg) (store_host.post, bus_host.base.post)
 *   MAIL_DELIVER    room.c: a sequenced room frame for this worker's members
 *   MAIL_SEND_CONN  conn.c: one frame for one connection
 *   MAIL_CLOSE_CONN conn.c: close one connection
 *   MAIL_RELOAD     worker.c: reload the handler state (Lua)
 *   MAIL_NEW_CONN   worker.c: an accepted socket handed over (accept_handoff)
 *
 * Ownership moves with the mail: the sender owns it until mail_post, the
 * receiver after (the mailbox frees it when the receiver returns). A
 * frame_ref inside holds one reference owned by the mail. Per (sender,
 * receiver) pair, mails are delivered in posting order.
 */
#ifndef RC_APP_MAILBOX_H
#define RC_APP_MAILBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "frame_ref.h"
#include "wloop.h"

enum mail_type {
    MAIL_CALL = 0,   /* run fn(arg) on the receiving worker */
    MAIL_DELIVER,    /* owner -> a worker with members: send frame to local members */
    MAIL_SEND_CONN,  /* to a conn's worker: send frame to that connection */
    MAIL_CLOSE_CONN, /* to a conn's worker: close it (code in flags, reason in payload) */
    MAIL_RELOAD,     /* reload the handler state (Lua) */
    MAIL_NEW_CONN,   /* handoff accept: conn_id is the fd, payload the peer sockaddr */
    MAIL_TYPES
};

struct mail {
    struct mail *next;
    struct mailbox *to; /* while on the sender's outbox (mailbox_flush_out) */
    uint32_t type;
    uint32_t flags;
    uint64_t conn_id;         /* exclude (DELIVER) or target (SEND/CLOSE) */
    uint64_t seq;             /* DELIVER: the message's seq (0: unsequenced) */
    struct frame_ref *frame;  /* owned reference, or NULL */
    struct frame_ref *zframe; /* DELIVER: owned reference to the permessage-deflate
                                 variant of frame, or NULL (deflate.h) */
    void (*fn)(void *arg);    /* MAIL_CALL */
    void *arg;                /* MAIL_CALL: owned by fn */
    char *payload;            /* NULL, inside this block (inline_cap > 0), or owned */
    size_t payload_len;
    size_t name_len;
    uint32_t inline_cap; /* MAIL_INLINE for a recyclable block holding name and payload */
    char name[];         /* room name, NUL-terminated; an inline payload follows, aligned */
};

/* Name and payload up to this many bytes travel inside the mail itself, and
 * such mails are recycled per thread, so a small publish allocates nothing. */
#define MAIL_INLINE 512

/* A module's handler for one mail type, on the receiving worker's thread.
 * The mailbox frees m after it returns. */
typedef void (*mail_receiver)(void *ctx, struct mail *m);
/* Optional: a mail of this type that no receiver will see (teardown). Frees
 * what the mail stands for (e.g. closes a handed-over fd); not m itself. */
typedef void (*mail_discard)(void *ctx, struct mail *m);
/* Optional, instead of a mail_receiver: the run of consecutive mails of one
 * type found in one drain (first, first->next, ... n of them, n >= 1, at
 * most MAIL_RUN_MAX), in order, so that a receiver can do once what the run
 * shares (room.c merges a room's consecutive deliveries into one member
 * walk). The mailbox frees them after it returns; the receiver must not
 * follow first's list past the n-th. */
typedef void (*mail_run_receiver)(void *ctx, struct mail *first, unsigned n);
#define MAIL_RUN_MAX 64

/* One worker's mailbox. Embedded in struct worker; set up by mailbox_init. */
struct mailbox {
    pthread_mutex_t lock;
    struct mail *head, *tail;             /* under lock */
    struct mail *local_head, *local_tail; /* self-posted, no lock */
    /* Posted by this mailbox's worker to other workers during one loop
     * iteration, in post order, handed over by mailbox_flush_out before the
     * loop sleeps (no lock: the worker's thread only). */
    struct mail *out_head, *out_tail;
    int batching;       /* mailbox_batch: posts from the bound thread go to the outbox */
    struct wloop *loop; /* borrowed */
    struct wasync async;
    struct mail_recv {
        mail_receiver fn;
        mail_run_receiver run; /* set instead of fn (mailbox_register_run) */
        mail_discard discard;
        void *ctx;
    } recv[MAIL_TYPES]; /* written before the worker starts, then read-only */
};

/* Allocates a mail with a copy of name (may be NULL/0) and, when payload is
 * not NULL, a copy of payload. Aborts on OOM (fixed small sizes), but payload
 * copies use try_ allocation: returns NULL when it fails. */
struct mail *mail_new(uint32_t type, const char *name, size_t name_len, const void *payload,
                      size_t payload_len);
void mail_free(struct mail *m);
/* Frees the calling thread's cache of recycled mails (at thread exit). */
void mail_cache_flush(void);

/* Hands m to mailbox `to` (any thread; from: the sender's own mailbox, or
 * NULL off the workers). Never fails. */
/* Posts m to `to`'s worker. from: the sender's own mailbox (NULL off the
 * workers); from == to queues it as local mail. While from batches
 * (mailbox_batch) and this thread is bound to it, a post to another worker
 * waits on from's outbox until mailbox_flush_out: one lock and at most one
 * wakeup per run of mail to the same worker, however many were posted. */
void mail_post(struct mailbox *from, struct mailbox *to, struct mail *m);

/* Turns the outbox on or off (the worker's thread, as its loop starts and
 * after it ends; off flushes). */
void mailbox_batch(struct mailbox *mb, int on);
/* Hands the outbox to its receivers, in post order: each run of mail to
 * one worker is appended under one lock, with one wakeup when that
 * worker's queue was empty. Draining a mailbox (its inbound mail, or its
 * local mail) ends with it, so what a batch of mail makes (a room's
 * fan-out) goes on at once; the worker calls it again before its loop
 * sleeps, so any other post waits at most for the rest of the iteration
 * that made it. */
void mailbox_flush_out_slow(struct mailbox *mb);
static inline void mailbox_flush_out(struct mailbox *mb)
{
    if (mb->out_head)
        mailbox_flush_out_slow(mb);
}

/* Runs fn(arg) later on `to`'s worker (never synchronously). Any thread.
 * Never fails. At teardown, a call still queued runs on the main thread
 * (mailbox_destroy) so that arg is never leaked. */
void mail_call(struct mailbox *from, struct mailbox *to, void (*fn)(void *arg), void *arg);

/* Sets up mb on loop (main thread, before the worker starts). */
void mailbox_init(struct mailbox *mb, struct wloop *loop);
/* Registers the receiver of one mail type (main thread, before the worker
 * starts). A mail without a receiver is a bug: rc_panic. */
void mailbox_register(struct mailbox *mb, uint32_t type, mail_receiver fn, mail_discard discard,
                      void *ctx);
/* Registers a run receiver (mail_run_receiver) for one mail type instead. */
void mailbox_register_run(struct mailbox *mb, uint32_t type, mail_run_receiver run,
                          mail_discard discard, void *ctx);
/* The mailbox of the worker running on the calling thread (set by the
 * worker thread with mailbox_bind_thread), or NULL off the workers. */
void mailbox_bind_thread(struct mailbox *mb);
struct mailbox *mailbox_current(void);
/* Drains the local (self-posted) list; called before the loop sleeps. */
void mailbox_drain_local(struct mailbox *mb);
/* Main thread, worker stopped: discards what is queued, but runs the
 * MAIL_CALLs (so that their arg is never leaked). Returns nonzero when it
 * found anything (a call may have posted to another mailbox: the caller
 * repeats over every mailbox until none finds anything). */
int mailbox_quiesce(struct mailbox *mb);
/* Main thread, worker stopped: quiesces, then tears down. */
void mailbox_destroy(struct mailbox *mb);

#endif
