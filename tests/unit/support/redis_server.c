#include "redis_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

int redis_server_init(struct redis_server *rs, const char *prefix)
{
    rs->pid = 0;
    snprintf(rs->dir, sizeof(rs->dir), "/tmp/%s-XXXXXX", prefix);
    if (mkdtemp(rs->dir) == NULL)
        return -1;
    rs->port = free_port();
    return 0;
}

/* 1 when the server answers PING with +PONG (not -LOADING while it reads
 * its dump back). */
static int answers(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return 0;
    }
    struct timeval rw = {10, 0}; /* never blocks for good on a stuck server */
    redisSetTimeout(c, rw);
    redisReply *r = redisCommand(c, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

int redis_server_start(struct redis_server *rs)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", rs->port);
    rs->pid = fork();
    if (rs->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", rs->dir, "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    if (rs->pid < 0) {
        rs->pid = 0;
        return -1;
    }
    for (int i = 0; i < 200; i++) {
        if (answers(rs->port))
            return 0;
        usleep(20000);
    }
    redis_server_kill(rs);
    return -1;
}

void redis_server_kill(struct redis_server *rs)
{
    if (rs->pid <= 0)
        return;
    kill(rs->pid, SIGKILL);
    waitpid(rs->pid, NULL, 0);
    rs->pid = 0;
}

int redis_server_destroy(struct redis_server *rs)
{
    redis_server_kill(rs);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", rs->dir);
    return system(cmd) == 0 ? 0 : -1;
}
