/* test_conn.c - the connection state machine (app/conn.c) driven through a
 * scripted transport (support/script_transport.h) on a real worker loop
 * (net/wloop.h):
 * the upgrade and frames at every byte split, partial writes and EAGAIN,
 * the closing handshake both ways and its timeouts, heartbeat expiry, the
 * three slow-consumer policies, a close while a flush is pending, and the
 * hooks the modules above register.
 *
 * A test "iteration" is what a worker does: run the loop once without
 * blocking (watchers, timers), then its before-sleep work (flush the dirty
 * connections, free the released ones). Timeouts are set to tens of
 * milliseconds and the test sleeps past them before the iteration; nothing
 * here measures speed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "closecode.h"
#include "config.h"
#include "confload.h"
#include "conn.h"
#include "err.h"
#include "frame_ref.h"
#include "guard.h"
#include "mailbox.h"
#include "room.h"
#include "script_transport.h"
#include "stats.h"
#include "wloop.h"
#include "ws_frame.h"

static const char REQUEST[] = "GET /ws HTTP/1.1\r\n"
                              "Host: example.test\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; /* RFC 6455 §1.3 */

/* What the handler saw. */
static struct {
    int opens, messages, closes;
    char msg[8][512];
    size_t msg_len[8];
    unsigned msg_op[8];
    unsigned close_code;
} rec;

static void h_open(struct conn *c)
{
    rec.opens++;
}

static void h_message(struct conn *c, unsigned opcode, const uint8_t *data, size_t len)
{
    if (rec.messages < 8) {
        size_t n = len < sizeof(rec.msg[0]) ? len : sizeof(rec.msg[0]);
        memcpy(rec.msg[rec.messages], data, n);
        rec.msg_len[rec.messages] = len;
        rec.msg_op[rec.messages] = opcode;
    }
    rec.messages++;
}

static void h_close(struct conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    rec.closes++;
    rec.close_code = code;
}

static const struct conn_handler handler = {
    .on_open = h_open,
    .on_message = h_message,
    .on_close = h_close,
};

struct fx {
    struct wloop *loop;
    struct rc_config cfg;
    struct worker_stats stats;
    struct connset cs;
    struct script sc;
    struct conn *c;
    uint64_t id;
    int peer_fd;
    long live0;
};

static struct fx F;

/* Timeouts of the next fixture (seconds); tests shorten the one they test. */
static struct {
    double hs, idle, pong, close;
} T = {5, 30, 30, 5};

/* The connection's socket never becomes readable or writable by itself:
 * nobody writes to its peer, and its send buffer is filled up. Every event
 * comes from the test (the io callback called directly). */
static void fx_setup(void)
{
    memset(&rec, 0, sizeof(rec));
    F.live0 = frame_ref_live();
    F.loop = wloop_new();
    assert_non_null(F.loop);
    rc_config_defaults(&F.cfg);
    F.cfg.handshake_timeout = 5;
    F.cfg.ping_interval = 30;
    F.cfg.pong_timeout = 30;
    F.cfg.close_timeout = 5;
    memset(&F.stats, 0, sizeof(F.stats));
    connset_init(&F.cs, 0, F.loop, &F.cfg, &F.stats, &handler, NULL);
    F.cs.hs_list.timeout = T.hs;
    F.cs.idle_list.timeout = T.idle;
    F.cs.pong_list.timeout = T.pong;
    F.cs.close_list.timeout = T.close;
    script_init(&F.sc);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    char junk[4096] = {0};
    while (write(sv[0], junk, sizeof(junk)) > 0) {
    }
    F.peer_fd = sv[1];
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    peer.ss_family = AF_INET;
    F.c = conn_new(&F.cs, sv[0], &peer);
    F.id = F.c->id;
    script_attach(&F.c->t, &F.sc);
}

static void fx_teardown(void)
{
    conn_release_all(&F.cs);
    connset_destroy(&F.cs);
    wloop_free(F.loop);
    close(F.peer_fd);
    script_free(&F.sc);
    rc_config_free(&F.cfg);
    rc_live_shutdown(); /* set_fanout_delay's snapshots */
    sendq_cache_flush();
    frame_ref_cache_flush();
    assert_int_equal(frame_ref_live(), F.live0);
    T.hs = 5;
    T.idle = T.pong = 30;
    T.close = 5;
}

/* One worker iteration. */
static void iterate(void)
{
    wloop_run_once(F.loop);
    conn_flush_dirty(&F.cs);
    conn_reap(&F.cs);
}

/* The connection, or NULL once it was released and freed. */
static struct conn *live(void)
{
    return conn_find(&F.cs, F.id);
}

/* What the fixture's connection counts in allocs_now: connections come
 * from blocks outside alloc.h (conn.c's slab) unless sanitized. */
#ifdef RC_SANITIZED
#define FX_CONN_ALLOCS 1
#else
#define FX_CONN_ALLOCS 0
#endif

/* Blocks live through alloc.h, the per-thread frame caches emptied first. */
static long allocs_now(void)
{
    sendq_cache_flush();
    frame_ref_cache_flush();
    return rc_alloc_live();
}

static void readable(void)
{
    struct conn *c = live();
    assert_non_null(c);
    c->io.cb(&c->io, WL_READ);
    iterate();
}

static void writable(void)
{
    struct conn *c = live();
    assert_non_null(c);
    c->io.cb(&c->io, WL_WRITE);
    iterate();
}

/* Sleeps past a timeout, then iterates (the tlist timers fire). */
static void after(double seconds)
{
    usleep((useconds_t)(seconds * 1e6));
    iterate();
}

/* A masked client frame. */
static size_t client_frame(uint8_t *out, int fin, unsigned op, const void *p, size_t len)
{
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t hl = ws_frame_encode_header(out, fin, 0, op, len, key);
    memcpy(out + hl, p, len);
    ws_mask(out + hl, len, key, 0);
    return hl + len;
}

static size_t client_close(uint8_t *out, unsigned code, const char *reason)
{
    uint8_t pl[125];
    size_t n = ws_close_payload(pl, code, reason, strlen(reason));
    return client_frame(out, 1, WS_OP_CLOSE, pl, n);
}

/* The server frames after the 101 response head. */
struct sframe {
    unsigned op;
    const uint8_t *p;
    size_t len;
};

static int server_frames(struct sframe *fr, int max)
{
    const uint8_t *o = F.sc.out;
    size_t n = F.sc.out_len, at = 0;
    const char *end = memmem(o, n, "\r\n\r\n", 4);
    if (end)
        at = (size_t)((const uint8_t *)end - o) + 4;
    int k = 0;
    while (at + 2 <= n && k < max) {
        unsigned op = o[at] & 0x0f;
        size_t len = o[at + 1] & 0x7f, hl = 2;
        assert_int_equal(o[at + 1] & 0x80, 0); /* server frames are never masked */
        if (len == 126) {
            len = ((size_t)o[at + 2] << 8) | o[at + 3];
            hl = 4;
        } else if (len == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | o[at + 2 + i];
            hl = 10;
        }
        assert_true(at + hl + len <= n);
        fr[k].op = op;
        fr[k].p = o + at + hl;
        fr[k].len = len;
        k++;
        at += hl + len;
    }
    assert_int_equal(at, n); /* nothing but whole frames */
    return k;
}

static unsigned close_code_of(const struct sframe *f)
{
    assert_int_equal(f->op, WS_OP_CLOSE);
    assert_true(f->len >= 2);
    return ((unsigned)f->p[0] << 8) | f->p[1];
}

static void upgrade(void)
{
    script_input(&F.sc, REQUEST, sizeof(REQUEST) - 1);
    readable();
    assert_non_null(live());
    assert_int_equal(live()->state, CONN_OPEN);
    assert_true(F.sc.out_len > 12 && memcmp(F.sc.out, "HTTP/1.1 101", 12) == 0);
    assert_non_null(memmem(F.sc.out, F.sc.out_len, ACCEPT, strlen(ACCEPT)));
}

/* ------------------------------------------------------------------------ */

/* The request head and a first frame, cut in two at every byte. */
static void test_conn__upgrade_and_first_frame_at_every_byte_split(void **state)
{
    uint8_t all[1024];
    size_t n = sizeof(REQUEST) - 1;
    memcpy(all, REQUEST, n);
    n += client_frame(all + n, 1, WS_OP_TEXT, "hello", 5);
    for (size_t cut = 1; cut < n; cut++) {
        fx_setup();
        script_input(&F.sc, all, cut);
        readable();
        script_input(&F.sc, all + cut, n - cut);
        readable();
        assert_non_null(live());
        assert_int_equal(live()->state, CONN_OPEN);
        assert_int_equal(rec.opens, 1);
        assert_int_equal(rec.messages, 1);
        assert_int_equal(rec.msg_len[0], 5);
        assert_memory_equal(rec.msg[0], "hello", 5);
        assert_non_null(memmem(F.sc.out, F.sc.out_len, ACCEPT, strlen(ACCEPT)));
        fx_teardown();
    }
}

/* A ping, a fragmented text message and a binary one, arriving one byte per
 * read, then cut in two at every byte. */
