#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static atomic_int cur_level = RC_LOG_INFO;
static atomic_int log_fd = 2;
static char log_path[4096];
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int thread_tag = -1;

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void rc_log_set_level(enum rc_log_level lvl)
{
    atomic_store(&cur_level, (int)lvl);
}

enum rc_log_level rc_log_get_level(void)
{
    return (enum rc_log_level)atomic_load_explicit(&cur_level, memory_order_relaxed);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1)
        return -errno;
    return fd;
}

int rc_log_open(const char *path)
{
    pthread_mutex_lock(&reopen_lock);
    int rc = 0;
    if (path == NULL || strcmp(path, "-") == 0 || strcmp(path, "stderr") == 0) {
        log_path[0] = '\0';
        int old = atomic_exchange(&log_fd, 2);
        if (old > 2)
            close(old);
    } else {
        int fd = open_path(path);
        if (fd < 0) {
            rc = fd;
        } else {
            snprintf(log_path, sizeof(log_path), "%s", path);
            int old = atomic_exchange(&log_fd, fd);
            if (old > 2)
                close(old);
        }
    }
    pthread_mutex_unlock(&reopen_lock);
    return rc;
}

int rc_log_reopen(void)
{
    pthread_mutex_lock(&reopen_lock);
    int rc = 0;
    if (log_path[0]) {
        int fd = open_path(log_path);
        if (fd < 0) {
            rc = fd;
        } else {
            int old = atomic_exchange(&log_fd, fd);
            if (old > 2)
                close(old);
        }
    }
    pthread_mutex_unlock(&reopen_lock);
    return rc;
}

void rc_log_set_thread_tag(int worker_id)
{
    thread_tag = worker_id;
}

static void vlog(enum rc_log_level lvl, const char *suffix, const char *fmt, va_list ap)
    RC_PRINTF(3, 0);
static void vlog(enum rc_log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L, level_names[lvl]);
    if (thread_tag >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[w%d] ", thread_tag);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[main] ");
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n >= sizeof(line) - 64)
        n = (int)sizeof(line) - 64;
    if (suffix)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s", suffix);
    line[n++] = '\n';
    ssize_t w = write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, (size_t)n);
    (void)w;
}

void rc_log(enum rc_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load_explicit(&cur_level, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, NULL, fmt, ap);
    va_end(ap);
}

void rc_log_limited(struct rc_ratelimit *rl, int burst, enum rc_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load_explicit(&cur_level, memory_order_relaxed))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (rl->window != (int64_t)ts.tv_sec) {
        rl->window = (int64_t)ts.tv_sec;
        rl->count = 0;
    }
    if (rl->count >= burst) {
        rl->suppressed++;
        return;
    }
    rl->count++;
    char suffix[64] = "";
    if (rl->suppressed) {
        snprintf(suffix, sizeof(suffix), " (%d similar lines suppressed)", rl->suppressed);
        rl->suppressed = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, suffix[0] ? suffix : NULL, fmt, ap);
    va_end(ap);
}
