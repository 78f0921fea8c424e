#include "deflate.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "utf8.h"
#include "ws_frame.h"

int deflate_negotiate(const struct rc_config *cfg, const struct http_request *req,
                      struct pmd_params *prm, char *line, size_t cap)
{
    if (!cfg->compression || cfg->no_compression)
        return 0;
    struct pmd_policy pol = {.window_bits = (uint8_t)deflate_cfg_bits(cfg)};
    struct ws_ext_parser p;
    ws_ext_init(&p, &pol);
    int any = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len != 24 || strncasecmp(h->name, "Sec-WebSocket-Extensions", 24) != 0)
            continue;
        ws_ext_feed(&p, h->value, h->value_len);
        ws_ext_end_field(&p);
        any = 1;
    }
    if (!any || !ws_ext_finish(&p, prm))
        return 0;
    int n = ws_ext_answer(line, cap, prm);
    return n > 0 ? n : 0;
}

ssize_t deflate_inflate(struct pmd_pool *p, struct worker_stats *st, unsigned opcode,
                        const uint8_t *in, size_t n, size_t max, uint8_t **out)
{
    ssize_t r = pmd_inflate(p, in, n, max, out);
    if (r < 0)
        return r;
    STAT_ADD(st, deflate_in_wire_bytes_total, n);
    STAT_ADD(st, deflate_in_raw_bytes_total, (uint_fast64_t)r);
    if (opcode == WS_OP_TEXT && !utf8_is_valid(*out, (size_t)r)) {
        rc_free(*out);
        *out = NULL;
        return RC_E_UTF8; /* RFC 6455 §8.1 applies to the inflated text */
    }
    return r;
}

size_t deflate_payload(struct pmd_pool *p, struct worker_stats *st, const struct rc_config *cfg,
                       unsigned bits, const void *data, size_t len, const uint8_t **z)
{
    if (!deflate_wants(cfg, len))
        return 0;
    ssize_t zl = pmd_deflate(p, bits, data, len, z);
    if (zl < 0 || (size_t)zl >= len)
        return 0; /* an uncompressed message is always allowed (RFC 7692 §6) */
    STAT_ADD(st, deflate_out_raw_bytes_total, len);
    STAT_ADD(st, deflate_out_wire_bytes_total, (uint_fast64_t)zl);
    return (size_t)zl;
}

size_t deflate_frame_payload_len(const struct frame_ref *f)
{
    struct ws_frame_hdr h;
    ssize_t hl = ws_frame_decode_header(f->data, f->len, &h);
    return hl < 0 ? 0 : (size_t)h.len;
}

struct frame_ref *deflate_frame(struct pmd_pool *p, struct worker_stats *st,
                                const struct rc_config *cfg, unsigned bits,
                                const struct frame_ref *plain)
{
    struct ws_frame_hdr h;
    ssize_t hl = ws_frame_decode_header(plain->data, plain->len, &h);
    if (hl < 0 || h.rsv != 0 || !h.fin || h.masked ||
        (h.opcode != WS_OP_TEXT && h.opcode != WS_OP_BINARY) || (size_t)hl + h.len != plain->len)
        return NULL;
    const uint8_t *z;
    size_t zl = deflate_payload(p, st, cfg, bits, plain->data + hl, (size_t)h.len, &z);
    if (zl == 0)
        return NULL;
    size_t zh = ws_frame_header_size(zl, 0);
    struct frame_ref *f = frame_ref_try_new(zh + zl, 0);
    if (f != NULL) {
        ws_frame_encode_header(f->data, 1, WS_RSV1, h.opcode, zl, NULL);
        memcpy(f->data + zh, z, zl);
        f->len = zh + zl;
        f->tag = plain->tag;
    }
    pmd_trim(p);
    return f;
}