static void test_conn__frames_at_every_byte_split(void **state)
{
    uint8_t all[256];
    size_t n = 0;
    n += client_frame(all + n, 1, WS_OP_PING, "p", 1);
    n += client_frame(all + n, 0, WS_OP_TEXT, "hel", 3);
    n += client_frame(all + n, 1, WS_OP_CONT, "lo", 2);
    n += client_frame(all + n, 1, WS_OP_BINARY, "xyz", 3);
    for (size_t cut = 0; cut < n; cut++) {
        fx_setup();
        upgrade();
        if (cut == 0) {
            F.sc.read_max = 1; /* every byte its own read */
            script_input(&F.sc, all, n);
            for (size_t i = 0; i < n; i++)
                readable();
        } else {
            script_input(&F.sc, all, cut);
            readable();
            script_input(&F.sc, all + cut, n - cut);
            readable();
        }
        assert_int_equal(rec.messages, 2);
        assert_int_equal(rec.msg_op[0], WS_OP_TEXT);
        assert_int_equal(rec.msg_len[0], 5);
        assert_memory_equal(rec.msg[0], "hello", 5);
        assert_int_equal(rec.msg_op[1], WS_OP_BINARY);
        assert_memory_equal(rec.msg[1], "xyz", 3);
        struct sframe fr[4];
        assert_int_equal(server_frames(fr, 4), 1);
        assert_int_equal(fr[0].op, WS_OP_PONG);
        assert_int_equal(fr[0].len, 1);
        assert_memory_equal(fr[0].p, "p", 1);
        fx_teardown();
    }
}

/* The socket takes 7 bytes per writev, then nothing (EAGAIN): the queue
 * keeps its offset, WL_WRITE is armed, and the bytes come out whole and in
 * order once it is writable again. */
static void test_conn__partial_writes_and_eagain(void **state)
{
    fx_setup();
    upgrade();
    size_t head = F.sc.out_len;
    char big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    F.sc.write_max = 7;
    unsigned w0 = F.sc.writevs;
    assert_int_equal(conn_send(live(), WS_OP_TEXT, big, sizeof(big)), 0);
    iterate();
    assert_true(F.sc.writevs - w0 >= (sizeof(big) + 4) / 7);
    assert_int_equal(F.sc.out_len, head + 4 + sizeof(big));
    assert_int_equal(live()->write_blocked, 0);

    F.sc.write_eagain = 1;
    assert_int_equal(conn_send(live(), WS_OP_BINARY, "0123456789", 10), 0);
    assert_int_equal(conn_send(live(), WS_OP_TEXT, "tail", 4), 0);
    iterate();
    assert_int_equal(F.sc.out_len, head + 4 + sizeof(big)); /* nothing went out */
    assert_int_equal(live()->write_blocked, 1);
    assert_true(live()->io.events & WL_WRITE);
    iterate(); /* not dirty while blocked: no writev is tried per iteration */
    assert_int_equal(live()->write_blocked, 1);

    F.sc.write_eagain = 0;
    F.sc.write_max = 3; /* a partial write first, the rest on the next event */
    writable();
    F.sc.write_max = 0;
    if (live()->write_blocked)
        writable();
    assert_int_equal(live()->write_blocked, 0);
    assert_false(live()->io.events & WL_WRITE);
    struct sframe fr[4];
    assert_int_equal(server_frames(fr, 4), 3);
    assert_int_equal(fr[0].len, sizeof(big));
    assert_memory_equal(fr[0].p, big, sizeof(big));
    assert_int_equal(fr[1].op, WS_OP_BINARY);
    assert_memory_equal(fr[1].p, "0123456789", 10);
    assert_int_equal(fr[2].op, WS_OP_TEXT);
    assert_memory_equal(fr[2].p, "tail", 4);
    fx_teardown();
}

/* The peer closes: on_close(1000) once, the close is echoed, our side
 * shuts down (LINGER), and the peer's EOF releases the connection. */
static void test_conn__close_handshake_from_the_peer(void **state)
{
    fx_setup();
    upgrade();
    uint8_t b[64];
    script_input(&F.sc, b, client_close(b, 1000, "bye"));
    readable();
    assert_int_equal(rec.closes, 1);
    assert_int_equal(rec.close_code, 1000);
    struct sframe fr[4];
    assert_int_equal(server_frames(fr, 4), 1);
    assert_int_equal(close_code_of(&fr[0]), 1000);
    assert_int_equal(live()->state, CONN_LINGER);
    assert_int_equal(F.sc.shutdowns, 1);
    F.sc.in_eof = 1;
    readable();
    assert_null(live());
    assert_int_equal(F.sc.destroyed, 1);
    assert_int_equal(rec.closes, 1);
    fx_teardown();
}

/* We close: the close frame goes out, we wait for the peer's, then LINGER. */
static void test_conn__close_handshake_from_us(void **state)
{
    fx_setup();
    upgrade();
    conn_close(live(), 1001, "going away");
    conn_close(live(), 1000, "twice"); /* idempotent */
    iterate();
    assert_int_equal(rec.closes, 1);
    assert_int_equal(rec.close_code, 1001);
    struct sframe fr[4];
    assert_int_equal(server_frames(fr, 4), 1);
    assert_int_equal(close_code_of(&fr[0]), 1001);
    assert_memory_equal(fr[0].p + 2, "going away", 10);
    assert_int_equal(live()->state, CONN_CLOSING);
    assert_int_equal(F.sc.shutdowns, 0);
    /* Data after our close is not delivered. */
    uint8_t b[64];
    size_t n = client_frame(b, 1, WS_OP_TEXT, "late", 4);
    n += client_close(b + n, 1001, "");
    script_input(&F.sc, b, n);
    readable();
    assert_int_equal(rec.messages, 0);
    assert_int_equal(live()->state, CONN_LINGER);
    assert_int_equal(F.sc.shutdowns, 1);
    fx_teardown();
}

/* A peer that never answers our close, or never sends EOF after it, is
 * released after close_timeout. */
static void test_conn__close_timeouts(void **state)
{
    /* CLOSING: our close sent, the peer silent. */
    T.close = 0.03;
    fx_setup();
    upgrade();
    conn_close(live(), 1000, "");
    iterate();
    assert_non_null(live());
    after(0.06);
    assert_null(live());
    fx_teardown();

    /* LINGER: handshake done, no EOF. */
    T.close = 0.03;
    fx_setup();
    upgrade();
    uint8_t b[64];
    script_input(&F.sc, b, client_close(b, 1000, ""));
    readable();
    assert_int_equal(live()->state, CONN_LINGER);
    after(0.06);
    assert_null(live());
    fx_teardown();
}

/* A client that sends half a head and stops gets 408; one that sends
 * nothing is dropped. */
static void test_conn__handshake_timeout(void **state)
{
    T.hs = 0.03;
    fx_setup();
    script_input(&F.sc, REQUEST, 20);
    readable();
    after(0.06);
    assert_true(F.sc.out_len > 12 && memcmp(F.sc.out, "HTTP/1.1 408", 12) == 0);
    assert_int_equal(STAT_GET(&F.stats, handshake_timeouts_total), 1);
    fx_teardown();

    T.hs = 0.03;
    fx_setup();
    after(0.06);
    assert_null(live());
    assert_int_equal(F.sc.out_len, 0);
    fx_teardown();
}

/* Idle: a ping after ping_interval; no pong within pong_timeout: close 1001. */
static void test_conn__heartbeat_expiry(void **state)
{
    T.idle = T.pong = 0.03;
    fx_setup();
    upgrade();
    after(0.05);
    struct sframe fr[8];
    assert_int_equal(server_frames(fr, 8), 1);
    assert_int_equal(fr[0].op, WS_OP_PING);
    assert_int_equal(STAT_GET(&F.stats, pings_sent_total), 1);
    after(0.05);
    assert_int_equal(server_frames(fr, 8), 2);
    assert_int_equal(close_code_of(&fr[1]), 1001);
    assert_int_equal(STAT_GET(&F.stats, heartbeat_closes_total), 1);
    assert_int_equal(rec.closes, 1);
    fx_teardown();

    /* Answered: the pong deadline is cancelled, no close. */
    T.idle = T.pong = 0.03;
    fx_setup();
    upgrade();
    after(0.05);
    uint8_t b[32];
    script_input(&F.sc, b, client_frame(b, 1, WS_OP_PONG, "rc", 2));
    readable();
    after(0.02);
    int k = server_frames(fr, 8);
    for (int i = 0; i < k; i++)
        assert_int_not_equal(fr[i].op, WS_OP_CLOSE);
    assert_int_equal(STAT_GET(&F.stats, heartbeat_closes_total), 0);
    assert_int_equal(live()->state, CONN_OPEN);
    fx_teardown();
}

static struct frame_ref *room_frame(uint64_t tag, char mark, size_t len)
{
    char p[512];
    memset(p, mark, len);
    struct frame_ref *f = frame_ref_encode(WS_OP_TEXT, 0, p, len);
    f->tag = tag;
    return f;
}

/* A new fixture for the slow-consumer tests: send queue limits of 1000
 * bytes (hard) and 900 (soft, for a minute), upgraded, and its socket
 * blocked (EAGAIN): what is delivered stays queued. */
static void slow_fx_setup(void)
{
    fx_setup();
    F.cfg.sendq_hard_limit = 1000;
    F.cfg.sendq_soft_limit = 900;
    F.cfg.sendq_soft_seconds = 60;
    upgrade();
    F.sc.write_eagain = 1;
}

/* The socket takes bytes again: what was queued goes out; returns how many
 * frames the server has written in all (server_frames). */
static int unblocked_frames(struct sframe *fr, int max)
{
    F.sc.write_eagain = 0;
    writable();
    return server_frames(fr, max);
}

/* Over the hard limit a room frame is dropped (and counted); the
 * connection and what it already has queued are untouched. */
