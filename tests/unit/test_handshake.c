/* test_handshake.c - RFC 6455 §4.2 server handshake: upgrade validation over
 * requests parsed whole, split at every offset and one byte at a time (from
 * the end of a guard page); the accept key; exact response bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "guardbuf.h"
#include "handshake.h"
#include "http_parse.h"

#define MAX_HEAD 8192
#define NHDR 24

typedef void check_fn(const struct http_request *req, const void *ctx);

static void req_init(struct http_request *req, struct http_header *h)
{
    memset(req, 0, sizeof(*req));
    req->headers = h;
    req->num_headers = NHDR;
}

static int str_is(const char *p, size_t n, const char *want)
{
    if (want == NULL)
        return p == NULL && n == 0;
    return p != NULL && strlen(want) == n && memcmp(p, want, n) == 0;
}

/* Parses raw whole, split at every offset, and one byte at a time; after
 * each complete parse runs check(req, ctx). */
static void parse_every_way(const char *raw, check_fn *check, const void *ctx)
{
    size_t len = strlen(raw);
    struct http_header h[NHDR];
    struct http_request req;

    const char *b = guardbuf_put(raw, len);
    req_init(&req, h);
    assert_int_equal(http_parse_request(b, len, 0, MAX_HEAD, &req), (ssize_t)len);
    check(&req, ctx);

    for (size_t k = 0; k < len; k++) {
        b = guardbuf_put(raw, k);
        req_init(&req, h);
        assert_int_equal(http_parse_request(b, k, 0, MAX_HEAD, &req), RC_NEED_MORE);
        b = guardbuf_put(raw, len);
        assert_int_equal(http_parse_request(b, len, k, MAX_HEAD, &req), (ssize_t)len);
        check(&req, ctx);
    }

    req_init(&req, h);
    for (size_t k = 1; k <= len; k++) {
        b = guardbuf_put(raw, k);
        ssize_t r = http_parse_request(b, k, k - 1, MAX_HEAD, &req);
        assert_int_equal(r, k < len ? RC_NEED_MORE : (ssize_t)len);
    }
    check(&req, ctx);
    guardbuf_free();
}

/* ---- accepted upgrades ---------------------------------------------------- */

struct ok_vec {
    const char *raw;
    const char *key, *host, *protocols, *extensions, *origin;
    const char *accept;
};

static void check_ok(const struct http_request *req, const void *ctx)
{
    const struct ok_vec *v = ctx;
    struct ws_upgrade up;
    struct ws_refusal why = {0, NULL, NULL};
    memset(&up, 0xa5, sizeof(up));
    if (ws_upgrade_check(req, &up, &why) != 0) {
        print_error("refused %d %s:\n%s", why.status, why.reason, v->raw);
        fail();
    }
    assert_true(str_is(up.key, up.key_len, v->key));
    assert_true(str_is(up.host, up.host_len, v->host));
    assert_true(str_is(up.protocols, up.protocols_len, v->protocols));
    assert_true(str_is(up.extensions, up.extensions_len, v->extensions));
    assert_true(str_is(up.origin, up.origin_len, v->origin));
    char acc[WS_ACCEPT_LEN + 1];
    ws_accept_key(up.key, up.key_len, acc);
    assert_string_equal(acc, v->accept);
}

