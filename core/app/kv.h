/* kv.h - small C-owned key-value stores behind conn.data and room.data.
 * They survive script reloads because they live in C. Keys and values are
 * byte strings (the Lua side JSON-encodes other types). Limits keep a script
 * from growing them without bound.
 * Not thread-safe: a conn's kv is used on its worker only; a room's under
 * the room's mutex. */
#ifndef RC_APP_KV_H
#define RC_APP_KV_H

#include <stddef.h>

#include "strmap.h"

#define KV_MAX_KEYS 256
#define KV_MAX_KEY 256
#define KV_MAX_VALUE (64 * 1024)

struct kv {
    struct strmap map; /* key -> struct kv_val * (owned) */
    size_t bytes;
};

void kv_init(struct kv *kv);
void kv_clear(struct kv *kv);
/* Borrowed pointer valid until the next kv_set/kv_clear on kv; NULL if absent. */
const char *kv_get(const struct kv *kv, const char *key, size_t klen, size_t *vlen);
/* val NULL deletes. Returns 0, or RC_E_LIMIT (too many keys, key or value too long). */
int kv_set(struct kv *kv, const char *key, size_t klen, const char *val, size_t vlen);

#endif
