/* test_options - the option table (core/app/options.h) and what it generates:
 * defaults, the config-file loader (nested options included), the flags, the
 * SIGHUP snapshot, and the docs: etc/roomcast.conf.lua and README.md must
 * show every option with its default, and lua/roomcast/init.lua must use the
 * slow-consumer policy names and numbers of the table.
 *
 * Two rows are added for this test only (RC_OPTIONS_EXTRA): a nested group
 * `demo = { store = ..., keep = ... }`, since no real option is nested yet.
 * This file therefore compiles config.c and confload.c itself, with the
 * extra rows, instead of using libroomcast's copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* clang-format off */
#define RC_OPTIONS_EXTRA(XX) \
    XX("demo.store", ENUM_slow, demo_store, SLOW_CLOSE, 0, 0, BOOT, 0, NULL, "S", "test only") \
    XX("demo.keep", INT, demo_keep, 1000, 0, 100000, LIVE, 0, NULL, "N", "test only")
/* clang-format on */

#include "../../core/app/config.c"
#include "../../core/app/confload.c"
#include "scratch.h"

/* after the sources: cmocka defines a `fail` macro */
#include <cmocka.h>

static char tmpdir[256];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static const char *write_conf(const char *name, const char *text)
{
    return scratch_write(tmpdir, name, text);
}

static int is_test_row(const struct rc_option *o)
{
    return strncmp(o->name, "demo.", 5) == 0;
}

/* ---- defaults ---------------------------------------------------------- */

static void defaults_come_from_the_table(void **state)
{
    (void)state;
    struct rc_config c;
    rc_config_defaults(&c);
    assert_string_equal(c.bind_addr, "0.0.0.0");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.max_message, 1024 * 1024);
    assert_int_equal(c.sendq_hard_limit, 8 * 1024 * 1024);
    assert_int_equal(c.slow_policy, SLOW_DROP);
    assert_int_equal(c.log_level, RC_LOG_INFO);
    assert_int_equal(c.msg_rate_policy, RC_RATE_CLOSE);
    assert_true(c.lua_budget == 10000000);
    assert_true(c.ping_interval == 30);
    assert_string_equal(c.admin_addr, "127.0.0.1");
    assert_int_equal(c.admin_port, 8081);
    assert_null(c.script);
    assert_int_equal(c.demo_store, SLOW_CLOSE);
    assert_int_equal(c.demo_keep, 1000);
    for (int i = 0; i < RC_NOPTIONS; i++)
        assert_false(c.set[i]);
    /* names and flags are unique (getopt would take the first silently) */
    for (int i = 0; i < RC_NOPTIONS; i++) {
        for (int j = i + 1; j < RC_NOPTIONS; j++) {
            const struct rc_option *a = &rc_options[i], *b = &rc_options[j];
            char la[64], lb[64];
            const char *fa = rc_option_long_flag(a, la, sizeof(la));
            const char *fb = rc_option_long_flag(b, lb, sizeof(lb));
            if (strcmp(a->name, b->name) == 0 || (fa && fb && strcmp(fa, fb) == 0) ||
                (a->short_flag && a->short_flag == b->short_flag))
                fail_msg("options '%s' and '%s' share a name or a flag", a->name, b->name);
        }
        const int sf = rc_options[i].short_flag;
        assert_true(sf != 'h' && sf != 'V');
    }
    char t[64];
    rc_option_default_text(&rc_options[RC_OPT_ID_max_head], t, sizeof(t));
    assert_string_equal(t, "\"8K\"");
    rc_option_default_text(&rc_options[RC_OPT_ID_slow_policy], t, sizeof(t));
    assert_string_equal(t, "\"drop\"");
    rc_option_default_text(&rc_options[RC_OPT_ID_plugins], t, sizeof(t));
    assert_string_equal(t, "{}");
    rc_option_default_text(&rc_options[RC_OPT_ID_admin], t, sizeof(t));
    assert_string_equal(t, "\"127.0.0.1:8081\"");
    rc_config_free(&c);
}

