/* confload.h - the config file: a Lua chunk run in a throwaway LuaJIT state.
 *
 * The file either returns a table of options or assigns them as globals (a
 * returned table wins; see etc/roomcast.conf.lua for every key). Each value
 * is validated by its row of RC_OPTIONS (options.h) and copied into struct
 * rc_config; unknown keys are errors
 * (they are almost always typos). Errors read "roomcast: FILE:LINE: message":
 * Lua supplies the line of a syntax or runtime error; for a bad value the
 * line is where the key is first assigned in the file's text (0 if not found,
 * then the line part is left out) and the message names the key.
 *
 * Main thread only; the Lua state lives only inside each call.
 */
#ifndef RC_APP_CONFLOAD_H
#define RC_APP_CONFLOAD_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* Loads `path` over the values already in c (call rc_config_defaults first;
 * CLI flags are applied after). Replaces c->plugins, routes,
 * script_config_json and origins when the file sets them. On failure writes a
 * NUL-terminated "roomcast: FILE:LINE: message" into err[0..cap) and returns
 * RC_E_CONFIG; c may then be partly updated (free it with rc_config_free).
 * Returns 0 on success. */
int confload_file(const char *path, struct rc_config *c, char *err, size_t cap);

/* What confload_all and confload_args return for -h/--help and -V/--version
 * (main prints the text and exits 0). */
#define CONFLOAD_HELP 1
#define CONFLOAD_VERSION 2

/* The caller's path resolution (main: runtime.h), called twice by
 * confload_all: right after the file is loaded (config_path set; the flags
 * are not applied yet; flag_lua_dir is --lua-dir's value or NULL), and after
 * the flags (config_path NULL). Returns 0, or < 0 with err filled. */
typedef int confload_resolve_fn(struct rc_config *c, const char *config_path,
                                const char *flag_lua_dir, char *err, size_t cap);

/* The whole configuration as main builds it: defaults, the flags (to find
 * -c), then the file over fresh defaults, resolve(file), the flags again
 * (flags win), rc_config_finish and resolve(flags). resolve may be NULL.
 * Returns 0; CONFLOAD_HELP or CONFLOAD_VERSION; RC_E_INVAL for a bad flag
 * or value (err: "roomcast: MESSAGE (see roomcast -h)", exit status 2);
 * RC_E_CONFIG for a bad file or path (err as confload_file, exit 1). c is
 * filled in every case (free it with rc_config_free). */
int confload_all(struct rc_config *c, int argc, char **argv, confload_resolve_fn *resolve,
                 char *err, size_t cap);

/* Applies the flags in argv (getopt_long, from RC_OPTIONS) over c. Returns
 * 0, CONFLOAD_HELP, CONFLOAD_VERSION, or RC_E_INVAL with a one-line message
 * in err. */
int confload_args(struct rc_config *c, int argc, char **argv, char *err, size_t cap);

/* Prints the usage text (every flag of RC_OPTIONS with its default). */
void confload_usage(FILE *out);

/* SIGHUP: builds the configuration again (confload_all with the same argv
 * and resolve, so paths compare equal)
 * and, when it is valid, publishes its LIVE options (options.h) as the new
 * rc_live snapshot. boot (the running config) is only read: BOOT options
 * whose value changed are logged as needing a restart. Returns 0, or
 * RC_E_CONFIG with err filled and the running snapshot kept. Main thread. */
int confload_reload(const struct rc_config *boot, int argc, char **argv,
                    confload_resolve_fn *resolve, char *err, size_t cap);

/* Fills c with the defaults (RC_OPTIONS; documented in etc/roomcast.conf.lua). */
void rc_config_defaults(struct rc_config *c);
/* After the file and the flags: fills what depends on other options (echo
 * when there is no script, the send queue limits vs max_message). */
void rc_config_finish(struct rc_config *c);
/* Frees owned strings and lists. */
void rc_config_free(struct rc_config *c);
/* The default of option o as Lua source ("8M", 30, "drop", nil, {}). */
void rc_option_default_text(const struct rc_option *o, char *buf, size_t cap);
/* The long flag of o without "--" (derived from its name unless the table
 * gives one; buf holds a derived one), or NULL when it has none. */
const char *rc_option_long_flag(const struct rc_option *o, char *buf, size_t cap);

#endif
