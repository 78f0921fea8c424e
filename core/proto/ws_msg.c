#include "ws_msg.h"

#include <string.h>

#include "alloc.h"
#include "closecode.h"
#include "defs.h"
#include "err.h"
#include "utf8.h"

#define BUF_MIN_CAP 256

/* Where a zero-length payload points, so event data is never NULL. */
static const uint8_t empty_payload[1];
/* Stand-in for an empty input (which may be NULL); nothing is written to it. */
static uint8_t scratch[1];

void ws_msg_init(struct ws_msg *m, const struct ws_msg_cfg *cfg)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->utf8 = UTF8_ACCEPT;
}

void ws_msg_reset(struct ws_msg *m)
{
    rc_free(m->buf);
    rc_free(m->ctrl);
    ws_msg_init(m, m->cfg);
}

void ws_msg_trim_held(struct ws_msg *m)
{
    /* ctrl outside a control frame only backs the last delivered event. */
    if (m->ctrl != NULL && !(m->in_frame && ws_opcode_is_control(m->hdr.opcode))) {
        rc_free(m->ctrl);
        m->ctrl = NULL;
    }
    /* buf with no message in progress only backs the last delivered event. */
    if (m->buf != NULL && m->msg_opcode == 0) {
        rc_free(m->buf);
        m->buf = NULL;
        m->len = 0;
        m->cap = 0;
    }
}

/* Gets the next header from hb + in. Returns bytes of `in` consumed (>= 0) with
 * m->in_frame set when a header is complete, or an error. A header cut short
 * by the end of input is kept in hb (at most WS_MAX_HEADER - 1 bytes). */
static ssize_t read_header(struct ws_msg *m, const uint8_t *in, size_t len)
{
    ssize_t r;
    if (m->hb_len == 0) {
        r = ws_frame_decode_header(in, len, &m->hdr);
        if (r >= 0) {
            m->in_frame = 1;
            return r;
        }
        if (r != RC_NEED_MORE)
            return r;
        RC_ASSERT(len < WS_MAX_HEADER); /* 14 bytes always hold a whole header */
        memcpy(m->hb, in, len);
        m->hb_len = (uint8_t)len;
        return (ssize_t)len;
    }
    size_t old = m->hb_len;
    size_t take = RC_MIN(len, (size_t)WS_MAX_HEADER - old);
    memcpy(m->hb + old, in, take);
    r = ws_frame_decode_header(m->hb, old + take, &m->hdr);
    if (r == RC_NEED_MORE) {
        m->hb_len = (uint8_t)(old + take);
        return (ssize_t)take;
    }
    if (r < 0)
        return r;
    m->hb_len = 0;
    m->in_frame = 1;
    return r - (ssize_t)old; /* the header's bytes that came from `in` */
}

/* The cap on the bytes of the message in progress. A compressed message
 * (RFC 7692) is capped by its inflated size, which the caller checks; its
 * wire bytes may exceed max_message by what a deflater adds to data that
 * does not compress, or an incompressible message of exactly max_message
 * bytes could not be sent compressed. Stored blocks cost 5 bytes each, and
 * a compressor with a small buffer makes many (zlib at memLevel 1: +4 %);
 * the slack is zlib's own conservative bound for any of its settings
 * (deflateBound: n/8 + n/64 + a few bytes). */
static size_t msg_cap(const struct ws_msg *m)
{
    size_t max = m->cfg->max_message;
    if (m->cfg->deflate && (m->msg_rsv & WS_RSV1))
        max += (max >> 3) + (max >> 6) + 64;
    return max;
}

/* Applies the rules that need the connection's context (role, extensions,
 * fragmentation state, size cap) to the header just decoded. */
