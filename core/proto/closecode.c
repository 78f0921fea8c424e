#include "closecode.h"

#include <string.h>

#include "err.h"
#include "utf8.h"

#define CLOSE_REASON_MAX 123 /* RFC 6455 §5.5: 125-byte control payload minus the code */

int ws_close_code_valid(unsigned code)
{
    /* RFC 6455 §7.4.1/§7.4.2 and the IANA registry: 1004 is reserved, 1005 and
     * 1006 "MUST NOT be set as a status code in a Close control frame", 1012+
     * in 1000-2999 are not defined by the RFC (Autobahn 7.9.x treats them as
     * invalid), 3000-3999 are registered and 4000-4999 private use. */
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1011)
        return 1;
    return code >= 3000 && code <= 4999;
}

enum ws_close_code ws_close_code_for(int err)
{
    switch (err) {
    case RC_E_PROTO:
        return WS_CLOSE_PROTOCOL;
    case RC_E_UTF8:
        return WS_CLOSE_INVALID_DATA; /* §8.1 */
    case RC_E_DATA:
        return WS_CLOSE_INVALID_DATA; /* a compressed payload that does not inflate */
    case RC_E_TOO_BIG:
        return WS_CLOSE_TOO_BIG;
    case RC_E_LIMIT:
        return WS_CLOSE_POLICY;
    case RC_E_TIMEOUT:
        return WS_CLOSE_GOING_AWAY;
    case RC_E_SCRIPT:
    case RC_E_NOMEM:
    default:
        return WS_CLOSE_INTERNAL;
    }
}

const char *ws_close_reason(unsigned code)
{
    switch (code) {
    case WS_CLOSE_NORMAL:
        return "normal closure";
    case WS_CLOSE_GOING_AWAY:
        return "going away";
    case WS_CLOSE_PROTOCOL:
        return "protocol error";
    case WS_CLOSE_UNSUPPORTED:
        return "unsupported data";
    case WS_CLOSE_NO_STATUS:
        return "no status";
    case WS_CLOSE_ABNORMAL:
        return "abnormal closure";
    case WS_CLOSE_INVALID_DATA:
        return "invalid payload data";
    case WS_CLOSE_POLICY:
        return "policy violation";
    case WS_CLOSE_TOO_BIG:
        return "message too big";
    case WS_CLOSE_MANDATORY_EXT:
        return "mandatory extension";
    case WS_CLOSE_INTERNAL:
        return "internal error";
    case WS_CLOSE_SERVICE_RESTART:
        return "service restart";
    case WS_CLOSE_TRY_AGAIN:
        return "try again later";
    default:
        return "";
    }
}

size_t ws_close_payload(uint8_t out[125], unsigned code, const char *reason, size_t reason_len)
{
    if (code == 0)
        return 0; /* §5.5.1: a close frame may have no body at all */
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason == NULL)
        return 2;
    size_t n = reason_len < CLOSE_REASON_MAX ? reason_len : CLOSE_REASON_MAX;
    /* §5.5.1: the reason is UTF-8; never cut a character in half (the peer would
     * fail us with 1007), and drop anything after an invalid byte. */
    n = utf8_truncate((const uint8_t *)reason, n);
    memcpy(out + 2, reason, n);
    return 2 + n;
}
