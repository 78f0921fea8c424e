#include "mailbox.h"

#include <string.h>

#include "alloc.h"
#include "defs.h"
#include "log.h"

#define MAIL_CACHE 256
#ifndef RC_SANITIZED
static _Thread_local struct mail *mail_cache[MAIL_CACHE];
static _Thread_local int mail_cached;
#endif

/* The inline payload starts 16-byte aligned after the name (a NEW_CONN
 * mail carries a sockaddr_storage). */
static size_t payload_offset(size_t name_len)
{
    return (name_len + 1 + 15) & ~(size_t)15;
}

struct mail *mail_new(uint32_t type, const char *name, size_t name_len, const void *payload,
                      size_t payload_len)
{
    size_t need = payload_offset(name_len) + (payload ? payload_len : 0);
    struct mail *m;
    if (need <= MAIL_INLINE) {
#ifndef RC_SANITIZED
        if (mail_cached > 0)
            m = mail_cache[--mail_cached];
        else
#endif
            m = rc_xmalloc(sizeof(*m) + MAIL_INLINE);
        memset(m, 0, sizeof(*m));
        m->inline_cap = MAIL_INLINE;
    } else {
        m = rc_xmalloc(sizeof(*m) + name_len + 1);
        memset(m, 0, sizeof(*m));
    }
    m->type = type;
    m->name_len = name_len;
    if (name_len)
        memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
    if (payload) {
        if (m->inline_cap) {
            m->payload = m->name + payload_offset(name_len);
        } else {
            m->payload = rc_try_malloc(payload_len ? payload_len : 1);
            if (m->payload == NULL) {
                rc_free(m);
                return NULL;
            }
        }
        memcpy(m->payload, payload, payload_len);
        m->payload_len = payload_len;
    }
    return m;
}

void mail_free(struct mail *m)
{
    if (m->frame)
        frame_ref_put(m->frame);
    if (m->zframe)
        frame_ref_put(m->zframe);
    if (m->inline_cap == 0) {
        rc_free(m->payload);
        rc_free(m);
        return;
    }
#ifndef RC_SANITIZED
    if (mail_cached < MAIL_CACHE) {
        mail_cache[mail_cached++] = m;
        return;
    }
#endif
    rc_free(m);
}

void mail_cache_flush(void)
{
#ifndef RC_SANITIZED
    while (mail_cached > 0)
        rc_free(mail_cache[--mail_cached]);
#endif
}

static RC_COLD_FN RC_NORETURN void no_receiver(const struct mail *m)
{
    rc_panic("no receiver for mail type %u", m->type);
}

/* Handles m, or the run of mails of m's type that starts with it when its
 * type has a run receiver. Returns the mail after what it handled. */
static struct mail *handle(struct mailbox *mb, struct mail *m)
{
    if (m->type == MAIL_CALL) {
        struct mail *next = m->next;
        m->fn(m->arg);
        mail_free(m);
        return next;
    }
    if (m->type >= MAIL_TYPES)
        no_receiver(m);
    const struct mail_recv *r = &mb->recv[m->type];
    if (r->run != NULL) {
        unsigned n = 1;
        struct mail *last = m;
        while (n < MAIL_RUN_MAX && last->next && last->next->type == m->type) {
            last = last->next;
            n++;
        }
        struct mail *next = last->next;
        r->run(r->ctx, m, n);
        for (unsigned i = 0; i < n; i++) {
            struct mail *f = m;
            m = m->next;
            mail_free(f);
        }
        return next;
    }
    if (r->fn == NULL)
        no_receiver(m);
    struct mail *next = m->next;
    r->fn(r->ctx, m);
    mail_free(m);
    return next;
}

static void drain_list(struct mailbox *mb, struct mail *m)
{
    while (m)
        m = handle(mb, m);
}

void mailbox_drain_local(struct mailbox *mb)
{
    /* Handling may post more local mail: loop until the list stays empty. */
    while (mb->local_head) {
        struct mail *m = mb->local_head;
        mb->local_head = mb->local_tail = NULL;
        drain_list(mb, m);
    }
    /* What the handlers posted to other workers (a room's fan-out to its
     * members' workers) goes now, before this worker's own writes. */
    mailbox_flush_out(mb);
}

static void on_async(struct wloop *loop, struct wasync *a)
{
    struct mailbox *mb = a->data;
    pthread_mutex_lock(&mb->lock);
    struct mail *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    drain_list(mb, m);
    mailbox_flush_out(mb); /* as in mailbox_drain_local */
}

static _Thread_local struct mailbox *thread_mailbox;

