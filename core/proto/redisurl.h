/* redisurl.h - parses the cluster's Redis address.
 *
 *   redis://[[user][:password]@]host[:port][/db]
 *
 *   host   a name, an IPv4 address, or an IPv6 address in brackets ([::1])
 *   port   1..65535 (default 6379)
 *   db     0..9999 (default 0); a trailing "/" alone means 0
 *
 * Percent-escapes (%XX) are decoded in user and password. Anything else
 * (rediss://, unix sockets, a query string, a fragment, an empty host) is
 * refused with a reason, which `roomcast -t` prints. The password is usually
 * not in the URL but in the environment variable named by password_env.
 * Pure: no allocation, no I/O, thread-safe.
 */
#ifndef RC_PROTO_REDISURL_H
#define RC_PROTO_REDISURL_H

#include <stddef.h>

#define REDISURL_HOST_MAX 255
#define REDISURL_CRED_MAX 255

struct redis_url {
    char host[REDISURL_HOST_MAX + 1]; /* without brackets */
    int port;
    int db;
    char user[REDISURL_CRED_MAX + 1];     /* "" when absent */
    char password[REDISURL_CRED_MAX + 1]; /* "" when absent */
    int has_password;
};

/* Parses s (NUL-terminated). Returns 0 and fills *out, or RC_E_INVAL and
 * writes a short reason into why (NUL-terminated, truncated to cap). */
int redis_url_parse(const char *s, struct redis_url *out, char *why, size_t cap);

#endif
