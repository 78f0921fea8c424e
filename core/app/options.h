/* options.h - every server option, written once.
 *
 * RC_OPTIONS is the one list of options. From it come: the field of struct
 * rc_config (config.h), the default (rc_config_defaults), the config-file
 * loader and its validation (confload.c, also what `roomcast -t` runs), the
 * command-line flag and its usage line (confload_args), the SIGHUP snapshot
 * (struct rc_live) and the docs check (tests/unit/test_options.c, which fails
 * when etc/roomcast.conf.lua or README.md misses an option or its default).
 *
 * Adding an option is one row:
 *
 *   XX(NAME, TYPE, FIELD, DEFAULT, MIN, MAX, SCOPE, SHORT, LONG, META, HELP)
 *
 *   NAME     the key in the config file, a string. "group.key" makes a nested
 *            option: `group = { key = ... }` in the file (e.g. "history.store"
 *            with FIELD history_store); its flag is --group-key.
 *   TYPE     INT (int), BOOL (int 0/1), SIZE (size_t: 65536, "64K", "8M"),
 *            SECS (double seconds: 10, "500ms", "2m"), NUM (double),
 *            COUNT (uint64_t), STR (char *, owned), OPTSTR (char *, owned;
 *            false or nil turns it off), JSON (char *: a Lua table as JSON),
 *            ENUM_x (int: an index into the name list RC_ENUM_x below), or
 *            CUSTOM (structured: FIELD names a `struct rc_custom_opt
 *            rc_custom_FIELD` in confload.c with its own loader, and the
 *            fields it fills are written by hand at the end of rc_config).
 *   FIELD    the struct rc_config field (for CUSTOM: the loader's name).
 *   DEFAULT  a number, a string literal or NULL (an ENUM: its index; a
 *            CUSTOM: its value as a command-line argument, or NULL).
 *   MIN MAX  the accepted range (INT SIZE NUM COUNT; SECS: MIN only).
 *   SCOPE    BOOT (file and flag; a change needs a restart), LIVE (file and
 *            flag; SIGHUP re-reads it: it is part of struct rc_live and code
 *            reads it through rc_live_get(), never from struct rc_config), or
 *            CLI (command line only).
 *   SHORT    the short flag as a character, or 0.
 *   LONG     the long flag: NULL derives it from NAME ('_' and '.' become
 *            '-'), "" means no flag (file only).
 *   META     the value's name in the usage text ("" for BOOL: a bare flag
 *            that turns it on).
 *   HELP     one line for `roomcast -h`; the default is appended to it.
 *
 * Then document it in etc/roomcast.conf.lua and in README.md's option table
 * (test_options fails until both show it with its default, and "(R)" exactly
 * on the LIVE ones).
 *
 * A LIVE option must be a number, BOOL, ENUM, STR or OPTSTR (the snapshot
 * copies it; see config.c). Code reads it as rc_live_get()->FIELD.
 *
 * A new ENUM type is its name list RC_ENUM_x below plus one line in each
 * RC_OPT_*_ENUM_x map at the end of this file and OFF_/CUSTOM_OF_ in
 * confload.c (and a C enum in config.h when it needs constants of its own).
 *
 * A nested group, e.g. history = { store = "sqlite", keep = 1000 }:
 *
 *   XX("history.store", ENUM_store, history_store, RC_STORE_MEM, 0, 0, BOOT, 0, NULL, "S", "")
 *   XX("history.keep", SIZE, history_keep, 1000, 0, 1000000, BOOT, 0, NULL, "N", "")
 *
 * gives the fields history_store and history_keep, the flags --history-store
 * and --history-keep, and errors that name 'history.keep' at the line of
 * `keep =` (test_options tries such a group).
 */
#ifndef RC_APP_OPTIONS_H
#define RC_APP_OPTIONS_H

/* Name lists of the ENUM types: XX(C constant, name). The C enum and the
 * names are both generated from them. */
