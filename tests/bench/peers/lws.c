/* lws.c - benchmark peer on libwebsockets: echo or one-room fan-out.
 *
 *   peer_lws echo|fanout PORT
 *
 * echo:   every message goes back to its sender, same opcode.
 * fanout: every connection is a member of one room; every message received is
 *         sent to every connection (the sender too), binary stays binary.
 *
 * A message is copied once into a refcounted buffer with LWS_PRE headroom and
 * each recipient's queue holds a reference (server frames are unmasked, so the
 * header lws writes into the headroom is the same for every recipient). A
 * queue that is full drops the message for that recipient and counts it: a
 * slow member never blocks the others. Single-threaded, lws's own loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#define QCAP 4096 /* messages queued per connection before dropping */

/* Shared by every queue that references it; freed at refs == 0. */
struct msg {
    int refs;
    int binary;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then the payload */
};

/* Per connection; lws allocates and frees it (per_session_data_size). */
struct sess {
    struct lws *wsi;
    struct sess *prev, *next; /* all members */
    struct msg *q[QCAP];
    unsigned head, n;
    unsigned char *part; /* message being assembled */
    size_t part_len, part_cap;
    int part_bin;
};

static int g_fanout;
static struct sess *g_members;
static unsigned long long g_dropped;
static volatile sig_atomic_t g_stop;

static void msg_unref(struct msg *m)
{
    if (--m->refs == 0)
        free(m);
}

static void enqueue(struct sess *s, struct msg *m)
{
    if (s->n == QCAP) {
        g_dropped++;
        return;
    }
    s->q[(s->head + s->n) % QCAP] = m;
    s->n++;
    m->refs++;
    lws_callback_on_writable(s->wsi);
}

static int deliver(struct sess *from)
{
    struct msg *m = malloc(sizeof(*m) + LWS_PRE + from->part_len);
    if (!m)
        return -1;
    m->refs = 1; /* ours until the loop below is done */
    m->binary = from->part_bin;
    m->len = from->part_len;
    memcpy(m->buf + LWS_PRE, from->part, from->part_len);
    if (g_fanout) {
        for (struct sess *s = g_members; s; s = s->next)
            enqueue(s, m);
    } else {
        enqueue(from, m);
    }
    msg_unref(m);
    from->part_len = 0;
    return 0;
}

static int on_receive(struct lws *wsi, struct sess *s, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi)) {
        s->part_len = 0;
        s->part_bin = lws_frame_is_binary(wsi);
    }
    if (s->part_len + len > s->part_cap) {
        size_t cap = s->part_cap ? s->part_cap : 1024;
        while (cap < s->part_len + len)
            cap *= 2;
        if (cap > (16u << 20))
            return -1;
        unsigned char *p = realloc(s->part, cap);
        if (!p)
            return -1;
        s->part = p;
        s->part_cap = cap;
    }
    memcpy(s->part + s->part_len, in, len);
    s->part_len += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
        return deliver(s);
    return 0;
}

static int on_writeable(struct lws *wsi, struct sess *s)
{
    /* Several messages per callback while the socket takes them
     * (lws_send_pipe_choked), not one per poll round. */
    do {
        if (s->n == 0)
            return 0;
        struct msg *m = s->q[s->head];
        s->head = (s->head + 1) % QCAP;
        s->n--;
        int w =
            lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        int short_write = w < (int)m->len;
        msg_unref(m);
        if (short_write)
            return -1;
    } while (!lws_send_pipe_choked(wsi));
    if (s->n)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct sess *s = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof(*s));
        s->wsi = wsi;
        s->next = g_members;
        if (g_members)
            g_members->prev = s;
        g_members = s;
        break;
    case LWS_CALLBACK_CLOSED:
        if (s->prev)
            s->prev->next = s->next;
        else if (g_members == s)
            g_members = s->next;
        if (s->next)
            s->next->prev = s->prev;
        while (s->n) {
            msg_unref(s->q[s->head]);
            s->head = (s->head + 1) % QCAP;
            s->n--;
        }
        free(s->part);
        s->part = NULL;
        break;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, s);
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, sizeof(struct sess), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "fanout") != 0)) {
        fprintf(stderr, "usage: peer_lws echo|fanout PORT\n");
        return 2;
    }
    g_fanout = strcmp(argv[1], "fanout") == 0;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = atoi(argv[2]);
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "peer_lws: cannot listen on port %s\n", argv[2]);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening %d\n", info.port);
    fflush(stdout);
    while (!g_stop && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    if (g_dropped)
        fprintf(stderr, "peer_lws: dropped %llu messages for slow members\n", g_dropped);
    return 0;
}
