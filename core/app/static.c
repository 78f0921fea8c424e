#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "handshake.h"
#include "urlpath.h"

int static_wants(const struct rc_config *cfg, const struct http_request *req)
{
    if (cfg->static_dir == NULL || cfg->static_dir[0] == '\0')
        return 0;
    int get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    int head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (!get && !head)
        return 0;
    if (http_find_header(req, "upgrade") != NULL)
        return 0;
    const char *path, *q;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &q, &ql);
    return !(pl == 3 && memcmp(path, "/ws", 3) == 0);
}

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"ico", "image/x-icon"},
    {"webp", "image/webp"},
    {"woff2", "font/woff2"},
    {"map", "application/json"},
    {"wasm", "application/wasm"},
};

static const char *content_type(const char *rel)
{
    const char *dot = strrchr(rel, '.');
    const char *slash = strrchr(rel, '/');
    if (dot && (slash == NULL || dot > slash)) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

static char *simple(int status, const char *body, int head_only, size_t *len, int *out_status)
{
    char *buf = rc_xmalloc(512);
    int n = http_error_response(buf, 512, status, body, NULL);
    if (n < 0)
        n = snprintf(buf, 512, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status, http_status_text(status));
    char *end = strstr(buf, "\r\n\r\n");
    if (head_only && end) /* HEAD: the same head, no body (RFC 9110 §9.3.2) */
        n = (int)(end + 4 - buf);
    *len = (size_t)n;
    *out_status = status;
    return buf;
}

/* 1 when the If-None-Match list names etag (or is "*"). */
static int etag_matches(const struct http_request *req, const char *etag)
{
    size_t el = strlen(etag);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (!http_token_eq(h->name, h->name_len, "if-none-match"))
            continue;
        const char *v = h->value, *end = h->value + h->value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *s = v;
            while (v < end && *v != ',')
                v++;
            const char *e = v;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e - s == 1 && *s == '*')
                return 1;
            if (e - s >= 2 && s[0] == 'W' && s[1] == '/') /* weak comparison (RFC 9110 §13.1.2) */
                s += 2;
            if ((size_t)(e - s) == el && memcmp(s, etag, el) == 0)
                return 1;
        }
    }
    return 0;
}

/* Resolves rel under root; the file must stay inside root. Returns an open
 * fd of a regular file (st filled) or -1. */
static int open_inside(const char *root, const char *rel, struct stat *st)
{
    char want[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
    if (realpath(root, real_root) == NULL)
        return -1;
    if (snprintf(want, sizeof(want), "%s/%s", real_root, rel) >= (int)sizeof(want))
        return -1;
    if (realpath(want, real) == NULL)
        return -1;
    size_t rl = strlen(real_root);
    /* Inside means under root/, symlinks resolved: a link out is refused. */
    if (strncmp(real, real_root, rl) != 0 || (real[rl] != '/' && !(rl == 1 && real_root[0] == '/')))
        return -1;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1)
        return -1;
    if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

char *static_respond(const struct rc_config *cfg, const struct http_request *req, size_t *len,
                     int *status)
{
    const char *path, *q;
    size_t pl, ql;
    http_split_target(req, &path, &pl, &q, &ql);
    int head_only = req->method_len == 4;
    char rel[1024];
    if (urlpath_normalize(path, pl, rel, sizeof(rel)) < 0)
        return simple(404, "not found", head_only, len, status);
    struct stat st;
    int fd = open_inside(cfg->static_dir, rel, &st);
    if (fd < 0)
        return simple(404, "not found", head_only, len, status);
    if ((size_t)st.st_size > cfg->static_max_file) {
        close(fd);
        return simple(403, "file larger than static_max_file", head_only, len, status);
    }
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    int not_modified = etag_matches(req, etag);
    size_t body = (size_t)st.st_size;
    char hdr[512];
    int hl;
    if (not_modified)
        hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 304 Not Modified\r\nETag: %s\r\nCache-Control: no-cache\r\n"
                      "Connection: close\r\n\r\n",
                      etag);
    else
        hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\nETag: %s\r\n"
                      "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                      "Connection: close\r\n\r\n",
                      content_type(rel), body, etag);
    size_t want_body = (not_modified || head_only) ? 0 : body;
    char *buf = rc_xmalloc((size_t)hl + want_body + 1);
    memcpy(buf, hdr, (size_t)hl);
    size_t got = 0;
    while (got < want_body) {
        ssize_t n = read(fd, buf + hl + got, want_body - got);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got < want_body) { /* the file shrank under us */
        rc_free(buf);
        return simple(404, "not found", head_only, len, status);
    }
    *len = (size_t)hl + want_body;
    *status = not_modified ? 304 : 200;
    return buf;
}
