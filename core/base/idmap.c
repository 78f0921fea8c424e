#include "idmap.h"

#include "alloc.h"

void idmap_init(struct idmap *m, uint32_t tag)
{
    m->slots = NULL;
    m->n = m->cap = 0;
    m->free_slot = UINT32_MAX;
    m->tag = tag & 0xff;
    m->next_seq = 0;
}

void idmap_destroy(struct idmap *m)
{
    rc_free(m->slots);
    m->slots = NULL;
    m->n = m->cap = 0;
    m->free_slot = UINT32_MAX;
}

uint64_t idmap_add(struct idmap *m, void *p)
{
    uint32_t slot;
    if (m->free_slot != UINT32_MAX) {
        slot = m->free_slot;
        m->free_slot = (uint32_t)(m->slots[slot] >> 1);
    } else {
        RC_ASSERT(m->n < 0xffffff);
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->slots = rc_xrealloc(m->slots, (size_t)m->cap * sizeof(*m->slots));
        }
        slot = m->n++;
    }
    m->slots[slot] = (uintptr_t)p;
    uint64_t seq = ++m->next_seq & 0x1fffff;
    return (seq << 32) | ((uint64_t)slot << 8) | (uint64_t)m->tag;
}

void idmap_del(struct idmap *m, uint64_t id)
{
    uint32_t slot = (uint32_t)(id >> 8) & 0xffffff;
    m->slots[slot] = ((uintptr_t)m->free_slot << 1) | 1;
    m->free_slot = slot;
}
