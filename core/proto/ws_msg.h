/* ws_msg.h - incremental RFC 6455 receiver: frames in, whole messages and
 * control frames out.
 *
 * Feed it whatever bytes arrived, at any byte boundary. It unmasks in place
 * (word at a time), joins fragments (§5.4), lets control frames interleave
 * with fragments (§5.5), validates text incrementally so invalid UTF-8 fails
 * at the first bad byte even mid-fragment (§8.1), validates close payloads
 * (§5.5.1, §7.4), and caps the message size.
 *
 * Memory: the state struct is small and fixed. A frame whose whole payload
 * is inside the bytes fed, and that is not part of a fragmented message, is
 * delivered in place (zero-copy, pointing into the input). Otherwise the
 * payload is accumulated in a heap buffer allocated through alloc.h's try_
 * family, grown geometrically up to max_message. Because the delivered event
 * points into that buffer, it is released lazily: at the start of the next
 * ws_msg_feed, by ws_msg_trim, or by ws_msg_reset (call ws_msg_trim after
 * handling an event when no more input is pending, and an idle connection
 * holds no buffer). Control payloads accumulate in a fixed 125-byte array.
 * There is no cap on the number of fragments, only on the message size.
 *
 *   ws_msg_feed(in) --> [hdr bytes: hb[0..13]] --> header decoded
 *                       --> payload: unmask in place --> utf8 check (text)
 *                           --> whole & unfragmented & in `in`: event points into `in`
 *                           --> otherwise append to buf/ctrl; event on FIN
 */
#ifndef RC_PROTO_WS_MSG_H
#define RC_PROTO_WS_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "defs.h"
#include "err.h"
#include "utf8.h"
#include "ws_frame.h"

struct ws_msg_cfg {
    size_t max_message;   /* cap on a data message (sum of fragments); over it: RC_E_TOO_BIG */
    int require_mask;     /* 1 on the server: an unmasked client frame is RC_E_PROTO (§5.1) */
    int reject_masked;    /* 1 on the client side: a masked server frame is RC_E_PROTO */
    unsigned allowed_rsv; /* RSV bits an extension negotiated (WS_RSV*); others: RC_E_PROTO */
    /* 1 when permessage-deflate was negotiated (RFC 7692 §6): RSV1 marks a
     * compressed message and is allowed on its first frame only (on a control
     * or continuation frame: RC_E_PROTO); a compressed text message is not
     * UTF-8 checked here (its bytes are deflate data): the caller inflates
     * it, caps the inflated size at max_message and validates the result.
     * Its wire bytes may exceed max_message by a deflater's growth of data
     * that does not compress (at most max/8 + max/64 + 64). Requires WS_RSV1 in allowed_rsv. */
    int deflate;
};

enum ws_event_type {
    WS_EV_NONE = 0,
    WS_EV_MESSAGE, /* a whole text or binary message */
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE,
};

struct ws_event {
    enum ws_event_type type;
    unsigned opcode;     /* WS_OP_TEXT or WS_OP_BINARY for WS_EV_MESSAGE */
    unsigned rsv;        /* RSV bits of the message's first frame (for extensions);
                            WS_RSV1 with cfg->deflate: data is compressed */
    const uint8_t *data; /* borrowed: valid until the next ws_msg_feed/ws_msg_trim/
                            ws_msg_reset; points into the caller's input or into
                            the ws_msg; never NULL (len 0 is a valid message).
                            WS_EV_CLOSE: the reason only (after the code) */
    size_t len;
    unsigned close_code; /* WS_EV_CLOSE: the code (already checked by
                            ws_close_code_valid), or 0 when the payload was empty */
};

