#include "handshake.h"

#include <stdint.h>
#include <string.h>

#include "crypto.h"

/* RFC 6455 §1.3 / §4.2.2 step 5.4: the GUID appended to the client key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int refuse(struct ws_refusal *why, int status, const char *kind, const char *reason)
{
    why->status = status;
    why->reason = reason;
    why->kind = kind;
    return -1;
}

/* 1 if any header named `name` lists `token` (RFC 9110 §5.3: several field
 * lines with the same name form one comma-separated list). */
static int any_has_token(const struct http_request *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_token_eq(h->name, h->name_len, name) &&
            http_list_has_token(h->value, h->value_len, token))
            return 1;
    }
    return 0;
}

/* The one header named `name`; NULL (why: 400 `kind`, `missing` or
 * `duplicate`) when there is none or there are several. */
static const struct http_header *one_header(const struct http_request *req, const char *name,
                                            const char *kind, const char *missing,
                                            const char *duplicate, struct ws_refusal *why)
{
    size_t n = http_count_header(req, name);
    if (n != 1) {
        refuse(why, 400, kind, n == 0 ? missing : duplicate);
        return NULL;
    }
    return http_find_header(req, name);
}

static void borrow(const struct http_request *req, const char *name, const char **v, size_t *n)
{
    const struct http_header *h = http_find_header(req, name);
    *v = h ? h->value : NULL;
    *n = h ? h->value_len : 0;
}

int ws_upgrade_check(const struct http_request *req, struct ws_upgrade *up, struct ws_refusal *why)
{
    /* §4.2.1 item 1: an HTTP/1.1 or higher GET request. */
    /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return refuse(why, 405, "method", "WebSocket upgrade needs GET");
    if (req->minor_version < 1)
        return refuse(why, 400, "http_version", "WebSocket upgrade needs HTTP/1.1");

    /* §4.2.1 item 2: a Host header field; RFC 9112 §3.2 makes zero or several a 400. */
    const struct http_header *host =
        one_header(req, "Host", "host", "missing Host", "duplicate Host", why);
    if (host == NULL)
        return -1;

    /* §4.2.1 item 3: Upgrade containing "websocket" (case-insensitive). A GET
     * that does not ask for WebSocket is an ordinary request to an endpoint that
     * only speaks WebSocket: 426 (RFC 9110 §15.5.22). */
    if (!any_has_token(req, "Upgrade", "websocket"))
        return refuse(why, 426, "not_websocket", "this endpoint speaks WebSocket");

    /* §4.2.1 item 4: Connection containing the "Upgrade" token. */
    if (!any_has_token(req, "Connection", "upgrade"))
        return refuse(why, 400, "connection", "Connection header lacks the upgrade token");

    /* §4.2.1 item 5 and §11.3.1: exactly one Sec-WebSocket-Key, which is the
     * base64 of 16 bytes (so 24 characters, "==" padded). */
    const struct http_header *key =
        one_header(req, "Sec-WebSocket-Key", "key", "missing Sec-WebSocket-Key",
                   "duplicate Sec-WebSocket-Key", why);
    if (key == NULL)
        return -1;
    uint8_t nonce[18];
    if (key->value_len != 24 ||
        rc_base64_decode(key->value, key->value_len, nonce, sizeof(nonce), 0) != 16)
        return refuse(why, 400, "key", "invalid Sec-WebSocket-Key");

    /* §4.2.1 item 6 and §11.3.5: exactly one Sec-WebSocket-Version, "13".
     * §4.2.2: another version is answered 426 with the versions we speak. */
    const struct http_header *ver =
        one_header(req, "Sec-WebSocket-Version", "version", "missing Sec-WebSocket-Version",
                   "duplicate Sec-WebSocket-Version", why);
    if (ver == NULL)
        return -1;
    if (ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0)
        return refuse(why, 426, "version", "unsupported Sec-WebSocket-Version");

    up->host = host->value;
    up->host_len = host->value_len;
    up->key = key->value;
    up->key_len = key->value_len;
    borrow(req, "Sec-WebSocket-Protocol", &up->protocols, &up->protocols_len);
    borrow(req, "Sec-WebSocket-Extensions", &up->extensions, &up->extensions_len);
    borrow(req, "Origin", &up->origin, &up->origin_len);
    return 0;
}

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    /* §4.2.2 step 5.4: base64(SHA-1(key || GUID)); the key is used as sent,
     * not decoded. */
    uint8_t digest[RC_SHA1_LEN];
    rc_sha1_2(key, key_len, ws_guid, sizeof(ws_guid) - 1, digest);
    rc_base64_encode(digest, sizeof(digest), out);
}

