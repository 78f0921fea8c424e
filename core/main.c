/* main.c - argv, config, signals, daemon and pidfile, start the workers.
 * No server logic lives here. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "admin.h"
#include "alloc.h"
#include "config.h"
#include "confload.h"
#include "echo.h"
#include "err.h"
#include "lbridge.h"
#include "lhandler.h"
#include "guard.h"
#include "log.h"
#include "notify.h"
#include "tlsserver.h"
#include "lwatch.h"
#include "runtime.h"
#include "version.h"
#include "worker.h"

static const char usage_text[] =
    "usage: roomcast [options]\n"
    "  -c FILE              config file (Lua; see etc/roomcast.conf.lua); flags override it\n"
    "  -b ADDR              bind address (default 0.0.0.0)\n"
    "  -p PORT              port (default 8080; 0 = any free port)\n"
    "  -w N                 worker threads (default: online CPUs)\n"
    "  -s SCRIPT            Lua handler script (e.g. scripts/chat.lua; relative: the working\n"
    "                       directory, then the data directory next to the Lua runtime)\n"
    "  --lua-dir DIR        the Lua runtime (lua/roomcast); default: searched, see -V\n"
    "  --echo               built-in echo handler (no Lua)\n"
    "  --plugin NAME=PATH[=JSON]  enable a Lua plugin (config as JSON); repeatable\n"
    "  --lua-budget N       VM instructions per handler call (default 10000000)\n"
    "  --max-message BYTES  largest message accepted (default 1M; K/M/G suffixes)\n"
    "  --ping-interval SECS idle time before the server pings (default 30)\n"
    "  --pong-timeout SECS  time to answer a ping before close 1001 (default 10)\n"
    "  --handshake-timeout SECS  time to complete the HTTP upgrade (default 10)\n"
    "  --close-timeout SECS time to finish the closing handshake (default 5)\n"
    "  --sendq-limit BYTES  per-connection send queue hard limit (default 8M)\n"
    "  --slow-policy P      drop|close|latest for slow consumers (default drop)\n"
    "  --sndbuf BYTES       SO_SNDBUF of client sockets (default: kernel's)\n"
    "  --accept MODE        reuseport (a listener per worker) | handoff (one acceptor)\n"
    "  --log-level LEVEL    debug|info|warn|error (default info)\n"
    "  --log-file FILE      log to FILE instead of stderr\n"
    "  -t                   check the configuration and exit\n"
    "  -d                   run as a daemon (needs --pidfile)\n"
    "  --pidfile FILE       write and lock a pidfile\n"
    "  --admin ADDR:PORT    admin HTTP listener (default 127.0.0.1:8081; 'off' disables)\n"
    "  -V, --version        version, library versions and where the Lua runtime is\n"
    "  -h, --help           this help\n";

enum {
    OPT_ECHO = 256,
    OPT_MAX_MESSAGE,
    OPT_PING,
    OPT_PONG,
    OPT_HS_TIMEOUT,
    OPT_CLOSE_TIMEOUT,
    OPT_SENDQ,
    OPT_SLOW_POLICY,
    OPT_SNDBUF,
    OPT_ACCEPT,
    OPT_PLUGIN,
    OPT_LUA_BUDGET,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_PIDFILE,
    OPT_ADMIN,
    OPT_LUA_DIR,
};

static RC_NORETURN RC_PRINTF(1, 2) void bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "roomcast: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see roomcast -h)\n");
    exit(2);
}

/* --plugin NAME=PATH[=JSON] (until the config file lists plugins). */
static void add_plugin(struct rc_config *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] == '\0' || cfg->nplugins >= RC_MAX_PLUGINS)
        bad_usage("invalid --plugin '%s' (NAME=PATH[=JSON], at most %d)", arg, RC_MAX_PLUGINS);
    const char *eq2 = strchr(eq + 1, '=');
    struct rc_plugin_cfg *p = &cfg->plugins[cfg->nplugins++];
    p->name = rc_xstrndup(arg, (size_t)(eq - arg));
    p->path = eq2 ? rc_xstrndup(eq + 1, (size_t)(eq2 - eq - 1)) : rc_xstrdup(eq + 1);
    p->config_json = eq2 ? rc_xstrdup(eq2 + 1) : NULL;
}

