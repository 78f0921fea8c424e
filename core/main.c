/* main.c - argv, config, signals, daemon and pidfile, start the workers.
 * No server logic lives here. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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
#include "store_sqlite.h"
#include "tick.h"
#include "version.h"
#include "worker.h"

static struct server srv;
static int stop_count;
static struct rc_config *boot_cfg; /* main's cfg: read by the SIGHUP reload, never written */
static int main_argc;
static char **main_argv;

/* confload_all's path resolution (runtime.h). After the file: its relative
 * paths start from its own directory; the runtime is looked for first, so
 * that they can fall back to its data directory, and --lua-dir (relative to
 * the working directory) beats the file's lua_dir. After the flags: paths
 * given as flags start from the working directory. */
static int resolve_paths(struct rc_config *c, const char *config_path, const char *flag_lua_dir,
                         char *err, size_t cap)
{
    char *cwd = runtime_cwd();
    int rc;
    if (config_path) {
        char *dir = runtime_dir_of(config_path);
        runtime_rebase_files(c, dir);
        if (flag_lua_dir && flag_lua_dir[0] != '/') {
            size_t n = strlen(cwd) + strlen(flag_lua_dir) + 2;
            rc_free(c->lua_dir);
            c->lua_dir = rc_xmalloc(n);
            snprintf(c->lua_dir, n, "%s/%s", cwd, flag_lua_dir);
        } else if (flag_lua_dir) {
            rc_config_set_str(&c->lua_dir, flag_lua_dir);
        }
        rc = runtime_resolve(c, dir, err, cap);
        if (rc != 0) {
            size_t len = strlen(err);
            snprintf(err + len, cap - len, " (config %s)", config_path);
        }
        rc_free(dir);
    } else {
        rc = runtime_resolve(c, cwd, err, cap);
    }
    rc_free(cwd);
    return rc < 0 ? rc : 0;
}

/* SIGHUP: the reloadable options (a new rc_live snapshot), then the scripts. */
static void reload_config(void)
{
    rc_notify_reloading();
    if (boot_cfg && boot_cfg->config_file) {
        char err[2048];
        int ok =
            confload_reload(boot_cfg, main_argc, main_argv, resolve_paths, err, sizeof(err)) == 0;
        admin_count_config_reload(ok);
        if (ok)
            rc_info("SIGHUP: configuration %s reloaded", boot_cfg->config_file);
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
    rc_tick_refine(); /* this timer is main's only periodic one */
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
    /* Blocks of 512 KiB and more (messages the peer sized: a reassembled or
     * inflated message, a big frame) come from mmap and go back to the
     * kernel when freed. Without a fixed threshold glibc raises it to the
     * largest block freed so far, and a burst of big messages (or a
     * decompression bomb stopped at max_message) leaves the heap that size. */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    struct rc_config cfg;
    char err[2048];
    int crc = confload_all(&cfg, argc, argv, resolve_paths, err, sizeof(err));
    if (crc != 0) {
        if (crc == CONFLOAD_HELP)
            confload_usage(stdout);
        else if (crc == CONFLOAD_VERSION)
            rc_version_print(stdout);
        else
            fprintf(stderr, "%s\n", err);
        rc_config_free(&cfg);
        return crc > 0 ? 0 : crc == RC_E_INVAL ? 2 : 1;
    }
    rc_log_set_level((enum rc_log_level)cfg.log_level);
    if (cfg.log_file && rc_log_open(cfg.log_file) != 0) {
        fprintf(stderr, "roomcast: cannot open log file %s: %s\n", cfg.log_file, strerror(errno));
        return 1;
    }
    /* The API token may come from the environment (kept out of ps and files). */
    const char *env_token = getenv("RC_API_TOKEN");
    if (cfg.api_token == NULL && env_token && env_token[0])
        rc_config_set_str(&cfg.api_token, env_token);
    if (cfg.static_dir) {
        /* Resolved once, so a later chdir or a relative path cannot move it. */
        char real[PATH_MAX];
        struct stat st;
        if (realpath(cfg.static_dir, real) == NULL || stat(real, &st) != 0 ||
            !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "roomcast: static_dir %s is not a directory\n", cfg.static_dir);
            rc_config_free(&cfg);
            return 1;
        }
        rc_config_set_str(&cfg.static_dir, real);
    }
    if (cfg.test_only) {
        if (runtime_check_syntax(&cfg, err, sizeof(err)) != 0 ||
            tls_check_config(&cfg, err, sizeof(err)) != 0) {
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
        if (cfg.history_store == RC_STORE_SQLITE &&
            store_sqlite_check(cfg.history_path, err, sizeof(err)) != 0) {
            fprintf(stderr, "roomcast: history: %s\n", err);
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
    /* A file size limit (ulimit -f) makes the history store's writes fail
     * with EFBIG (handled: degraded, retried) instead of killing us. */
    signal(SIGXFSZ, SIG_IGN);
    /* Signals through a signalfd: libev blocks them in this thread when the
     * watchers start, every thread created later (workers, store, bus)
     * inherits the mask, and the main loop reads them as an fd. No handler
     * runs in signal context, so no thread can take a signal it does not
     * watch, and none is lost to a handler deferred by a sanitizer's
     * runtime (TSan once swallowed a SIGHUP between the handler and libev's
     * wake-up pipe: 71_daemon test_sd_notify, about 1 run in 100). */
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
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
    boot_cfg = &cfg;
    main_argc = argc;
    main_argv = argv;
    rc_live_publish(&cfg);
    guard_init(&cfg);
    /* The handler-time clock, before the workers read it. */
    rc_tick_init(cfg.clock_source == RC_CLOCK_AUTO);
    int rc = server_init(&srv, &cfg, cfg.echo ? &echo_handler : &lua_handler);
    if (rc < 0) {
        rc_config_free(&cfg); /* the one-line error is out; nothing else to say */
        return 1;
    }
    if (server_start(&srv) < 0) {
        rc_error("cannot start workers");
        return 1;
    }
    rc_info("roomcast started: %d worker%s, %s", srv.nworkers, srv.nworkers == 1 ? "" : "s",
            cfg.echo ? "echo mode" : cfg.script);
    if (!cfg.echo)
        rc_info("Lua runtime: %s", cfg.lua_dir);
    if (admin_start(loop, &srv, &cfg) < 0 && cfg.set[RC_OPT_ID_admin]) {
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
    rc_live_shutdown();
    rc_info("stopped");
    if (cfg.pidfile) {
        unlink(cfg.pidfile);
        close(pid_fd);
    }
    rc_config_free(&cfg);
    return 0;
}