/* ---- the config file --------------------------------------------------- */

/* The default text of option o into def, or 0 when it has none to write. */
static int file_default(const struct rc_option *o, char *def, size_t cap)
{
    if (o->scope == RC_OS_CLI || is_test_row(o))
        return 0;
    rc_option_default_text(o, def, cap);
    return strcmp(def, "nil") != 0;
}

/* A file that sets every file option to its default text loads, marks each
 * of them set, and gives back the defaults. A nested group is written once,
 * group = { key = default, ... } with all its keys (a repeated group key
 * would keep only its last table). */
static void every_option_loads_its_own_default(void **state)
{
    (void)state;
    char text[16384] = "return {\n";
    int written[RC_NOPTIONS];
    memset(written, 0, sizeof(written));
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        char def[128];
        if (written[i] || !file_default(o, def, sizeof(def)))
            continue;
        size_t n = strlen(text);
        const char *dot = strchr(o->name, '.');
        if (dot == NULL) {
            snprintf(text + n, sizeof(text) - n, "  %s = %s,\n", o->name, def);
            written[i] = 1;
            continue;
        }
        size_t glen = (size_t)(dot - o->name) + 1; /* "group." */
        snprintf(text + n, sizeof(text) - n, "  %.*s = {\n", (int)glen - 1, o->name);
        for (int j = i; j < RC_NOPTIONS; j++) {
            const struct rc_option *p = &rc_options[j];
            if (strncmp(p->name, o->name, glen) != 0 || !file_default(p, def, sizeof(def)))
                continue;
            n = strlen(text);
            snprintf(text + n, sizeof(text) - n, "    %s = %s,\n", p->name + glen, def);
            written[j] = 1;
        }
        strcat(text, "  },\n");
    }
    assert_true(strlen(text) < sizeof(text) - 64);
    strcat(text, "  demo = { store = \"latest\", keep = 7 },\n}\n");
    struct rc_config c, d;
    rc_config_defaults(&c);
    rc_config_defaults(&d);
    char err[640] = "";
    int rc = confload_file(write_conf("all.lua", text), &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s\n%s", err, text);
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (o->scope == RC_OS_CLI || o->kind == RC_OK_CUSTOM || is_test_row(o))
            continue;
        char a[256], b[256];
        value_text(&c, o, a, sizeof(a));
        value_text(&d, o, b, sizeof(b));
        if (strcmp(a, b) != 0)
            fail_msg("%s: loaded %s, default %s", o->name, a, b);
    }
    int nested = 0;
    for (int i = 0; i < RC_NOPTIONS; i++) {
        if (written[i] && !c.set[i])
            fail_msg("%s: written but not loaded\n%s", rc_options[i].name, text);
        nested += written[i] && strchr(rc_options[i].name, '.') != NULL;
    }
    assert_true(nested >= 10); /* history.* (5) and compression.* (5) */
    assert_string_equal(c.admin_addr, "127.0.0.1");
    assert_int_equal(c.demo_store, SLOW_LATEST);
    assert_int_equal(c.demo_keep, 7);
    assert_true(c.set[RC_OPT_ID_demo_keep] && c.set[RC_OPT_ID_port]);
    assert_false(c.set[RC_OPT_ID_config_file]);
    rc_config_free(&c);
    rc_config_free(&d);
}

static void expect_file_error(const char *text, const char *want1, const char *want2)
{
    struct rc_config c;
    rc_config_defaults(&c);
    char err[640] = "";
    const char *path = write_conf("bad.lua", text);
    assert_int_equal(confload_file(path, &c, err, sizeof(err)), RC_E_CONFIG);
    if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
        fail_msg("want '%s' and '%s' in: %s", want1, want2 ? want2 : "", err);
    assert_true(strncmp(err, "roomcast: ", 10) == 0);
    rc_config_free(&c);
}

