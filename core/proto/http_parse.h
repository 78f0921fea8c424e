/* http_parse.h - strict, allocation-free, incremental HTTP/1.1 request-head parser.
 *
 * picohttpparser's contract, written for roomcast: every output points into
 * the caller's buffer; the caller supplies the header array and its capacity;
 * `last_len` is how many bytes of `buf` were already seen by the previous
 * call that returned RC_NEED_MORE, so the end-of-head scan only looks at new
 * bytes (a byte-at-a-time client costs O(n) in total, not O(n^2)).
 *
 * Strictness: request line `METHOD SP request-target SP HTTP/1.x CRLF`
 * (single spaces; method is a token; target has no CTLs or spaces), header
 * lines `name ":" OWS value OWS CRLF`, name a token (no whitespace before the
 * colon, RFC 9112 §5.1), no obsolete line folding, no bare CR, no NUL or other
 * CTL except HTAB in values. A bare LF line ending is rejected, and so is an
 * empty line before the request line (RFC 9112 §2.2 makes skipping it a SHOULD;
 * WebSocket clients never send one). The request-target is printable ASCII
 * (0x21-0x7E); any form (origin, absolute, authority, asterisk) passes here.
 *
 * Early refusal: bytes that cannot appear anywhere in a head (NUL, CTLs other
 * than HTAB/CR/LF, DEL), a bare CR or LF, a line starting with SP/HTAB and a
 * first byte that is not a token character are refused as they arrive, before
 * the head is complete; the grammar proper is checked once CRLF CRLF is seen.
 */
#ifndef RC_PROTO_HTTP_PARSE_H
#define RC_PROTO_HTTP_PARSE_H

#include <stddef.h>
#include <sys/types.h>

struct http_header {
    const char *name; /* borrowed: points into the parsed buffer */
    size_t name_len;
    const char *value; /* borrowed; leading/trailing OWS trimmed */
    size_t value_len;
};

struct http_request {
    const char *method; /* borrowed */
    size_t method_len;
    const char *target; /* borrowed: path plus optional "?query" */
    size_t target_len;
    int minor_version;           /* 0 or 1 for HTTP/1.0, HTTP/1.1 */
    struct http_header *headers; /* caller-owned array */
    size_t num_headers;          /* in: capacity of headers[]; out: headers filled
                                    (written only when the call returns > 0, so a
                                    resumed call still sees the capacity) */
};

/* Parses one request head from buf[0..len).
 *
 * Returns:
 *   > 0                    bytes of the head, including the final CRLF CRLF;
 *                          req is filled and its pointers stay valid while buf does.
 *   RC_NEED_MORE           the head is incomplete and breaks no early-refusal rule
 *                          (above); call again with more bytes and last_len = len.
 *   RC_E_PROTO             malformed (answer 400).
 *   RC_E_TOO_MANY_HEADERS  more headers than the capacity (answer 431).
 *   RC_E_HEAD_TOO_BIG      the head (complete or not) is longer than max_head (answer 431);
 *                          returned as soon as len >= max_head without a complete head.
 * Bytes after the head (pipelined data) are never looked at. Only bytes from
 * last_len on are examined, with up to 3 bytes of look-back (last_len > len is
 * treated as 0), so last_len must be the length of a previous call on the same
 * bytes that returned RC_NEED_MORE.
 * The method/target/header outputs are only meaningful when the result is > 0
 * (headers[] may be partly written on errors). Never allocates, never reads
 * outside buf[0..len). Thread-safe (no state besides the arguments).
 */
ssize_t http_parse_request(const char *buf, size_t len, size_t last_len, size_t max_head,
                           struct http_request *req);

/* Case-insensitive ASCII comparison of a[0..alen) with NUL-terminated b. 1 if equal,
 * 0 otherwise (including when the lengths differ). */
int http_token_eq(const char *a, size_t alen, const char *b);

/* Finds the first header named `name` (case-insensitive) in a parsed request.
 * NULL if absent; the result is borrowed from req->headers. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* Number of headers named `name`. */
size_t http_count_header(const struct http_request *req, const char *name);

/* 1 if the comma-separated token list in `value` (e.g. a Connection header)
 * contains `token`, case-insensitive, ignoring OWS around elements and empty
 * elements (RFC 9110 §5.6.1); 0 otherwise. */
int http_list_has_token(const char *value, size_t len, const char *token);

/* 1 if value[0..len) (an Authorization header; NULL is taken as absent) is
 * "Bearer <token>" with the scheme case-insensitive and the NUL-terminated
 * token exact; 0 otherwise, and always 0 for an empty token. The token is
 * compared in constant time, so it does not leak through timing. */
int http_bearer_ok(const char *value, size_t len, const char *token);

/* Splits target at the first '?' into path and query (without the '?'). When
 * there is no '?', query points at the end of the target and query_len is 0.
 * All outputs are borrowed from req->target. */
void http_split_target(const struct http_request *req, const char **path, size_t *path_len,
                       const char **query, size_t *query_len);

#endif
