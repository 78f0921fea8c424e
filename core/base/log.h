/* log.h - leveled, line-oriented logging.
 *
 * One line per event: "2026-11-28T00:00:00.123Z LEVEL [wN] message". Writes
 * go to stderr or to the file set with rc_log_open(); rc_log_reopen() is
 * what SIGUSR1 calls after logrotate moved the file. Thread-safe: each line
 * is one write(2).
 */
#ifndef RC_BASE_LOG_H
#define RC_BASE_LOG_H

#include <stdint.h>

#include "defs.h"

enum rc_log_level { RC_LOG_DEBUG = 0, RC_LOG_INFO, RC_LOG_WARN, RC_LOG_ERROR };

void rc_log_set_level(enum rc_log_level lvl);
enum rc_log_level rc_log_get_level(void);
/* path NULL or "-" or "stderr": log to stderr. Returns 0 or -errno. */
int rc_log_open(const char *path);
/* Reopen the current file (after rotation). Returns 0 or -errno. */
int rc_log_reopen(void);
/* The worker id printed in each line of this thread; -1 for the main thread. */
void rc_log_set_thread_tag(int worker_id);

void rc_log(enum rc_log_level lvl, const char *fmt, ...) RC_PRINTF(2, 3);

/* Rate-limited logging: at most `burst` lines per second per call site
 * (the site keeps a static state); suppressed lines are counted and reported
 * with the next line that passes. */
struct rc_ratelimit {
    int64_t window;
    int count;
    int suppressed;
};
void rc_log_limited(struct rc_ratelimit *rl, int burst, enum rc_log_level lvl, const char *fmt, ...)
    RC_PRINTF(4, 5);

#define rc_debug(...)                                                                              \
    do {                                                                                           \
        if (rc_log_get_level() <= RC_LOG_DEBUG)                                                    \
            rc_log(RC_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define rc_info(...) rc_log(RC_LOG_INFO, __VA_ARGS__)
#define rc_warn(...) rc_log(RC_LOG_WARN, __VA_ARGS__)
#define rc_error(...) rc_log(RC_LOG_ERROR, __VA_ARGS__)

#endif
