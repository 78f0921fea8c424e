/* handshake.h - RFC 6455 §4.2 server opening handshake: validation of a parsed
 * request head, the Sec-WebSocket-Accept key, and the response heads.
 *
 * Pure: no sockets, no loop, no allocation. SHA-1/base64 via base/crypto.
 */
#ifndef RC_PROTO_HANDSHAKE_H
#define RC_PROTO_HANDSHAKE_H

#include <stddef.h>

#include "http_parse.h"

#define WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */

/* What a valid upgrade request carried (all borrowed from the request). */
struct ws_upgrade {
    const char *key; /* Sec-WebSocket-Key, 24 chars */
    size_t key_len;
    const char *protocols; /* Sec-WebSocket-Protocol value, or NULL */
    size_t protocols_len;
    const char *extensions; /* Sec-WebSocket-Extensions value, or NULL */
    size_t extensions_len;
    const char *origin; /* Origin, or NULL */
    size_t origin_len;
    const char *host;
    size_t host_len;
};

/* Why a request was refused: an HTTP status and a one-line reason (static). */
struct ws_refusal {
    int status;         /* 400, 404, 405, 426 */
    const char *reason; /* e.g. "missing Sec-WebSocket-Key" */
    const char *kind;   /* a stable metric label, e.g. "key" (static); NULL: by status */
};

/* Validates req as a WebSocket upgrade (RFC 6455 §4.2.1):
 *   method GET (else 405), HTTP/1.1 or later (else 400), exactly one Host (400),
 *   Upgrade containing token "websocket" (a plain GET with no Upgrade at all:
 *   426 "this endpoint speaks WebSocket"), Connection token list containing
 *   "upgrade" (400), exactly one Sec-WebSocket-Key that base64-decodes to 16
 *   bytes (400), Sec-WebSocket-Version exactly "13" (missing: 400; other: 426,
 *   and the response must carry "Sec-WebSocket-Version: 13").
 * Checks run in that order (RFC 6455 §4.2.1 order); the first failure wins.
 * Methods are case-sensitive ("get" is a 405). An Upgrade header without the
 * "websocket" token (e.g. "h2c") is treated like no Upgrade at all: 426.
 * Duplicate Sec-WebSocket-Version is a 400 (§11.3.5). Several Upgrade or
 * Connection lines are read as one list (RFC 9110 §5.3). For Protocol,
 * Extensions and Origin, *up borrows the first line of each.
 * Path routing is the caller's business (404 is the caller's).
 * Returns 0 and fills *up, or -1 and fills *why (reason: static storage).
 * Pure and thread-safe. */
int ws_upgrade_check(const struct http_request *req, struct ws_upgrade *up, struct ws_refusal *why);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key || GUID)), RFC 6455 §4.2.2.
 * The key is hashed as sent (not decoded). out gets 28 chars + NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Picks the first of the client's offered subprotocols (comma list in
 * `offered`) that is in the server's NULL-terminated list `supported`.
 * Names compare byte for byte (the client checks the echo against what it
 * sent); OWS around elements is ignored. Returns its index in `supported`, or
 * -1 (also when offered is NULL). */
int ws_pick_subprotocol(const char *offered, size_t offered_len, const char *const *supported);

/* Writes "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection, the accept
 * key and, when protocol != NULL, Sec-WebSocket-Protocol; `extra` (NULL or
 * complete "Name: value\r\n" lines) is appended before the blank line.
 * Returns the length written (a NUL follows when cap leaves room for it; it is
 * not counted), or -1 if cap is too small for the bytes. */
int ws_response_101(char *out, size_t cap, const char accept[WS_ACCEPT_LEN + 1],
                    const char *protocol, const char *extra);

/* Writes an error response: status line with the standard reason phrase,
 * Content-Type: text/plain, Content-Length, Connection: close, plus `extra`
 * header lines (NULL or complete "Name: value\r\n" lines), and the body
 * "<reason>\n" (reason NULL: the status text).
 * Status 426 instead gets "Connection: Upgrade, close", "Upgrade: websocket"
 * (RFC 9110 §15.5.22 and §7.8) and "Sec-WebSocket-Version: 13" (RFC 6455
 * §4.2.2). Status 405 gets "Allow: GET" unless `extra` has an Allow line
 * (RFC 9110 §15.5.6).
 * Returns the length written (a NUL follows when cap leaves room for it; it is
 * not counted), or -1 if cap is too small for the bytes. */
int http_error_response(char *out, size_t cap, int status, const char *reason, const char *extra);

/* Standard reason phrase for a status ("Bad Request"), "Unknown" otherwise. */
const char *http_status_text(int status);

#endif