/* Slow-consumer policies; lua/roomcast/init.lua's room:set_policy uses the
 * same names and numbers (test_options checks it). */
#define RC_ENUM_slow(XX) XX(SLOW_DROP, "drop") XX(SLOW_CLOSE, "close") XX(SLOW_LATEST, "latest")
/* log.h's enum rc_log_level (not generated here; config.c asserts the order) */
#define RC_ENUM_level(XX)                                                                          \
    XX(RC_LOG_DEBUG, "debug")                                                                      \
    XX(RC_LOG_INFO, "info") XX(RC_LOG_WARN, "warn") XX(RC_LOG_ERROR, "error")
#define RC_ENUM_accept(XX) XX(RC_ACCEPT_REUSEPORT, "reuseport") XX(RC_ACCEPT_HANDOFF, "handoff")
#define RC_ENUM_ratepolicy(XX) XX(RC_RATE_DROP, "drop") XX(RC_RATE_CLOSE, "close")
/* Where room history lives (ext/store.h) and how publishes reach the workers
 * (ext/bus.h); worker.c picks the implementation. */
#define RC_ENUM_store(XX) XX(RC_STORE_MEMORY, "memory") XX(RC_STORE_SQLITE, "sqlite")
/* What a failing history store does to publishes (store_sqlite.h). */
#define RC_ENUM_storeerr(XX)                                                                       \
    XX(RC_STORE_ERRORS_DELIVER, "deliver") XX(RC_STORE_ERRORS_REFUSE, "refuse")
#define RC_ENUM_bus(XX) XX(RC_BUS_LOCAL, "local")
/* The interval clock of the handler-time metrics (base/tick.h): auto takes
 * the invariant TSC when the CPU has one, monotonic forces clock_gettime. */
#define RC_ENUM_clock(XX) XX(RC_CLOCK_AUTO, "auto") XX(RC_CLOCK_MONOTONIC, "monotonic")

#define RC_GB ((size_t)1 << 30)