static int check_header(struct ws_msg *m)
{
    const struct ws_msg_cfg *cfg = m->cfg;
    const struct ws_frame_hdr *h = &m->hdr;

    /* §5.2: RSV bits MUST be 0 unless an extension defines them. */
    if (h->rsv & ~cfg->allowed_rsv)
        return RC_E_PROTO;
    /* RFC 7692 §6.1: the "Per-Message Compressed" bit is set on the first
     * frame of a message only; control frames are never compressed (§6). */
    if ((h->rsv & WS_RSV1) && cfg->deflate &&
        (ws_opcode_is_control(h->opcode) || h->opcode == WS_OP_CONT))
        return RC_E_PROTO;
    /* §5.1: the server MUST close on an unmasked client frame, the client on a
     * masked server frame. */
    if (cfg->require_mask && !h->masked)
        return RC_E_PROTO;
    if (cfg->reject_masked && h->masked)
        return RC_E_PROTO;

    m->pos = 0;
    if (ws_opcode_is_control(h->opcode)) {
        m->ctrl_len = 0; /* §5.5: may arrive between fragments; buf untouched */
        return 0;
    }
    if (h->opcode == WS_OP_CONT) {
        if (m->msg_opcode == 0)
            return RC_E_PROTO; /* §5.4: continuation with nothing to continue */
    } else {
        if (m->msg_opcode != 0)
            return RC_E_PROTO; /* §5.4: fragments of one message are not interleaved */
        m->msg_opcode = h->opcode;
        m->msg_rsv = h->rsv;
        m->utf8 = UTF8_ACCEPT;
        m->len = 0;
    }
    /* Decided on the announced length, before a byte of payload is buffered. */
    if (h->len > (uint64_t)msg_cap(m) - m->len)
        return RC_E_TOO_BIG;
    return 0;
}

/* Makes room for `more` bytes in buf; geometric growth capped at msg_cap
 * (check_header guarantees len + more <= msg_cap). */
static int buf_reserve(struct ws_msg *m, size_t more)
{
    size_t need = m->len + more;
    if (need <= m->cap)
        return 0;
    size_t max = msg_cap(m);
    size_t cap = m->cap < BUF_MIN_CAP ? BUF_MIN_CAP : m->cap;
    while (cap < need && cap <= max / 2)
        cap *= 2;
    if (cap < need || cap > max)
        cap = max; /* never grow past the cap; need <= max always holds */
    uint8_t *p = rc_try_realloc(m->buf, cap);
    if (p == NULL)
        return RC_E_NOMEM;
    m->buf = p;
    m->cap = cap;
    return 0;
}

/* Validates a complete close payload and fills the event (§5.5.1, §7.4). */
static int close_event(const uint8_t *p, size_t n, struct ws_event *ev)
{
    ev->type = WS_EV_CLOSE;
    ev->close_code = 0;
    ev->data = empty_payload;
    ev->len = 0;
    if (n == 0)
        return 0;
    if (n == 1)
        return RC_E_PROTO; /* §5.5.1: a body starts with a 2-byte code */
    unsigned code = (unsigned)p[0] << 8 | p[1];
    if (!ws_close_code_valid(code))
        return RC_E_PROTO; /* §7.4 */
    if (!utf8_is_valid(p + 2, n - 2))
        return RC_E_UTF8; /* §5.5.1: the reason is UTF-8; §8.1 */
    ev->close_code = code;
    ev->data = n > 2 ? p + 2 : empty_payload;
    ev->len = n - 2;
    return 0;
}

static int control_event(const struct ws_msg *m, const uint8_t *p, size_t n, struct ws_event *ev)
{
    ev->opcode = m->hdr.opcode;
    ev->rsv = m->hdr.rsv;
    if (m->hdr.opcode == WS_OP_CLOSE)
        return close_event(p, n, ev);
    ev->type = m->hdr.opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
    ev->data = n ? p : empty_payload;
    ev->len = n;
    return 0;
}

static void message_event(struct ws_msg *m, const uint8_t *p, size_t n, struct ws_event *ev)
{
    ev->type = WS_EV_MESSAGE;
    ev->opcode = m->msg_opcode;
    ev->rsv = m->msg_rsv;
    ev->data = n ? p : empty_payload;
    ev->len = n;
    m->msg_opcode = 0; /* buf (if any) now only backs ev->data; see ws_msg_trim */
    m->utf8 = UTF8_ACCEPT;
}

/* Consumes payload of the current frame from in[0..len). Returns bytes consumed
 * or an error; ev->type is set when the frame completed an event. */