struct ws_msg {
    const struct ws_msg_cfg *cfg; /* borrowed; must outlive the ws_msg */
    struct ws_frame_hdr hdr;      /* current frame, valid while in_frame */
    uint64_t pos;                 /* payload bytes of the current frame already consumed */
    uint8_t in_frame;             /* header decoded, payload pending */
    uint8_t hb_len;               /* bytes of a partial header saved in hb */
    uint8_t msg_opcode;           /* TEXT/BINARY of the message in progress, 0 if none */
    uint8_t msg_rsv;
    uint8_t ctrl_len;
    uint8_t hb[WS_MAX_HEADER];
    uint32_t utf8; /* validator state of the text message in progress (fills the
                      hole after hb: every byte here is paid per connection) */
    /* owned; allocated (WS_MAX_CONTROL bytes) only while a control frame
     * arrives in pieces, so an idle connection carries no control buffer */
    uint8_t *ctrl;
    uint8_t *buf; /* owned; NULL, or the message being joined, or the last event's data */
    size_t len;   /* bytes in buf */
    size_t cap;
};

/* Initialises m (no allocation). cfg is borrowed. */
void ws_msg_init(struct ws_msg *m, const struct ws_msg_cfg *cfg);

/* Releases buf and resets to the initial state (keeping cfg). Safe to call
 * twice, and after an error. Invalidates the last event's data. */
void ws_msg_reset(struct ws_msg *m);

/* The out-of-line part of ws_msg_trim. */
void ws_msg_trim_held(struct ws_msg *m);

/* Releases buf if it only backs the last delivered event (no message in
 * progress); a no-op otherwise. Invalidates the last event's data. Inline:
 * it runs twice per message and a small frame leaves nothing to release. */
static inline void ws_msg_trim(struct ws_msg *m)
{
    if (m->ctrl != NULL || m->buf != NULL)
        ws_msg_trim_held(m);
}

/* Consumes bytes from in[0..len) (modifying them: unmasking in place) until
 * one event is complete or the input is exhausted.
 *
 * Returns the number of bytes consumed (0..len). ev->type is WS_EV_NONE when
 * the input was used up without completing an event; otherwise the event is
 * in *ev and the caller calls again with in + consumed.
 * A zero-length frame completes even when it ends exactly at the end of the
 * input. in may be NULL when len is 0. Thread: whoever owns m.
 * Errors (negative): RC_E_PROTO (framing rules, bad close code, a 1-byte
 * close payload, continuation without a message, a new data frame inside a
 * fragmented message, RSV bits not allowed, mask rule), RC_E_UTF8 (text or
 * close reason), RC_E_TOO_BIG (the message would exceed max_message; decided
 * as soon as a frame header announces it), RC_E_NOMEM (buffer allocation
 * failed). After an error the state is undefined until ws_msg_reset.
 */
static RC_ALWAYS_INLINE ssize_t ws_msg_feed(struct ws_msg *m, uint8_t *in, size_t len,
                                            struct ws_event *ev);

/* ws_msg_feed without its inline shortcut: every case (the shortcut's too). */
ssize_t ws_msg_feed_any(struct ws_msg *m, uint8_t *in, size_t len, struct ws_event *ev);

/* 1 when no partial frame or message is pending (a safe point, e.g. for reload). */
static inline int ws_msg_idle(const struct ws_msg *m)
{
    return !m->in_frame && m->hb_len == 0 && m->msg_opcode == 0;
}

_Static_assert(offsetof(struct ws_msg, hb_len) == offsetof(struct ws_msg, in_frame) + 1 &&
                   offsetof(struct ws_msg, msg_opcode) == offsetof(struct ws_msg, in_frame) + 2 &&
                   offsetof(struct ws_msg, msg_rsv) == offsetof(struct ws_msg, in_frame) + 3,
               "ws_msg_blank reads in_frame..msg_rsv as one word");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "ws_msg_blank masks msg_rsv as the high byte");

/* 1 when m holds nothing: no partial frame or message (ws_msg_idle) and no
 * buffer (nothing for ws_msg_trim to release). One combined test, as it runs
 * per message. */
static inline int ws_msg_blank(const struct ws_msg *m)
{
    uint32_t flags; /* in_frame, hb_len, msg_opcode and msg_rsv */
    memcpy(&flags, &m->in_frame, sizeof(flags));
    flags &= 0x00ffffffu; /* little endian: msg_rsv out (it outlives a message) */
    return ((uintptr_t)m->ctrl | (uintptr_t)m->buf | flags) == 0;
}

/* Unmasks p[0..n) in place (RFC 6455 §5.3) from payload offset 0: ws_mask
 * inline, for the short frames of ws_msg_feed's shortcut. The 64-bit key is
 * the 4-byte key twice, in memory order on either endianness. */