static void test_conn__slow_consumer_drop(void **state)
{
    slow_fx_setup();
    int ok = 0, limited = 0;
    for (int i = 0; i < 5; i++) {
        struct frame_ref *f = room_frame(7, (char)('A' + i), 300);
        int rc = conn_deliver(live(), f, SLOW_DROP);
        frame_ref_put(f);
        if (rc == 0)
            ok++;
        else if (rc == RC_E_LIMIT)
            limited++;
    }
    assert_int_equal(ok, 3);
    assert_int_equal(limited, 2);
    assert_int_equal(STAT_GET(&F.stats, drops_total), 2);
    struct sframe fr[8];
    assert_int_equal(unblocked_frames(fr, 8), 3);
    assert_int_equal(fr[2].p[0], 'C');
    assert_int_equal(live()->state, CONN_OPEN);
    fx_teardown();
}

/* SLOW_CLOSE: what the client never started to read is dropped and a close
 * 1008 is next in line. */
static void test_conn__slow_consumer_close(void **state)
{
    slow_fx_setup();
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) {
        struct frame_ref *f = room_frame(7, 'x', 300);
        rc = conn_deliver(live(), f, SLOW_CLOSE);
        frame_ref_put(f);
    }
    assert_int_equal(rc, RC_E_LIMIT);
    assert_int_equal(STAT_GET(&F.stats, slow_closes_total), 1);
    assert_int_equal(rec.closes, 1);
    assert_int_equal(rec.close_code, WS_CLOSE_POLICY);
    struct sframe fr[8];
    assert_int_equal(unblocked_frames(fr, 8), 1);
    assert_int_equal(close_code_of(&fr[0]), WS_CLOSE_POLICY);
    /* failing: no wait for the peer's close once ours is out */
    assert_int_equal(live()->state, CONN_LINGER);
    fx_teardown();
}

/* SLOW_LATEST: over the limit, pending frames of the same room give way to
 * the newest; other rooms' frames stay. */
static void test_conn__slow_consumer_latest(void **state)
{
    slow_fx_setup();
    const struct {
        uint64_t tag;
        char mark;
    } seq[] = {{1, 'a'}, {2, 'B'}, {1, 'c'}, {1, 'd'}};
    for (size_t i = 0; i < 4; i++) {
        struct frame_ref *f = room_frame(seq[i].tag, seq[i].mark, 300);
        assert_int_equal(conn_deliver(live(), f, SLOW_LATEST), 0);
        frame_ref_put(f);
    }
    struct sframe fr[8];
    assert_int_equal(unblocked_frames(fr, 8), 2);
    assert_int_equal(fr[0].p[0], 'B');
    assert_int_equal(fr[1].p[0], 'd');
    assert_int_equal(STAT_GET(&F.stats, drops_total), 2);
    fx_teardown();
}

/* conn_deliver_batched queues what conn_deliver would and counts the same:
 * the common case's counts land at conn_batch_end, or before any member
 * takes the general path (here the same member again, its queue no longer
 * empty), so the counters never fall behind what that path sees. */
static void test_conn__batched_delivery(void **state)
{
    slow_fx_setup();
    uint64_t msgs0 = STAT_GET(&F.stats, msgs_out_total);
    uint64_t bytes0 = STAT_GET(&F.stats, queued_bytes);
    struct frame_ref *a = room_frame(7, 'a', 300);
    struct frame_ref *b = room_frame(7, 'b', 300);
    struct deliver_batch batch;
    conn_batch_begin(&batch, a, SLOW_DROP, &F.cfg);
    assert_int_equal(conn_deliver_batched(live(), &batch), 0);
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0); /* not yet */
    conn_batch_end(&batch);
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 1);
    assert_int_equal(STAT_GET(&F.stats, queued_bytes), bytes0 + a->len);

    conn_batch_begin(&batch, b, SLOW_DROP, &F.cfg);
    assert_int_equal(conn_deliver_batched(live(), &batch), 0); /* behind a */
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 2);
    assert_int_equal(conn_deliver_batched(live(), &batch), 0);
    assert_int_equal(conn_deliver_batched(live(), &batch), RC_E_LIMIT); /* 4 x 304 > 1000 */
    conn_batch_end(&batch);
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 3);
    assert_int_equal(STAT_GET(&F.stats, drops_total), 1);
    assert_int_equal(STAT_GET(&F.stats, queued_bytes), bytes0 + a->len + 2 * b->len);
    frame_ref_put(a);
    frame_ref_put(b);

    struct sframe fr[8];
    assert_int_equal(unblocked_frames(fr, 8), 3);
    assert_int_equal(fr[0].p[0], 'a');
    assert_int_equal(fr[1].p[0], 'b');
    assert_int_equal(fr[2].p[0], 'b');
    assert_int_equal(STAT_GET(&F.stats, queued_bytes), bytes0);
    fx_teardown();
}

/* A close while data waits for a blocked socket goes behind the data. */
static void test_conn__close_during_pending_flush(void **state)
{
    fx_setup();
    upgrade();
    F.sc.write_eagain = 1;
    assert_int_equal(conn_send(live(), WS_OP_TEXT, "first", 5), 0);
    iterate();
    conn_close(live(), 1000, "done");
    assert_int_equal(conn_send(live(), WS_OP_TEXT, "after", 5), RC_E_CLOSED);
    iterate();
    assert_int_equal(live()->state, CONN_CLOSING);
    struct sframe fr[8];
    assert_int_equal(unblocked_frames(fr, 8), 2);
    assert_int_equal(fr[0].op, WS_OP_TEXT);
    assert_memory_equal(fr[0].p, "first", 5);
    assert_int_equal(close_code_of(&fr[1]), 1000);
    assert_int_equal(F.sc.shutdowns, 0); /* the peer's close is still owed */
    uint8_t b[32];
    script_input(&F.sc, b, client_close(b, 1000, ""));
    readable();
    assert_int_equal(live()->state, CONN_LINGER);
    assert_int_equal(F.sc.shutdowns, 1);
    fx_teardown();
}

/* A read error or a write error releases the connection (1006 to the handler). */
static void test_conn__io_errors_release(void **state)
{
    fx_setup();
    upgrade();
    F.sc.read_error = -ECONNRESET;
    readable();
    assert_null(live());
    assert_int_equal(rec.close_code, WS_CLOSE_ABNORMAL);
    fx_teardown();

    fx_setup();
    upgrade();
    F.sc.write_error = -EPIPE;
    assert_int_equal(conn_send(live(), WS_OP_TEXT, "x", 1), 0);
    iterate();
    assert_null(live());
    fx_teardown();
}

/* Hooks: the modules above learn of user changes and releases without conn
 * knowing them. */
static int hook_log[16], hook_n;
static char user_seen[16][32];

static void release_a(void *ctx, struct conn *c)
{
    hook_log[hook_n++] = 1;
}

static void release_b(void *ctx, struct conn *c)
{
    hook_log[hook_n++] = 2;
}

static void user_hook(void *ctx, struct conn *c, const char *old)
{
    snprintf(user_seen[hook_n], sizeof(user_seen[0]), "%s>%s", old ? old : "-",
             conn_user(c) ? conn_user(c) : "-");
    hook_log[hook_n++] = 3;
}

static void test_conn__hooks_run_in_order(void **state)
{
    hook_n = 0;
    fx_setup();
    conn_hook_release(&F.cs, release_a, NULL);
    conn_hook_release(&F.cs, release_b, NULL);
    conn_hook_user(&F.cs, user_hook, NULL);
    upgrade();
    assert_int_equal(conn_set_user(live(), "alice", 5), 0);
    assert_int_equal(conn_set_user(live(), "alice", 5), 0); /* unchanged: no hook */
    assert_int_equal(conn_set_user(live(), "", 0), RC_E_INVAL);
    assert_int_equal(conn_set_user(live(), "bob", 3), 0);
    conn_release(live());
    iterate();
    assert_null(live());
    assert_int_equal(hook_n, 5);
    assert_int_equal(hook_log[0], 3);
    assert_string_equal(user_seen[0], "->alice");
    assert_string_equal(user_seen[1], "alice>bob");
    assert_int_equal(hook_log[2], 1);
    assert_int_equal(hook_log[3], 2);
    assert_int_equal(hook_log[4], 3);
    assert_string_equal(user_seen[4], "bob>-");
    fx_teardown();
}

/* A head longer than the first buffer (HEAD_INITIAL) arriving 100 bytes per
 * read grows c->head, which gives its place to the receiver at the upgrade
 * (a union) while the frames pipelined behind it are fed from its bytes;
 * one longer than max_head is refused with 431, and nothing is left. */