static void parse_args(int argc, char **argv, struct rc_config *cfg)
{
    static const struct option opts[] = {
        {"echo", no_argument, NULL, OPT_ECHO},
        {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
        {"ping-interval", required_argument, NULL, OPT_PING},
        {"pong-timeout", required_argument, NULL, OPT_PONG},
        {"handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT},
        {"close-timeout", required_argument, NULL, OPT_CLOSE_TIMEOUT},
        {"sendq-limit", required_argument, NULL, OPT_SENDQ},
        {"slow-policy", required_argument, NULL, OPT_SLOW_POLICY},
        {"sndbuf", required_argument, NULL, OPT_SNDBUF},
        {"accept", required_argument, NULL, OPT_ACCEPT},
        {"plugin", required_argument, NULL, OPT_PLUGIN},
        {"lua-budget", required_argument, NULL, OPT_LUA_BUDGET},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"pidfile", required_argument, NULL, OPT_PIDFILE},
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"lua-dir", required_argument, NULL, OPT_LUA_DIR},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:b:p:w:s:tdhV", opts, NULL)) != -1) {
        char *end;
        long v;
        switch (ch) {
        case 'c':
            rc_config_set_str(&cfg->config_file, optarg);
            break;
        case 'b':
            rc_config_set_str(&cfg->bind_addr, optarg);
            break;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || v < 0 || v > 65535)
                bad_usage("invalid port '%s'", optarg);
            cfg->port = (int)v;
            break;
        case 'w':
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || v < 1 || v > RC_MAX_WORKERS)
                bad_usage("invalid worker count '%s' (1-64)", optarg);
            cfg->workers = (int)v;
            break;
        case 's':
            rc_config_set_str(&cfg->script, optarg);
            break;
        case 't':
            cfg->test_only = 1;
            break;
        case 'd':
            cfg->daemonize = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case 'V':
            rc_version_print(stdout);
            exit(0);
        case OPT_LUA_DIR:
            rc_config_set_str(&cfg->lua_dir, optarg);
            break;
        case OPT_ECHO:
            cfg->echo = 1;
            break;
        case OPT_MAX_MESSAGE:
            if (rc_parse_size(optarg, &cfg->max_message) != 0 || cfg->max_message == 0)
                bad_usage("invalid size '%s' for --max-message", optarg);
            break;
        case OPT_SENDQ:
            if (rc_parse_size(optarg, &cfg->sendq_hard_limit) != 0)
                bad_usage("invalid size '%s' for --sendq-limit", optarg);
            break;
        case OPT_PLUGIN:
            add_plugin(cfg, optarg);
            break;
        case OPT_LUA_BUDGET:
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || v < 1000)
                bad_usage("invalid instruction budget '%s' (>= 1000)", optarg);
            cfg->lua_budget = (uint64_t)v;
            break;
        case OPT_ACCEPT:
            if (strcmp(optarg, "reuseport") == 0)
                cfg->accept_handoff = 0;
            else if (strcmp(optarg, "handoff") == 0)
                cfg->accept_handoff = 1;
            else
                bad_usage("invalid accept mode '%s' (reuseport|handoff)", optarg);
            break;
        case OPT_SNDBUF:
            if (rc_parse_size(optarg, &cfg->sndbuf) != 0 || cfg->sndbuf > (1u << 30))
                bad_usage("invalid size '%s' for --sndbuf", optarg);
            break;
        case OPT_SLOW_POLICY:
            if (strcmp(optarg, "drop") == 0)
                cfg->slow_policy = SLOW_DROP;
            else if (strcmp(optarg, "close") == 0)
                cfg->slow_policy = SLOW_CLOSE;
            else if (strcmp(optarg, "latest") == 0)
                cfg->slow_policy = SLOW_LATEST;
            else
                bad_usage("invalid slow-consumer policy '%s' (drop|close|latest)", optarg);
            break;
        case OPT_PING:
            if (rc_parse_seconds(optarg, &cfg->ping_interval) != 0 || cfg->ping_interval <= 0)
                bad_usage("invalid duration '%s' for --ping-interval", optarg);
            break;
        case OPT_PONG:
            if (rc_parse_seconds(optarg, &cfg->pong_timeout) != 0 || cfg->pong_timeout <= 0)
                bad_usage("invalid duration '%s' for --pong-timeout", optarg);
            break;
        case OPT_HS_TIMEOUT:
            if (rc_parse_seconds(optarg, &cfg->handshake_timeout) != 0 ||
                cfg->handshake_timeout <= 0)
                bad_usage("invalid duration '%s' for --handshake-timeout", optarg);
            break;
        case OPT_CLOSE_TIMEOUT:
            if (rc_parse_seconds(optarg, &cfg->close_timeout) != 0 || cfg->close_timeout <= 0)
                bad_usage("invalid duration '%s' for --close-timeout", optarg);
            break;
        case OPT_LOG_LEVEL: {
            enum rc_log_level lvl;
            if (rc_log_parse_level(optarg, &lvl) != 0)
                bad_usage("invalid log level '%s' (debug|info|warn|error)", optarg);
            cfg->log_level = (int)lvl;
            break;
        }
        case OPT_LOG_FILE:
            rc_config_set_str(&cfg->log_file, optarg);
            break;
        case OPT_PIDFILE:
            rc_config_set_str(&cfg->pidfile, optarg);
            break;
        case OPT_ADMIN:
            cfg->admin_explicit = 1;
            if (strcmp(optarg, "off") == 0) {
                rc_config_set_str(&cfg->admin_addr, NULL);
            } else {
                char *addr;
                if (confload_parse_hostport(optarg, &addr, &cfg->admin_port) != 0)
                    bad_usage("invalid --admin '%s' (ADDR:PORT or off)", optarg);
                rc_free(cfg->admin_addr);
                cfg->admin_addr = addr;
            }
            break;
        case ':':
            bad_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);
    /* A message bigger than the send queue limit could never be echoed. */
    if (cfg->sendq_hard_limit < cfg->max_message + 16)
        cfg->sendq_hard_limit = cfg->max_message + 16;
    if (cfg->sendq_soft_limit > cfg->sendq_hard_limit)
        cfg->sendq_soft_limit = cfg->sendq_hard_limit;
}