/* clang-format off */
#define RC_OPTIONS(XX) \
    /* command line only */ \
    XX("config", STR, config_file, NULL, 0, 0, CLI, 'c', NULL, "FILE", "config file (Lua; see etc/roomcast.conf.lua); flags override it") \
    XX("test", BOOL, test_only, 0, 0, 1, CLI, 't', NULL, "", "check the configuration and exit") \
    /* listeners */ \
    XX("bind", STR, bind_addr, "0.0.0.0", 0, 0, BOOT, 'b', NULL, "ADDR", "address of the ws:// listener (IPv6: \"::\")") \
    XX("port", INT, port, 8080, 0, 65535, BOOT, 'p', NULL, "PORT", "ws:// port; 0 = any free port") \
    XX("listen", CUSTOM, listen, NULL, 0, 0, BOOT, 0, NULL, "ADDR:PORT", "bind and port as one \"ADDR:PORT\"") \
    XX("workers", INT, workers, 0, 0, 64, BOOT, 'w', NULL, "N", "worker threads; 0 = one per online CPU") \
    XX("accept", ENUM_accept, accept_handoff, RC_ACCEPT_REUSEPORT, 0, 0, BOOT, 0, NULL, "MODE", "reuseport (a listener per worker) | handoff (one acceptor)") \
    XX("tls_port", INT, tls_port, 8443, 0, 65535, BOOT, 0, NULL, "PORT", "wss:// port, used when tls_cert is set; 0 = any free port") \
    XX("tls_cert", OPTSTR, tls_cert, NULL, 0, 0, BOOT, 0, NULL, "FILE", "PEM certificate (may hold the chain); turns wss:// on") \
    XX("tls_key", OPTSTR, tls_key, NULL, 0, 0, BOOT, 0, NULL, "FILE", "PEM private key") \
    XX("tls_chain", OPTSTR, tls_chain, NULL, 0, 0, BOOT, 0, NULL, "FILE", "optional PEM file of intermediate certificates") \
    /* application */ \
    XX("script", OPTSTR, script, NULL, 0, 0, BOOT, 's', NULL, "SCRIPT", "Lua handler script (e.g. scripts/chat.lua; relative: the working directory, then the data directory); none = echo") \
    XX("echo", BOOL, echo, 0, 0, 1, BOOT, 0, NULL, "", "built-in echo handler (no Lua)") \
    XX("lua_dir", OPTSTR, lua_dir, NULL, 0, 0, BOOT, 0, NULL, "DIR", "where lua/roomcast lives; none = searched (runtime.h; -V shows it)") \
    XX("lua_budget", COUNT, lua_budget, 10000000, 1000, 1e15, BOOT, 0, NULL, "N", "VM instructions per handler call") \
    XX("lua_wait_timeout", SECS, lua_wait_timeout, 5, 0.001, 3600, BOOT, 0, NULL, "SECS", "longest wait of a handler on the history store or a publish's answer (then: nil, \"timeout\")") \
    XX("tick_interval", SECS, tick_interval, 1, 0, 0, BOOT, 0, NULL, "SECS", "seconds between on_tick calls; 0 = off") \
    XX("recover_hold", INT, recover_hold, 4096, 1, 1000000, BOOT, 0, NULL, "N", "live messages held per room and worker for joins that wait for their replay (more: recovered=false)") \
    XX("recover_hold_timeout", SECS, recover_hold_timeout, 30, 0, 0, BOOT, 0, NULL, "SECS", "a held join not released this long after it began is ended: its connection closes 1011; 0 = never") \
    XX("history_size", SIZE, history_size, 100, 0, 1000000, BOOT, 0, NULL, "N", "messages kept per room") \
    XX("history", CUSTOM, history, NULL, 0, 0, CLI, 0, "history", "KIND", "sqlite:PATH (history in an SQLite file) | memory") \
    XX("history.store", ENUM_store, history_store, RC_STORE_MEMORY, 0, 0, BOOT, 0, NULL, "KIND", "where room history lives: memory (a ring of history_size, lost on exit) | sqlite (one file, WAL, a writer thread)") \
    XX("history.path", STR, history_path, "var/roomcast.db", 0, 0, BOOT, 0, NULL, "FILE", "the SQLite file; its directory is created when missing") \
    XX("history.keep", INT, history_keep, 1000, 1, 1000000, BOOT, 0, NULL, "N", "messages kept per room in SQLite") \
    XX("history.max_age", SECS, history_max_age, 7 * 86400, 0, 0, BOOT, 0, NULL, "SECS", "older messages are deleted in the background; 0 = never") \
    XX("history.flush_ms", INT, history_flush_ms, 10, 1, 10000, BOOT, 0, NULL, "MS", "SQLite commit period (a crash loses at most this much)") \
    XX("store_errors", ENUM_storeerr, store_errors, RC_STORE_ERRORS_DELIVER, 0, 0, BOOT, 0, NULL, "P", "a failing history store: deliver (live anyway, degraded) | refuse (publishes: unavailable)") \
    XX("bus", ENUM_bus, bus, RC_BUS_LOCAL, 0, 0, BOOT, 0, NULL, "KIND", "how publishes reach the workers: local (mailboxes); cluster.redis selects the Redis bus") \
    /* cluster (README "Running a cluster"): setting cluster.redis selects the Redis bus and store */ \
    XX("cluster.redis", OPTSTR, cluster_redis, NULL, 0, 0, BOOT, 0, "redis", "URL", "the cluster's Redis (redis://[user:pass@]host[:port][/db]); none = this node alone") \
    XX("cluster.password_env", STR, cluster_password_env, "ROOMCAST_REDIS_PASSWORD", 0, 0, BOOT, 0, NULL, "VAR", "environment variable holding the Redis password") \
    XX("cluster.node_id", OPTSTR, cluster_node_id, NULL, 0, 0, BOOT, 0, NULL, "ID", "this node's name in the cluster; none = HOST:PORT-random") \
    XX("cluster.node_ttl", SECS, cluster_node_ttl, 10, 1, 0, BOOT, 0, NULL, "SECS", "a node silent this long leaves the cluster's presence") \
    XX("script_config", JSON, script_config_json, NULL, 0, 0, BOOT, 0, "", "", "table handed to the script as JSON (roomcast.config)") \
    XX("plugins", CUSTOM, plugins, NULL, 0, 0, BOOT, 0, "plugin", "NAME=PATH[=JSON]", "enable a Lua plugin (config as JSON); repeatable") \
    XX("routes", CUSTOM, routes, NULL, 0, 0, BOOT, 0, "", "", "rooms matching a pattern go to another script") \
    /* protocol limits and timeouts */ \
    XX("max_message", SIZE, max_message, 1024 * 1024, 1, 2 * RC_GB, BOOT, 0, NULL, "BYTES", "largest message accepted (close 1009 above)") \
    XX("max_head", SIZE, max_head, 8192, 256, 1024 * 1024, BOOT, 0, NULL, "BYTES", "largest HTTP upgrade request head (431 above)") \
    XX("max_headers", SIZE, max_headers, 64, 1, 128, BOOT, 0, NULL, "N", "header fields in the upgrade request (431 above)") \
    XX("handshake_timeout", SECS, handshake_timeout, 10, 0.001, 0, BOOT, 0, NULL, "SECS", "time to complete the HTTP upgrade") \
    XX("ping_interval", SECS, ping_interval, 30, 0.001, 0, BOOT, 0, NULL, "SECS", "idle time before the server pings") \
    XX("pong_timeout", SECS, pong_timeout, 10, 0.001, 0, BOOT, 0, NULL, "SECS", "time to answer a ping before close 1001") \
    XX("close_timeout", SECS, close_timeout, 5, 0.001, 0, BOOT, 0, NULL, "SECS", "time to finish the closing handshake") \
    XX("drain_time", SECS, drain_time, 2, 0, 0, BOOT, 0, NULL, "SECS", "SIGTERM: close 1001 spread over this many seconds") \
    /* permessage-deflate (RFC 7692; core/app/deflate.h) */ \
    XX("compression.enabled", BOOL, compression, 1, 0, 1, BOOT, 0, "", "", "negotiate permessage-deflate when a client offers it") \
    XX("compression.threshold", SIZE, compression_threshold, 64, 0, 2 * RC_GB, BOOT, 0, NULL, "BYTES", "messages shorter than this go uncompressed") \
    XX("compression.max", SIZE, compression_max, 256 * 1024, 0, 2 * RC_GB, BOOT, 0, NULL, "BYTES", "messages longer than this go uncompressed (0: no limit)") \
    XX("compression.level", INT, compression_level, 1, 0, 9, BOOT, 0, NULL, "N", "zlib compression level 0..9") \
    XX("compression.window_bits", INT, compression_window_bits, 15, 8, 15, BOOT, 0, NULL, "N", "the server's window 8..15 (8 runs as 9: zlib)") \
    XX("compression.mem_level", INT, compression_mem_level, 8, 1, 9, BOOT, 0, NULL, "N", "zlib memLevel 1..9 (deflate memory per worker)") \
    XX("no_compression", BOOL, no_compression, 0, 0, 1, CLI, 0, "no-compression", "", "decline permessage-deflate whatever the file says") \
    /* slow consumers */ \
    XX("sndbuf", SIZE, sndbuf, 0, 0, RC_GB, BOOT, 0, NULL, "BYTES", "SO_SNDBUF of client sockets; 0 = the kernel's") \
    XX("sendq_limit", SIZE, sendq_hard_limit, 8 * 1024 * 1024, 1024, (size_t)1 << 40, BOOT, 0, NULL, "BYTES", "per-connection send queue hard limit") \
    XX("sendq_soft_limit", SIZE, sendq_soft_limit, 1024 * 1024, 0, (size_t)1 << 40, BOOT, 0, NULL, "BYTES", "send queue soft limit ...") \
    XX("sendq_soft_seconds", SECS, sendq_soft_seconds, 10, 0, 0, BOOT, 0, NULL, "SECS", "... exceeded for this long counts as over") \
    XX("fanout_delay", SECS, fanout_delay, 0, 0, 0, LIVE, 0, NULL, "SECS", "hold a member's room messages up to this long to write them together (0: off)") \
    XX("slow_consumer", ENUM_slow, slow_policy, SLOW_DROP, 0, 0, BOOT, 0, "slow-policy", "P", "over the limit: drop | close (1008) | latest") \
    /* protection */ \
    XX("max_connections", INT, max_conns, 0, 0, 1e9, LIVE, 0, NULL, "N", "open WebSocket connections; 0 = no limit; 503 above") \
    XX("max_connections_per_ip", INT, max_conns_per_ip, 0, 0, 1e9, LIVE, 0, NULL, "N", "TCP connections per address; 0 = no limit") \
    XX("accept_rate", NUM, accept_rate, 0, 0, 1e9, LIVE, 0, NULL, "N", "new connections per second, all workers; 0 = off") \
    XX("accept_burst", NUM, accept_burst, 0, 0, 1e9, LIVE, 0, NULL, "N", "accept bucket size; 0 = accept_rate") \
    XX("message_rate", NUM, msg_rate, 0, 0, 1e9, LIVE, 0, NULL, "N", "inbound messages per second per connection; 0 = off") \
    XX("message_burst", NUM, msg_burst, 0, 0, 1e9, LIVE, 0, NULL, "N", "message bucket size; 0 = message_rate") \
    XX("message_rate_policy", ENUM_ratepolicy, msg_rate_policy, RC_RATE_CLOSE, 0, 0, LIVE, 0, NULL, "P", "over the message rate: close (1008) | drop") \
    XX("allowed_origins", CUSTOM, origins, NULL, 0, 0, BOOT, 0, "", "", "Origin allow-list (403 otherwise); {} = any") \
    /* admin HTTP */ \
    XX("admin", CUSTOM, admin, "127.0.0.1:8081", 0, 0, BOOT, 0, NULL, "ADDR:PORT", "admin HTTP listener; off (false in the file) disables") \
    XX("admin_token", OPTSTR, admin_token, NULL, 0, 0, LIVE, 0, NULL, "TOKEN", "bearer token for /stats and /metrics (a flag shows in ps: prefer the file)") \
    XX("admin_max_clients", INT, admin_max_clients, 256, 4, 100000, BOOT, 0, NULL, "N", "admin HTTP clients at once; when full, the one sending its request the longest is closed") \
    /* HTTP API for backends (api.c) */ \
    XX("api_token", OPTSTR, api_token, NULL, 0, 0, BOOT, 0, NULL, "TOKEN", "bearer token of the HTTP API under /api/ (or RC_API_TOKEN); none = API off") \
    XX("api_sender", STR, api_sender, "server", 0, 0, BOOT, 0, NULL, "NAME", "sender of the messages published through the API") \
    XX("api_max_body", SIZE, api_max_body, 64 * 1024, 64, 64 * 1024 * 1024, BOOT, 0, NULL, "BYTES", "largest /api/ request body (413 above)") \
    /* static files on the ws:// port (static.c) */ \
    XX("static_dir", OPTSTR, static_dir, NULL, 0, 0, BOOT, 0, "static", "DIR", "serve files from DIR on the ws:// port (GET /: the demo page)") \
    XX("static_max_file", SIZE, static_max_file, 4 * 1024 * 1024, 0, RC_GB, BOOT, 0, NULL, "BYTES", "larger static files are refused (403)") \
    /* process */ \
    XX("daemon", BOOL, daemonize, 0, 0, 1, BOOT, 'd', NULL, "", "run as a daemon (needs pidfile)") \
    XX("pidfile", OPTSTR, pidfile, NULL, 0, 0, BOOT, 0, NULL, "FILE", "write and lock a pidfile") \
    XX("log_file", OPTSTR, log_file, NULL, 0, 0, BOOT, 0, NULL, "FILE", "log to FILE instead of stderr; SIGUSR1 reopens it") \
    XX("log_level", ENUM_level, log_level, RC_LOG_INFO, 0, 0, LIVE, 0, NULL, "LEVEL", "debug | info | warn | error") \
    XX("clock", ENUM_clock, clock_source, RC_CLOCK_AUTO, 0, 0, BOOT, 0, NULL, "SRC", "clock of the handler timings: auto (the invariant TSC if the CPU has one, else CLOCK_MONOTONIC) | monotonic (always clock_gettime)") \
    RC_OPTIONS_EXTRA(XX)
