#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

void rc_config_set_str(char **slot, const char *s)
{
    rc_free(*slot);
    *slot = s ? rc_xstrdup(s) : NULL;
}

void rc_config_defaults(struct rc_config *c)
{
    memset(c, 0, sizeof(*c));
    rc_config_set_str(&c->bind_addr, "0.0.0.0");
    c->port = 8080;
    c->workers = 0;
    /* lua_dir stays NULL: runtime_resolve looks for it (runtime.h). */
    c->max_message = 1024 * 1024;
    c->max_head = 8192;
    c->max_headers = 64;
    c->handshake_timeout = 10;
    c->ping_interval = 30;
    c->pong_timeout = 10;
    c->close_timeout = 5;
    c->sendq_hard_limit = 8u * 1024 * 1024;
    c->sendq_soft_limit = 1024 * 1024;
    c->sendq_soft_seconds = 10;
    c->slow_policy = SLOW_DROP;
    c->history_size = 100;
    c->lua_budget = 10 * 1000 * 1000;
    c->tick_interval = 1;
    c->log_level = RC_LOG_INFO;
    c->drain_time = 2;
    rc_config_set_str(&c->admin_addr, "127.0.0.1");
    c->admin_port = 8081;
    c->tls_port = 8443;
    c->msg_rate_close = 1;
}

void rc_config_free(struct rc_config *c)
{
    rc_free(c->bind_addr);
    rc_free(c->script);
    rc_free(c->lua_dir);
    rc_free(c->config_file);
    rc_free(c->pidfile);
    rc_free(c->log_file);
    rc_free(c->script_config_json);
    for (int i = 0; i < c->nplugins; i++) {
        rc_free(c->plugins[i].name);
        rc_free(c->plugins[i].path);
        rc_free(c->plugins[i].config_json);
    }
    for (int i = 0; i < c->nroutes; i++) {
        rc_free(c->routes[i].pattern);
        rc_free(c->routes[i].script);
    }
    rc_free(c->admin_addr);
    rc_free(c->admin_token);
    rc_free(c->tls_cert);
    rc_free(c->tls_key);
    rc_free(c->tls_chain);
    for (int i = 0; i < c->norigins; i++)
        rc_free(c->origins[i]);
    rc_free(c->origins);
    memset(c, 0, sizeof(*c));
}

int rc_parse_size(const char *s, size_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return RC_E_INVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return RC_E_INVAL;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024ULL, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024ULL * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ULL * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return RC_E_INVAL;
    if (v > (unsigned long long)SIZE_MAX / mul)
        return RC_E_INVAL;
    *out = (size_t)(v * mul);
    return 0;
}

int rc_parse_seconds(const char *s, double *out)
{
    if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.'))
        return RC_E_INVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return RC_E_INVAL;
    if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (*end != '\0' && strcmp(end, "s") != 0)
        return RC_E_INVAL;
    *out = v;
    return 0;
}
