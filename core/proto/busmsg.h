/* busmsg.h - the bytes roomcast nodes exchange on Redis pub/sub channels.
 *
 * A room message (channel rc:{room}) is written by the publish script inside
 * Redis, so that the seq it carries is the one Redis assigned:
 *
 *   "rc1" SP seq SP ts SP flags SP epoch SP origin SP exclude LF data
 *
 *     seq      decimal, 1 .. 2^63-1, no sign, no leading zero
 *     ts       decimal milliseconds since the Unix epoch, 0 .. 2^63-1
 *     flags    decimal, 0 .. 2^32-1 (ROOM_PUB_* bits)
 *     epoch    1..16 of [0-9A-Za-z_-]
 *     origin   the publishing node's id, 1..64 bytes of 0x21..0x7e
 *     exclude  decimal connection id on the origin node (0: none)
 *     data     the rest, any bytes (may be empty): the payload as members
 *              receive it (stamped JSON already carries seq and ts)
 *
 * A direct message (channel rc:u:{user}) is written by a node with PUBLISH:
 *
 *   "rcd1" SP binary LF data        binary: "0" text, "1" binary
 *
 * and, on the same channel, a disconnect of every connection of the user:
 *
 *   "rck1" SP code LF reason         code: 1000 or 3000..4999, decimal, no
 *                                    leading zero; reason: 0..123 bytes
 *
 * Anything else on our channels (another program's message, a truncated or
 * hand-made one, a seq that is not a number) is rejected with RC_E_PROTO; the
 * bus counts it and skips it. Pure: no allocation, no I/O, thread-safe.
 */
#ifndef RC_PROTO_BUSMSG_H
#define RC_PROTO_BUSMSG_H

#include <stddef.h>
#include <stdint.h>

#define BUSMSG_EPOCH_MAX 16
#define BUSMSG_NODE_MAX 64
/* The longest header busmsg_format_room writes (without data). */
#define BUSMSG_HEADER_MAX                                                                          \
    (4 + 20 + 1 + 20 + 1 + 10 + 1 + BUSMSG_EPOCH_MAX + 1 + BUSMSG_NODE_MAX + 1 + 20 + 1)

struct busmsg {
    uint64_t seq;
    int64_t ts_ms;
    uint32_t flags;
    const char *epoch; /* borrowed: points into the parsed input */
    size_t epoch_len;
    const char *origin; /* borrowed */
    size_t origin_len;
    uint64_t exclude;
    const char *data; /* borrowed */
    size_t len;
};

/* Parses a room message p[0..n). Returns 0 and fills *out (pointers into p),
 * or RC_E_PROTO (out is then unspecified). */
int busmsg_parse_room(const char *p, size_t n, struct busmsg *out);

/* Parses a direct message. Returns 0 with *binary, *data, *len set (data
 * points into p), or RC_E_PROTO. */
int busmsg_parse_direct(const char *p, size_t n, int *binary, const char **data, size_t *len);

/* Parses a disconnect ("rck1"). Returns 0 with *code, *reason, *rlen set
 * (reason points into p), or RC_E_PROTO. */
int busmsg_parse_kick(const char *p, size_t n, unsigned *code, const char **reason, size_t *rlen);

#define BUSMSG_KICK_REASON_MAX 123

/* Writes the header of a room message (everything up to and including LF)
 * into out, which must hold BUSMSG_HEADER_MAX bytes. Returns its length, or
 * RC_E_INVAL when the epoch or the origin is not valid. (Nodes never write
 * room messages themselves, Redis does; tests, fuzzers and benches use this.) */
int busmsg_format_room(char *out, uint64_t seq, int64_t ts_ms, uint32_t flags, const char *epoch,
                       const char *origin, uint64_t exclude);

/* 1 if s[0..n) is a valid epoch / node id (the character sets above). */
int busmsg_valid_epoch(const char *s, size_t n);
int busmsg_valid_node(const char *s, size_t n);

#endif