static void file_errors_name_the_option_and_line(void **state)
{
    (void)state;
    /* cluster: -t checks the Redis URL's syntax and the node id */
    expect_file_error("return {\n  cluster = {\n    redis = 'http://x',\n  },\n}\n",
                      "'cluster.redis'", "must start with redis://");
    expect_file_error("return {\n  cluster = { redis = 'redis://h:0' },\n}\n", "'cluster.redis'",
                      NULL);
    expect_file_error("return {\n  cluster = { redis = 'redis://h', node_id = 'a b' },\n}\n",
                      "'cluster.node_id'", NULL);
    expect_file_error("return {\n  cluster = { redis = 'redis://h' },\n  history = { store = "
                      "'sqlite' },\n}\n",
                      "'cluster.redis'", "history.store");
    expect_file_error("return {\n  port = 70000,\n}\n", ":2: 'port' = 70000 is out of range", NULL);
    expect_file_error("return {\n\n  slow_consumer = 'fast',\n}\n",
                      ":3: 'slow_consumer' must be one of drop|close|latest", NULL);
    expect_file_error("return {\n  clock = 'rdtsc',\n}\n",
                      ":2: 'clock' must be one of auto|monotonic", NULL);
    expect_file_error("return {\n  lua_budget = 10000.5,\n}\n", ":2:", "whole number");
    expect_file_error("return {\n  max_head = '1K',\n  max_head2 = 1,\n}\n",
                      ":3:", "unknown option 'max_head2'");
    /* nested: the line of the inner key, the full name in the message */
    expect_file_error("return {\n  demo = {\n    store = 'drop',\n    keep = -1,\n  },\n}\n",
                      ":4: 'demo.keep' = -1 is out of range", NULL);
    expect_file_error("return {\n  demo = {\n    stor = 'drop',\n  },\n}\n",
                      ":3:", "unknown option 'demo.stor'");
    expect_file_error("return {\n  demo = 5,\n}\n", ":2: 'demo' must be a table", NULL);
    /* a group is not an option: demo.keep = ... at the top level is unknown */
    expect_file_error("return {\n  [\"demo.keep\"] = 5,\n}\n", "unknown option", NULL);
}

/* Lua tables in the file (script_config, a plugin's config) are handed on
 * as JSON: lists, numbers, booleans, nested objects, escaped strings
 * (sbuf's sb_json_str: quote, backslash, control bytes and DEL). */
