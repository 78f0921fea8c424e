/* json_scan.h - a validating scanner for the small JSON objects of the HTTP
 * API (admin.c /api/): it checks a whole text against RFC 8259 and reports
 * the members of the top-level object as raw spans into the input, without
 * building a tree. Pure: no I/O, no allocation.
 *
 *   {"room_id":"lobby","data":{"x":[1,2]}}
 *    `---key---' `val-'  `-key' `--val--'   (val spans are raw JSON text)
 */
#ifndef RC_PROTO_JSON_SCAN_H
#define RC_PROTO_JSON_SCAN_H

#include <stddef.h>
#include <sys/types.h>

enum json_type {
    JSON_STRING = 1,
    JSON_NUMBER,
    JSON_OBJECT,
    JSON_ARRAY,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL
};

struct json_member {
    const char *key; /* borrowed: the raw key, quotes excluded, escapes not decoded */
    size_t key_len;
    const char *val; /* borrowed: the raw value text (strings with their quotes) */
    size_t val_len;
    enum json_type type;
};

#define JSON_MAX_DEPTH 32

/* Checks that buf[0..len) is exactly one JSON object (surrounding whitespace
 * allowed; strings valid UTF-8 with valid escapes; nesting at most
 * JSON_MAX_DEPTH) and stores its first `cap` top-level members in m.
 * Returns the number of top-level members (may exceed cap: only cap are
 * stored), or RC_E_INVAL when the text is not a valid JSON object. */
ssize_t json_scan_object(const char *buf, size_t len, struct json_member *m, size_t cap);

/* Finds the member whose raw key equals `key` (keys with escapes never
 * match). The last duplicate wins, like most decoders. NULL if absent. */
const struct json_member *json_find(const struct json_member *m, size_t n, const char *key);

/* Decodes a raw JSON string (with its quotes, as json_scan_object returns
 * it) into out (cap bytes, NUL-terminated; \u escapes become UTF-8,
 * surrogate pairs joined). Returns the decoded length, RC_E_INVAL (not a
 * string, a lone surrogate, or a \u0000 that would truncate C strings), or
 * RC_E_TOO_BIG. */
ssize_t json_string_decode(const char *raw, size_t len, char *out, size_t cap);

#endif
