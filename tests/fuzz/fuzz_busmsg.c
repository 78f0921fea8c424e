/* fuzz_busmsg.c - libFuzzer driver for proto/busmsg (what arrives on a
 * Redis channel). Checks: no read outside the input (ASan, exact-size copy);
 * an accepted room message has fields in range and pointers inside the
 * input; re-formatting an accepted header and parsing it again gives the
 * same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "busmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *p, size_t n, const char *q, size_t qn)
{
    return q >= p && q + qn <= p + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    struct busmsg m;
    if (busmsg_parse_room(p, size, &m) == 0) {
        if (m.seq == 0 || m.seq > INT64_MAX || m.ts_ms < 0)
            abort();
        if (!inside(p, size, m.epoch, m.epoch_len) || !inside(p, size, m.origin, m.origin_len) ||
            !inside(p, size, m.data, m.len))
            abort();
        if (!busmsg_valid_epoch(m.epoch, m.epoch_len) || !busmsg_valid_node(m.origin, m.origin_len))
            abort();
        char ep[BUSMSG_EPOCH_MAX + 1], node[BUSMSG_NODE_MAX + 1], h[BUSMSG_HEADER_MAX];
        memcpy(ep, m.epoch, m.epoch_len);
        ep[m.epoch_len] = '\0';
        memcpy(node, m.origin, m.origin_len);
        node[m.origin_len] = '\0';
        int n = busmsg_format_room(h, m.seq, m.ts_ms, m.flags, ep, node, m.exclude);
        if (n <= 0 || n > BUSMSG_HEADER_MAX)
            abort();
        struct busmsg m2;
        if (busmsg_parse_room(h, (size_t)n, &m2) != 0 || m2.seq != m.seq || m2.ts_ms != m.ts_ms ||
            m2.flags != m.flags || m2.exclude != m.exclude || m2.len != 0)
            abort();
        if (size - m.len != (size_t)n) /* the canonical header is the only accepted form */
            abort();
    }
    int bin;
    const char *d;
    size_t dn;
    if (busmsg_parse_direct(p, size, &bin, &d, &dn) == 0) {
        if ((bin != 0 && bin != 1) || !inside(p, size, d, dn) || dn != size - 7)
            abort();
    }
    unsigned code;
    if (busmsg_parse_kick(p, size, &code, &d, &dn) == 0) {
        if (!(code == 1000 || (code >= 3000 && code <= 4999)) || !inside(p, size, d, dn) ||
            dn > BUSMSG_KICK_REASON_MAX)
            abort();
    }
    free(p);
    return 0;
}
