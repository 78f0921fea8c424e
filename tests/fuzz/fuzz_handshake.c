/* fuzz_handshake.c - libFuzzer driver for http_parse + handshake.
 *
 * The input is a request head (plus anything after it). Besides looking for
 * crashes, it checks the parser's resumption contract as a differential
 * property: for a split point k taken from the first input byte, parsing
 * buf[0..k) gives RC_NEED_MORE or the whole-buffer result, and resuming with
 * last_len = k gives exactly the whole-buffer result and the same fields;
 * small inputs are also fed one byte at a time. Prefixes are copied into
 * exact-size heap blocks so ASan sees any read past the given length.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "handshake.h"
#include "http_parse.h"

#define NHDR 8
#define MAX_HEAD 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
    if (!cond)
        abort();
}

static ssize_t parse(const char *buf, size_t len, size_t last_len, struct http_request *req,
                     struct http_header *h)
{
    req->headers = h;
    req->num_headers = NHDR;
    return http_parse_request(buf, len, last_len, MAX_HEAD, req);
}

/* Same fields, as offsets into their buffers. */
static void same_req(const struct http_request *a, const char *abuf, const struct http_request *b,
                     const char *bbuf)
{
    must(a->method - abuf == b->method - bbuf && a->method_len == b->method_len);
    must(a->target - abuf == b->target - bbuf && a->target_len == b->target_len);
    must(a->minor_version == b->minor_version && a->num_headers == b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        const struct http_header *x = &a->headers[i], *y = &b->headers[i];
        must(x->name - abuf == y->name - bbuf && x->name_len == y->name_len);
        must(x->value - abuf == y->value - bbuf && x->value_len == y->value_len);
    }
}

static void inside(const char *p, size_t n, const char *buf, ssize_t head)
{
    must(p >= buf && p + n <= buf + head);
}

static void exercise_complete(const char *buf, ssize_t head, struct http_request *req)
{
    must(head > 0 && head <= MAX_HEAD);
    must(req->num_headers <= NHDR);
    must(req->minor_version == 0 || req->minor_version == 1);
    inside(req->method, req->method_len, buf, head);
    inside(req->target, req->target_len, buf, head);
    must(req->method_len > 0 && req->target_len > 0);
    for (size_t i = 0; i < req->num_headers; i++) {
        inside(req->headers[i].name, req->headers[i].name_len, buf, head);
        inside(req->headers[i].value, req->headers[i].value_len, buf, head);
        must(req->headers[i].name_len > 0);
    }
    const char *path, *query;
    size_t path_len, query_len;
    http_split_target(req, &path, &path_len, &query, &query_len);
    must(path_len + query_len <= req->target_len);

    struct ws_upgrade up;
    struct ws_refusal why;
    char out[2048];
    if (ws_upgrade_check(req, &up, &why) == 0) {
        must(up.key_len == 24);
        static const char *const sup[] = {"chat", "superchat", "roomcast.v1", NULL};
        int k = ws_pick_subprotocol(up.protocols, up.protocols_len, sup);
        must(k >= -1 && k < 3);
        char acc[WS_ACCEPT_LEN + 1];
        ws_accept_key(up.key, up.key_len, acc);
        must(strlen(acc) == WS_ACCEPT_LEN);
        int n = ws_response_101(out, sizeof(out), acc, k >= 0 ? sup[k] : NULL, NULL);
        must(n > 0 && (size_t)n < sizeof(out));
        must(ws_response_101(out, (size_t)n - 1, acc, k >= 0 ? sup[k] : NULL, NULL) == -1);
    } else {
        must(why.status == 400 || why.status == 405 || why.status == 426);
        must(why.reason != NULL);
        int n = http_error_response(out, sizeof(out), why.status, why.reason, NULL);
        must(n > 0 && (size_t)n < sizeof(out));
        must(http_error_response(out, (size_t)n - 1, why.status, why.reason, NULL) == -1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct http_header h_whole[NHDR], h_part[NHDR];
    struct http_request whole, part;

    ssize_t r = parse(buf, size, 0, &whole, h_whole);
    must(r == RC_NEED_MORE || r == RC_E_PROTO || r == RC_E_TOO_MANY_HEADERS ||
         r == RC_E_HEAD_TOO_BIG || (r > 0 && (size_t)r <= size));
    if (r > 0)
        exercise_complete(buf, r, &whole);

    /* One split point from the first byte. */
    size_t k = size ? data[0] % (size + 1) : 0;
    char *pre = malloc(k ? k : 1);
    must(pre != NULL);
    memcpy(pre, data, k);
    ssize_t rp = parse(pre, k, 0, &part, h_part);
    free(pre);
    must(rp == RC_NEED_MORE || rp == r);
    if (rp == RC_NEED_MORE) {
        ssize_t rr = parse(buf, size, k, &part, h_part);
        must(rr == r);
        if (r > 0)
            same_req(&whole, buf, &part, buf);
    }

    /* One byte at a time, for small inputs (quadratic copies). */
    if (size <= 300) {
        ssize_t rb = RC_NEED_MORE;
        size_t last = 0;
        for (size_t i = 1; i <= size && rb == RC_NEED_MORE; i++) {
            char *b = malloc(i);
            must(b != NULL);
            memcpy(b, data, i);
            rb = parse(b, i, last, &part, h_part);
            if (rb > 0)
                same_req(&whole, buf, &part, b);
            free(b);
            last = i;
        }
        must(rb == r);
    }
    return 0;
}