static struct server srv;
static int stop_count;
static struct rc_config *live_cfg; /* main's cfg, for the SIGHUP config reload */

/* -c FILE: defaults, then the file, then the command line again (flags win).
 * The file's relative paths start from its own directory (runtime.h); the
 * runtime is looked for first, so that they can fall back to its data
 * directory, and --lua-dir (relative to the working directory) beats the
 * file's lua_dir. */
static void load_config_file(int argc, char **argv, struct rc_config *cfg)
{
    char *path = rc_xstrdup(cfg->config_file);
    char *cwd = runtime_cwd();
    char *flag_lua_dir = cfg->lua_dir ? rc_xstrdup(cfg->lua_dir) : NULL; /* --lua-dir */
    char err[2048];
    rc_config_free(cfg);
    rc_config_defaults(cfg);
    if (confload_file(path, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    char *dir = runtime_dir_of(path);
    runtime_rebase_files(cfg, dir);
    if (flag_lua_dir && flag_lua_dir[0] != '/') {
        size_t n = strlen(cwd) + strlen(flag_lua_dir) + 2;
        rc_free(cfg->lua_dir);
        cfg->lua_dir = rc_xmalloc(n);
        snprintf(cfg->lua_dir, n, "%s/%s", cwd, flag_lua_dir);
    } else if (flag_lua_dir) {
        rc_config_set_str(&cfg->lua_dir, flag_lua_dir);
    }
    if (runtime_resolve(cfg, dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s (config %s)\n", err, path);
        exit(1);
    }
    rc_free(dir);
    rc_free(cwd);
    rc_free(flag_lua_dir);
    rc_config_set_str(&cfg->config_file, path);
    rc_free(path);
    optind = 0; /* GNU getopt: start over */
    parse_args(argc, argv, cfg);
}

/* SIGHUP: the reloadable part of the config file (confload.h), then the scripts. */
static void reload_config(void)
{
    rc_notify_reloading();
    if (live_cfg && live_cfg->config_file) {
        char err[640];
        int ok = confload_reload(live_cfg->config_file, live_cfg, err, sizeof(err)) == 0;
        admin_count_config_reload(ok);
        if (ok)
            rc_info("SIGHUP: configuration %s reloaded", live_cfg->config_file);
        else
            rc_error("SIGHUP: configuration kept: %s", err);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (w->signum == SIGTERM || w->signum == SIGINT) {
        stop_count++;
        rc_info("%s: %s", w->signum == SIGTERM ? "SIGTERM" : "SIGINT",
                stop_count == 1 ? "draining" : "exiting now");
        server_stop(&srv, stop_count > 1);
        admin_set_draining();
        if (stop_count == 1)
            rc_notify("STOPPING=1");
    } else if (w->signum == SIGUSR1) {
        rc_log_reopen();
    } else if (w->signum == SIGHUP) {
        rc_info("SIGHUP: reloading scripts");
        reload_config();
        server_reload(&srv);
        rc_notify("READY=1");
    }
}

static void on_check_workers(struct ev_loop *loop, ev_timer *t, int revents)
{
    /* The main loop ends once every worker has stopped. */
    (void)t;
    if (stop_count == 0)
        return;
    for (int i = 0; i < srv.nworkers; i++) {
        struct worker *w = &srv.workers[i];
        if (!w->joined) {
            if (pthread_tryjoin_np(w->thread, NULL) == EBUSY)
                return;
            w->joined = 1;
        }
    }
    ev_break(loop, EVBREAK_ALL);
}

static void on_files_changed(void *ud)
{
    (void)ud;
    server_reload(&srv);
}

static int write_pidfile(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? RC_E_EXISTS : -e;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == -1 || write(fd, buf, (size_t)n) != n) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd; /* kept open: the lock lives as long as the process */
}

int main(int argc, char **argv)
{
    struct rc_config cfg;
    rc_config_defaults(&cfg);
    parse_args(argc, argv, &cfg);
    if (cfg.config_file)
        load_config_file(argc, argv, &cfg);
    rc_log_set_level((enum rc_log_level)cfg.log_level);
    if (cfg.log_file && rc_log_open(cfg.log_file) != 0) {
        fprintf(stderr, "roomcast: cannot open log file %s: %s\n", cfg.log_file, strerror(errno));
        return 1;
    }
    if (!cfg.echo && cfg.script == NULL)
        cfg.echo = 1;
    {
        /* Paths given as flags start from the working directory. */
        char err[2048];
        char *cwd = runtime_cwd();
        int rc = runtime_resolve(&cfg, cwd, err, sizeof(err));
        rc_free(cwd);
        if (rc == 0 && cfg.test_only)
            rc = runtime_check_syntax(&cfg, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "%s\n", err);
            rc_config_free(&cfg);
            return 1;
        }
    }
    if (cfg.test_only) {
        char err[640];
        if (tls_check_config(&cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            rc_config_free(&cfg);
            return 1;
        }
        /* The plugins' own setup (jwt_auth's key files, say) runs in a
         * throwaway Lua state, as each worker will run it: the plugin config
         * is JSON only the plugin understands, so its code is the check. */
        if (lbridge_check_plugins(&cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "roomcast: plugin: %s\n", err);
            rc_config_free(&cfg);
            return 1;
        }
        printf("roomcast: configuration %s OK\n", cfg.config_file ? cfg.config_file : "(flags)");
        rc_config_free(&cfg);
        return 0;
    }
    if (cfg.daemonize) {
        if (cfg.pidfile == NULL) {
            fprintf(stderr, "roomcast: -d needs --pidfile\n");
            return 2;
        }
        if (daemon(1, cfg.log_file ? 0 : 1) == -1) {
            fprintf(stderr, "roomcast: daemon: %s\n", strerror(errno));
            return 1;
        }
    }
    int pid_fd = -1;
    if (cfg.pidfile) {
        pid_fd = write_pidfile(cfg.pidfile);
        if (pid_fd < 0) {
            rc_error("cannot write pidfile %s: %s", cfg.pidfile,
                     pid_fd == RC_E_EXISTS ? "locked by a running roomcast" : rc_strerror(pid_fd));
            rc_config_free(&cfg);
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    /* Signal watchers first, so a signal during startup is not fatal. */
    ev_signal sig_term, sig_int, sig_usr1, sig_hup;
    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_init(&sig_usr1, on_signal, SIGUSR1);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_usr1);
    ev_signal_init(&sig_hup, on_signal, SIGHUP);
    ev_signal_start(loop, &sig_hup);
    live_cfg = &cfg;
    guard_init(&cfg);
    int rc = server_init(&srv, &cfg, cfg.echo ? &echo_handler : &lua_handler);
    if (rc < 0)
        return 1;
    if (server_start(&srv) < 0) {
        rc_error("cannot start workers");
        return 1;
    }
    rc_info("roomcast started: %d worker%s, %s", srv.nworkers, srv.nworkers == 1 ? "" : "s",
            cfg.echo ? "echo mode" : cfg.script);
    if (!cfg.echo)
        rc_info("Lua runtime: %s", cfg.lua_dir);
    if (admin_start(loop, &srv, &cfg) < 0 && cfg.admin_explicit) {
        server_stop(&srv, 1);
        server_join(&srv);
        return 1;
    }
    rc_notify("READY=1\nSTATUS=serving");
    ev_timer check;
    ev_timer_init(&check, on_check_workers, 0.05, 0.05);
    ev_timer_start(loop, &check);
    struct lwatch *watch = cfg.echo ? NULL : lwatch_start(loop, &cfg, on_files_changed, NULL);
    ev_run(loop, 0);
    lwatch_stop(watch);
    admin_stop();
    /* Threads were joined by on_check_workers. */
    server_join(&srv);
    guard_destroy();
    rc_info("stopped");
    if (cfg.pidfile) {
        unlink(cfg.pidfile);
        close(pid_fd);
    }
    rc_config_free(&cfg);
    return 0;
}
