#include "msgframe.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "strmap.h"
#include "ws_frame.h"

int64_t msgframe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where to splice ,"seq":N,"ts":T into a JSON object text: the index of its
 * final '}', or -1 if it does not look like an object. *empty is set when
 * the object has no members ("{}"). */
static long splice_point(const char *p, size_t n, int *empty)
{
    size_t a = 0;
    while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\n' || p[a] == '\r'))
        a++;
    long b = (long)n - 1;
    while (b >= 0 && (p[b] == ' ' || p[b] == '\t' || p[b] == '\n' || p[b] == '\r'))
        b--;
    if (a >= n || b < 0 || p[a] != '{' || p[b] != '}' || (long)a >= b)
        return -1;
    long k = b - 1;
    while (k > (long)a && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r'))
        k--;
    *empty = k == (long)a;
    return b;
}

struct frame_ref *msgframe_encode(const char *room, size_t rlen, const void *payload, size_t len,
                                  uint32_t flags, uint64_t seq, int64_t ts_ms, uint32_t *off)
{
    unsigned opcode = (flags & ROOM_PUB_BINARY) ? WS_OP_BINARY : WS_OP_TEXT;
    const char *p = payload;
    char stamp[96];
    size_t slen = 0;
    long cut = -1;
    if (flags & ROOM_PUB_STAMP) {
        int empty = 0;
        cut = splice_point(p, len, &empty);
        if (cut >= 0)
            slen = (size_t)snprintf(stamp, sizeof(stamp), "%s\"seq\":%llu,\"ts\":%lld}",
                                    empty ? "" : ",", (unsigned long long)seq, (long long)ts_ms);
    }
    size_t plen = cut >= 0 ? (size_t)cut + slen : len;
    size_t hl = ws_frame_header_size(plen, 0);
    struct frame_ref *f = frame_ref_try_new(hl + plen, 0);
    if (f == NULL)
        return NULL;
    ws_frame_encode_header(f->data, 1, 0, opcode, plen, NULL);
    if (cut >= 0) {
        memcpy(f->data + hl, p, (size_t)cut);
        memcpy(f->data + hl + cut, stamp, slen);
    } else if (len) {
        memcpy(f->data + hl, p, len);
    }
    f->len = hl + plen;
    f->tag = strmap_hash(room, rlen) | 1; /* never 0: 0 means untagged */
    *off = (uint32_t)hl;
    return f;
}