/* Appends the list first..last to `to`'s queue under its lock. */
static void hand_over(struct mailbox *to, struct mail *first, struct mail *last)
{
    last->next = NULL;
    pthread_mutex_lock(&to->lock);
    int was_empty = to->head == NULL;
    if (to->tail)
        to->tail->next = first;
    else
        to->head = first;
    to->tail = last;
    pthread_mutex_unlock(&to->lock);
    /* wasync coalesces; one wakeup per empty->non-empty transition is enough
     * because the receiver drains everything it finds. */
    if (was_empty)
        wasync_send(to->loop, &to->async);
}

void mail_post(struct mailbox *from, struct mailbox *to, struct mail *m)
{
    m->next = NULL;
    if (from == to) {
        if (to->local_tail)
            to->local_tail->next = m;
        else
            to->local_head = m;
        to->local_tail = m;
        return;
    }
    if (from && from == thread_mailbox && from->batching) {
        m->to = to;
        if (from->out_tail)
            from->out_tail->next = m;
        else
            from->out_head = m;
        from->out_tail = m;
        return;
    }
    hand_over(to, m, m);
}

void mailbox_flush_out_slow(struct mailbox *mb)
{
    /* Posts made while handing over (none today: hand_over runs no mail)
     * would start a new list; take the whole one first. */
    struct mail *m = mb->out_head;
    mb->out_head = mb->out_tail = NULL;
    while (m) {
        /* The run of consecutive mail to one worker: order across workers
         * stays the post order (what one worker posted to B before it
         * posted to C is in B's queue before C can react to it). */
        struct mail *last = m;
        while (last->next && last->next->to == m->to)
            last = last->next;
        struct mail *rest = last->next;
        hand_over(m->to, m, last);
        m = rest;
    }
}

void mailbox_batch(struct mailbox *mb, int on)
{
    if (!on)
        mailbox_flush_out(mb);
    mb->batching = on;
}

void mail_call(struct mailbox *from, struct mailbox *to, void (*fn)(void *arg), void *arg)
{
    struct mail *m = mail_new(MAIL_CALL, NULL, 0, NULL, 0);
    m->fn = fn;
    m->arg = arg;
    mail_post(from, to, m);
}

void mailbox_bind_thread(struct mailbox *mb)
{
    thread_mailbox = mb;
}

struct mailbox *mailbox_current(void)
{
    return thread_mailbox;
}

void mailbox_init(struct mailbox *mb, struct wloop *loop)
{
    memset(mb, 0, sizeof(*mb));
    pthread_mutex_init(&mb->lock, NULL);
    mb->loop = loop;
    wasync_start(loop, &mb->async, on_async, mb);
}

void mailbox_register(struct mailbox *mb, uint32_t type, mail_receiver fn, mail_discard discard,
                      void *ctx)
{
    RC_ASSERT(type > MAIL_CALL && type < MAIL_TYPES);
    mb->recv[type].fn = fn;
    mb->recv[type].discard = discard;
    mb->recv[type].ctx = ctx;
}

void mailbox_register_run(struct mailbox *mb, uint32_t type, mail_run_receiver run,
                          mail_discard discard, void *ctx)
{
    RC_ASSERT(type > MAIL_CALL && type < MAIL_TYPES);
    mb->recv[type].fn = NULL;
    mb->recv[type].run = run;
    mb->recv[type].discard = discard;
    mb->recv[type].ctx = ctx;
}

static void free_list(struct mailbox *mb, struct mail *m)
{
    while (m) {
        struct mail *n = m->next;
        if (m->type == MAIL_CALL)
            m->fn(m->arg);
        else if (m->type < MAIL_TYPES && mb->recv[m->type].discard)
            mb->recv[m->type].discard(mb->recv[m->type].ctx, m);
        mail_free(m);
        m = n;
    }
}

int mailbox_quiesce(struct mailbox *mb)
{
    int n = 0;
    /* A call run here may post more: loop until both lists stay empty. */
    for (;;) {
        pthread_mutex_lock(&mb->lock);
        struct mail *a = mb->head;
        mb->head = mb->tail = NULL;
        pthread_mutex_unlock(&mb->lock);
        struct mail *b = mb->local_head;
        mb->local_head = mb->local_tail = NULL;
        /* An outbox left by a loop that did not flush it (mailbox_batch
         * off flushes): handed over, its receivers' quiesce runs it. */
        int out = mb->out_head != NULL;
        mailbox_flush_out(mb);
        if (a == NULL && b == NULL && !out)
            return n;
        n++;
        free_list(mb, a);
        free_list(mb, b);
    }
}

void mailbox_destroy(struct mailbox *mb)
{
    mailbox_quiesce(mb);
    if (mb->loop)
        wasync_stop(mb->loop, &mb->async);
    pthread_mutex_destroy(&mb->lock);
}
