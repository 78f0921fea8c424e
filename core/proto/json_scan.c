#include "json_scan.h"

#include <stdint.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

struct scan {
    const char *p, *end;
    int depth;
};

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* s->p at the opening quote; leaves it after the closing one. */
static int scan_string(struct scan *s)
{
    const char *start = ++s->p;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            /* RFC 8259 §8.1: JSON text is UTF-8. */
            if (!utf8_is_valid((const uint8_t *)start, (size_t)(s->p - start)))
                return -1;
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1; /* §7: control characters must be escaped */
        if (c == '\\') {
            if (s->end - s->p < 2)
                return -1;
            char e = s->p[1];
            if (e == 'u') {
                uint32_t v;
                if (s->end - s->p < 6 || hex4(s->p + 2, &v) != 0)
                    return -1;
                s->p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0')
                return -1;
            s->p += 2;
            continue;
        }
        s->p++;
    }
    return -1;
}

static int scan_number(struct scan *s)
{
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end)
        return -1;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return -1;
    }
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return -1;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return -1;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int scan_lit(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int scan_value(struct scan *s, enum json_type *type);

static int scan_container(struct scan *s, int object)
{
    if (++s->depth > JSON_MAX_DEPTH)
        return -1;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == (object ? '}' : ']')) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        ws(s);
        if (object) {
            if (s->p >= s->end || *s->p != '"' || scan_string(s) != 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
            ws(s);
        }
        enum json_type t;
        if (scan_value(s, &t) != 0)
            return -1;
        ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != (object ? '}' : ']'))
            return -1;
        s->p++;
        s->depth--;
        return 0;
    }
}

static int scan_value(struct scan *s, enum json_type *type)
{
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '"':
        *type = JSON_STRING;
        return scan_string(s);
    case '{':
        *type = JSON_OBJECT;
        return scan_container(s, 1);
    case '[':
        *type = JSON_ARRAY;
        return scan_container(s, 0);
    case 't':
        *type = JSON_TRUE;
        return scan_lit(s, "true");
    case 'f':
        *type = JSON_FALSE;
        return scan_lit(s, "false");
    case 'n':
        *type = JSON_NULL;
        return scan_lit(s, "null");
    default:
        *type = JSON_NUMBER;
        return scan_number(s);
    }
}

ssize_t json_scan_object(const char *buf, size_t len, struct json_member *m, size_t cap)
{
    struct scan s = {buf, buf + len, 1};
    ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return RC_E_INVAL;
    s.p++;
    ssize_t n = 0;
    ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            ws(&s);
            if (s.p >= s.end || *s.p != '"')
                return RC_E_INVAL;
            const char *k = s.p + 1;
            if (scan_string(&s) != 0)
                return RC_E_INVAL;
            size_t kl = (size_t)(s.p - 1 - k);
            ws(&s);
            if (s.p >= s.end || *s.p != ':')
                return RC_E_INVAL;
            s.p++;
            ws(&s);
            const char *v = s.p;
            enum json_type t;
            if (scan_value(&s, &t) != 0)
                return RC_E_INVAL;
            if ((size_t)n < cap)
                m[n] = (struct json_member){k, kl, v, (size_t)(s.p - v), t};
            n++;
            ws(&s);
            if (s.p >= s.end)
                return RC_E_INVAL;
            if (*s.p == ',') {
                s.p++;
                continue;
            }
            if (*s.p != '}')
                return RC_E_INVAL;
            s.p++;
            break;
        }
    }
    ws(&s);
    return s.p == s.end ? n : RC_E_INVAL;
}

const struct json_member *json_find(const struct json_member *m, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const struct json_member *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (m[i].key_len == kl && memcmp(m[i].key, key, kl) == 0)
            found = &m[i];
    return found;
}

static size_t put_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

ssize_t json_string_decode(const char *raw, size_t len, char *out, size_t cap)
{
    if (len < 2 || raw[0] != '"' || raw[len - 1] != '"' || cap == 0)
        return RC_E_INVAL;
    const char *p = raw + 1, *end = raw + len - 1;
    size_t o = 0;
    while (p < end) {
        char tmp[4];
        size_t tl;
        if (*p != '\\') {
            tmp[0] = *p++;
            tl = 1;
        } else {
            if (end - p < 2)
                return RC_E_INVAL;
            char e = p[1];
            p += 2;
            switch (e) {
            case '"':
                tmp[0] = '"';
                tl = 1;
                break;
            case '\\':
                tmp[0] = '\\';
                tl = 1;
                break;
            case '/':
                tmp[0] = '/';
                tl = 1;
                break;
            case 'b':
                tmp[0] = '\b';
                tl = 1;
                break;
            case 'f':
                tmp[0] = '\f';
                tl = 1;
                break;
            case 'n':
                tmp[0] = '\n';
                tl = 1;
                break;
            case 'r':
                tmp[0] = '\r';
                tl = 1;
                break;
            case 't':
                tmp[0] = '\t';
                tl = 1;
                break;
            case 'u': {
                uint32_t cp;
                if (end - p < 4 || hex4(p, &cp) != 0)
                    return RC_E_INVAL;
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) { /* RFC 8259 §7: a surrogate pair */
                    uint32_t lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return RC_E_INVAL;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return RC_E_INVAL;
                }
                if (cp == 0)
                    return RC_E_INVAL;
                tl = put_utf8(cp, tmp);
                break;
            }
            default:
                return RC_E_INVAL;
            }
        }
        if (o + tl >= cap)
            return RC_E_TOO_BIG;
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    out[o] = '\0';
    return (ssize_t)o;
}
