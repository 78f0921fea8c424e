/* idmap.h - connection id -> pointer without hashing: the id carries the
 * slot of a growable array, and a per-map sequence makes a stale id miss.
 *
 *   id = | 21-bit sequence | 24-bit slot | 8-bit tag (the worker) |
 *
 * A free slot holds (next free << 1) | 1, a used one the pointer (pointers
 * are at least 2-aligned). Ids stay below 2^53, so Lua numbers hold them
 * exactly. Not thread-safe: one map per worker, used by its thread only.
 */
#ifndef RC_BASE_IDMAP_H
#define RC_BASE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uintptr_t *slots; /* owned */
    uint32_t n, cap;
    uint32_t free_slot; /* head of the free list, UINT32_MAX if none */
    uint32_t tag;       /* low 8 bits of every id */
    uint64_t next_seq;
};

void idmap_init(struct idmap *m, uint32_t tag);
void idmap_destroy(struct idmap *m);
/* Stores p (non-NULL, 2-aligned) and returns its new id. Aborts on OOM. */
uint64_t idmap_add(struct idmap *m, void *p);
/* Frees id's slot (id must be live). */
void idmap_del(struct idmap *m, uint64_t id);
/* The pointer stored under id's slot, or NULL when the slot is free or
 * belongs to another map. The caller checks the full id against its object
 * (a reused slot holds another id). */
static inline void *idmap_slot(const struct idmap *m, uint64_t id)
{
    uint32_t slot = (uint32_t)(id >> 8) & 0xffffff;
    if ((uint32_t)(id & 0xff) != m->tag || slot >= m->n || (m->slots[slot] & 1))
        return NULL;
    return (void *)m->slots[slot];
}

/* The tag (worker) of an id. */
static inline int idmap_tag_of(uint64_t id)
{
    return (int)(id & 0xff);
}

#endif
