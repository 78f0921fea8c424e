#include "busmsg.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* Reads a decimal field ending at a space (or LF when last is set) starting
 * at *pos: digits only, no leading zero unless the value is 0, at most max.
 * Advances *pos past the separator. Returns 0 or RC_E_PROTO. */
static int read_uint(const char *p, size_t n, size_t *pos, uint64_t max, char sep, uint64_t *out)
{
    size_t i = *pos;
    uint64_t v = 0;
    size_t start = i;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (max - d) / 10)
            return RC_E_PROTO;
        v = v * 10 + d;
        i++;
    }
    size_t digits = i - start;
    if (digits == 0 || (digits > 1 && p[start] == '0'))
        return RC_E_PROTO;
    if (i >= n || p[i] != sep)
        return RC_E_PROTO;
    *pos = i + 1;
    *out = v;
    return 0;
}

/* A token of 1..max bytes accepted by ok(), ending at a space. */
static int read_token(const char *p, size_t n, size_t *pos, size_t max, int (*ok)(char),
                      const char **tok, size_t *tlen)
{
    size_t i = *pos;
    while (i < n && p[i] != ' ') {
        if (!ok(p[i]))
            return RC_E_PROTO;
        i++;
    }
    size_t len = i - *pos;
    if (len == 0 || len > max || i >= n)
        return RC_E_PROTO;
    *tok = p + *pos;
    *tlen = len;
    *pos = i + 1;
    return 0;
}

static int epoch_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

static int node_char(char c)
{
    return c >= 0x21 && c <= 0x7e;
}

int busmsg_valid_epoch(const char *s, size_t n)
{
    if (n == 0 || n > BUSMSG_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!epoch_char(s[i]))
            return 0;
    return 1;
}

int busmsg_valid_node(const char *s, size_t n)
{
    if (n == 0 || n > BUSMSG_NODE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!node_char(s[i]))
            return 0;
    return 1;
}

int busmsg_parse_room(const char *p, size_t n, struct busmsg *out)
{
    if (n < 4 || memcmp(p, "rc1 ", 4) != 0)
        return RC_E_PROTO;
    size_t pos = 4;
    uint64_t v;
    if (read_uint(p, n, &pos, INT64_MAX, ' ', &v) != 0 || v == 0)
        return RC_E_PROTO;
    out->seq = v;
    if (read_uint(p, n, &pos, INT64_MAX, ' ', &v) != 0)
        return RC_E_PROTO;
    out->ts_ms = (int64_t)v;
    if (read_uint(p, n, &pos, UINT32_MAX, ' ', &v) != 0)
        return RC_E_PROTO;
    out->flags = (uint32_t)v;
    if (read_token(p, n, &pos, BUSMSG_EPOCH_MAX, epoch_char, &out->epoch, &out->epoch_len) != 0)
        return RC_E_PROTO;
    if (read_token(p, n, &pos, BUSMSG_NODE_MAX, node_char, &out->origin, &out->origin_len) != 0)
        return RC_E_PROTO;
    if (read_uint(p, n, &pos, UINT64_MAX, '\n', &v) != 0)
        return RC_E_PROTO;
    out->exclude = v;
    out->data = p + pos;
    out->len = n - pos;
    return 0;
}

int busmsg_parse_direct(const char *p, size_t n, int *binary, const char **data, size_t *len)
{
    if (n < 7 || memcmp(p, "rcd1 ", 5) != 0 || (p[5] != '0' && p[5] != '1') || p[6] != '\n')
        return RC_E_PROTO;
    *binary = p[5] == '1';
    *data = p + 7;
    *len = n - 7;
    return 0;
}

int busmsg_parse_kick(const char *p, size_t n, unsigned *code, const char **reason, size_t *rlen)
{
    if (n < 6 || memcmp(p, "rck1 ", 5) != 0 || p[5] == '0')
        return RC_E_PROTO;
    unsigned v = 0;
    size_t i = 5;
    for (; i < n && i < 10 && p[i] >= '0' && p[i] <= '9'; i++)
        v = v * 10 + (unsigned)(p[i] - '0');
    if (i == 5 || i >= n || p[i] != '\n' || !(v == 1000 || (v >= 3000 && v <= 4999)))
        return RC_E_PROTO;
    if (n - i - 1 > BUSMSG_KICK_REASON_MAX)
        return RC_E_PROTO;
    *code = v;
    *reason = p + i + 1;
    *rlen = n - i - 1;
    return 0;
}

int busmsg_format_room(char *out, uint64_t seq, int64_t ts_ms, uint32_t flags, const char *epoch,
                       const char *origin, uint64_t exclude)
{
    if (!busmsg_valid_epoch(epoch, strlen(epoch)) || !busmsg_valid_node(origin, strlen(origin)) ||
        seq == 0 || seq > INT64_MAX || ts_ms < 0)
        return RC_E_INVAL;
    int n =
        snprintf(out, BUSMSG_HEADER_MAX, "rc1 %llu %lld %u %s %s %llu\n", (unsigned long long)seq,
                 (long long)ts_ms, (unsigned)flags, epoch, origin, (unsigned long long)exclude);
    return n;
}
