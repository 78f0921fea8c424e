/* fuzz_ws_ext.c - libFuzzer driver for the Sec-WebSocket-Extensions parser
 * and the permessage-deflate answer (proto/ws_ext).
 *
 * Input layout: 1 byte of policy (window bits 8..15 from its low 3 bits),
 * then header field values separated by '\n'. The fields are parsed twice:
 * whole, and one byte at a time (each byte an exact-size heap copy, so ASAN
 * catches a read past it). Checked: both parses agree; an accepted offer's
 * numbers are in range; the answer line consists only of the fixed parameter
 * names and digits (nothing from the input is ever echoed).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_ext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(const uint8_t *data, size_t size, unsigned bits, int bytewise,
                 struct pmd_params *out)
{
    struct pmd_policy pol = {.window_bits = (uint8_t)bits};
    struct ws_ext_parser p;
    ws_ext_init(&p, &pol);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t n = i - start;
        if (bytewise) {
            for (size_t k = 0; k < n; k++) {
                char *b = malloc(1);
                b[0] = (char)data[start + k];
                ws_ext_feed(&p, b, 1);
                free(b);
            }
        } else {
            char *b = malloc(n ? n : 1);
            memcpy(b, data + start, n);
            ws_ext_feed(&p, b, n);
            free(b);
        }
        ws_ext_end_field(&p);
        start = i + 1;
    }
    memset(out, 0, sizeof(*out));
    return ws_ext_finish(&p, out);
}

/* The answer must be one of the lines ws_ext_answer can make. */
static void check_answer(const struct pmd_params *prm)
{
    char line[256];
    int n = ws_ext_answer(line, sizeof(line), prm);
    if (n <= 0)
        abort();
    static const char base[] = "Sec-WebSocket-Extensions: permessage-deflate; "
                               "server_no_context_takeover; client_no_context_takeover";
    if (strncmp(line, base, sizeof(base) - 1) != 0)
        abort();
    for (int i = 0; i < n; i++) {
        char c = line[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("-_;= :\r\n", c) != NULL;
        if (!ok)
            abort();
    }
    if (line[n - 2] != '\r' || line[n - 1] != '\n')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned bits = 8 + (data[0] & 7);
    struct pmd_params a, b;
    int ra = parse(data + 1, size - 1, bits, 0, &a);
    int rb = parse(data + 1, size - 1, bits, 1, &b);
    if (ra != rb || (ra && memcmp(&a, &b, sizeof(a)) != 0))
        abort();
    if (!ra)
        return 0;
    unsigned want_max = bits < 9 ? 9 : bits;
    if (a.server_window_bits < 9 || a.server_window_bits > want_max || a.client_no_context != 1)
        abort();
    if (a.client_window_bits != 0 && (a.client_window_bits < 8 || a.client_window_bits > 15))
        abort();
    check_answer(&a);
    return 0;
}
