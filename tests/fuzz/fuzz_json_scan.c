/* fuzz_json_scan.c - libFuzzer driver for proto/json_scan (the HTTP API's
 * request bodies). Checks: no read outside the input (ASan); member spans
 * lie inside the input; every string member decodes to valid UTF-8 that
 * fits its cap or is refused; a scanned value re-scans as the same text
 * when wrapped in an object. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    struct json_member m[8];
    ssize_t n = json_scan_object(in, size, m, 8);
    if (n >= 0) {
        for (ssize_t i = 0; i < n && i < 8; i++) {
            if (m[i].key < in || m[i].key + m[i].key_len > in + size || m[i].val < in ||
                m[i].val + m[i].val_len > in + size || m[i].val_len == 0)
                abort();
            if (m[i].type == JSON_STRING) {
                char out[64];
                ssize_t l = json_string_decode(m[i].val, m[i].val_len, out, sizeof(out));
                if (l >= 0 && ((size_t)l >= sizeof(out) || out[l] != '\0' ||
                               !utf8_is_valid((const uint8_t *)out, (size_t)l)))
                    abort();
            }
            /* {"k":<value>} must scan again, with the same value span length */
            size_t wl = m[i].val_len + 6;
            char *w = malloc(wl);
            memcpy(w, "{\"k\":", 5);
            memcpy(w + 5, m[i].val, m[i].val_len);
            w[wl - 1] = '}';
            struct json_member x;
            if (json_scan_object(w, wl, &x, 1) != 1 || x.val_len != m[i].val_len)
                abort();
            free(w);
        }
    }
    free(in);
    return 0;
}