static void test_conn__long_head_in_pieces(void **state)
{
    char req[8192];
    char pad[3000];
    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    int n = snprintf(req, sizeof(req),
                     "GET /ws HTTP/1.1\r\nHost: example.test\r\nX-Pad: %s\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     pad);
    size_t len = (size_t)n;
    len += client_frame((uint8_t *)req + len, 0, WS_OP_TEXT, "pipe", 4);
    len += client_frame((uint8_t *)req + len, 1, WS_OP_CONT, "lined", 5);
    fx_setup();
    long live0 = allocs_now();
    F.sc.read_max = 100;
    script_input(&F.sc, req, len);
    readable();
    assert_non_null(live());
    assert_int_equal(live()->state, CONN_OPEN);
    assert_non_null(memmem(F.sc.out, F.sc.out_len, ACCEPT, strlen(ACCEPT)));
    assert_int_equal(rec.messages, 1);
    assert_int_equal(rec.msg_len[0], 9);
    assert_memory_equal(rec.msg[0], "pipelined", 9);
    assert_ptr_equal(live()->rx, &F.cs.rx_scratch[0]); /* the head is gone, rx idle */
    assert_int_equal(allocs_now(), live0);
    fx_teardown();

    fx_setup();
    F.cfg.max_head = 2048;
    F.sc.read_max = 100;
    script_input(&F.sc, req, len);
    readable();
    assert_true(F.sc.out_len > 12 && memcmp(F.sc.out, "HTTP/1.1 431", 12) == 0);
    assert_int_equal(rec.opens, 0);
    conn_release(live());
    iterate();
    fx_teardown();
}

/* The peer address: IPv4 and IPv4-mapped IPv6 in 4 bytes of the conn, other
 * IPv6 in the cold part; formatted as before, and the per-IP cap (guard.c)
 * counts each at accept and uncounts it at the release from what conn keeps. */
static void test_conn__peer_kept_compact(void **state)
{
    static const struct {
        int family;
        const char *ip;
        int kind;
        const char *str;
    } V[] = {
        {AF_INET, "192.0.2.7", PEER_V4, "192.0.2.7:4242"},
        {AF_INET6, "::ffff:192.0.2.7", PEER_V4MAPPED, "[::ffff:192.0.2.7]:4242"},
        {AF_INET6, "2001:db8::1", PEER_V6, "[2001:db8::1]:4242"},
    };
    fx_setup();
    long live0 = allocs_now();
    F.cfg.max_conns_per_ip = 1;
    assert_true(rc_live_publish(&F.cfg) >= 0);
    guard_init(&F.cfg);
    guard_attach(&F.cs, NULL, NULL);
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = (sa_family_t)V[i].family;
        if (V[i].family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            assert_int_equal(inet_pton(AF_INET, V[i].ip, &s4->sin_addr), 1);
            s4->sin_port = htons(4242);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            assert_int_equal(inet_pton(AF_INET6, V[i].ip, &s6->sin6_addr), 1);
            s6->sin6_port = htons(4242);
        }
        assert_int_equal(guard_accept(&F.stats, 0, &ss), 0);
        assert_int_equal(guard_accept(&F.stats, 0, &ss), RC_E_LIMIT); /* the cap is 1 */
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        struct conn *c = conn_new(&F.cs, sv[0], &ss);
        assert_int_equal(c->peer_kind, V[i].kind);
        if (V[i].kind == PEER_V6)
            assert_non_null(c->cold);
        else
            assert_null(c->cold);
        char buf[64];
        assert_string_equal(conn_peer_str(c, buf, sizeof(buf)), V[i].str);
        conn_release(c); /* uncounts the address */
        assert_string_equal(conn_peer_str(c, buf, sizeof(buf)), V[i].str); /* until freed */
        iterate();
        close(sv[1]);
        assert_int_equal(guard_accept(&F.stats, 0, &ss), 0);
        assert_int_equal(guard_accept(&F.stats, 0, &ss), RC_E_LIMIT);
    }
    guard_destroy();
    rc_live_shutdown();
    conn_release(live());
    iterate();
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS); /* the fixture's conn went */
    fx_teardown();
}

static int list_len(const struct rc_list *head)
{
    int n = 0;
    for (const struct rc_list *p = head->next; p != head; p = p->next)
        n++;
    return n;
}

/* Connections come from blocks of slots (conn.c's slab): more connections
 * than one block holds, all released, leave one block with free slots (the
 * others go back to the system); new connections reuse its slots. Under
 * sanitizers each conn is its own allocation and no block exists. */
static void test_conn__slab_blocks_come_and_go(void **state)
{
    enum { N = 400 }; /* over two blocks of 216-byte slots */
    static struct conn *cs[N];
    static int peers[N];
    fx_setup();
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_INET;
    for (int i = 0; i < N; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        cs[i] = conn_new(&F.cs, sv[0], &ss);
        peers[i] = sv[1];
        for (int k = 0; k < i; k += 37)
            assert_ptr_not_equal(cs[k], cs[i]);
    }
#ifndef RC_SANITIZED
    assert_int_equal(list_len(&F.cs.conn_blocks), 1); /* the full ones are off the list */
#endif
    for (int i = 0; i < N; i += 2) /* every other one, then the rest */
        conn_release(cs[i]);
    iterate();
    for (int i = 1; i < N; i += 2)
        conn_release(cs[i]);
    conn_release(live());
    iterate();
#ifndef RC_SANITIZED
    assert_int_equal(list_len(&F.cs.conn_blocks), 1); /* one kept, the others freed */
#else
    assert_int_equal(list_len(&F.cs.conn_blocks), 0);
#endif
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct conn *again = conn_new(&F.cs, sv[0], &ss);
    assert_int_equal(again->state, CONN_HTTP);
    assert_null(again->cold); /* a reused slot starts zeroed */
    assert_int_equal(again->pin, 0);
    for (int i = 0; i < N; i++)
        close(peers[i]);
    close(sv[1]);
    fx_teardown();
}

/* ------------------------------------------------------------------------
 * the cold part (struct conn_cold): what an idle connection does not hold
 * ------------------------------------------------------------------------ */

/* A second upgraded connection in F's set, on its own script. */
static struct conn *second_conn(struct script *sc, int *peer_fd)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    *peer_fd = sv[1];
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    peer.ss_family = AF_INET;
    struct conn *c = conn_new(&F.cs, sv[0], &peer);
    script_init(sc);
    script_attach(&c->t, sc);
    script_input(sc, REQUEST, sizeof(REQUEST) - 1);
    c->io.cb(&c->io, WL_READ);
    iterate();
    assert_int_equal(c->state, CONN_OPEN);
    return c;
}

/* The fixture with two upgraded connections: F's (returned) and a second
 * one on its own script *sc2 (*c2, peer end *fd2). */
static struct conn *two_conns(struct script *sc2, int *fd2, struct conn **c2)
{
    fx_setup();
    upgrade();
    *c2 = second_conn(sc2, fd2);
    return live();
}

/* A user, then none: the cold part comes and goes with it. */
static void test_conn__cold_part_follows_the_user(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    upgrade();
    assert_null(live()->cold);                           /* upgraded and idle: nothing cold */
    assert_int_equal(conn_set_user(live(), NULL, 0), 0); /* none, still none */
    assert_null(live()->cold);
    assert_int_equal(conn_set_user(live(), "alice", 5), 0);
    assert_non_null(live()->cold);
    assert_string_equal(conn_user(live()), "alice");
    assert_int_equal(conn_set_user(live(), NULL, 0), 0);
    assert_null(conn_user(live()));
    assert_null(live()->cold);
    /* Set again, then released with it: freed with the connection. */
    assert_int_equal(conn_set_user(live(), "bob", 3), 0);
    conn_release(live());
    iterate();
    assert_null(live());
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS); /* the fixture's conn went */
    fx_teardown();
}

/* Rooms for one worker (this fixture's loop, stats and connection set),
 * with its mailbox, and the fixture's connection upgraded (returned);
 * rooms_fx_down at the end. */
static struct conn *one_worker_rooms(struct mailbox *mb, struct rooms *R)
{
    mailbox_init(mb, F.loop);
    rooms_init(R, 1, &F.cfg, NULL, NULL);
    rooms_attach(R, 0, F.loop, mb, &F.stats, &F.cs);
    upgrade();
    return live();
}

/* The rooms tests' teardown: the GC timer leaves the loop's heap before the
 * rooms' memory goes; the deliveries' recycled mails are freed, so that the
 * allocation count that follows sees only what leaked. */
static void rooms_fx_down(struct rooms *r, struct mailbox *mb)
{
    wtimer_stop(F.loop, &r->part[0].gc);
    rooms_destroy(r);
    mailbox_destroy(mb);
    mail_cache_flush();
}

/* Rooms live in the cold part: joins create it, the last leave frees it, a
 * member that moves in a room's array keeps the right index (leave_at), and
 * the release leaves what is left. */
static void test_conn__cold_part_follows_the_rooms(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    struct mailbox mb;
    struct rooms R;
    one_worker_rooms(&mb, &R);
    struct script sc2;
    int fd2;
    struct conn *c2 = second_conn(&sc2, &fd2);
    uint64_t id2 = c2->id;
    struct conn *c = live();
    assert_null(c->cold);
    assert_null(c2->cold);
    assert_int_equal(room_join(&R, c, "a", 1), 0);
    assert_int_equal(room_join(&R, c2, "a", 1), 0);
    assert_int_equal(room_join(&R, c, "b", 1), 0);
    assert_int_equal(room_join(&R, c, "b", 1), RC_E_EXISTS);
    assert_non_null(c->cold);
    assert_int_equal(c->cold->nrooms, 2);
    assert_int_equal(room_count(&R, "a", 1), 2);
    /* c leaves "a": c2 moves to c's place in a's members */
    assert_int_equal(room_leave(&R, c, "a", 1), 0);
    assert_int_equal(room_leave(&R, c, "a", 1), RC_E_NOT_FOUND);
    assert_int_equal(c2->cold->rooms[0].index, 0);
    assert_int_equal(room_count(&R, "a", 1), 1);
    assert_true(room_is_member(c2, "a", 1));
    assert_int_equal(room_leave(&R, c, "b", 1), 0); /* its last room */
    assert_null(c->cold);
    assert_false(room_is_member(c, "b", 1));
    assert_int_equal(room_leave(&R, c2, "a", 1), 0);
    assert_null(c2->cold);
    /* Joined and released: the release hook leaves, the release frees. */
    assert_int_equal(room_join(&R, c2, "z", 1), 0);
    assert_int_equal(conn_set_user(c2, "carol", 5), 0);
    conn_release(c2);
    iterate();
    assert_null(conn_find(&F.cs, id2));
    assert_int_equal(room_count(&R, "z", 1), 0);
    conn_release(live());
    iterate();
    close(fd2);
    script_free(&sc2);
    rooms_fx_down(&R, &mb);                                 /* the loop outlives the rooms here */
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS); /* the fixture's conn went */
    fx_teardown();
}

