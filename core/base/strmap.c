#include "strmap.h"

#include <string.h>

#include "alloc.h"

/* FNV-1a: short keys (room names, user ids, 8-byte ids) dominate. */
uint64_t strmap_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void strmap_init(struct strmap *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void strmap_clear(struct strmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_ent *e = m->buckets[i];
        while (e) {
            struct strmap_ent *n = e->next;
            if (free_val)
                free_val(e->val);
            rc_free(e);
            e = n;
        }
    }
    rc_free(m->buckets);
    strmap_init(m);
}

static struct strmap_ent **find(const struct strmap *m, const void *key, size_t klen, uint64_t h)
{
    if (m->nbuckets == 0)
        return NULL;
    struct strmap_ent **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp) {
        struct strmap_ent *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

void *strmap_get(const struct strmap *m, const void *key, size_t klen)
{
    struct strmap_ent **pp = find(m, key, klen, strmap_hash(key, klen));
    return pp && *pp ? (*pp)->val : NULL;
}

static void grow(struct strmap *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 8;
    struct strmap_ent **b = rc_xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_ent *e = m->buckets[i];
        while (e) {
            struct strmap_ent *n = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = n;
        }
    }
    rc_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void *strmap_put(struct strmap *m, const void *key, size_t klen, void *val)
{
    uint64_t h = strmap_hash(key, klen);
    if (m->count >= m->nbuckets)
        grow(m);
    struct strmap_ent **pp = find(m, key, klen, h);
    if (*pp) {
        void *old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    struct strmap_ent *e = rc_xmalloc(sizeof(*e) + klen + 1);
    e->next = NULL;
    e->hash = h;
    e->val = val;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    *pp = e;
    m->count++;
    return NULL;
}

void *strmap_del(struct strmap *m, const void *key, size_t klen)
{
    struct strmap_ent **pp = find(m, key, klen, strmap_hash(key, klen));
    if (pp == NULL || *pp == NULL)
        return NULL;
    struct strmap_ent *e = *pp;
    void *val = e->val;
    *pp = e->next;
    rc_free(e);
    m->count--;
    return val;
}

void strmap_foreach(const struct strmap *m,
                    void (*fn)(void *ud, const char *key, size_t klen, void *val), void *ud)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct strmap_ent *e = m->buckets[i]; e; e = e->next)
            fn(ud, e->key, e->klen, e->val);
}