/* clang-format on */

/* Rows a unit test adds to try what no real option uses yet (nested ones). */
#ifndef RC_OPTIONS_EXTRA
#define RC_OPTIONS_EXTRA(XX)
#endif

/* ---- what the columns expand to ---------------------------------------- */

/* The C type of a field, per TYPE (CUSTOM: no generated field). */
#define RC_OPT_CTYPE_INT int
#define RC_OPT_CTYPE_BOOL int
#define RC_OPT_CTYPE_SIZE size_t
#define RC_OPT_CTYPE_SECS double
#define RC_OPT_CTYPE_NUM double
#define RC_OPT_CTYPE_COUNT uint64_t
#define RC_OPT_CTYPE_STR char *
#define RC_OPT_CTYPE_OPTSTR char *
#define RC_OPT_CTYPE_JSON char *
#define RC_OPT_CTYPE_ENUM_slow int
#define RC_OPT_CTYPE_ENUM_level int
#define RC_OPT_CTYPE_ENUM_accept int
#define RC_OPT_CTYPE_ENUM_ratepolicy int
#define RC_OPT_CTYPE_ENUM_store int
#define RC_OPT_CTYPE_ENUM_bus int
#define RC_OPT_CTYPE_ENUM_storeerr int
#define RC_OPT_CTYPE_ENUM_clock int