/* The owner's delivery of seq `seq` (a frame of one byte mark), handled. */
static void deliver_seq(struct rooms *R, struct mailbox *mb, uint64_t seq, char mark)
{
    struct frame_ref *f = room_frame(7, mark, 1);
    struct store_msg m = {.seq = seq};
    room_deliver_frame(R, "r", 1, &m, f, 0);
    frame_ref_put(f);
    mailbox_drain_local(mb);
}

/* What the fixture's connection received since the last call, as marks. */
static void got_marks(char *out, size_t cap, size_t *seen)
{
    struct sframe fr[32];
    int n = server_frames(fr, 32);
    size_t k = 0;
    for (int i = (int)*seen; i < n && k + 1 < cap; i++)
        out[k++] = (char)fr[i].p[0];
    out[k] = '\0';
    *seen = (size_t)n;
}

/* The owner's delivery of a `len`-byte frame of marks to `room`, not drained. */
static void post_in(struct rooms *R, const char *room, char mark, size_t len, uint64_t exclude)
{
    struct frame_ref *f = room_frame(7, mark, len);
    struct store_msg m = {.seq = 0};
    room_deliver_frame(R, room, strlen(room), &m, f, exclude);
    frame_ref_put(f);
}

/* A room's consecutive deliveries found in one drain reach a member as one
 * frame by reference (one walk: its queue holds the run whole, no private
 * copy); another room's delivery, another excluded sender or the "latest"
 * policy end a run; order and counts are those of one walk per message; a
 * run that would put a member over a queue limit goes part by part, so the
 * policy drops exactly what it would have. */
static void test_conn__room_deliveries_merge(void **state)
{
    fx_setup();
    /* fanout_delay 0 for the fan-out to read (published before live0: the
     * teardown frees it) */
    struct rc_config snap = F.cfg;
    assert_true(rc_live_publish(&snap) >= 0);
    long live0 = allocs_now();
    F.cfg.sendq_hard_limit = 1000;
    F.cfg.sendq_soft_limit = 900;
    F.cfg.sendq_soft_seconds = 60;
    struct mailbox mb;
    struct rooms R;
    struct conn *c = one_worker_rooms(&mb, &R);
    assert_int_equal(room_join(&R, c, "r", 1), 0);
    assert_int_equal(room_join(&R, c, "s", 1), 0);
    uint64_t msgs0 = STAT_GET(&F.stats, msgs_out_total);
    size_t seen = 0;
    char marks[32];

    post_in(&R, "r", '1', 10, 0);
    post_in(&R, "r", '2', 10, 0);
    post_in(&R, "r", '3', 10, 0);
    mailbox_drain_local(&mb);
    assert_non_null(c->q.one);
    assert_null(c->q.lanes); /* one entry: the run, by reference */
    assert_false(c->q.one->flags & FRAME_PRIVATE);
    assert_int_equal(c->q.one->len, 3 * 12);
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 3);
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "123");

    post_in(&R, "r", '4', 10, 0);
    post_in(&R, "s", 'a', 10, 0);
    post_in(&R, "r", '5', 10, 0);
    post_in(&R, "r", '6', 10, c->id); /* excluded: not for c */
    post_in(&R, "r", '7', 10, 0);
    mailbox_drain_local(&mb);
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "4a57");
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 7);

    /* 4 x 304 bytes > the hard limit: three queue, the fourth is dropped */
    F.sc.write_eagain = 1;
    for (char k = 'A'; k <= 'D'; k++)
        post_in(&R, "r", k, 300, 0);
    mailbox_drain_local(&mb);
    assert_int_equal(STAT_GET(&F.stats, drops_total), 1);
    assert_int_equal(STAT_GET(&F.stats, msgs_out_total), msgs0 + 10);
    F.sc.write_eagain = 0;
    writable();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "ABC");

    conn_release(c);
    iterate();
    rooms_fx_down(&R, &mb);
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS);
    fx_teardown();
}

/* A recovering member (ROOM_JOIN_HOLD): outside the fan-out while it
 * waits, its deliveries held; released after seq 2: the held 3 and 4, a
 * late copy of 4 dropped, 5 live and it is a fan-out member again; the
 * hold bounded by recover_hold (lost); leaving while held frees it all. */
static void test_conn__room_hold_and_release(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    F.cfg.recover_hold = 3;
    struct mailbox mb;
    struct rooms R;
    struct conn *c = one_worker_rooms(&mb, &R);
    size_t seen = 0;
    char marks[32];
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    assert_true(room_is_member(c, "r", 1));
    assert_int_equal(room_count(&R, "r", 1), 1);
    assert_int_equal(room_hold_state(c, "r", 1), 1);
    deliver_seq(&R, &mb, 1, '1');
    deliver_seq(&R, &mb, 2, '2');
    deliver_seq(&R, &mb, 3, '3');
    deliver_seq(&R, &mb, 4, '4');
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, ""); /* held */
    /* 4 > recover_hold = 3: the fourth dropped them all */
    assert_int_equal(room_hold_state(c, "r", 1), 0);
    assert_int_equal(room_leave(&R, c, "r", 1), 0); /* frees the hold */

    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    deliver_seq(&R, &mb, 1, '1');
    deliver_seq(&R, &mb, 2, '2');
    deliver_seq(&R, &mb, 3, '3');
    assert_int_equal(room_hold_state(c, "r", 1), 1);
    /* the replay went up to 2 (the script sent it): 3 follows */
    assert_int_equal(room_release(&R, c, "r", 1, 2), 1);
    assert_int_equal(room_release(&R, c, "r", 1, 2), RC_E_NOT_FOUND);
    assert_int_equal(room_hold_state(c, "r", 1), RC_E_NOT_FOUND);
    deliver_seq(&R, &mb, 3, 'x'); /* a late copy (the store answered first) */
    deliver_seq(&R, &mb, 4, '4');
    deliver_seq(&R, &mb, 5, '5');
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "345");
    assert_int_not_equal(c->cold->rooms[0].index, UINT32_MAX); /* in the fan-out list */

    /* unsequenced deliveries (seq 0) are never part of a replay */
    assert_int_equal(room_leave(&R, c, "r", 1), 0);
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    deliver_seq(&R, &mb, 0, 'z');
    deliver_seq(&R, &mb, 9, '9');
    assert_int_equal(room_release(&R, c, "r", 1, 9), 1);
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "z");

    conn_release(c); /* waiting (released, nothing newer yet): the leave frees the hold */
    iterate();
    rooms_fx_down(&R, &mb);
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS);
    fx_teardown();
}

static void deliver_in(struct rooms *R, struct mailbox *mb, const char *room, uint64_t seq,
                       char mark)
{
    struct frame_ref *f = room_frame(7, mark, 1);
    struct store_msg m = {.seq = seq};
    room_deliver_frame(R, room, strlen(room), &m, f, 0);
    frame_ref_put(f);
    mailbox_drain_local(mb);
}

/* room_hold_end, the core's end of a wait its handler left (lua/API.md
 * "Held joins"): nothing sent since the join -> released after 0 (what was
 * held, in order, then live); something sent (c->sent_mark, which lapi sets
 * on every send) -> nothing more reaches it and the caller closes it; only
 * its own wait (token), once; a second held join keeps what the first one's
 * mark said; the held frames of an ended wait go at once. */
static void test_conn__room_hold_end(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    F.cfg.recover_hold = 8;
    struct mailbox mb;
    struct rooms R;
    struct conn *c = one_worker_rooms(&mb, &R);
    size_t seen = 0;
    char marks[32];
    long q = -1;

    /* nothing sent: released after 0 */
    assert_int_equal(room_hold_token(c, "r", 1), 0); /* not a member */
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    uint64_t t = room_hold_token(c, "r", 1);
    assert_true(t != 0);
    deliver_seq(&R, &mb, 1, '1');
    deliver_seq(&R, &mb, 2, '2');
    assert_int_equal(room_hold_end(&R, c, "r", 1, t + 1, &q), RC_E_NOT_FOUND); /* not its wait */
    assert_int_equal(room_hold_end(&R, c, "r", 1, 0, &q), RC_E_NOT_FOUND);
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "");
    assert_int_equal(room_hold_end(&R, c, "r", 1, t, &q), ROOM_HOLD_END_RELEASED);
    assert_int_equal(q, 2);
    assert_int_equal(room_hold_end(&R, c, "r", 1, t, &q), RC_E_NOT_FOUND); /* once */
    assert_int_equal(room_hold_token(c, "r", 1), 0);
    deliver_seq(&R, &mb, 3, '3');
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "123");
    assert_int_equal(room_leave(&R, c, "r", 1), 0);

    /* a released wait is the script's: the core leaves it alone */
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    t = room_hold_token(c, "r", 1);
    assert_int_equal(room_release(&R, c, "r", 1, 0), 0);
    assert_int_equal(room_hold_end(&R, c, "r", 1, t, &q), RC_E_NOT_FOUND);
    assert_int_equal(room_leave(&R, c, "r", 1), 0);

    /* sent since the join: ended, gets nothing more, the caller closes */
    c->sent_mark = 1; /* before the join: does not count */
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    t = room_hold_token(c, "r", 1);
    assert_int_equal(c->sent_mark, 0);
    deliver_seq(&R, &mb, 4, '4');
    c->sent_mark = 1; /* a `joined` (lapi marks every send) */
    long before = allocs_now();
    assert_int_equal(room_hold_end(&R, c, "r", 1, t, &q), ROOM_HOLD_END_CLOSE);
    assert_int_equal(q, 0);
    assert_true(allocs_now() < before); /* the held frame went at once */
    assert_int_equal(room_hold_state(c, "r", 1), RC_E_NOT_FOUND);
    assert_int_equal(room_release(&R, c, "r", 1, 0), RC_E_NOT_FOUND);
    deliver_seq(&R, &mb, 5, '5');
    deliver_seq(&R, &mb, 0, 'z'); /* unsequenced: not either */
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "");
    assert_true(room_is_member(c, "r", 1)); /* until the close's leave */
    assert_int_equal(room_leave(&R, c, "r", 1), 0);

    /* two waits: the second join keeps what was sent since the first */
    c->sent_mark = 0;
    assert_int_equal(room_join_ex(&R, c, "a", 1, ROOM_JOIN_HOLD), 0);
    uint64_t ta = room_hold_token(c, "a", 1);
    c->sent_mark = 1; /* a's joined */
    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    uint64_t tr = room_hold_token(c, "r", 1);
    assert_true(tr != ta);
    deliver_in(&R, &mb, "a", 1, 'a');
    deliver_seq(&R, &mb, 6, '6');
    assert_int_equal(room_hold_end(&R, c, "r", 1, tr, &q), ROOM_HOLD_END_RELEASED);
    assert_int_equal(q, 1);
    assert_int_equal(room_hold_end(&R, c, "a", 1, ta, &q), ROOM_HOLD_END_CLOSE);
    iterate();
    got_marks(marks, sizeof(marks), &seen);
    assert_string_equal(marks, "6");

    conn_release(c); /* leaves both, frees the ended wait */
    iterate();
    rooms_fx_down(&R, &mb);
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS);
    fx_teardown();
}

