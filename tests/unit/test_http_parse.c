/* test_http_parse.c - request-head parser: valid vectors fed whole, split at
 * every offset and one byte at a time, all from the end of a guard page;
 * rejection vectors with their exact error; caps; byte-class sweeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "guardbuf.h"
#include "http_parse.h"

#define MAX_HEAD 8192
#define NHDR 16
#define S(lit) lit, sizeof(lit) - 1

struct vec {
    const char *name;
    const char *raw;
    size_t raw_len;
    size_t head_len; /* 0: the whole of raw */
    const char *method;
    const char *target;
    int minor;
    size_t nh;
    const char *hdr[NHDR][2];
};

static void req_init(struct http_request *req, struct http_header *h, size_t cap)
{
    memset(req, 0, sizeof(*req));
    memset(h, 0, sizeof(*h) * cap);
    req->headers = h;
    req->num_headers = cap;
}

static int str_is(const char *p, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(p, want, n) == 0;
}

#define EXPECT_RES(got, want, vname, off)                                                          \
    do {                                                                                           \
        ssize_t got_ = (got), want_ = (want);                                                      \
        if (got_ != want_) {                                                                       \
            print_error("%s (offset %zu): got %zd (%s), want %zd (%s)\n", (vname), (size_t)(off),  \
                        got_, got_ < 0 ? rc_err_name((int)got_) : "len", want_,                    \
                        want_ < 0 ? rc_err_name((int)want_) : "len");                              \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static void check_req(const struct vec *v, const struct http_request *req, const char *buf)
{
    size_t head = v->head_len ? v->head_len : v->raw_len;
    if (!str_is(req->method, req->method_len, v->method) ||
        !str_is(req->target, req->target_len, v->target)) {
        print_error("%s: method/target mismatch\n", v->name);
        fail();
    }
    assert_ptr_equal(req->method, buf);
    assert_int_equal(req->minor_version, v->minor);
    assert_int_equal(req->num_headers, v->nh);
    for (size_t i = 0; i < v->nh; i++) {
        const struct http_header *h = &req->headers[i];
        if (!str_is(h->name, h->name_len, v->hdr[i][0]) ||
            !str_is(h->value, h->value_len, v->hdr[i][1])) {
            print_error("%s: header %zu is '%.*s: %.*s', want '%s: %s'\n", v->name, i,
                        (int)h->name_len, h->name, (int)h->value_len, h->value, v->hdr[i][0],
                        v->hdr[i][1]);
            fail();
        }
        /* Borrowed pointers stay inside the head. */
        assert_true(h->name >= buf && h->name + h->name_len <= buf + head);
        assert_true(h->value >= buf && h->value + h->value_len <= buf + head);
    }
}

/* Whole, split at every offset (prefix first, then the full buffer with
 * last_len = prefix length), and one byte at a time. */
static void run_valid(const struct vec *v)
{
    struct http_header h[NHDR];
    struct http_request req;
    size_t head = v->head_len ? v->head_len : v->raw_len;

    const char *b = guardbuf_put(v->raw, v->raw_len);
    req_init(&req, h, NHDR);
    EXPECT_RES(http_parse_request(b, v->raw_len, 0, MAX_HEAD, &req), (ssize_t)head, v->name, 0);
    check_req(v, &req, b);

    for (size_t k = 0; k < v->raw_len; k++) {
        b = guardbuf_put(v->raw, k);
        req_init(&req, h, NHDR);
        ssize_t r = http_parse_request(b, k, 0, MAX_HEAD, &req);
        if (k >= head) {
            EXPECT_RES(r, (ssize_t)head, v->name, k);
            check_req(v, &req, b);
            continue;
        }
        EXPECT_RES(r, RC_NEED_MORE, v->name, k);
        assert_int_equal(req.num_headers, NHDR); /* capacity survives NEED_MORE */
        b = guardbuf_put(v->raw, v->raw_len);
        EXPECT_RES(http_parse_request(b, v->raw_len, k, MAX_HEAD, &req), (ssize_t)head, v->name, k);
        check_req(v, &req, b);
    }

    req_init(&req, h, NHDR);
    size_t last = 0;
    for (size_t k = 1; k <= v->raw_len; k++) {
        b = guardbuf_put(v->raw, k);
        ssize_t r = http_parse_request(b, k, last, MAX_HEAD, &req);
        if (k < head) {
            EXPECT_RES(r, RC_NEED_MORE, v->name, k);
            last = k;
            continue;
        }
        EXPECT_RES(r, (ssize_t)head, v->name, k);
        check_req(v, &req, b);
        break;
    }
    guardbuf_free();
}

static const struct vec valid[] = {
    {"rfc6455 §1.3",
     S("GET /chat HTTP/1.1\r\n"
       "Host: server.example.com\r\n"
       "Upgrade: websocket\r\n"
       "Connection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       "Origin: http://example.com\r\n"
       "Sec-WebSocket-Protocol: chat, superchat\r\n"
       "Sec-WebSocket-Version: 13\r\n"
       "\r\n"),
     0,
     "GET",
     "/chat",
     1,
     7,
     {{"Host", "server.example.com"},
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"Origin", "http://example.com"},
      {"Sec-WebSocket-Protocol", "chat, superchat"},
      {"Sec-WebSocket-Version", "13"}}},
    {"no headers", S("GET / HTTP/1.1\r\n\r\n"), 0, "GET", "/", 1, 0, {{NULL, NULL}}},
    {"http/1.0",
     S("GET /index.html HTTP/1.0\r\nHost: a\r\n\r\n"),
     0,
     "GET",
     "/index.html",
     0,
     1,
     {{"Host", "a"}}},
    {"ows",
     S("GET / HTTP/1.1\r\nA:b\r\nB:   spaced value \t \r\nC:\r\nD: \t\r\nE:\tx\ty\t\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     5,
     {{"A", "b"}, {"B", "spaced value"}, {"C", ""}, {"D", ""}, {"E", "x\ty"}}},
    {"query",
     S("GET /ws?room=lobby&x=%20y HTTP/1.1\r\nHost: h\r\n\r\n"),
     0,
     "GET",
     "/ws?room=lobby&x=%20y",
     1,
     1,
     {{"Host", "h"}}},
    {"asterisk",
     S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
     0,
     "OPTIONS",
     "*",
     1,
     1,
     {{"Host", "h"}}},
    {"absolute-form",
     S("GET http://example.com:8080/ws HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
     0,
     "GET",
     "http://example.com:8080/ws",
     1,
     1,
     {{"Host", "example.com:8080"}}},
    {"token method",
     S("X!#$%&'*+-.^_`|~09azAZ /x HTTP/1.1\r\n\r\n"),
     0,
     "X!#$%&'*+-.^_`|~09azAZ",
     "/x",
     1,
     0,
     {{NULL, NULL}}},
    {"obs-text value",
     S("GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     1,
     {{"X-Name", "caf\xc3\xa9 \xff"}}},
    {"punctuation value",
     S("GET / HTTP/1.1\r\nX: \"q\" (c) [a]{b}<c>;=?@,:\\/~\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     1,
     {{"X", "\"q\" (c) [a]{b}<c>;=?@,:\\/~"}}},
    {"token name",
     S("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     1,
     {{"!#$%&'*+-.^_`|~09azAZ", "v"}}},
    {"colon in value",
     S("GET / HTTP/1.1\r\nHost:h:80\r\nX: a:b: c\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     2,
     {{"Host", "h:80"}, {"X", "a:b: c"}}},
    {"pipelined bytes",
     S("GET / HTTP/1.1\r\nHost: a\r\n\r\n\x00\x16\x03garbage\r\n\n\r"),
     sizeof("GET / HTTP/1.1\r\nHost: a\r\n\r\n") - 1,
     "GET",
     "/",
     1,
     1,
     {{"Host", "a"}}},
    {"firefox upgrade",
     S("GET /ws?token=abc HTTP/1.1\r\n"
       "Host: localhost:8080\r\n"
       "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
       "Accept: */*\r\n"
       "Accept-Language: en-US,en;q=0.5\r\n"
       "Accept-Encoding: gzip, deflate, br\r\n"
       "Sec-WebSocket-Version: 13\r\n"
       "Origin: http://localhost:8080\r\n"
       "Sec-WebSocket-Extensions: permessage-deflate\r\n"
       "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
       "Connection: keep-alive, Upgrade\r\n"
       "Pragma: no-cache\r\n"
       "Cache-Control: no-cache\r\n"
       "Upgrade: websocket\r\n"
       "\r\n"),
     0,
     "GET",
     "/ws?token=abc",
     1,
     13,
     {{"Host", "localhost:8080"},
      {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"},
      {"Accept", "*/*"},
      {"Accept-Language", "en-US,en;q=0.5"},
      {"Accept-Encoding", "gzip, deflate, br"},
      {"Sec-WebSocket-Version", "13"},
      {"Origin", "http://localhost:8080"},
      {"Sec-WebSocket-Extensions", "permessage-deflate"},
      {"Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="},
      {"Connection", "keep-alive, Upgrade"},
      {"Pragma", "no-cache"},
      {"Cache-Control", "no-cache"},
      {"Upgrade", "websocket"}}},
    {"duplicate names kept in order",
     S("GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n"),
     0,
     "GET",
     "/",
     1,
     2,
     {{"host", "a"}, {"HOST", "b"}}},
};

static void test_http_parse__valid_vectors_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        run_valid(&valid[i]);
}

/* Whole, every split (prefix: NEED_MORE or the error; then the rest), and one
 * byte at a time (NEED_MORE until the error, which must be the same one). */
static void run_reject(const char *name, const char *raw, size_t len, ssize_t want, size_t cap)
{
    struct http_header h[NHDR];
    struct http_request req;

    const char *b = guardbuf_put(raw, len);
    req_init(&req, h, cap);
    EXPECT_RES(http_parse_request(b, len, 0, MAX_HEAD, &req), want, name, len);

    for (size_t k = 0; k < len; k++) {
        b = guardbuf_put(raw, k);
        req_init(&req, h, cap);
        ssize_t r = http_parse_request(b, k, 0, MAX_HEAD, &req);
        if (r != RC_NEED_MORE) {
            EXPECT_RES(r, want, name, k);
            continue;
        }
        b = guardbuf_put(raw, len);
        EXPECT_RES(http_parse_request(b, len, k, MAX_HEAD, &req), want, name, k);
    }

    req_init(&req, h, cap);
    size_t last = 0;
    ssize_t r = RC_NEED_MORE;
    for (size_t k = 1; k <= len && r == RC_NEED_MORE; k++) {
        b = guardbuf_put(raw, k);
        r = http_parse_request(b, k, last, MAX_HEAD, &req);
        last = k;
    }
    EXPECT_RES(r, want, name, last);
    guardbuf_free();
}

struct bad {
    const char *name;
    const char *raw;
    size_t len;
    ssize_t want;
};

static const struct bad bad[] = {
    {"bare LF after request line", S("GET / HTTP/1.1\nHost: a\r\n\r\n"), RC_E_PROTO},
    {"bare LF head end", S("GET / HTTP/1.1\r\nHost: a\n\n"), RC_E_PROTO},
    {"bare LF last line", S("GET / HTTP/1.1\r\nHost: a\r\n\n"), RC_E_PROTO},
    {"bare CR in value", S("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), RC_E_PROTO},
    {"bare CR line end", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), RC_E_PROTO},
    {"CR CR LF", S("GET / HTTP/1.1\r\r\n\r\n"), RC_E_PROTO},
    {"obs-fold SP", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), RC_E_PROTO},
    {"obs-fold HTAB", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), RC_E_PROTO},
    {"SP-led first header", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), RC_E_PROTO},
    {"SP before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), RC_E_PROTO},
    {"HTAB before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), RC_E_PROTO},
    {"empty header name", S("GET / HTTP/1.1\r\n: a\r\n\r\n"), RC_E_PROTO},
    {"no colon", S("GET / HTTP/1.1\r\nHost a\r\n\r\n"), RC_E_PROTO},
    {"name only", S("GET / HTTP/1.1\r\nHost\r\n\r\n"), RC_E_PROTO},
    {"non-token in name", S("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), RC_E_PROTO},
    {"obs-text in name", S("GET / HTTP/1.1\r\nHo\xc3\xa9st: a\r\n\r\n"), RC_E_PROTO},
    {"CTL in value", S("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n"), RC_E_PROTO},
    {"NUL in value", S("GET / HTTP/1.1\r\nX: a\x00z\r\n\r\n"), RC_E_PROTO},
    {"DEL in value", S("GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n"), RC_E_PROTO},
    {"ESC in value", S("GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n"), RC_E_PROTO},
    {"VT in value", S("GET / HTTP/1.1\r\nX: a\vb\r\n\r\n"), RC_E_PROTO},
    {"non-token method", S("GE(T / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"obs-text method", S("G\xc3\xa9T / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"empty method", S(" / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"space in target", S("GET /a b HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"double SP after method", S("GET  / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"double SP before version", S("GET /  HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"HTAB separator", S("GET\t/ HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"HTAB in target", S("GET /a\tb HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"obs-text in target", S("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"DEL in target", S("GET /\x7f HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"trailing SP after version", S("GET / HTTP/1.1 \r\n\r\n"), RC_E_PROTO},
    {"HTTP/2.0", S("GET / HTTP/2.0\r\n\r\n"), RC_E_PROTO},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\n\r\n"), RC_E_PROTO},
    {"HTTP/0.9", S("GET / HTTP/0.9\r\n\r\n"), RC_E_PROTO},
    {"HTTP/1.10", S("GET / HTTP/1.10\r\n\r\n"), RC_E_PROTO},
    {"HTTP/11", S("GET / HTTP/11\r\n\r\n"), RC_E_PROTO},
    {"lower-case http", S("GET / http/1.1\r\n\r\n"), RC_E_PROTO},
    {"HTTP/1.", S("GET / HTTP/1.\r\n\r\n"), RC_E_PROTO},
    {"no version", S("GET /\r\n\r\n"), RC_E_PROTO},
    {"method only", S("GET\r\n\r\n"), RC_E_PROTO},
    {"missing target", S("GET HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"leading empty line", S("\r\nGET / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"empty head", S("\r\n\r\n"), RC_E_PROTO},
    {"leading SP", S(" GET / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"TLS ClientHello", S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), RC_E_PROTO},
    {"NUL first", S("\x00GET / HTTP/1.1\r\n\r\n"), RC_E_PROTO},
    {"HTTP/2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), RC_E_PROTO},
    {"response line", S("HTTP/1.1 200 OK\r\n\r\n"), RC_E_PROTO},
};

static void test_http_parse__rejects_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        run_reject(bad[i].name, bad[i].raw, bad[i].len, bad[i].want, NHDR);
}

/* Garbage is refused as it arrives, before any CRLF CRLF. */
static void test_http_parse__refuses_garbage_early(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        size_t len;
    } early[] = {
        {S("\x16")},
        {S("\x16\x03\x01")},
        {S(" ")},
        {S("\r")},
        {S("\n")},
        {S("{")},
        {S("GET / HTTP/1.1\n")},
        {S("GET / HTTP/1.1\rX")},
        {S("GET / HTTP/1.1\r\nX: a\x00")},
        {S("GET / HTTP/1.1\r\nX: a\r\n ")},
        {S("GET\x01")},
    };
    struct http_header h[NHDR];
    struct http_request req;
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        const char *b = guardbuf_put(early[i].raw, early[i].len);
        req_init(&req, h, NHDR);
        EXPECT_RES(http_parse_request(b, early[i].len, 0, MAX_HEAD, &req), RC_E_PROTO, "early", i);
    }
    guardbuf_free();
}

static void test_http_parse__need_more_on_valid_prefixes(void **state)
{
    (void)state;
    static const char *const prefixes[] = {
        "G",
        "GET",
        "GET ",
        "GET /x",
        "GET / HTTP/1.1",
        "GET / HTTP/1.1\r",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r",
        /* The grammar is only checked once the head is complete. */
        "GET / HTTP/9.9\r\nHo st",
        "GET(",
    };
    struct http_header h[NHDR];
    struct http_request req;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t len = strlen(prefixes[i]);
        const char *b = guardbuf_put(prefixes[i], len);
        req_init(&req, h, NHDR);
        EXPECT_RES(http_parse_request(b, len, 0, MAX_HEAD, &req), RC_NEED_MORE, prefixes[i], len);
        assert_int_equal(req.num_headers, NHDR);
    }
    const char *b = guardbuf_put("", 0);
    req_init(&req, h, NHDR);
    assert_int_equal(http_parse_request(b, 0, 0, MAX_HEAD, &req), RC_NEED_MORE);
    guardbuf_free();
}

/* Builds "GET / HTTP/1.1\r\n" + n lines "H<i>: v\r\n" + "\r\n". */
static size_t make_headers(char *out, size_t cap, size_t n)
{
    size_t len = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "H%zu: v\r\n", i);
    len += (size_t)snprintf(out + len, cap - len, "\r\n");
    assert_true(len < cap);
    return len;
}

static void test_http_parse__header_count_cap(void **state)
{
    (void)state;
    char raw[1024];
    struct http_header h[NHDR];
    struct http_request req;

    for (size_t cap = 0; cap <= 4; cap++) {
        size_t len = make_headers(raw, sizeof(raw), cap);
        const char *b = guardbuf_put(raw, len);
        req_init(&req, h, cap);
        assert_int_equal(http_parse_request(b, len, 0, MAX_HEAD, &req), (ssize_t)len);
        assert_int_equal(req.num_headers, cap);

        len = make_headers(raw, sizeof(raw), cap + 1);
        run_reject("cap+1 headers", raw, len, RC_E_TOO_MANY_HEADERS, cap);
    }
    /* Far over the cap. */
    size_t len = make_headers(raw, sizeof(raw), 40);
    run_reject("40 headers", raw, len, RC_E_TOO_MANY_HEADERS, NHDR);
    /* A malformed line before the cap is reached is a 400, not a 431. */
    run_reject("bad before cap", S("GET / HTTP/1.1\r\nA: 1\r\nB : 2\r\nC: 3\r\n\r\n"), RC_E_PROTO,
               2);
}

/* A request head of exactly `len` bytes: one X header padded with 'a'. */
static size_t make_sized(char *out, size_t len)
{
    static const char pre[] = "GET / HTTP/1.1\r\nX: ";
    size_t plen = sizeof(pre) - 1;
    assert_true(len >= plen + 4);
    memcpy(out, pre, plen);
    memset(out + plen, 'a', len - plen - 4);
    memcpy(out + len - 4, "\r\n\r\n", 4);
    return len;
}

static void test_http_parse__head_size_cap(void **state)
{
    (void)state;
    static char raw[600];
    struct http_header h[NHDR];
    struct http_request req;
    const size_t max = 256;

    /* Exactly max_head: accepted. */
    size_t len = make_sized(raw, max);
    const char *b = guardbuf_put(raw, len);
    req_init(&req, h, NHDR);
    assert_int_equal(http_parse_request(b, len, 0, max, &req), (ssize_t)max);

    /* One byte longer: refused, also when the bytes after it are pipelined. */
    len = make_sized(raw, max + 1);
    b = guardbuf_put(raw, len);
    req_init(&req, h, NHDR);
    assert_int_equal(http_parse_request(b, len, 0, max, &req), RC_E_HEAD_TOO_BIG);
    memcpy(raw + len, "GET", 3);
    b = guardbuf_put(raw, len + 3);
    assert_int_equal(http_parse_request(b, len + 3, 0, max, &req), RC_E_HEAD_TOO_BIG);

    /* Incomplete: NEED_MORE below the cap, HEAD_TOO_BIG from max_head bytes on,
     * fed one byte at a time. */
    len = make_sized(raw, sizeof(raw));
    size_t last = 0;
    for (size_t k = 1; k <= len; k++) {
        b = guardbuf_put(raw, k);
        ssize_t r = http_parse_request(b, k, last, max, &req);
        if (k < max) {
            EXPECT_RES(r, RC_NEED_MORE, "incomplete", k);
            last = k;
        } else {
            EXPECT_RES(r, RC_E_HEAD_TOO_BIG, "incomplete", k);
        }
    }
    /* Whole and resumed from any split, a head over the cap is HEAD_TOO_BIG. */
    for (size_t k = 0; k < len; k += 7) {
        b = guardbuf_put(raw, k);
        ssize_t r = http_parse_request(b, k, 0, max, &req);
        EXPECT_RES(r, k < max ? RC_NEED_MORE : RC_E_HEAD_TOO_BIG, "split", k);
        b = guardbuf_put(raw, len);
        EXPECT_RES(http_parse_request(b, len, k < max ? k : 0, max, &req), RC_E_HEAD_TOO_BIG,
                   "split", k);
    }
    guardbuf_free();
}

static void test_http_parse__resume_scans_only_new_bytes(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = sizeof(raw) - 1;
    struct http_header h[NHDR];
    struct http_request req;
    const char *b = guardbuf_put(raw, len);

    /* last_len claims every byte was seen already: the terminator is not
     * searched for again, so the call still needs more. */
    req_init(&req, h, NHDR);
    assert_int_equal(http_parse_request(b, len, len, MAX_HEAD, &req), RC_NEED_MORE);
    /* The terminator straddling old and new bytes is found from any split. */
    for (size_t k = len - 3; k < len; k++)
        assert_int_equal(http_parse_request(b, len, k, MAX_HEAD, &req), (ssize_t)len);
    /* A nonsensical last_len > len means "nothing seen yet". */
    assert_int_equal(http_parse_request(b, len, len + 10, MAX_HEAD, &req), (ssize_t)len);
    guardbuf_free();
}

static int ref_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static ssize_t parse_str(const char *raw, size_t len)
{
    struct http_header h[NHDR];
    struct http_request req;
    const char *b = guardbuf_put(raw, len);
    req_init(&req, h, NHDR);
    return http_parse_request(b, len, 0, MAX_HEAD, &req);
}

/* Every byte value in each position against the RFC 9110 ABNF. */
static void test_http_parse__byte_classes(void **state)
{
    (void)state;
    char raw[64];
    for (int c = 0; c < 256; c++) {
        /* method: tchar */
        memcpy(raw, "GxT / HTTP/1.1\r\n\r\n", 18);
        raw[1] = (char)c;
        EXPECT_RES(parse_str(raw, 18), ref_tchar(c) ? 18 : RC_E_PROTO, "method byte", c);

        /* header name: tchar (':' just ends the name early) */
        memcpy(raw, "GET / HTTP/1.1\r\nXxY: v\r\n\r\n", 26);
        raw[17] = (char)c;
        EXPECT_RES(parse_str(raw, 26), ref_tchar(c) || c == ':' ? 26 : RC_E_PROTO, "name byte", c);

        /* header value: field-vchar / obs-text / SP / HTAB */
        memcpy(raw, "GET / HTTP/1.1\r\nX: axb\r\n\r\n", 26);
        raw[20] = (char)c;
        int ok = (c > 0x20 && c < 0x7f) || c >= 0x80 || c == ' ' || c == '\t';
        EXPECT_RES(parse_str(raw, 26), ok ? 26 : RC_E_PROTO, "value byte", c);

        /* target: printable ASCII */
        memcpy(raw, "GET /x HTTP/1.1\r\n\r\n", 19);
        raw[5] = (char)c;
        EXPECT_RES(parse_str(raw, 19), (c > 0x20 && c < 0x7f) ? 19 : RC_E_PROTO, "target byte", c);
    }
    guardbuf_free();
}

static void test_http_parse__token_eq(void **state)
{
    (void)state;
    assert_true(http_token_eq("Upgrade", 7, "upgrade"));
    assert_true(http_token_eq("UPGRADE", 7, "upgrade"));
    assert_true(http_token_eq("", 0, ""));
    assert_false(http_token_eq("Upgrad", 6, "upgrade"));
    assert_false(http_token_eq("Upgrades", 8, "upgrade"));
    assert_false(http_token_eq("Upgrade", 7, "upgradE!"));
    /* Only ASCII letters fold: '@' (0x40) is not '`' (0x60). */
    assert_false(http_token_eq("@", 1, "`"));
    assert_false(http_token_eq("[", 1, "{"));
}

static void test_http_parse__find_and_count_header(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-AB: 3\r\n\r\n";
    struct http_header h[NHDR];
    struct http_request req;
    req_init(&req, h, NHDR);
    assert_int_equal(http_parse_request(raw, sizeof(raw) - 1, 0, MAX_HEAD, &req),
                     (ssize_t)(sizeof(raw) - 1));
    const struct http_header *x = http_find_header(&req, "X-a");
    assert_non_null(x);
    assert_true(str_is(x->value, x->value_len, "1"));
    assert_int_equal(http_count_header(&req, "x-A"), 2);
    assert_int_equal(http_count_header(&req, "host"), 1);
    assert_int_equal(http_count_header(&req, "X"), 0);
    assert_null(http_find_header(&req, "Origin"));
    assert_null(http_find_header(&req, "X-"));
}

static void test_http_parse__list_has_token(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {"Upgrade", 1},
        {"upgrade", 1},
        {"keep-alive, Upgrade", 1},
        {"keep-alive,Upgrade", 1},
        {" \tupgrade\t ", 1},
        {",,upgrade,,", 1},
        {"Upgrade, keep-alive", 1},
        {"", 0},
        {",", 0},
        {"keep-alive", 0},
        {"upgrader", 0},
        {"xupgrade", 0},
        {"up grade", 0},
        {"upgrade;q=1", 0},
        {"\"upgrade\"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = http_list_has_token(cases[i].v, strlen(cases[i].v), "upgrade");
        if (got != cases[i].want) {
            print_error("'%s': got %d\n", cases[i].v, got);
            fail();
        }
    }
    /* Only len bytes are read. */
    assert_false(http_list_has_token("upgrade", 6, "upgrade"));
    assert_true(http_list_has_token("a, upgrade, b", 10, "upgrade"));
}

static void test_http_parse__bearer_ok(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {"Bearer s3cret", 1},  {"bearer s3cret", 1}, {"BEARER s3cret", 1},  {"Bearer s3cre", 0},
        {"Bearer s3crett", 0}, {"Bearer S3cret", 0}, {"Bearer  s3cret", 0}, {"Basic s3cret", 0},
        {"Bearer", 0},         {"Bearer ", 0},       {"s3cret", 0},         {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = http_bearer_ok(cases[i].v, strlen(cases[i].v), "s3cret");
        if (got != cases[i].want) {
            print_error("'%s': got %d\n", cases[i].v, got);
            fail();
        }
    }
    assert_false(http_bearer_ok(NULL, 0, "s3cret")); /* no header */
    assert_false(http_bearer_ok("Bearer ", 7, ""));  /* no token configured */
    /* Only len bytes are read. */
    assert_false(http_bearer_ok("Bearer s3cretX", 12, "s3cret"));
    assert_true(http_bearer_ok("Bearer s3cretX", 13, "s3cret"));
}

static void split(const char *target, const char *path, const char *query)
{
    struct http_request req = {.target = target, .target_len = strlen(target)};
    const char *p, *q;
    size_t pl, ql;
    http_split_target(&req, &p, &pl, &q, &ql);
    assert_ptr_equal(p, target);
    assert_true(str_is(p, pl, path));
    assert_true(str_is(q, ql, query));
}

static void test_http_parse__split_target(void **state)
{
    (void)state;
    split("/ws", "/ws", "");
    split("/ws?room=a&b=c", "/ws", "room=a&b=c");
    split("/ws?", "/ws", "");
    split("?x", "", "x");
    split("/a?b?c", "/a", "b?c");
    split("", "", "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse__valid_vectors_every_split),
        cmocka_unit_test(test_http_parse__rejects_malformed),
        cmocka_unit_test(test_http_parse__refuses_garbage_early),
        cmocka_unit_test(test_http_parse__need_more_on_valid_prefixes),
        cmocka_unit_test(test_http_parse__header_count_cap),
        cmocka_unit_test(test_http_parse__head_size_cap),
        cmocka_unit_test(test_http_parse__resume_scans_only_new_bytes),
        cmocka_unit_test(test_http_parse__byte_classes),
        cmocka_unit_test(test_http_parse__token_eq),
        cmocka_unit_test(test_http_parse__find_and_count_header),
        cmocka_unit_test(test_http_parse__list_has_token),
        cmocka_unit_test(test_http_parse__bearer_ok),
        cmocka_unit_test(test_http_parse__split_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
