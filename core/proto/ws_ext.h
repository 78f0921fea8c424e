/* ws_ext.h - Sec-WebSocket-Extensions offers (RFC 6455 §9.1) and the
 * permessage-deflate negotiation (RFC 7692 §5, §7.1).
 *
 *   extension-list = 1#extension
 *   extension      = extension-token *( OWS ";" OWS extension-param )
 *   extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
 *
 * The parser is a byte-at-a-time state machine: feed it any split of a
 * header value, call ws_ext_end_field between header lines (several
 * Sec-WebSocket-Extensions lines form one list, RFC 9110 §5.3), then
 * ws_ext_finish. It judges each permessage-deflate offer as soon as the offer
 * ends and keeps the first one it can honour; offers of other extensions are
 * skipped. Any fault inside an offer (a syntax error, an unknown or repeated
 * parameter, a bad value) declines that offer only; after a syntax error the
 * parser resynchronises at the next comma outside a quoted string. Nothing
 * from the input is kept except the chosen numbers, so nothing malformed can
 * be echoed in the answer.
 *
 * Pure: no allocation, no I/O; the state is a small fixed struct.
 */
#ifndef RC_PROTO_WS_EXT_H
#define RC_PROTO_WS_EXT_H

#include <stddef.h>
#include <stdint.h>

/* What the server is willing to do. */
struct pmd_policy {
    uint8_t window_bits; /* the server's deflate window, 9..15 (8 is raised to 9: zlib's raw
                            deflate has no 256-byte window) */
};

/* The accepted offer, as the server will run it. Both directions are always
 * without context takeover (see ws_ext_finish). */
struct pmd_params {
    uint8_t server_window_bits;    /* the server's compressor window, 9..15 */
    uint8_t client_window_bits;    /* 0: not mentioned in the answer; else 8..15 */
    uint8_t client_no_context;     /* always 1 in an accepted answer */
    uint8_t server_window_offered; /* the offer carried server_max_window_bits */
};

#define WS_EXT_TOKEN_MAX 32 /* longer parameter names are unknown by construction */

struct ws_ext_parser {
    uint8_t state;
    uint8_t quoted; /* the current value was a quoted-string */
    uint8_t esc;    /* in a quoted string, after a backslash */
    uint8_t is_pmd; /* the current offer is permessage-deflate */
    uint8_t bad;    /* the current offer is declined */
    uint8_t seen;   /* parameters seen in this offer (bit per parameter) */
    uint8_t have_value;
    uint8_t param;          /* parameter being read (enum in ws_ext.c) */
    uint8_t tok_len;        /* bytes of the current token (saturates past WS_EXT_TOKEN_MAX) */
    uint8_t chosen;         /* an offer was accepted */
    uint8_t s_bits, c_bits; /* values of the current offer (0 = absent or no value) */
    char tok[WS_EXT_TOKEN_MAX];
    struct pmd_policy pol;
    struct pmd_params out;
};

/* Starts a parse with the server's policy (copied). */
void ws_ext_init(struct ws_ext_parser *p, const struct pmd_policy *pol);

/* Consumes s[0..n) of one header field value. Never fails: faults only
 * decline offers. s may be NULL when n is 0. */
void ws_ext_feed(struct ws_ext_parser *p, const char *s, size_t n);

/* Ends one header field (a field boundary ends the offer in progress, like a
 * comma). */
void ws_ext_end_field(struct ws_ext_parser *p);

/* Ends the parse. Returns 1 and fills *out when a permessage-deflate offer
 * was accepted, else 0. The answer always carries server_no_context_takeover
 * (one compressed room frame is shared by every member, RFC 7692 §7.1.1.1)
 * and client_no_context_takeover (so no inflate window outlives a message,
 * §7.1.1.2 lets the server ask for it unasked). */
int ws_ext_finish(struct ws_ext_parser *p, struct pmd_params *out);

/* Writes the response header line "Sec-WebSocket-Extensions: permessage-deflate; ...\r\n"
 * for prm into out. Returns its length, or -1 if cap is too small. */
int ws_ext_answer(char *out, size_t cap, const struct pmd_params *prm);

#endif