#define RC_OPT_FIELD_DECL_(type, field) RC_OPT_CTYPE_##type field;
#define RC_OPT_FIELD_DECL_CUSTOM(field)
#define RC_OPT_FIELD_DECL_INT(field) RC_OPT_FIELD_DECL_(INT, field)
#define RC_OPT_FIELD_DECL_BOOL(field) RC_OPT_FIELD_DECL_(BOOL, field)
#define RC_OPT_FIELD_DECL_SIZE(field) RC_OPT_FIELD_DECL_(SIZE, field)
#define RC_OPT_FIELD_DECL_SECS(field) RC_OPT_FIELD_DECL_(SECS, field)
#define RC_OPT_FIELD_DECL_NUM(field) RC_OPT_FIELD_DECL_(NUM, field)
#define RC_OPT_FIELD_DECL_COUNT(field) RC_OPT_FIELD_DECL_(COUNT, field)
#define RC_OPT_FIELD_DECL_STR(field) RC_OPT_FIELD_DECL_(STR, field)
#define RC_OPT_FIELD_DECL_OPTSTR(field) RC_OPT_FIELD_DECL_(OPTSTR, field)
#define RC_OPT_FIELD_DECL_JSON(field) RC_OPT_FIELD_DECL_(JSON, field)
#define RC_OPT_FIELD_DECL_ENUM_slow(field) RC_OPT_FIELD_DECL_(ENUM_slow, field)
#define RC_OPT_FIELD_DECL_ENUM_level(field) RC_OPT_FIELD_DECL_(ENUM_level, field)
#define RC_OPT_FIELD_DECL_ENUM_accept(field) RC_OPT_FIELD_DECL_(ENUM_accept, field)
#define RC_OPT_FIELD_DECL_ENUM_ratepolicy(field) RC_OPT_FIELD_DECL_(ENUM_ratepolicy, field)
#define RC_OPT_FIELD_DECL_ENUM_store(field) RC_OPT_FIELD_DECL_(ENUM_store, field)
#define RC_OPT_FIELD_DECL_ENUM_bus(field) RC_OPT_FIELD_DECL_(ENUM_bus, field)
#define RC_OPT_FIELD_DECL_ENUM_storeerr(field) RC_OPT_FIELD_DECL_(ENUM_storeerr, field)
#define RC_OPT_FIELD_DECL_ENUM_clock(field) RC_OPT_FIELD_DECL_(ENUM_clock, field)

