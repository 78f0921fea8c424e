/* config.h - the server's settings: defaults, CLI overrides, size parsing.
 *
 * One struct rc_config is filled by main (defaults, then the config file,
 * then CLI flags) before any worker starts and is read-only afterwards
 * (workers hold a borrowed const pointer).
 */
#ifndef RC_APP_CONFIG_H
#define RC_APP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define RC_MAX_PLUGINS 16
#define RC_MAX_ROUTES 16

struct rc_plugin_cfg {
    char *name;
    char *path;
    char *config_json; /* the plugin's config table as JSON, or NULL */
};

struct rc_route_cfg {
    char *pattern; /* room-name pattern, e.g. "game:*" */
    char *script;
};

struct rc_config {
    char *bind_addr; /* owned */
    int port;
    int workers;       /* 0 = online CPUs */
    char *script;      /* owned; NULL with echo */
    int echo;          /* built-in C echo handler */
    char *lua_dir;     /* owned: where lua/roomcast lives; NULL until runtime_resolve */
    char *config_file; /* owned; NULL when none */
    size_t max_message;
    size_t max_head;
    size_t max_headers;
    double handshake_timeout;
    double ping_interval;
    double pong_timeout;
    double close_timeout;
    size_t sndbuf;           /* SO_SNDBUF for client sockets; 0 = kernel default */
    size_t sendq_hard_limit; /* bytes; over it the slow-consumer policy applies */
    size_t sendq_soft_limit; /* bytes; must stay exceeded for sendq_soft_seconds */
    double sendq_soft_seconds;
    int slow_policy;      /* enum slow_policy */
    size_t history_size;  /* messages kept per room */
    uint64_t lua_budget;  /* instructions per handler call */
    double tick_interval; /* seconds between on_tick calls; 0 = off */
    int daemonize;
    char *pidfile;  /* owned */
    char *log_file; /* owned */
    int log_level;
    int test_only;            /* -t */
    char *script_config_json; /* owned: the `script_config` table as JSON */
    struct rc_plugin_cfg plugins[RC_MAX_PLUGINS];
    int nplugins;
    struct rc_route_cfg routes[RC_MAX_ROUTES];
    int nroutes;
    /* operations (confload.c, admin.c, tls.c, guard.c, drain.c) */
    double drain_time;    /* SIGTERM: closes 1001 spread over this many seconds */
    char *admin_addr;     /* owned; NULL = admin listener off */
    int admin_port;       /* 0 = any free port */
    int admin_explicit;   /* set by the file or --admin: a bind failure is fatal */
    char *admin_token;    /* owned; NULL = no bearer token required */
    int tls_port;         /* wss:// port, used when tls_cert is set; 0 = any free port */
    char *tls_cert;       /* owned: PEM certificate; NULL = no wss:// listener */
    char *tls_key;        /* owned: PEM private key */
    char *tls_chain;      /* owned: optional PEM intermediate chain */
    int max_conns;        /* open WebSocket connections, all workers; 0 = no limit */
    int max_conns_per_ip; /* TCP connections per peer address; 0 = no limit */
    int accept_handoff;   /* 1: worker 0 accepts and hands fds round-robin; 0: SO_REUSEPORT */
    double accept_rate;   /* accepted connections per second; 0 = no limit */
    double accept_burst;  /* token bucket size; 0 = accept_rate */
    double msg_rate;      /* inbound messages per second per connection; 0 = no limit */
    double msg_burst;     /* token bucket size; 0 = msg_rate */
    int msg_rate_close;   /* 1: close 1008 when over msg_rate; 0: drop the message */
    char **origins;       /* owned array of owned strings: allowed Origin values */
    int norigins;         /* 0 = any Origin (and none) accepted */
};

enum slow_policy { SLOW_DROP = 0, SLOW_CLOSE = 1, SLOW_LATEST = 2 };

/* Fills c with the defaults (documented in etc/roomcast.conf.lua). */
void rc_config_defaults(struct rc_config *c);
/* Frees owned strings. */
void rc_config_free(struct rc_config *c);
/* Replaces *slot (owned string) with a copy of s (NULL allowed). */
void rc_config_set_str(char **slot, const char *s);

/* Parses "1048576", "64K", "64M", "1G" (powers of 1024). Returns 0 or RC_E_INVAL. */
int rc_parse_size(const char *s, size_t *out);
/* Parses "30", "1.5", "500ms", "2s", "1m". Returns 0 or RC_E_INVAL. */
int rc_parse_seconds(const char *s, double *out);

#endif