static void tables_become_json(void **state)
{
    (void)state;
    struct rc_config c;
    rc_config_defaults(&c);
    char err[640] = "";
    const char *path = write_conf("json.lua", "return { script_config = { list = { 1, 2.5, -3, "
                                              "true, 'q\"\\\\\\1\\127', { k = 'v' } } } }\n");
    if (confload_file(path, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.script_config_json,
                        "{\"list\":[1,2.5,-3,true,\"q\\\"\\\\\\u0001\\u007f\",{\"k\":\"v\"}]}");
    rc_config_free(&c);
}

/* ---- the command line -------------------------------------------------- */

static int run_args(struct rc_config *c, char *err, size_t cap, ...)
{
    char *argv[32] = {"roomcast"};
    int argc = 1;
    va_list ap;
    va_start(ap, cap);
    for (char *a; (a = va_arg(ap, char *)) != NULL;) {
        assert_true(argc < 31);
        argv[argc++] = a;
    }
    va_end(ap);
    return confload_args(c, argc, argv, err, cap);
}

static void flags_come_from_the_table(void **state)
{
    (void)state;
    struct rc_config c;
    rc_config_defaults(&c);
    char err[256] = "";
    int rc = run_args(&c, err, sizeof(err), "-p", "9000", "--max-message", "4K", "--slow-policy",
                      "latest", "--ping-interval", "500ms", "--echo", "-d", "--admin", "off",
                      "--demo-keep", "12", "--plugin", "a=b.lua", NULL);
    if (rc != 0)
        fail_msg("%s", err);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.max_message, 4096);
    assert_int_equal(c.slow_policy, SLOW_LATEST);
    assert_true(c.ping_interval == 0.5);
    assert_true(c.echo && c.daemonize);
    assert_null(c.admin_addr);
    assert_true(c.set[RC_OPT_ID_admin]);
    assert_int_equal(c.demo_keep, 12);
    assert_int_equal(c.clock_source, RC_CLOCK_AUTO); /* the default */
    assert_int_equal(c.nplugins, 1);
    assert_string_equal(c.plugins[0].path, "b.lua");
    rc_config_free(&c);

    /* clock: the flag and the file both take "monotonic" */
    rc_config_defaults(&c);
    assert_int_equal(run_args(&c, err, sizeof(err), "--clock", "monotonic", NULL), 0);
    assert_int_equal(c.clock_source, RC_CLOCK_MONOTONIC);
    rc_config_free(&c);
    rc_config_defaults(&c);
    assert_int_equal(confload_file(write_conf("clock.lua", "return { clock = 'monotonic' }\n"), &c,
                                   err, sizeof(err)),
                     0);
    assert_int_equal(c.clock_source, RC_CLOCK_MONOTONIC);
    rc_config_free(&c);

    /* Every flag takes its option's default (as text, unquoted). */
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        char lb[64], flag[80], def[128];
        const char *l = rc_option_long_flag(o, lb, sizeof(lb));
        if (l == NULL || o->kind == RC_OK_BOOL || o->kind == RC_OK_JSON ||
            (o->kind == RC_OK_CUSTOM && o->def_str == NULL))
            continue;
        snprintf(flag, sizeof(flag), "--%s", l);
        rc_option_default_text(o, def, sizeof(def));
        if (strcmp(def, "nil") == 0)
            continue;
        char *v = def;
        if (v[0] == '"') {
            v++;
            v[strlen(v) - 1] = '\0';
        }
        rc_config_defaults(&c);
        if (run_args(&c, err, sizeof(err), flag, v, NULL) != 0)
            fail_msg("%s %s: %s", flag, v, err);
        assert_true(c.set[i]);
        rc_config_free(&c);
    }
}

static void expect_flag_error(const char *a, const char *b, const char *want)
{
    struct rc_config c;
    rc_config_defaults(&c);
    char err[256] = "";
    assert_int_equal(run_args(&c, err, sizeof(err), a, b, NULL), RC_E_INVAL);
    if (strstr(err, want) == NULL)
        fail_msg("want '%s' in: %s", want, err);
    rc_config_free(&c);
}

static int resolved;

/* confload_all's path hook: after the file (its path, --lua-dir's value, the
 * flags not yet applied), then after the flags. */
static int record_resolve(struct rc_config *c, const char *config_path, const char *flag_lua_dir,
                          char *err, size_t cap)
{
    (void)err;
    (void)cap;
    if (resolved++ == 0) {
        assert_non_null(config_path);
        assert_string_equal(flag_lua_dir, "here");
        assert_int_equal(c->port, 1); /* the file's, before the flags */
    } else {
        assert_null(config_path);
        assert_int_equal(c->port, 2);
    }
    return 0;
}

