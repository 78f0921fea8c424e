#include "http_parse.h"

#include <string.h>
#include <strings.h>

#include "err.h"

/* Two passes, so that resumption needs no state beyond `last_len`:
 *
 *   1. scan_new_bytes() looks only at buf[last_len..len) (with one byte of
 *      look-back) for the CRLF CRLF that ends the head. On the way it applies
 *      the checks that need no context: bytes that may not appear anywhere in a
 *      head, bare CR, bare LF, a line that starts with whitespace. Garbage (a
 *      TLS ClientHello, binary noise) is thus refused at its first byte instead
 *      of after max_head bytes.
 *   2. parse_head() runs once, over a complete head, and does the grammar.
 *
 * Byte classes. RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" /
 * "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
 * RFC 9110 §5.5: field-vchar = VCHAR / obs-text (0x80-0xFF).
 */
#define C_TCHAR 0x01  /* token character */
#define C_FVCHAR 0x02 /* field-vchar */
#define C_HEAD 0x04   /* may appear somewhere in a head: HTAB, LF, CR, SP, VCHAR, obs-text */

/* Row n holds bytes 16n..16n+15. Written out by hand from the ABNF above. */
static const unsigned char cls[256] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 0, 0, 4, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20  SP ! " # $ % & ' ( ) * + , - . / */
    4, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    /* 0x30  0-9 : ; < = > ? */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    /* 0x40  @ A-O */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* 0x50  P-Z [ \ ] ^ _ */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    /* 0x60  ` a-o */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* 0x70  p-z { | } ~ DEL */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    /* 0x80-0xFF: obs-text */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0x80 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0x90 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xA0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xB0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xC0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xD0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xE0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xF0 */
};

static int is_tchar(unsigned char c)
{
    return cls[c] & C_TCHAR;
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 3986 §2: a URI is printable ASCII; spaces and CTLs never appear in a
 * request-target (RFC 9112 §3.2), so 0x21-0x7E only. */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7F;
}

/* Grammar pass over a complete head p[0..n), which ends in CRLF CRLF and has
 * passed scan_new_bytes(): every CR is followed by LF and every LF preceded by
 * CR, so each inner loop below stops at the latest at a CR inside the head. */
static ssize_t parse_head(const unsigned char *p, size_t n, struct http_request *req)
{
    const unsigned char *end = p + n;
    const unsigned char *s = p;

    /* RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF,
     * single spaces; method = token. */
    const unsigned char *method = s;
    while (is_tchar(*s))
        s++;
    if (s == method || *s != ' ')
        return RC_E_PROTO;
    size_t method_len = (size_t)(s - method);
    s++;

    const unsigned char *target = s;
    while (is_target_char(*s))
        s++;
    if (s == target || *s != ' ')
        return RC_E_PROTO;
    size_t target_len = (size_t)(s - target);
    s++;

    /* RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
     * Only 1.0 and 1.1 are HTTP/1.x messages we can answer. */
    if (end - s < 10 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != '\r' || s[9] != '\n')
        return RC_E_PROTO;
    int minor = s[7] - '0';
    s += 10;

    size_t cap = req->num_headers;
    size_t nh = 0;
    while (*s != '\r') {
        /* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS.
         * An empty name, or whitespace between name and colon (§5.1), is a 400. */
        const unsigned char *name = s;
        while (is_tchar(*s))
            s++;
        if (s == name || *s != ':')
            return RC_E_PROTO;
        size_t name_len = (size_t)(s - name);
        s++;
        while (is_ows(*s))
            s++;
        const unsigned char *value = s;
        /* RFC 9110 §5.5: field-value is field-vchar, SP and HTAB only; NUL,
         * other CTLs and DEL are refused rather than replaced by SP. */
        while ((cls[*s] & C_FVCHAR) || is_ows(*s))
            s++;
        if (*s != '\r')
            return RC_E_PROTO;
        const unsigned char *vend = s;
        while (vend > value && is_ows(vend[-1]))
            vend--;
        s += 2;
        if (nh == cap)
            return RC_E_TOO_MANY_HEADERS;
        req->headers[nh].name = (const char *)name;
        req->headers[nh].name_len = name_len;
        req->headers[nh].value = (const char *)value;
        req->headers[nh].value_len = (size_t)(vend - value);
        nh++;
    }
    s += 2;
    if (s != end) /* cannot happen: the first CRLF CRLF is the end of the head */
        return RC_E_PROTO;

    req->method = (const char *)method;
    req->method_len = method_len;
    req->target = (const char *)target;
    req->target_len = target_len;
    req->minor_version = minor;
    req->num_headers = nh;
    return (ssize_t)n;
}

