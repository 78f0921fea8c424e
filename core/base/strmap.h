/* strmap.h - hash map from byte-string keys to pointers (chained, keys
 * copied into the entry, power-of-two buckets, grows at load 1).
 * Not thread-safe: the owner serialises access (a worker, or a mutex). */
#ifndef RC_BASE_STRMAP_H
#define RC_BASE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_ent {
    struct strmap_ent *next;
    uint64_t hash;
    void *val;
    size_t klen;
    char key[]; /* NUL-terminated copy */
};

struct strmap {
    struct strmap_ent **buckets; /* owned */
    size_t nbuckets;             /* 0 or a power of two */
    size_t count;
};

void strmap_init(struct strmap *m);
/* Frees every entry; calls free_val(val) for each when not NULL. */
void strmap_clear(struct strmap *m, void (*free_val)(void *));
void *strmap_get(const struct strmap *m, const void *key, size_t klen);
/* Inserts or replaces. Returns the previous value (NULL if none). */
void *strmap_put(struct strmap *m, const void *key, size_t klen, void *val);
/* Removes; returns the value (NULL if absent). */
void *strmap_del(struct strmap *m, const void *key, size_t klen);
/* Calls fn for every entry (the map must not change during the walk). */
void strmap_foreach(const struct strmap *m,
                    void (*fn)(void *ud, const char *key, size_t klen, void *val), void *ud);
uint64_t strmap_hash(const void *key, size_t klen);

#endif