static void bad_flags_are_one_line_errors(void **state)
{
    (void)state;
    expect_flag_error("-w", "500", "'500' for -w/--workers (0 to 64)");
    expect_flag_error("--slow-policy", "fast", "'fast' for --slow-policy (drop|close|latest)");
    expect_flag_error("--clock", "tsc", "invalid value 'tsc' for --clock (auto|monotonic)");
    expect_flag_error("--max-message", "lots", "invalid size 'lots' for --max-message");
    expect_flag_error("--ping-interval", "soon", "invalid duration 'soon' for --ping-interval");
    expect_flag_error("--lua-budget", "10", "'10' for --lua-budget");
    expect_flag_error("--admin", "nowhere", "invalid --admin 'nowhere'");
    expect_flag_error("--bogus", "1", "unknown option '--bogus'");
    expect_flag_error("--echo", "extra", "unexpected argument 'extra'");
    struct rc_config c;
    rc_config_defaults(&c);
    char err[256];
    assert_int_equal(run_args(&c, err, sizeof(err), "-h", NULL), 1);
    rc_config_free(&c);
    /* options that go together are checked after the flags too */
    char *argv[] = {"roomcast", "--tls-cert", "/c.pem", NULL};
    assert_int_equal(confload_all(&c, 3, argv, NULL, err, sizeof(err)), RC_E_INVAL);
    assert_string_equal(err, "roomcast: 'tls_cert' and 'tls_key' go together (see roomcast -h)");
    rc_config_free(&c);
    /* flags win over the file, then rc_config_finish fills what is derived */
    const char *path = write_conf("win.lua", "return { port = 1, max_message = '64K' }\n");
    char *argv2[] = {"roomcast", "-c", (char *)path, "-p", "2", "--lua-dir", "here", NULL};
    resolved = 0;
    assert_int_equal(confload_all(&c, 7, argv2, record_resolve, err, sizeof(err)), 0);
    assert_int_equal(resolved, 2); /* after the file, then after the flags */
    assert_int_equal(c.port, 2);
    assert_int_equal(c.max_message, 65536);
    assert_true(c.echo); /* no script */
    assert_string_equal(c.lua_dir, "here");
    assert_true(c.set[RC_OPT_ID_port] && c.set[RC_OPT_ID_max_message]);
    rc_config_free(&c);
}

/* ---- the SIGHUP snapshot ----------------------------------------------- */

static void live_snapshots_are_swapped_not_written(void **state)
{
    (void)state;
    struct rc_config c;
    rc_config_defaults(&c);
    c.max_conns = 5;
    rc_config_set_str(&c.admin_token, "one");
    assert_int_equal(rc_live_publish(&c), 1);
    const struct rc_live *a = rc_live_get();
    assert_int_equal(a->max_conns, 5);
    assert_string_equal(a->admin_token, "one");
    assert_int_equal(a->demo_keep, 1000);
    /* Same values: nothing new is published. */
    assert_int_equal(rc_live_publish(&c), 0);
    assert_ptr_equal(rc_live_get(), a);
    c.max_conns = 6;
    rc_config_set_str(&c.admin_token, "two");
    c.port = 1; /* a BOOT option: not in the snapshot */
    assert_int_equal(rc_live_publish(&c), 1);
    const struct rc_live *b = rc_live_get();
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(b->older, a);
    /* The old snapshot is still whole for a reader that holds it. */
    assert_int_equal(a->max_conns, 5);
    assert_string_equal(a->admin_token, "one");
    assert_int_equal(b->max_conns, 6);
    assert_string_equal(b->admin_token, "two");
    rc_config_free(&c);
    rc_live_shutdown(); /* frees both (LeakSanitizer checks it) */
    assert_null(rc_live_get());

    /* SIGHUP: the file again, the flags on top (a LIVE flag is not lost to
     * the file's value), BOOT options left alone. */
    const char *path = write_conf("hup.lua", "return { max_connections = 3, message_rate = 5 }\n");
    char *argv[] = {"roomcast", "-c", (char *)path, "--max-connections", "9", NULL};
    char err[256];
    assert_int_equal(confload_all(&c, 5, argv, NULL, err, sizeof(err)), 0);
    rc_live_publish(&c);
    write_conf("hup.lua", "return { max_connections = 4, message_rate = 6, port = 1 }\n");
    assert_int_equal(confload_reload(&c, 5, argv, NULL, err, sizeof(err)), 0);
    assert_int_equal(rc_live_get()->max_conns, 9);
    assert_true(rc_live_get()->msg_rate == 6);
    assert_int_equal(c.port, 8080); /* the running config is never written */
    write_conf("hup.lua", "return { max_connections = 'many' }\n");
    assert_int_equal(confload_reload(&c, 5, argv, NULL, err, sizeof(err)), RC_E_CONFIG);
    assert_non_null(strstr(err, "max_connections"));
    assert_true(rc_live_get()->msg_rate == 6); /* kept */
    rc_config_free(&c);
    rc_live_shutdown();
    rc_log_set_level(RC_LOG_WARN);
}

