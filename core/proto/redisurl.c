#include "redisurl.h"

#include <stdio.h>
#include <string.h>

#include "defs.h"
#include "err.h"

static int fail(char *why, size_t cap, const char *msg)
{
    if (cap > 0)
        snprintf(why, cap, "%s", msg);
    return RC_E_INVAL;
}

/* Copies s[0..n) into out (cap bytes with the NUL), decoding %XX. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = rc_hexval(s[i + 1]), l = rc_hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Decimal s[0..n) in lo..hi, no sign, at most 5 digits. */
static int number(const char *s, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int host_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '.' || c == '_';
}

int redis_url_parse(const char *s, struct redis_url *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(s, "rediss://", 9) == 0)
        return fail(why, cap, "rediss:// (TLS) is not supported; use redis://");
    if (strncmp(s, "redis://", 8) != 0)
        return fail(why, cap, "the URL must start with redis://");
    const char *p = s + 8;
    if (strpbrk(p, "?#"))
        return fail(why, cap, "query strings and fragments are not supported");
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    /* userinfo: up to the LAST '@' before the path (a password may hold '@'
     * only escaped, but be lenient about where the split is). */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (decode(p, (size_t)(uend - p), out->user, sizeof(out->user)) != 0)
            return fail(why, cap, "bad user name in the URL");
        if (colon) {
            if (decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password)) !=
                0)
                return fail(why, cap, "bad password in the URL");
            out->has_password = 1;
        }
        p = at + 1;
    }
    const char *hend;
    const char *pcolon;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || rb == p + 1)
            return fail(why, cap, "bad IPv6 address in the URL");
        for (const char *q = p + 1; q < rb; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
                  (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.'))
                return fail(why, cap, "bad IPv6 address in the URL");
        if ((size_t)(rb - p - 1) > REDISURL_HOST_MAX)
            return fail(why, cap, "host name too long");
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        out->host[rb - p - 1] = '\0';
        hend = rb + 1;
        if (hend < end && *hend != ':')
            return fail(why, cap, "bad IPv6 address in the URL");
        pcolon = hend < end ? hend : NULL;
    } else {
        pcolon = memchr(p, ':', (size_t)(end - p));
        hend = pcolon ? pcolon : end;
        if (hend == p)
            return fail(why, cap, "no host in the URL");
        if ((size_t)(hend - p) > REDISURL_HOST_MAX)
            return fail(why, cap, "host name too long");
        for (const char *q = p; q < hend; q++)
            if (!host_char(*q))
                return fail(why, cap, "bad character in the host name");
        memcpy(out->host, p, (size_t)(hend - p));
        out->host[hend - p] = '\0';
    }
    if (pcolon && number(pcolon + 1, (size_t)(end - pcolon - 1), 1, 65535, &out->port) != 0)
        return fail(why, cap, "the port must be a number from 1 to 65535");
    if (slash && slash[1] != '\0' && number(slash + 1, strlen(slash + 1), 0, 9999, &out->db) != 0)
        return fail(why, cap, "the database must be a number from 0 to 9999");
    return 0;
}
