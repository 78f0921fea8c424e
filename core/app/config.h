/* config.h - the server's settings: defaults, CLI overrides, size parsing.
 *
 * One struct rc_config is filled by main (defaults, then the config file,
 * then CLI flags) before any worker starts and is read-only afterwards
 * (workers hold a borrowed const pointer). SIGHUP never writes into it: the
 * options it re-reads are published as a new struct rc_live snapshot.
 */
#ifndef RC_APP_CONFIG_H
#define RC_APP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

#define RC_MAX_PLUGINS 16
#define RC_MAX_WORKERS 64
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

/* ENUM constants (the C names of options.h's name lists). */
#define RC_OPT_ENUM_CONST(c, name) c,
enum slow_policy { RC_ENUM_slow(RC_OPT_ENUM_CONST) };
enum rc_accept_mode { RC_ENUM_accept(RC_OPT_ENUM_CONST) };
enum rc_rate_policy { RC_ENUM_ratepolicy(RC_OPT_ENUM_CONST) };
enum rc_store_kind { RC_ENUM_store(RC_OPT_ENUM_CONST) };
enum rc_bus_kind { RC_ENUM_bus(RC_OPT_ENUM_CONST) };
enum rc_store_errors { RC_ENUM_storeerr(RC_OPT_ENUM_CONST) };
enum rc_clock_source { RC_ENUM_clock(RC_OPT_ENUM_CONST) };
#undef RC_OPT_ENUM_CONST
extern const char *const rc_names_slow[];
extern const char *const rc_names_level[];
extern const char *const rc_names_accept[];
extern const char *const rc_names_ratepolicy[];
extern const char *const rc_names_store[];
extern const char *const rc_names_bus[];
extern const char *const rc_names_storeerr[];
extern const char *const rc_names_clock[];

struct rc_custom_opt;

/* One row of RC_OPTIONS as data, for the loaders, the usage text and tests. */
enum rc_opt_kind {
    RC_OK_INT,
    RC_OK_BOOL,
    RC_OK_SIZE,
    RC_OK_SECS,
    RC_OK_NUM,
    RC_OK_COUNT,
    RC_OK_STR,
    RC_OK_OPTSTR,
    RC_OK_JSON,
    RC_OK_ENUM,
    RC_OK_CUSTOM,
};
enum rc_opt_scope { RC_OS_BOOT, RC_OS_LIVE, RC_OS_CLI };
struct rc_option {
    const char *name; /* file key; "group.key" when nested */
    enum rc_opt_kind kind;
    size_t offset;       /* of the field in struct rc_config (not CUSTOM) */
    double def_num;      /* default of a number, BOOL or ENUM */
    const char *def_str; /* default of a string; CUSTOM: as an argument */
    double min, max;
    const char *const *names; /* ENUM: NULL-terminated */
    enum rc_opt_scope scope;
    int short_flag;        /* 0 = none */
    const char *long_flag; /* NULL = none */
    const char *meta, *help;
    const struct rc_custom_opt *custom; /* CUSTOM: its loaders (confload.c) */
};
#define RC_OPT_ID(name, type, field, ...) RC_OPT_ID_##field,
enum rc_opt_id { RC_OPTIONS(RC_OPT_ID) RC_NOPTIONS };
#undef RC_OPT_ID
extern const struct rc_option rc_options[RC_NOPTIONS];

/* Every option of RC_OPTIONS (options.h) is a field here, then the fields the
 * CUSTOM options fill. The LIVE options' fields hold the values of the start;
 * code that runs after the workers start reads those through rc_live_get(). */
struct rc_config {
#define RC_CONFIG_FIELD(name, type, field, ...) RC_OPT_FIELD_DECL_##type(field)
    RC_OPTIONS(RC_CONFIG_FIELD)
#undef RC_CONFIG_FIELD
    /* plugins = {...}, --plugin */
    struct rc_plugin_cfg plugins[RC_MAX_PLUGINS];
    int nplugins;
    /* routes = {...} */
    struct rc_route_cfg routes[RC_MAX_ROUTES];
    int nroutes;
    /* allowed_origins = {...}: owned array of owned strings; 0 = any Origin */
    char **origins;
    int norigins;
    /* admin = "ADDR:PORT" | false, --admin ADDR:PORT|off */
    char *admin_addr; /* owned; NULL = admin listener off */
    int admin_port;   /* 0 = any free port */
    /* The options the file or the command line set (by enum rc_opt_id), so
     * a failure to use an explicit setting can be fatal (admin). */
    unsigned char set[RC_NOPTIONS];
};

/* The reloadable (LIVE) options: an immutable snapshot that main publishes
 * before the workers start and again on each valid SIGHUP. Any thread reads
 * the current one with rc_live_get() (an acquire load; no lock).
 *
 * Lifetime: a replaced snapshot is kept, not freed, until rc_live_shutdown()
 * after the workers were joined. A reader may hold the pointer across a
 * whole callback and never needs to announce anything, so the hot paths
 * (guard_message runs per message) pay one load. The price is one small
 * struct per SIGHUP that changed a value (an unchanged one is not
 * republished), which operators send by hand; a grace period through the
 * workers' loops would free them earlier at the cost of per-iteration
 * bookkeeping in every worker. */
struct rc_live {
#define RC_LIVE_FIELD(name, type, field, def, min, max, scope, ...) RC_OPT_LIVE_##scope(type, field)
    RC_OPTIONS(RC_LIVE_FIELD)
#undef RC_LIVE_FIELD
    const struct rc_live *older; /* the snapshot this one replaced (kept) */
};

/* Publishes a snapshot of c's LIVE options (copied) as the current one, and
 * applies the log level. Main thread. Returns 1 if something changed. */
int rc_live_publish(const struct rc_config *c);
/* The current snapshot (never NULL after the first rc_live_publish). Any
 * thread; valid until rc_live_shutdown. */
const struct rc_live *rc_live_get(void);
/* Frees every snapshot. Main thread, after the workers stopped. */
void rc_live_shutdown(void);

/* Replaces *slot (owned string) with a copy of s (NULL allowed). */
void rc_config_set_str(char **slot, const char *s);

/* Parses "1048576", "64K", "64M", "1G" (powers of 1024). Returns 0 or RC_E_INVAL. */
int rc_parse_size(const char *s, size_t *out);
/* Parses "30", "1.5", "500ms", "2s", "1m", "1h", "7d". Returns 0 or RC_E_INVAL. */
int rc_parse_seconds(const char *s, double *out);
/* The longest duration an option takes (a year, in seconds). */
#define RC_SECS_MAX (86400.0 * 365)
/* Parses "ADDR:PORT", "[V6]:PORT" or ":PORT" (ADDR then 0.0.0.0). Returns 0
 * with *addr a new rc_xmalloc'd string (caller frees), or RC_E_INVAL. */
int rc_parse_hostport(const char *s, char **addr, int *port);

#endif
