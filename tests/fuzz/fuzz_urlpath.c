/* fuzz_urlpath.c - libFuzzer driver for proto/urlpath (static file paths).
 * Checks: no read outside the input (ASan), and any accepted result is a
 * safe relative path: no leading '/', no "." or ".." segment, no segment
 * starting with '.', no NUL, backslash or control byte, NUL-terminated. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "urlpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    char out[256];
    ssize_t n = urlpath_normalize(in, size, out, sizeof(out));
    free(in);
    if (n < 0)
        return 0;
    if ((size_t)n >= sizeof(out) || out[n] != '\0' || strlen(out) != (size_t)n || n == 0)
        abort();
    if (out[0] == '/')
        abort();
    const char *seg = out;
    for (ssize_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (i < n && (c < 0x20 || c == 0x7f || c == '\\'))
            abort();
        if (i == n || c == '/') {
            if (seg == out + i || seg[0] == '.') /* empty, ".", "..", dot file */
                abort();
            seg = out + i + 1;
        }
    }
    return 0;
}