static inline void ws_unmask_short(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint32_t k4;
    memcpy(&k4, key, 4);
    uint64_t kw = (uint64_t)k4 << 32 | k4;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= kw;
        memcpy(p + i, &w, 8);
    }
    if (n & 4) { /* i == n & ~7 here */
        uint32_t w;
        memcpy(&w, p + i, 4);
        w ^= k4;
        memcpy(p + i, &w, 4);
        i += 4;
    }
    for (; i < n; i++) /* n & 3 bytes */
        p[i] ^= key[i & 3];
}

/* ws_msg_feed's shortcuts end here: ev is the message of the frame whose
 * first byte is b0, payload p (n bytes, unmasked) after hl header bytes. */
static RC_ALWAYS_INLINE ssize_t ws_msg_whole(struct ws_event *ev, uint8_t b0, const uint8_t *p,
                                             size_t n, size_t hl)
{
    ev->type = WS_EV_MESSAGE;
    ev->opcode = b0 & 0x0f;
    ev->rsv = 0;
    ev->data = p;
    ev->len = n;
    ev->close_code = 0;
    return (ssize_t)(hl + n);
}

/* The common cases inline, told from the first bytes: a whole, final,
 * masked text or binary frame of 1 to 125 bytes, or of 126 to 65535 bytes in
 * the 16-bit length form (a 1 KiB message), while m holds nothing. It
 * passes every check of the general path (RSV 0, masked, not a
 * continuation, minimal length encoding, under the size cap), so it is
 * delivered in place without the header state machine; anything else goes
 * to ws_msg_feed_any. The short form is unmasked inline; the longer one
 * second, so the short form's path is what it was (tests/bench
 * callgrind_budget.py, echo and echo_1k). Always inline: the server has one
 * caller (conn.c's feed_ws, itself inline in the read path), and the
 * compiler's own choice made it a call with its own frame once that caller
 * grew (echo: +40 Ir). */
static RC_ALWAYS_INLINE ssize_t ws_msg_feed(struct ws_msg *m, uint8_t *in, size_t len,
                                            struct ws_event *ev)
{
    /* in[0]: FIN, no RSV, text or binary; in[1]: MASK and a length of 1-125 */
    if (len >= 7 && (unsigned)(in[0] - 0x81) < 2 && (unsigned)(in[1] - 0x81) < 125 &&
        ws_msg_blank(m)) {
        size_t n = in[1] & 0x7f;
        if (len >= 6 + n && m->cfg->require_mask && n <= m->cfg->max_message) {
            uint8_t *p = in + 6;
            ws_unmask_short(p, n, in + 2);
            if (in[0] == 0x81 && utf8_validate(UTF8_ACCEPT, p, n) != UTF8_ACCEPT)
                return RC_E_UTF8; /* §8.1 */
            return ws_msg_whole(ev, in[0], p, n, 6);
        }
    }
    /* in[1]: MASK and 126, the 16-bit length form; the length 126..65535
     * (under 126 it is not minimal, §5.2, and the general path fails it) */
    if (len >= 8 && in[1] == 0xFE && (unsigned)(in[0] - 0x81) < 2 && ws_msg_blank(m)) {
        size_t n = (size_t)in[2] << 8 | in[3];
        if (n >= 126 && len - 8 >= n && m->cfg->require_mask && n <= m->cfg->max_message) {
            uint8_t *p = in + 8;
            ws_mask(p, n, in + 4, 0); /* 16-byte blocks: worth the call */
            if (in[0] == 0x81 && utf8_validate(UTF8_ACCEPT, p, n) != UTF8_ACCEPT)
                return RC_E_UTF8; /* §8.1 */
            return ws_msg_whole(ev, in[0], p, n, 8);
        }
    }
    /* Filled out of line as a copy: no call is given the address of the
     * caller's event, so the compiler can keep it in registers (callgrind
     * echo: no stores and reloads of it around the handler call). */
    struct ws_event any;
    ssize_t r = ws_msg_feed_any(m, in, len, &any);
    *ev = any;
    return r;
}

#endif