ssize_t http_parse_request(const char *buf, size_t len, size_t last_len, size_t max_head,
                           struct http_request *req)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (last_len > len)
        last_len = 0;
    size_t limit = len < max_head ? len : max_head;

    for (size_t i = last_len; i < limit; i++) {
        unsigned char c = p[i];
        if (!(cls[c] & C_HEAD))
            return RC_E_PROTO;
        if (i == 0) {
            /* A head starts with a method token. RFC 9112 §2.2 lets a server skip
             * empty lines before the request line; a strict server need not. */
            if (!is_tchar(c))
                return RC_E_PROTO;
            continue;
        }
        unsigned char prev = p[i - 1];
        /* RFC 9112 §2.2: a bare CR is invalid; we also refuse a bare LF line end
         * (the RFC allows accepting it; strictness avoids smuggling ambiguity). */
        if (prev == '\r' && c != '\n')
            return RC_E_PROTO;
        if (c == '\n') {
            if (prev != '\r')
                return RC_E_PROTO;
            if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r')
                return parse_head(p, i + 1, req);
        }
        /* RFC 9112 §5.2: obs-fold (a line starting with SP/HTAB) is rejected.
         * The request line cannot be followed by one either (§2.2). */
        if (prev == '\n' && is_ows(c))
            return RC_E_PROTO;
    }
    /* Every byte below `limit` was scanned without finding the end: if that
     * covered max_head bytes, the head is longer than allowed. */
    if (len >= max_head)
        return RC_E_HEAD_TOO_BIG;
    return RC_NEED_MORE;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int http_token_eq(const char *a, size_t alen, const char *b)
{
    size_t i = 0;
    for (; i < alen; i++) {
        if (b[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    }
    return b[i] == '\0';
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_token_eq(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

size_t http_count_header(const struct http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_token_eq(h->name, h->name_len, name))
            n++;
    }
    return n;
}

int http_list_has_token(const char *value, size_t len, const char *token)
{
    /* RFC 9110 §5.6.1: #element lists, empty elements allowed and ignored. */
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t stop = i;
        while (start < stop && is_ows((unsigned char)value[start]))
            start++;
        while (stop > start && is_ows((unsigned char)value[stop - 1]))
            stop--;
        if (stop > start && http_token_eq(value + start, stop - start, token))
            return 1;
        i++; /* skip the comma */
    }
    return 0;
}

int http_bearer_ok(const char *value, size_t len, const char *token)
{
    static const char prefix[] = "Bearer ";
    size_t pl = sizeof(prefix) - 1;
    if (value == NULL || len < pl || strncasecmp(value, prefix, pl) != 0)
        return 0;
    value += pl;
    len -= pl;
    size_t tl = strlen(token);
    unsigned diff = (unsigned)(len ^ tl);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)value[i] ^ (unsigned char)token[i < tl ? i : 0];
    return diff == 0 && tl > 0;
}

void http_split_target(const struct http_request *req, const char **path, size_t *path_len,
                       const char **query, size_t *query_len)
{
    const char *q = req->target_len ? memchr(req->target, '?', req->target_len) : NULL;
    *path = req->target;
    if (q == NULL) {
        *path_len = req->target_len;
        *query = req->target + req->target_len;
        *query_len = 0;
        return;
    }
    *path_len = (size_t)(q - req->target);
    *query = q + 1;
    *query_len = req->target_len - *path_len - 1;
}