/* recover_hold_timeout: a wait still open after the timeout ends (nothing
 * of what was held reaches it), its connection closes 1011, it is counted;
 * a released one is left alone; the check's timer runs only while a hold
 * exists. */
static void test_conn__room_hold_timeout(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    F.cfg.recover_hold_timeout = 0.25;
    assert_true(rc_live_publish(&F.cfg) >= 0); /* the fan-out reads fanout_delay from it */
    struct mailbox mb;
    struct rooms R;
    struct conn *c = one_worker_rooms(&mb, &R);
    struct sframe fr[8];
    assert_false(wtimer_active(&R.part[0].hold_timer));

    /* released in time: not touched */
    assert_int_equal(room_join_ex(&R, c, "a", 1, ROOM_JOIN_HOLD), 0);
    assert_true(wtimer_active(&R.part[0].hold_timer));
    assert_int_equal(room_release(&R, c, "a", 1, 0), 0);
    deliver_in(&R, &mb, "a", 1, 'a'); /* promotes it: the hold goes, the timer stops */
    assert_false(wtimer_active(&R.part[0].hold_timer));

    assert_int_equal(room_join_ex(&R, c, "r", 1, ROOM_JOIN_HOLD), 0);
    deliver_seq(&R, &mb, 1, '1');
    after(0.02);
    assert_int_equal(rec.closes, 0);
    assert_int_equal(room_hold_state(c, "r", 1), 1); /* still waiting */
    for (int i = 0; i < 300 && rec.closes == 0; i++) /* the timer: every 0.0625 s */
        after(0.01);
    assert_int_equal(rec.closes, 1);
    assert_int_equal(rec.close_code, 1011);
    assert_int_equal(STAT_GET(&F.stats, recover_holds_ended_total), 1);
    assert_int_equal(room_hold_state(c, "r", 1), RC_E_NOT_FOUND);
    int n = server_frames(fr, 8);
    assert_int_equal(n, 2); /* 'a', then the close: nothing held reached it */
    assert_int_equal(fr[0].p[0], 'a');
    assert_int_equal(close_code_of(&fr[1]), 1011);

    conn_release(c);
    iterate();
    assert_false(wtimer_active(&R.part[0].hold_timer));
    rooms_fx_down(&R, &mb);
    rc_live_shutdown();
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS);
    fx_teardown();
}

/* With a message rate, the first message creates the bucket in the cold
 * part; the bucket keeps it (its refill time is state), the release frees it. */
static void test_conn__cold_part_holds_the_rate_bucket(void **state)
{
    fx_setup();
    long live0 = allocs_now();
    F.cfg.msg_rate = 1; /* a burst of 1 */
    F.cfg.msg_rate_policy = RC_RATE_DROP;
    assert_true(rc_live_publish(&F.cfg) >= 0);
    guard_init(&F.cfg);
    guard_attach(&F.cs, NULL, NULL);
    upgrade();
    assert_null(live()->cold);
    uint8_t fr[64];
    size_t n = client_frame(fr, 1, WS_OP_TEXT, "one", 3);
    n += client_frame(fr + n, 1, WS_OP_TEXT, "two", 3); /* over the rate: dropped */
    script_input(&F.sc, fr, n);
    readable();
    assert_int_equal(rec.messages, 1);
    assert_int_equal(F.stats.msg_rate_drops_total, 1);
    assert_non_null(live()->cold);
    assert_true(live()->cold->rl_last > 0);
    assert_true(live()->cold->rl_tokens < 1);
    conn_release(live());
    iterate();
    guard_destroy();
    rc_live_shutdown();
    assert_int_equal(allocs_now(), live0 - FX_CONN_ALLOCS); /* the fixture's conn went */
    fx_teardown();
}

/* The dirty queue is singly linked: a conn stays on it until the walk
 * (conn_flush_dirty) takes it off, in the order they became dirty, even when
 * it was released (the reaper waits for it) or flushed by WL_WRITE meanwhile. */
static void test_conn__dirty_queue(void **state)
{
    struct script sc2;
    int fd2;
    struct conn *c2;
    struct conn *c = two_conns(&sc2, &fd2, &c2);
    assert_null(F.cs.dirty); /* the 101s went out in the upgrades' walks */
    assert_int_equal(conn_send(c, WS_OP_TEXT, "a", 1), 0);
    assert_int_equal(conn_send(c2, WS_OP_TEXT, "b", 1), 0);
    assert_int_equal(conn_send(c, WS_OP_TEXT, "c", 1), 0); /* already queued: once */
    assert_ptr_equal(F.cs.dirty, c);
    assert_ptr_equal(c->dirty_next, c2);
    assert_ptr_equal(F.cs.dirty_tail, &c2->dirty_next);
    /* c2 released while on the queue: not freed before the walk took it off */
    conn_release(c2);
    conn_reap(&F.cs);
    assert_true(c2->dirty && c2->released);
    assert_ptr_equal(c->dirty_next, c2);
    size_t out0 = F.sc.out_len;
    iterate(); /* the walk: c flushed, c2 taken off; then c2 is freed */
    assert_null(F.cs.dirty);
    assert_ptr_equal(F.cs.dirty_tail, &F.cs.dirty);
    assert_int_equal(F.sc.out_len - out0, 6); /* "a" and "c": two 3-byte frames */
    assert_int_equal(sc2.out_len > 0, 1);     /* its 101 only, from the upgrade */
    /* flushed by WL_WRITE while dirty: the walk finds nothing left to write */
    assert_int_equal(conn_send(c, WS_OP_TEXT, "d", 1), 0);
    writable();
    assert_int_equal(F.sc.out_len - out0, 9);
    assert_null(F.cs.dirty);
    close(fd2);
    script_free(&sc2);
    fx_teardown();
}

/* A payload of n bytes that differs at every offset mod 251. */
static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i % 251);
    return p;
}

/* The server wrote exactly one frame, of big bytes p; frees p. */
static void expect_one_frame(uint8_t *p, size_t big)
{
    struct sframe fr[4];
    assert_int_equal(server_frames(fr, 4), 1);
    assert_int_equal(fr[0].len, big);
    assert_memory_equal(fr[0].p, p, big);
    free(p);
}

/* A new fixture (sendq_soft_limit = soft_limit) whose connection, *cp, has
 * a binary answer of big bytes queued and not yet flushed; returns its
 * payload (pattern(big): expect_one_frame checks and frees it). */
static uint8_t *big_answer_queued(size_t soft_limit, size_t big, struct conn **cp)
{
    fx_setup();
    F.cfg.sendq_soft_limit = soft_limit;
    upgrade();
    struct conn *c = live();
    uint8_t *p = pattern(big);
    assert_int_equal(conn_send(c, WS_OP_BINARY, p, big), 0);
    *cp = c;
    return p;
}

/* The client sends the text message msg (whole, masked). */
static void client_text(const char *msg)
{
    uint8_t b[64];
    script_input(&F.sc, b, client_frame(b, 1, WS_OP_TEXT, msg, strlen(msg)));
}

/* Issue 10: a big answer goes out CONN_FLUSH_BUDGET bytes per iteration.
 * When the socket took the whole slice the connection is not blocked (no
 * WL_WRITE: epoll would report it writable only once a third of the send
 * buffer is free) but back on the dirty queue, so the poll does not sleep;
 * another connection's reply goes out in the same walk as the first slice,
 * the big one's reads go on between slices, and the bytes arrive whole and
 * in order. */