int ws_pick_subprotocol(const char *offered, size_t offered_len, const char *const *supported)
{
    if (offered == NULL || supported == NULL)
        return -1;
    /* §4.2.2 step 5.4 /subprotocol/: the first of the client's values (in its
     * order of preference) that we support. Compared byte for byte: the client
     * checks the echo against what it sent. */
    size_t i = 0;
    while (i < offered_len) {
        size_t start = i;
        while (i < offered_len && offered[i] != ',')
            i++;
        size_t stop = i;
        while (start < stop && (offered[start] == ' ' || offered[start] == '\t'))
            start++;
        while (stop > start && (offered[stop - 1] == ' ' || offered[stop - 1] == '\t'))
            stop--;
        if (stop > start) {
            for (int k = 0; supported[k] != NULL; k++) {
                if (strlen(supported[k]) == stop - start &&
                    memcmp(supported[k], offered + start, stop - start) == 0)
                    return k;
            }
        }
        i++;
    }
    return -1;
}

/* Bounded appender: keeps writing nothing once the buffer is full. */
struct out {
    char *p;
    size_t cap;
    size_t len;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_uint(struct out *o, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + sizeof(tmp) - n, n);
}

static int finish(struct out *o)
{
    if (o->overflow || o->len > 0x7fffffff)
        return -1;
    if (o->len < o->cap)
        o->p[o->len] = '\0';
    return (int)o->len;
}

int ws_response_101(char *out, size_t cap, const char accept[WS_ACCEPT_LEN + 1],
                    const char *protocol, const char *extra)
{
    struct out o = {out, cap, 0, 0};
    /* §4.2.2 step 5: status 101, Upgrade, Connection, Sec-WebSocket-Accept and
     * at most one selected subprotocol. */
    puts_(&o, "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: ");
    put(&o, accept, WS_ACCEPT_LEN);
    puts_(&o, "\r\n");
    if (protocol) {
        puts_(&o, "Sec-WebSocket-Protocol: ");
        puts_(&o, protocol);
        puts_(&o, "\r\n");
    }
    if (extra)
        puts_(&o, extra);
    puts_(&o, "\r\n");
    return finish(&o);
}

/* 1 if the header lines in `extra` include one named `name` (at a line start). */
static int extra_has(const char *extra, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = extra; line && *line;) {
        const char *colon = strchr(line, ':');
        if (colon && (size_t)(colon - line) == n && http_token_eq(line, n, name))
            return 1;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

int http_error_response(char *out, size_t cap, int status, const char *reason, const char *extra)
{
    struct out o = {out, cap, 0, 0};
    if (reason == NULL)
        reason = http_status_text(status);
    size_t body_len = strlen(reason) + 1;

    char code[4] = {'0', '0', '0', '\0'};
    if (status >= 100 && status <= 999) {
        code[0] = (char)('0' + status / 100);
        code[1] = (char)('0' + status / 10 % 10);
        code[2] = (char)('0' + status % 10);
    }
    puts_(&o, "HTTP/1.1 ");
    puts_(&o, code);
    puts_(&o, " ");
    puts_(&o, http_status_text(status));
    puts_(&o, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_uint(&o, body_len);
    if (status == 426) {
        /* RFC 9110 §15.5.22: a 426 names the protocol to upgrade to, and §7.8
         * puts "upgrade" in Connection next to an Upgrade field. RFC 6455
         * §4.2.2: list the versions we speak. */
        puts_(&o, "\r\nConnection: Upgrade, close\r\n"
                  "Upgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\n");
    } else {
        puts_(&o, "\r\nConnection: close\r\n");
    }
    /* RFC 9110 §15.5.6: a 405 carries Allow. */
    if (status == 405 && !extra_has(extra, "Allow"))
        puts_(&o, "Allow: GET\r\n");
    if (extra)
        puts_(&o, extra);
    puts_(&o, "\r\n");
    puts_(&o, reason);
    puts_(&o, "\n");
    return finish(&o);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