/* The kind of a TYPE in the descriptor (struct rc_option). */
#define RC_OPT_KIND_INT RC_OK_INT
#define RC_OPT_KIND_BOOL RC_OK_BOOL
#define RC_OPT_KIND_SIZE RC_OK_SIZE
#define RC_OPT_KIND_SECS RC_OK_SECS
#define RC_OPT_KIND_NUM RC_OK_NUM
#define RC_OPT_KIND_COUNT RC_OK_COUNT
#define RC_OPT_KIND_STR RC_OK_STR
#define RC_OPT_KIND_OPTSTR RC_OK_OPTSTR
#define RC_OPT_KIND_JSON RC_OK_JSON
#define RC_OPT_KIND_CUSTOM RC_OK_CUSTOM
#define RC_OPT_KIND_ENUM_slow RC_OK_ENUM
#define RC_OPT_KIND_ENUM_level RC_OK_ENUM
#define RC_OPT_KIND_ENUM_accept RC_OK_ENUM
#define RC_OPT_KIND_ENUM_ratepolicy RC_OK_ENUM
#define RC_OPT_KIND_ENUM_store RC_OK_ENUM
#define RC_OPT_KIND_ENUM_bus RC_OK_ENUM
#define RC_OPT_KIND_ENUM_storeerr RC_OK_ENUM
#define RC_OPT_KIND_ENUM_clock RC_OK_ENUM