static void test_conn__big_answer_in_slices(void **state)
{
    struct script sc2;
    int fd2;
    struct conn *c2;
    struct conn *c = two_conns(&sc2, &fd2, &c2);
    const size_t big = 4 * CONN_FLUSH_BUDGET + 100, hl = 10; /* 64-bit length */
    uint8_t *p = pattern(big);
    size_t out0 = F.sc.out_len, out2 = sc2.out_len;
    unsigned w0 = F.sc.writevs;
    assert_int_equal(conn_send(c, WS_OP_BINARY, p, big), 0);
    assert_int_equal(conn_send(c2, WS_OP_TEXT, "x", 1), 0);
    iterate();
    assert_int_equal(F.sc.out_len - out0, CONN_FLUSH_BUDGET); /* one slice */
    assert_int_equal(F.sc.writevs - w0, 1);
    assert_int_equal(sc2.out_len - out2, 3); /* c2's reply did not wait for c */
    assert_int_equal(c->write_blocked, 0);
    assert_false(c->io.events & WL_WRITE);
    assert_true(c->io.events & WL_READ);
    assert_true(c->dirty);
    assert_ptr_equal(F.cs.dirty, c); /* the next iteration's: the poll won't block */
    assert_null(c->dirty_next);
    assert_null(F.cs.yielded);

    /* Between slices: c is read (a message comes in), and c2's next reply
     * goes out with c's second slice. */
    client_text("more");
    assert_int_equal(conn_send(c2, WS_OP_TEXT, "y", 1), 0);
    readable();
    assert_int_equal(rec.messages, 1);
    assert_memory_equal(rec.msg[0], "more", 4);
    assert_int_equal(F.sc.out_len - out0, 2 * CONN_FLUSH_BUDGET);
    assert_int_equal(sc2.out_len - out2, 6);
    assert_ptr_equal(F.cs.dirty, c);

    /* The rest: one slice per iteration, then off the queue. */
    int iters = 0;
    while (F.sc.out_len - out0 < hl + big) {
        iterate();
        iters++;
        assert_true(iters <= 3);
    }
    assert_int_equal(iters, 3); /* 4 budgets + 110 bytes: 5 flushes in all */
    assert_int_equal(F.sc.writevs - w0, 5);
    assert_false(c->dirty);
    assert_null(F.cs.dirty);
    assert_int_equal(c->write_blocked, 0);
    struct sframe fr[4];
    assert_int_equal(server_frames(fr, 4), 1);
    assert_int_equal(fr[0].op, WS_OP_BINARY);
    assert_int_equal(fr[0].len, big);
    assert_memory_equal(fr[0].p, p, big);
    free(p);
    close(fd2);
    script_free(&sc2);
    fx_teardown();
}

/* A shared frame larger than the budget (a room frame by reference) is
 * sliced the same way. Only a real EAGAIN blocks the connection: WL_WRITE
 * armed, off the dirty queue (no iteration spins on it), and WL_WRITE
 * resumes the slicing (that event's slice, then the walk's). */
static void test_conn__slices_then_eagain(void **state)
{
    fx_setup();
    upgrade();
    struct conn *c = live();
    const size_t big = 3 * CONN_FLUSH_BUDGET, hl = 10;
    uint8_t *p = pattern(big);
    struct frame_ref *f = frame_ref_encode(WS_OP_BINARY, 0, p, big);
    assert_int_equal(conn_deliver(c, f, SLOW_DROP), 0);
    frame_ref_put(f);
    size_t out0 = F.sc.out_len;
    iterate();
    assert_int_equal(F.sc.out_len - out0, CONN_FLUSH_BUDGET);
    assert_ptr_equal(F.cs.dirty, c);
    assert_int_equal(c->write_blocked, 0);

    F.sc.write_eagain = 1;
    iterate();
    assert_int_equal(F.sc.out_len - out0, CONN_FLUSH_BUDGET);
    assert_int_equal(c->write_blocked, 1);
    assert_true(c->io.events & WL_WRITE);
    assert_false(c->dirty);
    assert_null(F.cs.dirty); /* the poll may sleep: WL_WRITE wakes it */
    unsigned w = F.sc.writevs;
    iterate();
    assert_int_equal(F.sc.writevs, w); /* blocked: not tried per iteration */

    F.sc.write_eagain = 0;
    writable();
    assert_int_equal(F.sc.out_len - out0, 3 * CONN_FLUSH_BUDGET);
    assert_int_equal(c->write_blocked, 0);
    assert_false(c->io.events & WL_WRITE);
    assert_ptr_equal(F.cs.dirty, c);
    iterate();
    assert_int_equal(F.sc.out_len - out0, hl + big);
    assert_null(F.cs.dirty);
    expect_one_frame(p, big);
    fx_teardown();
}

/* A client that does not read its big answers: past the soft limit its
 * reads pause (backpressure), and they resume at the first slice that takes
 * the queue back under it, without any WL_WRITE (the socket never
 * blocked). */
static void test_conn__slices_resume_paused_reads(void **state)
{
    struct conn *c;
    const size_t big = 3 * CONN_FLUSH_BUDGET;
    uint8_t *p = big_answer_queued(3 * CONN_FLUSH_BUDGET, big, &c);
    client_text("one");
    c->io.cb(&c->io, WL_READ); /* read before any flush: over the soft limit */
    assert_int_equal(rec.messages, 1);
    assert_int_equal(c->read_paused, 1);
    assert_false(c->io.events & WL_READ);
    iterate(); /* slice 1: 2 budgets + 10 bytes left, under the limit */
    assert_int_equal(c->read_paused, 0);
    assert_true(c->io.events & WL_READ);
    assert_false(c->io.events & WL_WRITE);
    client_text("two");
    readable(); /* and slice 2 */
    assert_int_equal(rec.messages, 2);
    iterate(); /* slice 3 */
    iterate(); /* the frame's last 10 bytes */
    assert_null(F.cs.dirty);
    expect_one_frame(p, big);
    fx_teardown();
}

/* 71_daemon's drain test at a 64 KiB budget: a client sends big echoes and
 * reads none. A read that comes before the flush takes the queue over the
 * soft limit (reads pause, though the socket still takes every byte); the
 * slices take it back under the limit; then the kernel's buffers are full
 * (EAGAIN; the peer reads nothing, so no WL_WRITE ever comes) with the queue
 * still over half the limit. The reads resumed at the slice that took the
 * queue under the limit, so the next message is read. Held to the half mark
 * they stayed paused for good: the server read 5 of the 6 messages. */
static void test_conn__yield_under_the_soft_limit_resumes_reads(void **state)
{
    struct conn *c;
    const size_t big = 4 * CONN_FLUSH_BUDGET, hl = 10;
    uint8_t *p = big_answer_queued(4 * CONN_FLUSH_BUDGET, big, &c);
    F.sc.write_limited = 1;
    F.sc.write_room = 2 * CONN_FLUSH_BUDGET; /* the kernel takes two slices */
    client_text("one");
    c->io.cb(&c->io, WL_READ); /* read before any flush: over the soft limit */
    assert_int_equal(rec.messages, 1);
    assert_int_equal(c->read_paused, 1);
    assert_false(c->io.events & WL_READ);
    iterate(); /* slice 1: 3 budgets + 10 bytes left, under the limit */
    assert_int_equal(c->write_blocked, 0);
    assert_int_equal(c->read_paused, 0);
    assert_true(c->io.events & WL_READ);
    iterate(); /* slice 2 fills the socket */
    iterate(); /* EAGAIN: blocked over half the limit */
    assert_int_equal(c->write_blocked, 1);
    assert_int_equal(c->q.bytes, 2 * CONN_FLUSH_BUDGET + hl);
    assert_true(c->io.events & WL_WRITE);
    assert_int_equal(c->read_paused, 0);
    assert_true(c->io.events & WL_READ);
    client_text("two");
    readable();
    assert_int_equal(rec.messages, 2);
    assert_memory_equal(rec.msg[1], "two", 3);

    /* The peer reads at last: the rest goes out. */
    F.sc.write_limited = 0;
    writable();
    iterate();
    assert_null(F.cs.dirty);
    assert_int_equal(c->write_blocked, 0);
    expect_one_frame(p, big);
    fx_teardown();
}

/* With the socket blocked, the half mark holds: a flush that takes the
 * queue under the soft limit and then meets EAGAIN leaves the reads paused
 * (no pause and resume per WL_WRITE); they resume at a slice that the
 * socket takes whole with the queue under the limit, or under half of it. */
static void test_conn__blocked_reads_wait_for_the_half_mark(void **state)
{
    const size_t B = CONN_FLUSH_BUDGET, hl = 10;
    struct conn *c;
    const size_t big = 4 * B + B / 4 - hl; /* queued: a quarter budget over the limit */
    uint8_t *p = big_answer_queued(4 * B, big, &c);
    F.sc.write_limited = 1;
    F.sc.write_room = B / 2;
    client_text("one");
    c->io.cb(&c->io, WL_READ);
    assert_int_equal(c->read_paused, 1);
    iterate(); /* half a budget, then EAGAIN: under the limit, over half */
    assert_int_equal(c->q.bytes, 4 * B - B / 4);
    assert_int_equal(c->write_blocked, 1);
    assert_int_equal(c->read_paused, 1);
    assert_false(c->io.events & WL_READ);
    F.sc.write_room = B / 2;
    writable(); /* the same again */
    assert_int_equal(c->q.bytes, 4 * B - 3 * B / 4);
    assert_int_equal(c->write_blocked, 1);
    assert_int_equal(c->read_paused, 1);
    assert_false(c->io.events & WL_READ);
    F.sc.write_limited = 0;
    writable(); /* a whole slice: the socket took every byte */
    assert_int_equal(c->read_paused, 0);
    assert_true(c->io.events & WL_READ);
    while (F.cs.dirty != NULL)
        iterate();
    expect_one_frame(p, big);
    fx_teardown();
}

/* Delivers room frame `mark` inside a fan-out (conn_fanout_begin/end). */
static void fanout_one(struct conn *c, char mark)
{
    struct frame_ref *f = room_frame(7, mark, 10);
    struct conn **at = conn_fanout_begin(&F.cs);
    assert_int_equal(conn_deliver(c, f, SLOW_DROP), 0);
    conn_fanout_end(&F.cs, at);
    frame_ref_put(f);
}