static const struct ok_vec ok_vecs[] = {
    /* RFC 6455 §1.3 */
    {"GET /chat HTTP/1.1\r\n"
     "Host: server.example.com\r\n"
     "Upgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Origin: http://example.com\r\n"
     "Sec-WebSocket-Protocol: chat, superchat\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "\r\n",
     "dGhlIHNhbXBsZSBub25jZQ==", "server.example.com", "chat, superchat", NULL,
     "http://example.com", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    /* Firefox: Connection is a list, extensions offered, odd header order. */
    {"GET /ws HTTP/1.1\r\n"
     "Host: localhost:8080\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Origin: http://localhost:8080\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate\r\n"
     "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
     "Connection: keep-alive, Upgrade\r\n"
     "Upgrade: websocket\r\n"
     "\r\n",
     "x3JJHMbDL1EzLkh9GBhXDw==", "localhost:8080", NULL, "permessage-deflate",
     "http://localhost:8080", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    /* Case-insensitive names and tokens, OWS, several Connection lines. */
    {"GET /ws?room=x HTTP/1.1\r\n"
     "host:h\r\n"
     "UPGRADE: WebSocket\r\n"
     "connection: keep-alive\r\n"
     "CONNECTION:  upgrade \r\n"
     "sec-websocket-key:\tAQIDBAUGBwgJCgsMDQ4PEA==\t\r\n"
     "sec-websocket-version: 13\r\n"
     "\r\n",
     "AQIDBAUGBwgJCgsMDQ4PEA==", "h", NULL, NULL, NULL, "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="},
    /* Upgrade lists several protocols. */
    {"GET / HTTP/1.1\r\n"
     "Host: h\r\n"
     "Upgrade: foo/1, websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "\r\n",
     "dGhlIHNhbXBsZSBub25jZQ==", "h", NULL, NULL, NULL, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
};

static void test_handshake__accepts_valid_upgrades(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ok_vecs) / sizeof(ok_vecs[0]); i++)
        parse_every_way(ok_vecs[i].raw, check_ok, &ok_vecs[i]);
}

/* ---- refusals ------------------------------------------------------------- */

struct bad_vec {
    const char *what;
    int status;
    const char *reason;
    const char *raw;
};

static void check_refused(const struct http_request *req, const void *ctx)
{
    const struct bad_vec *v = ctx;
    struct ws_upgrade up;
    struct ws_refusal why = {0, NULL, NULL};
    if (ws_upgrade_check(req, &up, &why) != -1 || why.status != v->status || why.reason == NULL ||
        strcmp(why.reason, v->reason) != 0 || why.kind == NULL) {
        print_error("%s: got %d '%s', want %d '%s'\n", v->what, why.status,
                    why.reason ? why.reason : "(null)", v->status, v->reason);
        fail();
    }
}

#define RL "GET /ws HTTP/1.1\r\n"
#define HOST "Host: h\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define END "\r\n"

#define R_GET "WebSocket upgrade needs GET"
#define R_11 "WebSocket upgrade needs HTTP/1.1"
#define R_NOHOST "missing Host"
#define R_DUPHOST "duplicate Host"
#define R_PLAIN "this endpoint speaks WebSocket"
#define R_CONN "Connection header lacks the upgrade token"
#define R_NOKEY "missing Sec-WebSocket-Key"
#define R_DUPKEY "duplicate Sec-WebSocket-Key"
#define R_BADKEY "invalid Sec-WebSocket-Key"
#define R_NOVER "missing Sec-WebSocket-Version"
#define R_DUPVER "duplicate Sec-WebSocket-Version"
#define R_VER "unsupported Sec-WebSocket-Version"

static const struct bad_vec bad_vecs[] = {
    {"POST", 405, R_GET, "POST /ws HTTP/1.1\r\n" HOST UPG CONN KEY VER END},
    {"lower-case get", 405, R_GET, "get /ws HTTP/1.1\r\n" HOST UPG CONN KEY VER END},
    {"GETX", 405, R_GET, "GETX /ws HTTP/1.1\r\n" HOST UPG CONN KEY VER END},
    {"HEAD", 405, R_GET, "HEAD /ws HTTP/1.1\r\n" HOST UPG CONN KEY VER END},
    {"POST before version", 405, R_GET, "POST /ws HTTP/1.0\r\n" END},
    {"HTTP/1.0", 400, R_11, "GET /ws HTTP/1.0\r\n" HOST UPG CONN KEY VER END},
    {"no Host", 400, R_NOHOST, RL UPG CONN KEY VER END},
    {"two Hosts", 400, R_DUPHOST, RL HOST UPG CONN KEY "host: h2\r\n" VER END},
    {"plain GET", 426, R_PLAIN, RL HOST END},
    {"plain GET with Connection", 426, R_PLAIN, RL HOST CONN KEY VER END},
    {"Upgrade: h2c", 426, R_PLAIN, RL HOST "Upgrade: h2c\r\n" CONN KEY VER END},
    {"Upgrade: websockets", 426, R_PLAIN, RL HOST "Upgrade: websockets\r\n" CONN KEY VER END},
    {"empty Upgrade", 426, R_PLAIN, RL HOST "Upgrade:\r\n" CONN KEY VER END},
    {"no Connection", 400, R_CONN, RL HOST UPG KEY VER END},
    {"Connection: keep-alive", 400, R_CONN, RL HOST UPG "Connection: keep-alive\r\n" KEY VER END},
    {"Connection: upgraded", 400, R_CONN, RL HOST UPG "Connection: upgraded\r\n" KEY VER END},
    {"Connection: close", 400, R_CONN, RL HOST UPG "Connection: close\r\n" KEY VER END},
    {"no key", 400, R_NOKEY, RL HOST UPG CONN VER END},
    {"two keys", 400, R_DUPKEY, RL HOST UPG CONN KEY KEY VER END},
    {"empty key", 400, R_BADKEY, RL HOST UPG CONN "Sec-WebSocket-Key:\r\n" VER END},
    {"key 15 bytes", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" VER END},
    {"key 17 bytes", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" VER END},
    {"key 18 bytes", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" VER END},
    {"key unpadded", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" VER END},
    {"key bad char", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" VER END},
    {"key url-safe alphabet", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-Q==\r\n" VER END},
    {"key non-canonical bits", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" VER END},
    {"key inner space", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZ Bub25jZQ==\r\n" VER END},
    {"key too long", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AAAA\r\n" VER END},
    {"no version", 400, R_NOVER, RL HOST UPG CONN KEY END},
    {"two versions", 400, R_DUPVER, RL HOST UPG CONN KEY VER VER END},
    {"version 8", 426, R_VER, RL HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n" END},
    {"version 013", 426, R_VER, RL HOST UPG CONN KEY "Sec-WebSocket-Version: 013\r\n" END},
    {"version list", 426, R_VER, RL HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n" END},
    {"version empty", 426, R_VER, RL HOST UPG CONN KEY "Sec-WebSocket-Version:\r\n" END},
    /* RFC order: the first failing check wins. */
    {"everything missing", 426, R_PLAIN, RL HOST END},
    {"no Host and no Upgrade", 400, R_NOHOST, RL END},
    {"bad key and bad version", 400, R_BADKEY,
     RL HOST UPG CONN "Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 8\r\n" END},
};

static void test_handshake__refuses_with_status_and_reason(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_vecs) / sizeof(bad_vecs[0]); i++)
        parse_every_way(bad_vecs[i].raw, check_refused, &bad_vecs[i]);
}

/* ---- accept key ----------------------------------------------------------- */

static void test_handshake__accept_key_vectors(void **state)
{
    (void)state;
    char out[WS_ACCEPT_LEN + 1];
    memset(out, 'x', sizeof(out));
    /* RFC 6455 §1.3 and §4.2.2. */
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(out), WS_ACCEPT_LEN);
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* Only key_len bytes are hashed. */
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==trailing", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- subprotocol ---------------------------------------------------------- */

static void test_handshake__pick_subprotocol(void **state)
{
    (void)state;
    static const char *const sup[] = {"superchat", "chat", NULL};
    static const char *const none[] = {NULL};
    /* The client's order of preference wins. */
    assert_int_equal(ws_pick_subprotocol("chat, superchat", 15, sup), 1);
    assert_int_equal(ws_pick_subprotocol("superchat, chat", 15, sup), 0);
    assert_int_equal(ws_pick_subprotocol("x,\t chat \t", 10, sup), 1);
    assert_int_equal(ws_pick_subprotocol("mqtt", 4, sup), -1);
    assert_int_equal(ws_pick_subprotocol("cha", 3, sup), -1);
    assert_int_equal(ws_pick_subprotocol("chats", 5, sup), -1);
    assert_int_equal(ws_pick_subprotocol("Chat", 4, sup), -1);
    assert_int_equal(ws_pick_subprotocol("", 0, sup), -1);
    assert_int_equal(ws_pick_subprotocol(",,", 2, sup), -1);
    assert_int_equal(ws_pick_subprotocol(NULL, 0, sup), -1);
    assert_int_equal(ws_pick_subprotocol("chat", 4, none), -1);
    /* Only offered_len bytes are read. */
    assert_int_equal(ws_pick_subprotocol("chatty", 4, sup), 1);
}

/* ---- responses ------------------------------------------------------------ */

/* Checks that every smaller cap fails and the exact cap works. */
static void check_caps_101(const char *accept, const char *proto, const char *extra,
                           const char *want)
{
    size_t n = strlen(want);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(ws_response_101(buf, cap, accept, proto, extra), -1);
    assert_int_equal(ws_response_101(buf, n, accept, proto, extra), (int)n);
    assert_memory_equal(buf, want, n);
    free(buf);
}

static void test_handshake__response_101_bytes(void **state)
{
    (void)state;
    char out[512];
    static const char acc[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    static const char plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "\r\n";
    assert_int_equal(ws_response_101(out, sizeof(out), acc, NULL, NULL), (int)strlen(plain));
    assert_string_equal(out, plain);
    check_caps_101(acc, NULL, NULL, plain);

    static const char proto[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "Sec-WebSocket-Protocol: chat\r\n"
                                "X-Roomcast: 1\r\n"
                                "\r\n";
    assert_int_equal(ws_response_101(out, sizeof(out), acc, "chat", "X-Roomcast: 1\r\n"),
                     (int)strlen(proto));
    assert_string_equal(out, proto);
    check_caps_101(acc, "chat", "X-Roomcast: 1\r\n", proto);
}

/* Content-Length equals the bytes after the blank line. */
static void check_content_length(const char *resp, int n)
{
    const char *cl = strstr(resp, "\r\nContent-Length: ");
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(cl);
    assert_non_null(end);
    assert_true(cl < end);
    long len = strtol(cl + 18, NULL, 10);
    assert_int_equal(len, (long)(resp + n - (end + 4)));
}

static void test_handshake__error_response_bytes(void **state)
{
    (void)state;
    char out[512];
    int n;

    static const char r400[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "missing Host\n";
    n = http_error_response(out, sizeof(out), 400, "missing Host", NULL);
    assert_int_equal(n, (int)strlen(r400));
    assert_string_equal(out, r400);

    static const char r426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 31\r\n"
                               "Connection: Upgrade, close\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n"
                               "this endpoint speaks WebSocket\n";
    n = http_error_response(out, sizeof(out), 426, "this endpoint speaks WebSocket", NULL);
    assert_int_equal(n, (int)strlen(r426));
    assert_string_equal(out, r426);

    static const char r405[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 28\r\n"
                               "Connection: close\r\n"
                               "Allow: GET\r\n"
                               "\r\n"
                               "WebSocket upgrade needs GET\n";
    n = http_error_response(out, sizeof(out), 405, "WebSocket upgrade needs GET", NULL);
    assert_int_equal(n, (int)strlen(r405));
    assert_string_equal(out, r405);

    /* The caller's Allow replaces the default one. */
    static const char r405b[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 19\r\n"
                                "Connection: close\r\n"
                                "allow: GET, HEAD\r\n"
                                "\r\n"
                                "Method Not Allowed\n";
    n = http_error_response(out, sizeof(out), 405, NULL, "allow: GET, HEAD\r\n");
    assert_int_equal(n, (int)strlen(r405b));
    assert_string_equal(out, r405b);

    static const char r404[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 10\r\n"
                               "Connection: close\r\n"
                               "X-A: 1\r\n"
                               "X-B: 2\r\n"
                               "\r\n"
                               "Not Found\n";
    n = http_error_response(out, sizeof(out), 404, NULL, "X-A: 1\r\nX-B: 2\r\n");
    assert_int_equal(n, (int)strlen(r404));
    assert_string_equal(out, r404);

    static const char r431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 23\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "request head too large\n";
    n = http_error_response(out, sizeof(out), 431, "request head too large", NULL);
    assert_int_equal(n, (int)strlen(r431));
    assert_string_equal(out, r431);

    /* Content-Length is right for every status and an empty reason. */
    static const int codes[] = {400, 401, 403, 404, 405, 408, 426, 429, 431, 500, 503, 299};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        n = http_error_response(out, sizeof(out), codes[i], "", NULL);
        assert_true(n > 0);
        check_content_length(out, n);
        n = http_error_response(out, sizeof(out), codes[i], NULL, NULL);
        assert_true(n > 0);
        check_content_length(out, n);
    }
    /* A long body gets a multi-digit length. */
    char reason[300];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    n = http_error_response(out, sizeof(out), 400, reason, NULL);
    assert_true(n > 0);
    assert_non_null(strstr(out, "Content-Length: 300\r\n"));
    check_content_length(out, n);

    /* Every cap below the length fails; the exact length works. */
    size_t len = strlen(r426);
    for (size_t cap = 0; cap < len; cap++)
        assert_int_equal(http_error_response(out, cap, 426, "this endpoint speaks WebSocket", NULL),
                         -1);
    memset(out, 'z', sizeof(out));
    assert_int_equal(http_error_response(out, len, 426, "this endpoint speaks WebSocket", NULL),
                     (int)len);
    assert_memory_equal(out, r426, len);
    assert_int_equal(out[len], 'z'); /* no NUL written past cap */
}

static void test_handshake__status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(101), "Switching Protocols");
    assert_string_equal(http_status_text(400), "Bad Request");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(405), "Method Not Allowed");
    assert_string_equal(http_status_text(426), "Upgrade Required");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(503), "Service Unavailable");
    assert_string_equal(http_status_text(299), "Unknown");
    assert_string_equal(http_status_text(-1), "Unknown");
}

/* The whole server path: parse, check, answer. */
static void test_handshake__end_to_end_rfc_example(void **state)
{
    (void)state;
    static const char raw[] = "GET /chat HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    struct http_header h[NHDR];
    struct http_request req;
    req_init(&req, h);
    const char *b = guardbuf_put(raw, sizeof(raw) - 1);
    assert_int_equal(http_parse_request(b, sizeof(raw) - 1, 0, MAX_HEAD, &req),
                     (ssize_t)(sizeof(raw) - 1));
    struct ws_upgrade up;
    struct ws_refusal why;
    assert_int_equal(ws_upgrade_check(&req, &up, &why), 0);
    static const char *const sup[] = {"superchat", "chat", NULL};
    int k = ws_pick_subprotocol(up.protocols, up.protocols_len, sup);
    assert_int_equal(k, 1);
    char acc[WS_ACCEPT_LEN + 1];
    ws_accept_key(up.key, up.key_len, acc);
    char out[256];
    int n = ws_response_101(out, sizeof(out), acc, sup[k], NULL);
    /* RFC 6455 §1.3 server handshake. */
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
    guardbuf_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake__accepts_valid_upgrades),
        cmocka_unit_test(test_handshake__refuses_with_status_and_reason),
        cmocka_unit_test(test_handshake__accept_key_vectors),
        cmocka_unit_test(test_handshake__pick_subprotocol),
        cmocka_unit_test(test_handshake__response_101_bytes),
        cmocka_unit_test(test_handshake__error_response_bytes),
        cmocka_unit_test(test_handshake__status_text),
        cmocka_unit_test(test_handshake__end_to_end_rfc_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
