/* closecode.h - RFC 6455 §7.4 close codes, kept apart from error codes
 * (a close code is never returned as an error), and the one table that maps
 * internal errors to close codes.
 */
#ifndef RC_PROTO_CLOSECODE_H
#define RC_PROTO_CLOSECODE_H

#include <stddef.h>
#include <stdint.h>

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never on the wire */
    WS_CLOSE_ABNORMAL = 1006,  /* never on the wire */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_MANDATORY_EXT = 1010,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_SERVICE_RESTART = 1012,
    WS_CLOSE_TRY_AGAIN = 1013,
};

/* 1 if a peer may send `code` in a close frame: 1000-1003, 1007-1011 and
 * 3000-4999 (registered and private ranges). Everything else, including
 * 1004-1006, 1012-2999 and >= 5000, is a protocol error (1002). */
int ws_close_code_valid(unsigned code);

/* The close code for an internal error: RC_E_PROTO -> 1002, RC_E_UTF8 -> 1007,
 * RC_E_TOO_BIG -> 1009, RC_E_LIMIT -> 1008, RC_E_SCRIPT -> 1011,
 * RC_E_NOMEM -> 1011, RC_E_TIMEOUT -> 1001, anything else -> 1011. */
enum ws_close_code ws_close_code_for(int err);

/* Default reason text for a close code ("protocol error", ...). Static. */
const char *ws_close_reason(unsigned code);

/* Builds a close frame payload: 2-byte big-endian code then the reason,
 * truncated to 123 bytes at a UTF-8 character boundary. out must hold 125
 * bytes. code 0 means "no status" and yields an empty payload.
 * Returns the payload length. */
size_t ws_close_payload(uint8_t out[125], unsigned code, const char *reason, size_t reason_len);

#endif