/* ---- the docs ---------------------------------------------------------- */

/* Where `key = ` is assigned in text at or after from (a word boundary
 * before key), or NULL. */
static const char *find_assign(const char *text, const char *from, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strstr(from, key); p; p = strstr(p + 1, key)) {
        const char *b = p;
        while (b > text && b[-1] == ' ')
            b--;
        if (b > text && b[-1] != '\n')
            continue; /* not the first word of its line */
        const char *q = p + kl;
        while (*q == ' ')
            q++;
        if (*q == '=' && q[1] != '=')
            return p;
    }
    return NULL;
}

/* etc/roomcast.conf.lua: `name = DEFAULT,` for every file option, or
 * `name = VALUE, -- ... (default: DEFAULT)` where the shipped file sets
 * something else on purpose; "(R)" in the comment exactly for the options
 * SIGHUP re-reads (LIVE). */
static void conf_file_lists_every_option(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/etc/roomcast.conf.lua", RC_SOURCE_DIR);
    char *text = slurp(path);
    int missing = 0;
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (o->scope == RC_OS_CLI || is_test_row(o))
            continue;
        char def[128], key[64];
        rc_option_default_text(o, def, sizeof(def));
        const char *from = text;
        const char *dot = strchr(o->name, '.');
        if (dot) { /* nested: the key after its `group = {` */
            snprintf(key, sizeof(key), "%.*s", (int)(dot - o->name), o->name);
            from = find_assign(text, text, key);
            snprintf(key, sizeof(key), "%s", dot + 1);
        } else {
            snprintf(key, sizeof(key), "%s", o->name);
        }
        const char *at = from ? find_assign(text, from, key) : NULL;
        if (at == NULL) {
            print_error("etc/roomcast.conf.lua: option '%s' is missing\n", o->name);
            missing++;
            continue;
        }
        const char *eol = strchr(at, '\n');
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - at : (long)strlen(at)), at);
        const char *val = strchr(line, '=') + 1;
        while (*val == ' ')
            val++;
        char want[160], note[160], note2[160];
        snprintf(want, sizeof(want), "%s,", def);
        snprintf(note, sizeof(note), "(default: %s)", def);
        snprintf(note2, sizeof(note2), "(default: %s ", def);
        if ((o->scope == RC_OS_LIVE) != (strstr(line, "(R") != NULL)) {
            print_error("etc/roomcast.conf.lua: '%s' %s be marked (R): %s\n", o->name,
                        o->scope == RC_OS_LIVE ? "should" : "should not", line);
            missing++;
        }
        int table = strcmp(def, "{}") == 0 && val[0] == '{'; /* a list spelled out */
        if (!table && strncmp(val, want, strlen(want)) != 0 && strstr(line, note) == NULL &&
            strstr(line, note2) == NULL) {
            print_error("etc/roomcast.conf.lua: '%s' should read %s or say %s: %s\n", o->name, want,
                        note, line);
            missing++;
        }
    }
    free(text);
    assert_int_equal(missing, 0);
}

/* README.md: a row "| `name` | `--flag` | `DEFAULT` | (R) ..." for every file
 * option in the section "Every option" ((R) exactly for LIVE ones), and every
 * command-line-only flag. */
