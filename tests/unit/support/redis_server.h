/* redis_server.h - a redis-server of a test's (or a bench's) own: on
 * 127.0.0.1, a free port, its own temp dir, no persistence (--save ""
 * --appendonly no), stdout/stderr to /dev/null, killed with its parent
 * (PR_SET_PDEATHSIG). Used by test_bus_redis and tests/bench/busbench. */
#ifndef RC_TEST_REDIS_SERVER_H
#define RC_TEST_REDIS_SERVER_H

#include <sys/types.h>

struct redis_server {
    int port;
    pid_t pid; /* 0: not running (or reaped by the caller, who then sets 0) */
    char dir[64];
};

/* Picks a free port and makes the dir /tmp/<prefix>-XXXXXX; starts nothing.
 * 0, or -1 when the dir cannot be made. */
int redis_server_init(struct redis_server *rs, const char *prefix);

/* Starts redis-server on rs->port with rs->dir (again after a kill or a
 * SHUTDOWN: a dump.rdb in the dir is loaded) and waits until it answers PING,
 * 4 s at most. 0, or -1: it never answered (the child is killed then). */
int redis_server_start(struct redis_server *rs);

/* SIGKILL and reap; nothing when it is not running. */
void redis_server_kill(struct redis_server *rs);

/* redis_server_kill, then removes the dir. 0, or -1 when rm failed. */
int redis_server_destroy(struct redis_server *rs);

#endif
