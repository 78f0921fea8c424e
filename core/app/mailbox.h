/* mailbox.h - messages between workers: an MPSC queue per worker (a short
 * mutex around an intrusive list; producers only append) drained on an
 * ev_async by the owning worker. A worker posting to itself skips the lock
 * and the wakeup: the mail goes on a local list drained in ev_prepare, so
 * nothing a handler posts runs inside the handler (no re-entrancy).
 *
 *   worker A --mail_post--> [lock| m1 -> m2 -> m3 |unlock] --ev_async--> worker B drains all
 *
 * Ownership moves with the mail: the sender owns it until mail_post, the
 * receiver after. A frame_ref inside holds one reference owned by the mail.
 * Per (sender, receiver) pair, mails are delivered in posting order.
 */
#ifndef RC_APP_MAILBOX_H
#define RC_APP_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "frame_ref.h"

struct worker;

enum mail_type {
    MAIL_PUBLISH = 1, /* to a room's owner: sequence, store, fan out */
    MAIL_DELIVER,     /* owner -> a worker with members: send frame to local members */
    MAIL_SEND_CONN,   /* to a conn's worker: send frame to that connection */
    MAIL_CLOSE_CONN,  /* to a conn's worker: close it (code in flags, reason in payload) */
    MAIL_RELOAD,      /* reload the handler state (Lua) */
    MAIL_NEW_CONN,    /* handoff accept: conn_id is the fd, payload the peer sockaddr */
};

#define MAIL_F_BINARY 0x1u
#define MAIL_F_STAMP 0x2u

struct mail {
    struct mail *next;
    uint32_t type;
    uint32_t flags;
    uint64_t conn_id;        /* exclude (PUBLISH/DELIVER) or target (SEND/CLOSE) */
    struct frame_ref *frame; /* owned reference, or NULL */
    char *payload;           /* NULL, inside this block (inline_cap > 0), or owned */
    size_t payload_len;
    size_t name_len;
    uint32_t inline_cap; /* MAIL_INLINE for a recyclable block holding name and payload */
    char name[];         /* room name, NUL-terminated; an inline payload follows, aligned */
};

/* Name and payload up to this many bytes travel inside the mail itself, and
 * such mails are recycled per thread, so a small publish allocates nothing. */
#define MAIL_INLINE 512

/* Allocates a mail with a copy of name (may be NULL/0) and, when payload is
 * not NULL, a copy of payload. Aborts on OOM (fixed small sizes), but payload
 * copies use try_ allocation: returns NULL when it fails. */
struct mail *mail_new(uint32_t type, const char *name, size_t name_len, const void *payload,
                      size_t payload_len);
void mail_free(struct mail *m);
/* Frees the calling thread's cache of recycled mails (at thread exit). */
void mail_cache_flush(void);

/* Hands m to worker `to` (any thread). Never fails. */
void mail_post(struct worker *from, struct worker *to, struct mail *m);

/* Worker-side: set up / tear down the mailbox watchers (worker.c calls these). */
void mailbox_init(struct worker *w);
void mailbox_destroy(struct worker *w);
/* Drains the local (self-posted) list; called from ev_prepare. */
void mailbox_drain_local(struct worker *w);

#endif