/* fanout_delay is a reloadable option: conn reads it from the current
 * rc_live snapshot, which main publishes at start and on SIGHUP. Only the
 * snapshot gets d (the connset's config keeps 0), so a read of the config
 * would show as a window that never opens. */
static double window_len;
static void set_fanout_delay(double d)
{
    struct rc_config c = F.cfg; /* borrowed strings: rc_live_publish copies */
    c.fanout_delay = d;
    assert_true(rc_live_publish(&c) >= 0);
    window_len = d;
}

/* Runs the loop until the window's timer has gone off and its flush ran. */
static void window_passes(void)
{
    usleep((useconds_t)(window_len * 1e6) + 2000);
    iterate(); /* the timer: the held conns are dirty */
    iterate(); /* their flush */
}

/* A new fixture (fanout_delay d; sendq_soft_limit too unless 0) whose
 * connection, returned, was sent room frame 'A' after a quiet spell: it
 * was written at once and opened a window. */
static struct conn *window_opened(double d, size_t soft_limit)
{
    fx_setup();
    if (soft_limit != 0)
        F.cfg.sendq_soft_limit = soft_limit;
    set_fanout_delay(d);
    upgrade();
    struct conn *c = live();
    fanout_one(c, 'A');
    iterate();
    return c;
}

/* fanout_delay: the first fan-out after a quiet spell is written at once
 * and opens a window; what the next iterations deliver is held until it
 * ends (one write); a reply flushes the held frames with it, in order; a
 * conn released while held is freed at once and the timer skips it. */
static void test_conn__fanout_window(void **state)
{
    fx_setup();
    set_fanout_delay(0.05);
    upgrade();
    struct conn *c = live();
    size_t out0 = F.sc.out_len;
    fanout_one(c, 'A'); /* quiet: written now */
    assert_true(c->dirty);
    iterate();
    assert_int_equal(F.sc.out_len - out0, 12);
    fanout_one(c, 'B'); /* a later iteration inside the window: held */
    fanout_one(c, 'C');
    assert_false(c->dirty);
    assert_true(c->later);
    assert_int_equal(F.cs.nlater, 1);
    iterate();
    assert_int_equal(F.sc.out_len - out0, 12);
    /* a reply is not held, and takes the held frames along, first */
    assert_int_equal(conn_send(c, WS_OP_TEXT, "r", 1), 0);
    iterate();
    struct sframe fr[8];
    assert_int_equal(server_frames(fr, 8), 4);
    assert_int_equal(fr[1].p[0], 'B');
    assert_int_equal(fr[2].p[0], 'C');
    assert_int_equal(fr[3].p[0], 'r');
    fanout_one(c, 'D'); /* held (c is still on the list: no second entry) */
    assert_int_equal(F.cs.nlater, 1);
    iterate();
    assert_int_equal(server_frames(fr, 8), 4);
    window_passes();
    assert_int_equal(server_frames(fr, 8), 5);
    assert_int_equal(fr[4].p[0], 'D');
    assert_int_equal(STAT_GET(&F.stats, fanout_flushes_total), 1);
    assert_int_equal(F.cs.nlater, 0);
    /* the window the timer's flush opened: held again, then released */
    iterate();
    fanout_one(c, 'E');
    assert_int_equal(F.cs.nlater, 1);
    conn_release(c);
    iterate(); /* freed now, not at the window's end */
    assert_null(live());
    window_passes(); /* its id finds nothing */
    assert_int_equal(STAT_GET(&F.stats, fanout_flushes_total), 1);
    fx_teardown();
}

/* A fan-out that no other would join before the window ends is not held:
 * B comes 45 ms into a 50 ms window after a gap that long, so it is written
 * at once and the window starts again from it; C and D, right behind B, are
 * held (their gap is short). Without the rule B would wait 5 ms for
 * nothing, paying the hold on every member. */
static void test_conn__fanout_window_skips_a_hold_that_batches_nothing(void **state)
{
    struct conn *c = window_opened(0.05, 0); /* A: quiet, written now */
    usleep(45000);
    iterate(); /* the loop's clock moves on */
    fanout_one(c, 'B');
    assert_true(c->dirty);
    assert_false(c->later);
    iterate();
    struct sframe fr[8];
    assert_int_equal(server_frames(fr, 8), 2);
    assert_int_equal(fr[1].p[0], 'B');
    iterate();
    fanout_one(c, 'C'); /* right behind B: held */
    assert_true(c->later && !c->dirty);
    iterate();
    fanout_one(c, 'D');
    iterate();
    assert_int_equal(server_frames(fr, 8), 2);
    window_passes();
    assert_int_equal(server_frames(fr, 8), 4);
    assert_int_equal(fr[2].p[0], 'C');
    assert_int_equal(fr[3].p[0], 'D');
    fx_teardown();
}

/* A queue past FANOUT_HOLD_MAX (or half the soft limit) is not held. */
static void test_conn__fanout_window_bounded_by_bytes(void **state)
{
    struct conn *c = window_opened(10, 40);
    fanout_one(c, 'B');
    assert_true(c->later && !c->dirty);
    fanout_one(c, 'C'); /* 24 bytes queued >= 40 / 2: written now */
    assert_true(c->dirty);
    iterate();
    struct sframe fr[8];
    assert_int_equal(server_frames(fr, 8), 3);
    fx_teardown();
}

/* SIGHUP changes fanout_delay while a window is open: the window keeps its
 * end; with 0, a held conn that gets a new room frame is written at once,
 * held frames first, and the old timer wakes nobody; nothing is held while
 * it is 0; a new value opens windows again. */
static void test_conn__fanout_window_follows_a_reload(void **state)
{
    struct conn *c = window_opened(0.05, 0);
    fanout_one(c, 'B'); /* held */
    assert_true(c->later && !c->dirty);
    set_fanout_delay(0); /* the SIGHUP */
    fanout_one(c, 'C');  /* not held: dirty, B goes with it */
    assert_true(c->dirty);
    iterate();
    struct sframe fr[8];
    assert_int_equal(server_frames(fr, 8), 3);
    assert_int_equal(fr[1].p[0], 'B');
    assert_int_equal(fr[2].p[0], 'C');
    usleep(50000);   /* the old window's length (window_passes: the new 0) */
    window_passes(); /* the old window's timer: c's queue is empty */
    assert_int_equal(STAT_GET(&F.stats, fanout_flushes_total), 0);
    assert_int_equal(F.cs.nlater, 0);
    assert_false(c->later);
    for (char m = 'D'; m <= 'F'; m++) { /* off: each written in its iteration */
        fanout_one(c, m);
        assert_true(c->dirty);
        iterate();
    }
    assert_int_equal(server_frames(fr, 8), 6);
    set_fanout_delay(0.05); /* on again */
    fanout_one(c, 'G');     /* the window has been over for long: written */
    assert_true(c->dirty);
    iterate();
    fanout_one(c, 'H'); /* inside the new window: held */
    assert_true(c->later && !c->dirty);
    window_passes();
    assert_int_equal(server_frames(fr, 8), 8);
    assert_int_equal(fr[7].p[0], 'H');
    assert_int_equal(STAT_GET(&F.stats, fanout_flushes_total), 1);
    fx_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn__upgrade_and_first_frame_at_every_byte_split),
        cmocka_unit_test(test_conn__fanout_window),
        cmocka_unit_test(test_conn__fanout_window_skips_a_hold_that_batches_nothing),
        cmocka_unit_test(test_conn__fanout_window_bounded_by_bytes),
        cmocka_unit_test(test_conn__fanout_window_follows_a_reload),
        cmocka_unit_test(test_conn__frames_at_every_byte_split),
        cmocka_unit_test(test_conn__partial_writes_and_eagain),
        cmocka_unit_test(test_conn__close_handshake_from_the_peer),
        cmocka_unit_test(test_conn__close_handshake_from_us),
        cmocka_unit_test(test_conn__close_timeouts),
        cmocka_unit_test(test_conn__handshake_timeout),
        cmocka_unit_test(test_conn__heartbeat_expiry),
        cmocka_unit_test(test_conn__slow_consumer_drop),
        cmocka_unit_test(test_conn__slow_consumer_close),
        cmocka_unit_test(test_conn__slow_consumer_latest),
        cmocka_unit_test(test_conn__batched_delivery),
        cmocka_unit_test(test_conn__close_during_pending_flush),
        cmocka_unit_test(test_conn__io_errors_release),
        cmocka_unit_test(test_conn__hooks_run_in_order),
        cmocka_unit_test(test_conn__long_head_in_pieces),
        cmocka_unit_test(test_conn__peer_kept_compact),
        cmocka_unit_test(test_conn__slab_blocks_come_and_go),
        cmocka_unit_test(test_conn__dirty_queue),
        cmocka_unit_test(test_conn__big_answer_in_slices),
        cmocka_unit_test(test_conn__slices_then_eagain),
        cmocka_unit_test(test_conn__slices_resume_paused_reads),
        cmocka_unit_test(test_conn__yield_under_the_soft_limit_resumes_reads),
        cmocka_unit_test(test_conn__blocked_reads_wait_for_the_half_mark),
        cmocka_unit_test(test_conn__cold_part_follows_the_user),
        cmocka_unit_test(test_conn__cold_part_follows_the_rooms),
        cmocka_unit_test(test_conn__room_deliveries_merge),
        cmocka_unit_test(test_conn__room_hold_and_release),
        cmocka_unit_test(test_conn__room_hold_end),
        cmocka_unit_test(test_conn__room_hold_timeout),
        cmocka_unit_test(test_conn__cold_part_holds_the_rate_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
