/* fuzz_frame.c - libFuzzer driver for ws_frame + ws_msg + utf8.
 *
 * Input layout: 4 bytes of chunk plan, then the byte stream a client sends.
 * The stream is fed to a server-side ws_msg (require_mask=1, max_message=1 MiB)
 * twice: once in one piece and once in chunks whose sizes cycle through the
 * plan (1..64 bytes, or "the rest" for a plan byte of 0xFF). Each chunk is an
 * exact-size heap copy, so ASAN catches any read past the bytes fed.
 *
 * Both runs happen twice: without extensions, and with permessage-deflate
 * negotiated (RSV1 allowed on the first frame of a data message only, and
 * such a message's bytes not UTF-8 checked: RFC 7692 §6).
 *
 * Checked for every event: the contract's invariants (text is valid UTF-8,
 * close codes valid, control payloads <= 125, messages <= max_message, data
 * never NULL, consumed <= offered and all of it when no event). Checked across
 * the two runs: the same events with the same bytes, and the same final error,
 * since the result must not depend on where the reads split the stream.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "closecode.h"
#include "err.h"
#include "utf8.h"
#include "ws_frame.h"
#include "ws_msg.h"

#define MAX_MESSAGE (1u << 20)
#define MAX_EVENTS 256
#define CHUNK_SIZE(b) (1 + ((size_t)(b)&63))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct summary {
    size_t nev;
    uint64_t hash[MAX_EVENTS]; /* type, opcode, code, len and bytes of each event */
    int err;
};

static const struct ws_msg_cfg cfg = {
    .max_message = MAX_MESSAGE,
    .require_mask = 1,
};

static const struct ws_msg_cfg cfg_z = {
    .max_message = MAX_MESSAGE,
    .require_mask = 1,
    .allowed_rsv = WS_RSV1,
    .deflate = 1,
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void check_event(const struct ws_msg_cfg *c, const struct ws_event *ev, struct summary *s)
{
    if (ev->data == NULL)
        abort();
    switch (ev->type) {
    case WS_EV_MESSAGE:
        if (ev->opcode != WS_OP_TEXT && ev->opcode != WS_OP_BINARY)
            abort();
        /* a compressed message's wire bytes may pass the cap by deflate's
         * worst-case growth (ws_msg.h) */
        if (ev->len > ((ev->rsv & WS_RSV1)
                           ? MAX_MESSAGE + (MAX_MESSAGE >> 3) + (MAX_MESSAGE >> 6) + 64
                           : MAX_MESSAGE))
            abort();
        if (ev->rsv & ~c->allowed_rsv)
            abort();
        /* a compressed message's bytes are deflate data, not text */
        if (ev->opcode == WS_OP_TEXT && !(ev->rsv & WS_RSV1) && !utf8_is_valid(ev->data, ev->len))
            abort();
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        if (ev->rsv != 0) /* RFC 7692 §6: control frames are never compressed */
            abort();
        if (ev->len > WS_MAX_CONTROL)
            abort();
        break;
    case WS_EV_CLOSE:
        if (ev->close_code == 0 ? ev->len != 0 : !ws_close_code_valid(ev->close_code))
            abort();
        if (ev->len > WS_MAX_CONTROL - 2 || !utf8_is_valid(ev->data, ev->len))
            abort();
        break;
    default:
        abort();
    }
    if (s->nev < MAX_EVENTS) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        uint32_t meta[4] = {(uint32_t)ev->type, ev->opcode, ev->close_code, ev->rsv};
        h = fnv(h, (const uint8_t *)meta, sizeof(meta));
        h = fnv(h, (const uint8_t *)&ev->len, sizeof(ev->len));
        h = fnv(h, ev->data, ev->len);
        s->hash[s->nev] = h;
    }
    s->nev++;
}

/* Feeds one read; returns 0 or the error. */
static int feed(struct ws_msg *m, const uint8_t *src, size_t n, struct summary *s)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, src, n);
    uint8_t *p = copy;
    size_t left = n;
    int rc = 0;
    do {
        struct ws_event ev;
        ssize_t c = ws_msg_feed(m, p, left, &ev);
        if (c < 0) {
            if (c != RC_E_PROTO && c != RC_E_UTF8 && c != RC_E_TOO_BIG)
                abort(); /* NOMEM cannot happen under a 1 MiB cap */
            rc = (int)c;
            break;
        }
        if ((size_t)c > left)
            abort();
        if (ev.type == WS_EV_NONE) {
            if ((size_t)c != left)
                abort();
        } else {
            check_event(m->cfg, &ev, s);
            if (ev.type == WS_EV_MESSAGE && ev.len > 0 && (ev.data < copy || ev.data >= copy + n)) {
                /* Not zero-copy: it came from the message buffer. */
                if (m->buf == NULL)
                    abort();
            }
        }
        p += c;
        left -= (size_t)c;
    } while (left > 0);
    free(copy);
    return rc;
}

static void run(const struct ws_msg_cfg *c, const uint8_t *plan, const uint8_t *in, size_t n,
                struct summary *s)
{
    struct ws_msg m;
    ws_msg_init(&m, c);
    memset(s, 0, sizeof(*s));
    size_t at = 0, i = 0;
    do {
        size_t step = n - at;
        if (plan) {
            uint8_t b = plan[i++ & 3];
            if (b != 0xFF)
                step = CHUNK_SIZE(b);
            if (step > n - at)
                step = n - at;
        }
        s->err = feed(&m, in + at, step, s);
        at += step;
    } while (s->err == 0 && at < n);
    ws_msg_reset(&m);
    ws_msg_reset(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint8_t *in = data + 4;
    size_t n = size - 4;
    static struct summary whole, chunked;
    const struct ws_msg_cfg *cfgs[2] = {&cfg, &cfg_z};
    for (int i = 0; i < 2; i++) {
        run(cfgs[i], NULL, in, n, &whole);
        run(cfgs[i], data, in, n, &chunked);
        if (whole.err != chunked.err || whole.nev != chunked.nev)
            abort();
        size_t k = whole.nev < MAX_EVENTS ? whole.nev : MAX_EVENTS;
        if (memcmp(whole.hash, chunked.hash, k * sizeof(whole.hash[0])) != 0)
            abort();
    }
    return 0;
}
