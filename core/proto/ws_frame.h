/* ws_frame.h - RFC 6455 §5.2 frame header codec and masking.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *  | |1|2|3|       |K|             |                               |
 *  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *  |                   Masking-key, if MASK set to 1               |
 *  +---------------------------------------------------------------+
 *
 * Pure and allocation-free. The header decoder is stateless over contiguous
 * bytes; resumption across reads is ws_msg's job (it keeps up to 13 bytes of a
 * partial header and the payload position).
 */
#ifndef RC_PROTO_WS_FRAME_H
#define RC_PROTO_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_MAX_HEADER 14   /* 2 + 8 extended length + 4 mask */
#define WS_MAX_CONTROL 125 /* RFC 6455 §5.5 */
#define WS_RSV1 0x4        /* bit values in ws_frame_hdr.rsv */
#define WS_RSV2 0x2
#define WS_RSV3 0x1

static inline int ws_opcode_is_control(unsigned op)
{
    return (op & 0x8) != 0;
}

struct ws_frame_hdr {
    uint8_t fin;    /* 0 or 1 */
    uint8_t rsv;    /* RSV1..3 as WS_RSV* bits */
    uint8_t opcode; /* 4 bits */
    uint8_t masked; /* 0 or 1 */
    uint8_t mask[4];
    uint64_t len; /* payload length */
};

/* Decodes one frame header from in[0..len).
 * Returns the header size (2..14), RC_NEED_MORE when fewer bytes than the
 * header needs are present, or RC_E_PROTO for a header no endpoint may send:
 *   - a reserved opcode (3-7, 0xB-0xF);
 *   - a control frame with FIN clear or payload > 125 (RFC 6455 §5.5);
 *   - a 64-bit length with the most significant bit set (§5.2);
 *   - a length not in its minimal encoding (§5.2 "the minimal number of bytes
 *     MUST be used").
 * RSV bits and the mask bit are reported, not judged: the caller knows the
 * negotiated extensions and its role. */
ssize_t ws_frame_decode_header(const uint8_t *in, size_t len, struct ws_frame_hdr *h);

/* Writes a frame header into out (at most WS_MAX_HEADER bytes) using the
 * minimal length encoding. mask: NULL for an unmasked (server) frame, else
 * the 4-byte key, which is written and MASK set. Returns the size written. */
size_t ws_frame_encode_header(uint8_t out[WS_MAX_HEADER], int fin, unsigned rsv, unsigned opcode,
                              uint64_t len, const uint8_t *mask);

/* Size of the header ws_frame_encode_header would write. */
size_t ws_frame_header_size(uint64_t len, int masked);

/* XORs p[0..n) with the mask in place, word at a time. `offset` is the
 * position of p[0] within the frame payload (so masking can resume mid-frame).
 * Masking and unmasking are the same operation. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

#endif