static ssize_t read_payload(struct ws_msg *m, uint8_t *in, size_t len, struct ws_event *ev)
{
    struct ws_frame_hdr *h = &m->hdr;
    uint64_t rem = h->len - m->pos;
    size_t take = rem < len ? (size_t)rem : len;
    int control = ws_opcode_is_control(h->opcode);
    /* A compressed message's bytes are deflate data: the caller checks its
     * text after inflating (ws_msg_cfg.deflate). */
    int text = !control && m->msg_opcode == WS_OP_TEXT && !(m->msg_rsv & WS_RSV1);

    if (h->masked)
        ws_mask(in, take, h->mask, m->pos); /* §5.3 */

    /* Zero-copy: the whole payload is here and nothing needs joining. */
    if (m->pos == 0 && take == rem && (control || (h->fin && h->opcode != WS_OP_CONT))) {
        m->in_frame = 0;
        if (control) {
            int rc = control_event(m, in, take, ev);
            return rc < 0 ? rc : (ssize_t)take;
        }
        if (text && utf8_validate(UTF8_ACCEPT, in, take) != UTF8_ACCEPT)
            return RC_E_UTF8; /* §8.1 */
        message_event(m, in, take, ev);
        return (ssize_t)take;
    }

    m->pos += take;
    if (control) {
        if (m->ctrl == NULL) {
            m->ctrl = rc_try_malloc(WS_MAX_CONTROL);
            if (m->ctrl == NULL)
                return RC_E_NOMEM;
        }
        memcpy(m->ctrl + m->ctrl_len, in, take); /* §5.5: take <= 125 */
        m->ctrl_len = (uint8_t)(m->ctrl_len + take);
        if (m->pos < h->len)
            return (ssize_t)take;
        m->in_frame = 0;
        int rc = control_event(m, m->ctrl, m->ctrl_len, ev);
        return rc < 0 ? rc : (ssize_t)take;
    }

    if (text) {
        /* §8.1 fail-fast: judge the bytes now, not when the message is whole. */
        m->utf8 = utf8_validate(m->utf8, in, take);
        if (m->utf8 == UTF8_REJECT)
            return RC_E_UTF8;
    }
    if (take) {
        int rc = buf_reserve(m, take);
        if (rc < 0)
            return rc;
        memcpy(m->buf + m->len, in, take);
        m->len += take;
    }
    if (m->pos < h->len)
        return (ssize_t)take;
    m->in_frame = 0;
    if (!h->fin)
        return (ssize_t)take;
    if (text && m->utf8 != UTF8_ACCEPT)
        return RC_E_UTF8; /* the message ends inside a character */
    message_event(m, m->buf, m->len, ev);
    return (ssize_t)take;
}

/* Delivers the whole, final, masked text or binary frame at in (header of
 * hl bytes, the key its last 4, then n bytes of payload, all inside the
 * input) in place, while no message is in progress: the shortcuts of
 * ws_msg_feed_any. The caller checked FIN, RSV 0, the opcode, MASK, the
 * minimal length encoding, n <= max_message and that m holds nothing, which
 * are all the general path would check for such a frame. */
static inline ssize_t deliver_whole(uint8_t *in, size_t hl, size_t n, struct ws_event *ev)
{
    uint8_t *p = in + hl;
    ws_mask(p, n, p - 4, 0); /* §5.3 */
    if (in[0] == 0x81 && utf8_validate(UTF8_ACCEPT, p, n) != UTF8_ACCEPT)
        return RC_E_UTF8; /* §8.1 */
    return ws_msg_whole(ev, in[0], n ? p : empty_payload, n, hl);
}

ssize_t ws_msg_feed_any(struct ws_msg *m, uint8_t *in, size_t len, struct ws_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = WS_EV_NONE;
    ws_msg_trim(m); /* the previous event's data is no longer borrowed */
    if (len == 0)
        in = scratch; /* never do arithmetic on a NULL `in` */

    /* ws_msg_feed's inline shortcut again, for what it leaves here: the
     * same frame when the last event's buffer was just released, or with
     * an empty payload. */
    if (len >= 6 && !m->in_frame && m->hb_len == 0 && m->msg_opcode == 0 && m->cfg->require_mask &&
        (in[0] == 0x81 || in[0] == 0x82) && (in[1] & 0x80)) {
        size_t n = in[1] & 0x7f;
        if (n <= 125 && len >= 6 + n && n <= m->cfg->max_message)
            return deliver_whole(in, 6, n, ev);
        if (n == 126 && len >= 8) { /* the 16-bit form again, now that buf was released */
            n = (size_t)in[2] << 8 | in[3];
            if (n >= 126 && len - 8 >= n && n <= m->cfg->max_message)
                return deliver_whole(in, 8, n, ev);
        }
    }

    size_t off = 0;
    for (;;) {
        if (!m->in_frame) {
            if (off == len)
                return (ssize_t)off;
            ssize_t r = read_header(m, in + off, len - off);
            if (r < 0)
                return r;
            off += (size_t)r;
            if (!m->in_frame)
                return (ssize_t)off; /* partial header saved in hb */
            int rc = check_header(m);
            if (rc < 0)
                return rc;
        }
        /* Runs even with no input left: a zero-length frame completes here. */
        ssize_t r = read_payload(m, in + off, len - off, ev);
        if (r < 0)
            return r;
        off += (size_t)r;
        if (ev->type != WS_EV_NONE || m->in_frame)
            return (ssize_t)off;
    }
}
