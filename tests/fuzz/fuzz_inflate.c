/* fuzz_inflate.c - libFuzzer driver for the permessage-deflate inflate path
 * (net/pmd: pmd_inflate, then pmd_deflate of what came out).
 *
 * Input layout: 1 byte choosing the message cap (64 << (b & 15) bytes, up
 * to 2 MiB), then the compressed payload as a client would send it (raw
 * deflate, the 00 00 ff ff tail removed). Checked: the result is a length
 * no larger than the cap or one of the documented errors; a successful
 * output, compressed again by pmd_deflate and inflated, gives the same
 * bytes; a second inflate of the same input (the pooled stream reused) gives
 * the same result; nothing leaks (ASAN).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pmd_pool pool;
static int pool_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!pool_ready) {
        pmd_pool_init(&pool, 1, 8);
        pool_ready = 1;
    }
    size_t max = (size_t)64 << (data[0] & 15);
    uint8_t *in = malloc(size - 1 ? size - 1 : 1);
    memcpy(in, data + 1, size - 1);
    uint8_t *out = NULL;
    ssize_t r = pmd_inflate(&pool, in, size - 1, max, &out);
    if (r < 0) {
        if (out != NULL || (r != RC_E_TOO_BIG && r != RC_E_DATA && r != RC_E_NOMEM))
            abort();
    } else {
        if ((size_t)r > max || out == NULL)
            abort();
        uint8_t *again = NULL;
        if (pmd_inflate(&pool, in, size - 1, max, &again) != r || memcmp(again, out, (size_t)r))
            abort();
        rc_free(again);
        const uint8_t *z;
        ssize_t zl = pmd_deflate(&pool, 9 + (data[0] >> 4) % 7, out, (size_t)r, &z);
        if (zl < 0)
            abort();
        uint8_t *zc = malloc((size_t)zl + 1);
        memcpy(zc, z, (size_t)zl);
        uint8_t *back = NULL;
        if (pmd_inflate(&pool, zc, (size_t)zl, max, &back) != r || memcmp(back, out, (size_t)r))
            abort();
        rc_free(back);
        free(zc);
        pmd_trim(&pool);
        rc_free(out);
    }
    free(in);
    return 0;
}
