#include "kv.h"

#include <string.h>

#include "alloc.h"
#include "err.h"

struct kv_val {
    size_t len;
    char data[];
};

void kv_init(struct kv *kv)
{
    strmap_init(&kv->map);
    kv->bytes = 0;
}

void kv_clear(struct kv *kv)
{
    strmap_clear(&kv->map, rc_free);
    kv->bytes = 0;
}

const char *kv_get(const struct kv *kv, const char *key, size_t klen, size_t *vlen)
{
    struct kv_val *v = strmap_get(&kv->map, key, klen);
    if (v == NULL)
        return NULL;
    *vlen = v->len;
    return v->data;
}

int kv_set(struct kv *kv, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (klen == 0 || klen > KV_MAX_KEY)
        return RC_E_LIMIT;
    if (val == NULL) {
        struct kv_val *old = strmap_del(&kv->map, key, klen);
        if (old) {
            kv->bytes -= old->len;
            rc_free(old);
        }
        return 0;
    }
    if (vlen > KV_MAX_VALUE)
        return RC_E_LIMIT;
    if (strmap_get(&kv->map, key, klen) == NULL && kv->map.count >= KV_MAX_KEYS)
        return RC_E_LIMIT;
    struct kv_val *v = rc_xmalloc(sizeof(*v) + vlen + 1);
    v->len = vlen;
    memcpy(v->data, val, vlen);
    v->data[vlen] = '\0';
    struct kv_val *old = strmap_put(&kv->map, key, klen, v);
    if (old) {
        kv->bytes -= old->len;
        rc_free(old);
    }
    kv->bytes += vlen;
    return 0;
}