static void readme_lists_every_option(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/README.md", RC_SOURCE_DIR);
    char *text = slurp(path);
    int missing = 0;
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (is_test_row(o))
            continue;
        if (o->scope == RC_OS_CLI) {
            char f[8];
            snprintf(f, sizeof(f), "`-%c", o->short_flag);
            if (strstr(text, f) == NULL) {
                print_error("README.md: flag -%c is missing\n", o->short_flag);
                missing++;
            }
            continue;
        }
        char head[96], def[128], want[160];
        snprintf(head, sizeof(head), "\n| `%s` |", o->name);
        rc_option_default_text(o, def, sizeof(def));
        snprintf(want, sizeof(want), "`%s`", def);
        const char *sec = strstr(text, "### Every option");
        const char *row = sec ? strstr(sec, head) : NULL;
        if (row == NULL) {
            print_error("README.md: no option table row for '%s'\n", o->name);
            missing++;
            continue;
        }
        row++;
        const char *eol = strchr(row, '\n');
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - row : (long)strlen(row)), row);
        char lb[64], flag[80];
        const char *l = rc_option_long_flag(o, lb, sizeof(lb));
        int flag_ok = 1;
        if (l && !(o->kind == RC_OK_CUSTOM && o->custom->arg == NULL)) {
            snprintf(flag, sizeof(flag), "`--%s", l);
            flag_ok = strstr(line, flag) != NULL;
        }
        if ((o->scope == RC_OS_LIVE) != (strstr(line, "| (R") != NULL)) {
            print_error("README.md: '%s' %s be marked (R): %s\n", o->name,
                        o->scope == RC_OS_LIVE ? "should" : "should not", line);
            missing++;
        }
        /* the default is the third cell: | `name` | `--flag` | `default` | ... */
        char cell[256] = "";
        const char *c3 = line;
        for (int k = 0; k < 3 && c3 != NULL; k++) {
            c3 = strchr(c3, '|');
            if (c3 != NULL)
                c3++;
        }
        const char *c3e = c3 ? strchr(c3, '|') : NULL;
        if (c3e != NULL) {
            while (*c3 == ' ')
                c3++;
            while (c3e > c3 && c3e[-1] == ' ')
                c3e--;
            snprintf(cell, sizeof(cell), "%.*s", (int)(c3e - c3), c3);
        }
        if (strcmp(cell, want) != 0 || !flag_ok) {
            print_error("README.md: the row of '%s' should show %s%s%s (default column: %s): %s\n",
                        o->name, want, flag_ok ? "" : " and ", flag_ok ? "" : flag, cell, line);
            missing++;
        }
    }
    free(text);
    assert_int_equal(missing, 0);
}

/* lua/roomcast/init.lua's room:set_policy maps the names of RC_ENUM_slow to
 * their numbers (enum slow_policy). */
static void init_lua_policies_match_the_table(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/lua/roomcast/init.lua", RC_SOURCE_DIR);
    char *text = slurp(path);
    const char *p = strstr(text, "local POLICIES = {");
    assert_non_null(p);
    const char *end = strchr(p, '}');
    char want[256] = "local POLICIES = {";
    for (int i = 0; rc_names_slow[i]; i++) {
        size_t n = strlen(want);
        snprintf(want + n, sizeof(want) - n, "%s %s = %d", i ? "," : "", rc_names_slow[i], i);
    }
    strcat(want, " }");
    char got[256];
    snprintf(got, sizeof(got), "%.*s", (int)(end - p + 1), p);
    assert_string_equal(got, want);
    free(text);
}

static int setup(void **state)
{
    (void)state;
    scratch_dir(tmpdir, sizeof(tmpdir), "rc_options_");
    rc_log_set_level(RC_LOG_WARN);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return scratch_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_come_from_the_table),
        cmocka_unit_test(every_option_loads_its_own_default),
        cmocka_unit_test(file_errors_name_the_option_and_line),
        cmocka_unit_test(tables_become_json),
        cmocka_unit_test(flags_come_from_the_table),
        cmocka_unit_test(bad_flags_are_one_line_errors),
        cmocka_unit_test(live_snapshots_are_swapped_not_written),
        cmocka_unit_test(conf_file_lists_every_option),
        cmocka_unit_test(readme_lists_every_option),
        cmocka_unit_test(init_lua_policies_match_the_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