/* The name list of an ENUM type (NULL for the others). */
#define RC_OPT_NAMES_INT NULL
#define RC_OPT_NAMES_BOOL NULL
#define RC_OPT_NAMES_SIZE NULL
#define RC_OPT_NAMES_SECS NULL
#define RC_OPT_NAMES_NUM NULL
#define RC_OPT_NAMES_COUNT NULL
#define RC_OPT_NAMES_STR NULL
#define RC_OPT_NAMES_OPTSTR NULL
#define RC_OPT_NAMES_JSON NULL
#define RC_OPT_NAMES_CUSTOM NULL
#define RC_OPT_NAMES_ENUM_slow rc_names_slow
#define RC_OPT_NAMES_ENUM_level rc_names_level
#define RC_OPT_NAMES_ENUM_accept rc_names_accept
#define RC_OPT_NAMES_ENUM_ratepolicy rc_names_ratepolicy
#define RC_OPT_NAMES_ENUM_store rc_names_store
#define RC_OPT_NAMES_ENUM_bus rc_names_bus
#define RC_OPT_NAMES_ENUM_storeerr rc_names_storeerr
#define RC_OPT_NAMES_ENUM_clock rc_names_clock

/* SCOPE: LIVE options also get a field in struct rc_live. */
#define RC_OPT_LIVE_BOOT(type, field)
#define RC_OPT_LIVE_CLI(type, field)
#define RC_OPT_LIVE_LIVE(type, field) RC_OPT_FIELD_DECL_##type(field)
#define RC_OPT_SCOPE_BOOT RC_OS_BOOT
#define RC_OPT_SCOPE_LIVE RC_OS_LIVE
#define RC_OPT_SCOPE_CLI RC_OS_CLI

#endif
