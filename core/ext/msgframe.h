/* msgframe.h - the encode stage of the room pipeline: one sequenced room
 * message -> one shared, unmasked WebSocket frame (frame_ref), encoded once
 * for every member on every worker.
 *
 * With ROOM_PUB_STAMP and a payload that is a JSON object, ,"seq":N,"ts":MS
 * is spliced in before its final '}' ("{}" gets no comma), so the payload
 * members receive (and the store keeps) carries its seq. The frame's tag is
 * the room's hash (never 0): the slow-consumer policy "latest" drops pending
 * frames with the same tag.
 */
#ifndef RC_EXT_MSGFRAME_H
#define RC_EXT_MSGFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "frame_ref.h"

/* Encodes payload for room (flags: ROOM_PUB_BINARY, ROOM_PUB_STAMP from
 * bus.h). *off: where the payload starts in f->data. Returns NULL on
 * allocation failure (the payload size is the client's). Any thread. */
struct frame_ref *msgframe_encode(const char *room, size_t rlen, const void *payload, size_t len,
                                  uint32_t flags, uint64_t seq, int64_t ts_ms, uint32_t *off);

/* Wall clock in milliseconds since the epoch (the stamp's ts). */
int64_t msgframe_now_ms(void);

#endif
