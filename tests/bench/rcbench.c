/* rcbench.c - WebSocket load generator for roomcast and its peer servers.
 *
 * One epoll loop per thread (-t), each owning a slice of the connections.
 * Connects are non-blocking and batched (at most -b in flight per thread);
 * every socket binds its own source address in 127.0.0.0/8 (127.0.0.2, .3,
 * ...) so that more than one ephemeral port range is available. Only
 * loopback targets are accepted.
 *
 * Phases, driven by the main thread through g_phase:
 *
 *   CONNECT --all open--> SETTLE --> RUN [warm-up | measure] --> DRAIN --> STOP
 *
 * Every run is bounded: the connect phase by --connect-timeout, the run by
 * -d seconds and -n messages, the drain by --drain (2 s). A progress line goes
 * to stderr each second; the summary goes to stdout (a table, or JSON with
 * --json).
 *
 * Payload: the first 16 bytes of every message are the send time
 * (CLOCK_MONOTONIC ns) in lowercase hex, the rest is 'x' (or, with
 * --payload json, chat-like JSON text that compresses about as well as real
 * traffic), so the same bytes are valid as text and as binary and every
 * receiver can compute latency.
 *
 * --deflate offers permessage-deflate (RFC 7692). On a connection that
 * negotiated it, messages are sent compressed (a fresh window each, RSV1),
 * and of a compressed message received only the first 16 bytes are inflated
 * (the timestamp): the client spends little, the server's work is whole.
 */
#include "hist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <dirent.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "handshake.h"
#include "ws_frame.h"

#define TS_LEN 16
#define MAX_EVENTS 512
#define SCRATCH (256 * 1024)
#define OUT_CAP_MAX (4u << 20) /* a publisher that cannot write this much skips */
#define SETTLE_NS 300000000ull
#define JSON_CORPUS (256 * 1024)
#define MAX_TARGETS 64 /* -p ports (cluster nodes), --server-pid pids */

enum scenario { SC_IDLE, SC_STORM, SC_ECHO, SC_FANOUT, SC_N2, SC_SLOW };
static const char *const sc_names[] = {"idle", "storm", "echo", "fanout", "n2", "slow"};

enum phase { PH_CONNECT, PH_SETTLE, PH_RUN, PH_DRAIN, PH_STOP };

enum cstate { C_NONE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct opts {
    enum scenario sc;
    struct sockaddr_in dst[MAX_TARGETS]; /* connection gid goes to dst[gid % ndst] */
    int ndst;
    const char *host;
    const char *path;
    int threads;
    int conns;
    int batch;
    double duration;
    double warmup;
    double connect_timeout;
    double drain;
    uint64_t count;
    size_t size;
    int depth;
    double rate;
    int text;
    int json;
    int quiet;
    int src_per_ip;
    pid_t server_pid; /* the first of server_pids */
    pid_t server_pids[MAX_TARGETS];
    int npids;
    pid_t redis_pid; /* --redis-pid: its CPU over the measure window */
    int redis_port;  /* --redis-port: INFO commandstats over the window */
    const char *label;
    int deflate;      /* --deflate: offer permessage-deflate */
    int json_payload; /* --payload json */
    int lockstep;     /* --lockstep K: fanout publishes K at a time, closed loop */
};

/* One client connection. Owned by its thread's conns array. */
struct conn {
    int fd;
    uint8_t state;
    uint8_t reading;   /* 0: the slow member, EPOLLIN dropped */
    uint8_t out_armed; /* EPOLLOUT registered */
    uint8_t dirty;     /* in the thread's dirty list */
    uint8_t hs_done;
    uint8_t pmd; /* permessage-deflate negotiated */
    /* the server keeps its context (no server_no_context_takeover in the
     * answer, e.g. node's ws): every message must be inflated whole, on a
     * stream of this connection's own */
    z_stream *zctx;
    uint8_t mask[4];
    uint32_t gid; /* global index */
    uint32_t inflight;
    uint64_t t_start;
    uint8_t *in; /* partial frame or head carried over reads */
    size_t in_len, in_cap;
    uint8_t *out; /* bytes not yet written */
    size_t out_off, out_len, out_cap;
};

/* Counters a thread publishes for the main thread (relaxed atomics). */
struct tstats {
    _Atomic uint64_t opened, failed, closed;
    _Atomic uint64_t sent, recv;     /* all bench messages */
    _Atomic uint64_t sent_m, recv_m; /* those sent inside the measure window */
    _Atomic uint64_t skipped;        /* open-loop sends lost to backpressure */
    _Atomic uint64_t inflight;
    _Atomic uint64_t last_open_ns;
    _Atomic uint64_t rbytes_m; /* bytes read inside the measure window */
    _Atomic uint64_t pmd;      /* connections that negotiated permessage-deflate */
    _Atomic int done;
};

struct thread {
    pthread_t tid;
    int idx;
    int ep;
    int first, n; /* global ids [first, first+n) */
    int next;     /* next local index to connect */
    int pending;  /* connects + handshakes in flight */
    struct conn *c;
    int *dirty;
    int ndirty;
    uint8_t *scratch;
    uint64_t budget;   /* messages this thread may send */
    uint64_t inflight; /* echoes sent and not yet back */
    uint64_t sent_total;
    uint64_t paced; /* open-loop messages already due */
    int rr;         /* n2 round robin */
    uint32_t rng;
    struct hist lat;  /* message latency, ns */
    struct hist conn; /* connect -> 101, ns */
    struct tstats st;
    z_stream def, inf; /* --deflate: reset for every message (no context takeover) */
    uint8_t *zbuf;     /* compressed output, deflateBound of the largest message */
    uint8_t *ibuf;     /* 64 KiB: inflated output, discarded (context takeover) */
    uint8_t *json;     /* --payload json: JSON_CORPUS bytes, messages are slices */
    size_t zcap;
};

static struct opts o;
static struct thread *g_thr;
static _Atomic int g_phase = PH_CONNECT;
static _Atomic uint64_t g_run_start, g_measure_start, g_measure_end = UINT64_MAX;
static char g_request[2048]; /* room for a token in the path (RS256: ~500 bytes) */
static size_t g_request_len;
static char g_accept[WS_ACCEPT_LEN + 1];
static volatile sig_atomic_t g_interrupted;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rcbench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- server process sampling ------------------------------------------- */

struct psample {
    double cpu_s; /* utime + stime */
    long rss_kb;  /* VmRSS */
};

static int proc_sample(pid_t pid, struct psample *ps)
{
    char path[64], buf[4096];
    ps->cpu_s = -1;
    ps->rss_kb = -1;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* comm may hold spaces: fields count from the last ')'. utime and
     * stime are fields 14 and 15 (proc(5)), i.e. 12th and 13th after ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    ps->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -errno;
    while (fgets(buf, sizeof(buf), f)) {
        if (strncmp(buf, "VmRSS:", 6) == 0) {
            ps->rss_kb = strtol(buf + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return 0;
}

/* Sums CPU and RSS over every --server-pid (the nodes of a cluster). */
static int servers_sample(struct psample *ps)
{
    ps->cpu_s = -1;
    ps->rss_kb = -1;
    if (o.npids == 0)
        return -1;
    double cpu = 0;
    long rss = 0;
    for (int i = 0; i < o.npids; i++) {
        struct psample one;
        if (proc_sample(o.server_pids[i], &one) != 0)
            return -1;
        cpu += one.cpu_s;
        rss += one.rss_kb;
    }
    ps->cpu_s = cpu;
    ps->rss_kb = rss;
    return 0;
}

/* ---- the measure window's CPU accounting --------------------------------
 *
 * Server CPU: /proc/P/stat's utime + stime come in clock ticks (10 ms), each
 * rounded down on its own, so a 2 s window at 100 % reads 1.96 to 2.04 s: a
 * 2 % spread from the counter alone, as large as the effects goal 4 weighs.
 * The process's CPU clock (clock_getcpuclockid: the scheduler's ns count of
 * every thread, the exited ones included, the same sum that stat's ticks
 * are cut from) has no such step; the sum of /proc/P/task/T/schedstat's
 * first field (live threads only) is recorded beside it as a cross-check.
 *
 * Steal: the hypervisor's time taken from each CPU (/proc/stat's 8th
 * column, in ticks), over the same window, on the CPUs the server may run
 * on (its affinity: CPU 0 when pinned, every CPU when not) and on the ones
 * rcbench may run on. Stolen time is neither the server's CPU nor time it
 * could have had: a run with steal is not the same experiment. Beside it,
 * the time the server's CPUs were busy with neither the server nor rcbench:
 * the load it shared them with. Interrupts count as busy: without
 * IRQ_TIME_ACCOUNTING (Debian's kernels, this VM's) the softirq work done
 * in a process's context, loopback TCP included, is that process's CPU time
 * and the CPU's irq/softirq columns alike; with it, interrupts are nobody's
 * time and show here as others. */
#define MAX_CPUS 256

struct wsample {
    double cpu_clock_s;                 /* process CPU clocks, summed; -1: unreadable */
    double cpu_sched_s;                 /* task schedstat sums; -1: unreadable */
    int threads;                        /* tasks seen in /proc/P/task */
    int ncpu;                           /* cpuN lines read from /proc/stat; 0: unreadable */
    unsigned long long steal[MAX_CPUS]; /* per CPU, in clock ticks */
    unsigned long long busy[MAX_CPUS];  /* user+nice+system+irq+softirq, ticks */
};

static double pid_cpu_clock(pid_t pid)
{
    clockid_t c;
    struct timespec ts;
    if (clock_getcpuclockid(pid, &c) != 0 || clock_gettime(c, &ts) != 0)
        return -1;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sum of the first field of /proc/PID/task/ASTERISK/schedstat (ns on CPU). */
static double pid_sched_sum(pid_t pid, int *threads)
{
    char path[300];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    unsigned long long sum = 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.32s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread has just exited */
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += ns;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    *threads += n;
    return n ? (double)sum / 1e9 : -1;
}

static void steal_read(struct wsample *w)
{
    char line[512];
    w->ncpu = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned cpu;
        unsigned long long v[8];
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
            continue;
        /* cpuN user nice system idle iowait irq softirq steal ... (proc(5)) */
        if (sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 ||
            cpu >= MAX_CPUS)
            continue;
        w->steal[cpu] = v[7];
        w->busy[cpu] = v[0] + v[1] + v[2] + v[5] + v[6];
        if ((int)cpu + 1 > w->ncpu)
            w->ncpu = (int)cpu + 1;
    }
    fclose(f);
}

static void window_sample(struct wsample *w)
{
    w->cpu_clock_s = w->cpu_sched_s = o.npids ? 0 : -1;
    w->threads = 0;
    for (int i = 0; i < o.npids; i++) {
        double c = pid_cpu_clock(o.server_pids[i]);
        double t = pid_sched_sum(o.server_pids[i], &w->threads);
        w->cpu_clock_s = c < 0 || w->cpu_clock_s < 0 ? -1 : w->cpu_clock_s + c;
        w->cpu_sched_s = t < 0 || w->cpu_sched_s < 0 ? -1 : w->cpu_sched_s + t;
    }
    steal_read(w);
}

/* The CPUs the servers may run on (the union of their affinities; every
 * online CPU when none could be read) and the ones rcbench may run on. */
static void window_cpus(cpu_set_t *server, cpu_set_t *client)
{
    CPU_ZERO(server);
    for (int i = 0; i < o.npids; i++) {
        cpu_set_t one;
        if (sched_getaffinity(o.server_pids[i], sizeof(one), &one) == 0)
            CPU_OR(server, server, &one);
    }
    if (CPU_COUNT(server) == 0)
        for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < MAX_CPUS; c++)
            CPU_SET((int)c, server);
    if (sched_getaffinity(0, sizeof(*client), client) != 0) {
        CPU_ZERO(client);
        for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < MAX_CPUS; c++)
            CPU_SET((int)c, client);
    }
}

/* Busy seconds (neither idle nor stolen) on the CPUs of set between a and b;
 * -1 when /proc/stat could not be read. */
static double busy_s(const struct wsample *a, const struct wsample *b, const cpu_set_t *set)
{
    unsigned long long ticks = 0;
    if (a->ncpu == 0 || b->ncpu == 0)
        return -1;
    for (int c = 0; c < a->ncpu && c < b->ncpu; c++)
        if (CPU_ISSET(c, set))
            ticks += b->busy[c] >= a->busy[c] ? b->busy[c] - a->busy[c] : 0;
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* Stolen seconds on the CPUs of set between a and b, and their names
 * ("0", "0,1") in names; -1 when /proc/stat could not be read. */
static double steal_s(const struct wsample *a, const struct wsample *b, const cpu_set_t *set,
                      char *names, size_t cap)
{
    unsigned long long ticks = 0;
    size_t used = 0;
    names[0] = 0;
    if (a->ncpu == 0 || b->ncpu == 0)
        return -1;
    for (int c = 0; c < a->ncpu && c < b->ncpu; c++) {
        if (!CPU_ISSET(c, set))
            continue;
        ticks += b->steal[c] >= a->steal[c] ? b->steal[c] - a->steal[c] : 0;
        int n = snprintf(names + used, cap - used, "%s%d", used ? "," : "", c);
        if (n > 0 && (size_t)n < cap - used)
            used += (size_t)n;
    }
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* The calls of every command redis-server has run (INFO commandstats,
 * cmdstat_*:calls=N summed; INFO itself left out, as it is ours), or -1. */
static long long redis_calls(void)
{
    if (o.redis_port <= 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.redis_port)};
    a.sin_addr.s_addr = htonl(0x7f000001u);
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
    static char buf[256 * 1024];
    size_t n = 0;
    long long total = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        write(fd, cmd, sizeof(cmd) - 1) != (ssize_t)(sizeof(cmd) - 1))
        goto out;
    /* A bulk string: $LEN\r\nBODY\r\n */
    size_t want = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            goto out;
        n += (size_t)r;
        buf[n] = 0;
        char *eol = strstr(buf, "\r\n");
        if (!want && eol) {
            if (buf[0] != '$')
                goto out;
            want = (size_t)(eol - buf) + 2 + strtoull(buf + 1, NULL, 10) + 2;
            if (want > sizeof(buf) - 1)
                goto out;
        }
        if (want && n >= want)
            break;
    }
    total = 0;
    for (char *l = strstr(buf, "cmdstat_"); l; l = strstr(l + 1, "cmdstat_")) {
        if (strncmp(l, "cmdstat_info:", 13) == 0)
            continue;
        char *c = strstr(l, ":calls=");
        if (c)
            total += strtoll(c + 7, NULL, 10);
    }
out:
    close(fd);
    return total;
}

/* ---- payload and frames -------------------------------------------------- */

static const char hexd[] = "0123456789abcdef";

static void put_ts(uint8_t *p, uint64_t t)
{
    for (int i = TS_LEN - 1; i >= 0; i--) {
        p[i] = (uint8_t)hexd[t & 15];
        t >>= 4;
    }
}

/* Returns the timestamp in p[0..16), or 0 when p is not a bench payload. */
static uint64_t get_ts(const uint8_t *p, size_t n)
{
    if (n < TS_LEN)
        return 0;
    uint64_t t = 0;
    for (int i = 0; i < TS_LEN; i++) {
        unsigned c = p[i], d;
        if (c - '0' < 10)
            d = c - '0';
        else if (c - 'a' < 6)
            d = c - 'a' + 10;
        else
            return 0;
        t = t << 4 | d;
    }
    return t;
}

static int out_reserve(struct conn *c, size_t add)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + add <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + add <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 2048;
    while (cap < c->out_len + add)
        cap *= 2;
    if (cap > OUT_CAP_MAX)
        return -1;
    uint8_t *n = realloc(c->out, cap);
    if (!n)
        return -1;
    c->out = n;
    c->out_cap = cap;
    return 0;
}

static void mark_dirty(struct thread *t, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        t->dirty[t->ndirty++] = (int)(c - t->c);
    }
}

/* Queues one masked frame (RFC 6455 §5.3: every client frame is masked). */
static int queue_frame(struct thread *t, struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
    if (out_reserve(c, n + WS_MAX_HEADER) != 0)
        return -1;
    uint8_t *w = c->out + c->out_len;
    size_t h = ws_frame_encode_header(w, 1, 0, op, n, c->mask);
    memcpy(w + h, p, n);
    ws_mask(w + h, n, c->mask, 0);
    c->out_len += h + n;
    mark_dirty(t, c);
    return 0;
}

/* Queues one compressed message: raw deflate with a fresh window, sync
 * flush, the 00 00 ff ff tail removed (RFC 7692 §7.2.1), RSV1 set. */
static int queue_deflated(struct thread *t, struct conn *c, unsigned op, const uint8_t *p, size_t n)
{
    deflateReset(&t->def);
    t->def.next_in = (Bytef *)p;
    t->def.avail_in = (uInt)n;
    t->def.next_out = t->zbuf;
    t->def.avail_out = (uInt)t->zcap;
    if (deflate(&t->def, Z_SYNC_FLUSH) != Z_OK || t->def.avail_in != 0)
        return -1;
    size_t zl = t->zcap - t->def.avail_out - 4;
    if (out_reserve(c, zl + WS_MAX_HEADER) != 0)
        return -1;
    uint8_t *w = c->out + c->out_len;
    size_t h = ws_frame_encode_header(w, 1, WS_RSV1, op, zl, c->mask);
    memcpy(w + h, t->zbuf, zl);
    ws_mask(w + h, zl, c->mask, 0);
    c->out_len += h + zl;
    mark_dirty(t, c);
    return 0;
}

static int queue_msg(struct thread *t, struct conn *c, uint64_t ts)
{
    put_ts(t->scratch, ts);
    if (t->json) {
        /* Each message a different slice of the JSON corpus: alike in
         * vocabulary, as chat messages are, but never a repeat (a server
         * keeping its compression context would otherwise send a few bytes). */
        size_t span = JSON_CORPUS - (o.size - TS_LEN);
        size_t off = (size_t)((t->sent_total * 1031u) % span);
        memcpy(t->scratch + TS_LEN, t->json + off, o.size - TS_LEN);
    }
    unsigned op = o.text ? WS_OP_TEXT : WS_OP_BINARY;
    if (c->pmd)
        return queue_deflated(t, c, op, t->scratch, o.size);
    return queue_frame(t, c, op, t->scratch, o.size);
}

/* Queues one bench message stamped `now` and counts it. Returns 0, or -1
 * when the connection's output is full (counted as skipped). */
static int send_one(struct thread *t, struct conn *c, uint64_t now)
{
    if (c->state != C_OPEN)
        return -1;
    if (queue_msg(t, c, now) != 0) {
        atomic_fetch_add_explicit(&t->st.skipped, 1, memory_order_relaxed);
        return -1;
    }
    t->sent_total++;
    atomic_store_explicit(&t->st.sent, t->sent_total, memory_order_relaxed);
    if (now >= atomic_load_explicit(&g_measure_start, memory_order_relaxed) &&
        now < atomic_load_explicit(&g_measure_end, memory_order_relaxed))
        atomic_store_explicit(&t->st.sent_m,
                              atomic_load_explicit(&t->st.sent_m, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    return 0;
}

static void ep_mod(struct thread *t, struct conn *c)
{
    struct epoll_event ev = {.data.u32 = (uint32_t)(c - t->c)};
    ev.events = (c->reading ? EPOLLIN : 0) | (c->out_armed ? EPOLLOUT : 0);
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct thread *t, struct conn *c, int failed)
{
    if (c->state == C_CLOSED || c->state == C_NONE)
        return;
    (void)failed;
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        /* Never opened: a failure whatever the reason. */
        t->pending--;
        atomic_fetch_add_explicit(&t->st.failed, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&t->st.closed, 1, memory_order_relaxed);
        t->inflight -= c->inflight;
    }
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    if (c->zctx) {
        inflateEnd(c->zctx);
        free(c->zctx);
        c->zctx = NULL;
    }
    c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
}

static void flush(struct thread *t, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && errno == EAGAIN) {
            if (!c->out_armed) {
                c->out_armed = 1;
                ep_mod(t, c);
            }
            return;
        }
        conn_close(t, c, 0);
        return;
    }
    c->out_off = c->out_len = 0;
    if (c->out_armed) {
        c->out_armed = 0;
        ep_mod(t, c);
    }
}

/* ---- connection setup ---------------------------------------------------- */

static int start_connect(struct thread *t, struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Many source addresses, many port ranges: the kernel picks the port at
     * connect() time per 4-tuple when bind() is told not to. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (o.sc == SC_SLOW && c->gid == (uint32_t)o.conns - 1) {
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + c->gid / (uint32_t)o.src_per_ip);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->t_start = now_ns();
    if (connect(fd, (struct sockaddr *)&o.dst[c->gid % (uint32_t)o.ndst], sizeof(o.dst[0])) == -1 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->reading = 1;
    c->out_armed = 1;
    uint32_t r = xorshift(&t->rng);
    memcpy(c->mask, &r, 4);
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)(c - t->c)};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
    t->pending++;
    return 0;
}

static void connect_more(struct thread *t)
{
    while (t->next < t->n && t->pending < o.batch) {
        struct conn *c = &t->c[t->next++];
        int rc = start_connect(t, c);
        if (rc < 0) {
            c->state = C_CLOSED;
            atomic_fetch_add_explicit(&t->st.failed, 1, memory_order_relaxed);
            if (!o.quiet && atomic_load(&t->st.failed) <= 3)
                fprintf(stderr, "rcbench: connect: %s\n", strerror(-rc));
        }
    }
}

static void on_connected(struct thread *t, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        if (!o.quiet && atomic_load(&t->st.failed) < 3)
            fprintf(stderr, "rcbench: connect: %s\n", strerror(err));
        conn_close(t, c, 1);
        return;
    }
    c->state = C_HANDSHAKE;
    c->out_armed = 0;
    ep_mod(t, c);
    if (out_reserve(c, g_request_len) != 0) {
        conn_close(t, c, 1);
        return;
    }
    memcpy(c->out + c->out_len, g_request, g_request_len);
    c->out_len += g_request_len;
    flush(t, c);
}

/* ---- receiving ----------------------------------------------------------- */

static void on_message(struct thread *t, struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    uint64_t ts = get_ts(p, n);
    if (ts == 0)
        return; /* not ours (a greeting from a script, say) */
    atomic_store_explicit(&t->st.recv, atomic_load_explicit(&t->st.recv, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    uint64_t ms = atomic_load_explicit(&g_measure_start, memory_order_relaxed);
    uint64_t me = atomic_load_explicit(&g_measure_end, memory_order_relaxed);
    if (ts >= ms && ts < me) {
        hist_record(&t->lat, now - ts);
        atomic_store_explicit(&t->st.recv_m,
                              atomic_load_explicit(&t->st.recv_m, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    if (o.sc != SC_ECHO)
        return;
    if (c->inflight > 0) {
        c->inflight--;
        t->inflight--;
    }
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_RUN ||
        t->sent_total >= t->budget)
        return;
    if (send_one(t, c, now_ns()) == 0) {
        c->inflight++;
        t->inflight++;
    }
}

/* Parses whole frames in b[0..n); returns bytes consumed or -1 to close. */
static ssize_t parse_frames(struct thread *t, struct conn *c, uint8_t *b, size_t n, uint64_t now)
{
    size_t pos = 0;
    while (pos < n) {
        struct ws_frame_hdr h;
        ssize_t hl = ws_frame_decode_header(b + pos, n - pos, &h);
        if (hl == RC_NEED_MORE)
            break;
        if (hl < 0 || h.masked) /* RFC 6455 §5.1: server frames are never masked */
            return -1;
        if (h.len > n - pos - (size_t)hl)
            break;
        uint8_t *p = b + pos + hl;
        switch (h.opcode) {
        case WS_OP_TEXT:
        case WS_OP_BINARY:
        case WS_OP_CONT:
            if (h.opcode != WS_OP_CONT && (h.rsv & WS_RSV1) && c->zctx) {
                /* Context takeover: inflate all of it to keep the window. */
                static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
                uint8_t ts[TS_LEN];
                size_t got = 0;
                for (int phase = 0; phase < 2; phase++) {
                    c->zctx->next_in = phase ? (Bytef *)tail : p;
                    c->zctx->avail_in = phase ? 4 : (uInt)h.len;
                    do {
                        c->zctx->next_out = t->ibuf;
                        c->zctx->avail_out = 65536;
                        int z = inflate(c->zctx, Z_SYNC_FLUSH);
                        size_t made = 65536 - c->zctx->avail_out;
                        if (got < TS_LEN && made > 0)
                            memcpy(ts + got, t->ibuf, made < TS_LEN - got ? made : TS_LEN - got);
                        got += made;
                        if (z != Z_OK && z != Z_BUF_ERROR)
                            return -1;
                    } while (c->zctx->avail_out == 0);
                }
                on_message(t, c, ts, got < TS_LEN ? got : TS_LEN, now);
            } else if (h.opcode != WS_OP_CONT && (h.rsv & WS_RSV1) && c->pmd) {
                /* Only the timestamp is needed: inflate 16 bytes. */
                uint8_t ts[TS_LEN];
                static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
                inflateReset(&t->inf);
                t->inf.next_in = p;
                t->inf.avail_in = (uInt)h.len;
                t->inf.next_out = ts;
                t->inf.avail_out = TS_LEN;
                int z = inflate(&t->inf, Z_SYNC_FLUSH);
                if (t->inf.avail_out > 0 && (z == Z_OK || z == Z_BUF_ERROR)) {
                    t->inf.next_in = (Bytef *)tail;
                    t->inf.avail_in = 4;
                    inflate(&t->inf, Z_SYNC_FLUSH);
                }
                on_message(t, c, ts, TS_LEN - t->inf.avail_out, now);
            } else if (h.opcode != WS_OP_CONT) {
                on_message(t, c, p, (size_t)h.len, now);
            }
            break;
        case WS_OP_PING: /* §5.5.3: answer with the same application data */
            queue_frame(t, c, WS_OP_PONG, p, (size_t)h.len);
            break;
        case WS_OP_CLOSE:
            queue_frame(t, c, WS_OP_CLOSE, p, h.len >= 2 ? 2 : 0);
            flush(t, c);
            return -1;
        default:
            break;
        }
        pos += (size_t)hl + (size_t)h.len;
    }
    return (ssize_t)pos;
}

/* Handles the 101 response in b[0..n); returns head length, 0 if incomplete,
 * -1 if refused. */
static ssize_t parse_head(struct thread *t, struct conn *c, const uint8_t *b, size_t n,
                          uint64_t now)
{
    const uint8_t *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        return n > 8192 ? -1 : 0;
    size_t hl = (size_t)(end - b) + 4;
    if (n < 12 || memcmp(b, "HTTP/1.1 101", 12) != 0 || !memmem(b, hl, g_accept, WS_ACCEPT_LEN)) {
        if (!o.quiet && atomic_load(&t->st.failed) < 3)
            fprintf(stderr, "rcbench: upgrade refused: %.*s\n", (int)(n < 60 ? n : 60), b);
        return -1;
    }
    c->state = C_OPEN;
    t->pending--;
    if (o.deflate && memmem(b, hl, "permessage-deflate", 18)) {
        c->pmd = 1;
        if (!memmem(b, hl, "server_no_context_takeover", 26)) {
            c->zctx = calloc(1, sizeof(*c->zctx));
            if (c->zctx == NULL || inflateInit2(c->zctx, -15) != Z_OK)
                return -1;
        }
        atomic_fetch_add_explicit(&t->st.pmd, 1, memory_order_relaxed);
    }
    hist_record(&t->conn, now - c->t_start);
    atomic_fetch_add_explicit(&t->st.opened, 1, memory_order_relaxed);
    atomic_store_explicit(&t->st.last_open_ns, now, memory_order_relaxed);
    return (ssize_t)hl;
}

static int consume(struct thread *t, struct conn *c, uint8_t *b, size_t n, uint64_t now)
{
    size_t pos = 0;
    if (c->state == C_HANDSHAKE) {
        ssize_t hl = parse_head(t, c, b, n, now);
        if (hl < 0)
            return -1;
        if (hl == 0) {
            pos = n; /* keep everything */
            goto keep_all;
        }
        pos = (size_t)hl;
    }
    ssize_t used = parse_frames(t, c, b + pos, n - pos, now);
    if (used < 0)
        return -1;
    pos += (size_t)used;
    if (pos == n) {
        c->in_len = 0;
        return 0;
    }
    if (b == c->in) {
        memmove(c->in, c->in + pos, n - pos);
        c->in_len = n - pos;
        return 0;
    }
    n -= pos;
    b += pos;
    pos = 0;
keep_all:
    if (b == c->in) {
        c->in_len = n;
        return 0;
    }
    if (n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < n)
            cap *= 2;
        uint8_t *m = realloc(c->in, cap);
        if (!m)
            return -1;
        c->in = m;
        c->in_cap = cap;
    }
    memcpy(c->in, b, n);
    c->in_len = n;
    return 0;
}

static void on_readable(struct thread *t, struct conn *c, uint64_t now)
{
    for (int rounds = 0; rounds < 4 && c->state >= C_HANDSHAKE && c->state != C_CLOSED; rounds++) {
        uint8_t *b;
        size_t room;
        if (c->in_len > 0) {
            if (c->in_cap - c->in_len < 16384) {
                size_t cap = c->in_cap * 2 > c->in_len + 65536 ? c->in_cap * 2 : c->in_len + 65536;
                uint8_t *m = realloc(c->in, cap);
                if (!m) {
                    conn_close(t, c, 0);
                    return;
                }
                c->in = m;
                c->in_cap = cap;
            }
            b = c->in;
            room = c->in_cap - c->in_len;
        } else {
            b = t->scratch + 65536; /* [0, 64K) is the send template */
            room = SCRATCH - 65536;
        }
        ssize_t r = recv(c->fd, b + (b == c->in ? c->in_len : 0), room, 0);
        if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
            conn_close(t, c, c->state == C_HANDSHAKE);
            return;
        }
        if (r == -1)
            return;
        if (now >= atomic_load_explicit(&g_measure_start, memory_order_relaxed) &&
            now < atomic_load_explicit(&g_measure_end, memory_order_relaxed))
            atomic_store_explicit(&t->st.rbytes_m,
                                  atomic_load_explicit(&t->st.rbytes_m, memory_order_relaxed) +
                                      (uint64_t)r,
                                  memory_order_relaxed);
        size_t n = (size_t)r + (b == c->in ? c->in_len : 0);
        if (consume(t, c, b, n, now) != 0) {
            conn_close(t, c, c->state == C_HANDSHAKE);
            return;
        }
        if ((size_t)r < room)
            return;
    }
}

/* ---- sending (open loop) ------------------------------------------------- */

/* --lockstep K (fanout): the publisher queues K publishes at once (one
 * write) once every member has received every publish sent before, so the
 * server sees the same reads, passes and writevs whatever the load and
 * however fast it runs (under valgrind, say). Closed loop: -r is ignored. */
static void lockstep(struct thread *t, uint64_t now)
{
    uint64_t recv = 0, members = 0;
    for (int i = 0; i < o.threads; i++) {
        struct tstats *st = &g_thr[i].st;
        recv += atomic_load_explicit(&st->recv, memory_order_relaxed);
        members += atomic_load_explicit(&st->opened, memory_order_relaxed) -
                   atomic_load_explicit(&st->closed, memory_order_relaxed);
    }
    if (recv < t->sent_total * members)
        return;
    for (int k = 0; k < o.lockstep && t->sent_total < t->budget; k++)
        if (send_one(t, &t->c[0], now) != 0)
            break;
}

/* Sends what the open-loop schedule says is due by now. */
static void pace(struct thread *t, uint64_t now)
{
    double rate; /* messages per second from this thread */
    if (o.lockstep) {
        if (t->idx == 0 && t->n > 0) /* gid 0 publishes */
            lockstep(t, now);
        return;
    }
    if (o.sc == SC_N2)
        rate = o.rate * t->n;
    else if ((o.sc == SC_FANOUT || o.sc == SC_SLOW) && t->idx == 0 && t->n > 0) /* gid 0 */
        rate = o.rate;
    else
        return;
    uint64_t start = atomic_load_explicit(&g_run_start, memory_order_relaxed);
    uint64_t due = (uint64_t)((double)(now - start) * 1e-9 * rate) + 1;
    if (due > t->budget)
        due = t->budget;
    /* Never burst more than 50 ms of schedule after a stall: open loop, but
     * the backlog is reported as skipped rather than dumped at once. */
    uint64_t burst = (uint64_t)(rate * 0.05) + 1;
    if (due > t->paced + burst) {
        atomic_fetch_add_explicit(&t->st.skipped, due - t->paced - burst, memory_order_relaxed);
        t->paced = due - burst;
    }
    while (t->paced < due) {
        t->paced++;
        struct conn *c;
        if (o.sc == SC_N2) {
            c = &t->c[t->rr];
            t->rr = (t->rr + 1) % t->n;
        } else {
            c = &t->c[0];
        }
        send_one(t, c, now);
    }
}

/* ---- thread -------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct thread *t = arg;
    struct epoll_event evs[MAX_EVENTS];
    int started_run = 0, stopped_reading = 0;
    for (;;) {
        int ph = atomic_load_explicit(&g_phase, memory_order_acquire);
        if (ph == PH_STOP || g_interrupted)
            break;
        if (ph == PH_CONNECT)
            connect_more(t);
        if (ph == PH_RUN && !started_run) {
            started_run = 1;
            if (o.sc == SC_ECHO) {
                uint64_t now = now_ns();
                for (int i = 0; i < t->n; i++) {
                    struct conn *c = &t->c[i];
                    for (int d = 0; d < o.depth && c->state == C_OPEN && t->sent_total < t->budget;
                         d++) {
                        if (send_one(t, c, now) == 0) {
                            c->inflight++;
                            t->inflight++;
                        }
                    }
                }
            }
        }
        if (ph == PH_RUN && o.sc == SC_SLOW && !stopped_reading) {
            stopped_reading = 1;
            struct conn *c = &t->c[t->n > 0 ? t->n - 1 : 0];
            if (t->n > 0 && c->gid == (uint32_t)o.conns - 1 && c->state == C_OPEN) {
                c->reading = 0;
                ep_mod(t, c);
            }
        }
        int timeout =
            (ph == PH_RUN && (o.sc == SC_FANOUT || o.sc == SC_SLOW || o.sc == SC_N2)) ? 1 : 20;
        int n = epoll_wait(t->ep, evs, MAX_EVENTS, timeout);
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = &t->c[evs[i].data.u32];
            uint32_t e = evs[i].events;
            if (c->state == C_CONNECTING) {
                on_connected(t, c);
                continue;
            }
            if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->reading)
                on_readable(t, c, now);
            else if ((e & (EPOLLERR | EPOLLHUP)) && !c->reading)
                conn_close(t, c, 0);
            if ((e & EPOLLOUT) && c->state != C_CLOSED)
                flush(t, c);
        }
        if (ph == PH_RUN && t->sent_total < t->budget)
            pace(t, now_ns());
        for (int i = 0; i < t->ndirty; i++) {
            struct conn *c = &t->c[t->dirty[i]];
            c->dirty = 0;
            if (c->state != C_CLOSED && !c->out_armed)
                flush(t, c);
        }
        t->ndirty = 0;
        atomic_store_explicit(&t->st.inflight, t->inflight, memory_order_relaxed);
        if (ph == PH_RUN && t->sent_total >= t->budget)
            atomic_store_explicit(&t->st.done, 1, memory_order_relaxed);
    }
    /* Best-effort close handshake (§5.5.1, 1000 normal closure), then close. */
    for (int i = 0; i < t->n; i++) {
        struct conn *c = &t->c[i];
        if (c->state == C_OPEN && c->reading) {
            static const uint8_t code[2] = {0x03, 0xe8};
            c->out_off = c->out_len = 0;
            if (queue_frame(t, c, WS_OP_CLOSE, code, 2) == 0)
                send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (c->state != C_CLOSED && c->state != C_NONE) {
            /* Abortive close: no TIME_WAIT left behind to exhaust the
             * ports of later runs. The close frame is already on the wire
             * (loopback transmits within send()). */
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(c->fd);
            c->state = C_CLOSED;
        }
        free(c->in);
        free(c->out);
    }
    return NULL;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: rcbench -S idle|storm|echo|fanout|n2|slow [options]\n"
            "  -h HOST        target (loopback only; default 127.0.0.1)\n"
            "  -p PORT[,PORT] target port(s) (required); with several (the nodes of a\n"
            "                 cluster) connection i goes to the (i mod count)th: members\n"
            "                 spread over them, the fanout publisher on the first\n"
            "  -P PATH        request path (default /ws)\n"
            "  -t N           threads (default 1)\n"
            "  -c N           connections / room members (default 100)\n"
            "  -b N           connects in flight per thread (default 256)\n"
            "  -d SEC         measured duration (default 5)\n"
            "  -w SEC         warm-up before measuring (default 1)\n"
            "  -n N           stop after N messages sent (echo: echoes; fanout/slow:\n"
            "                 publishes; n2: all sends). Default 100000000\n"
            "  -s BYTES       message size, >= 16 (default 32)\n"
            "  -D N           echo pipeline depth per connection (default 1)\n"
            "  -r RATE        fanout/slow: publishes/s; n2: msgs/s per member (default 1000/10)\n"
            "  --lockstep K   fanout: publish K at once (one write), the next K only when\n"
            "                 every member has received all before them (closed loop, -r\n"
            "                 ignored): the same server passes whatever the load\n"
            "  --text         send text frames (default binary)\n"
            "  --payload KIND x (default: ts + 'x' * n) or json (chat-like JSON text)\n"
            "  --deflate      offer permessage-deflate; compress what is sent when negotiated\n"
            "  --server-pid P[,P] sample CPU (the process CPU clock, /proc/P/stat's ticks\n"
            "                 as a check) and RSS (/proc/P/status), summed over every pid\n"
            "                 given; the JSON also has the steal (/proc/stat) on their CPUs\n"
            "  --redis-pid P  also report this redis-server's CPU over the measure window\n"
            "  --redis-port P and its commands (INFO commandstats) over the same window\n"
            "  --connect-timeout SEC (default 30)\n"
            "  --drain SEC    after the run, wait up to SEC for what is in flight (default 2)\n"
            "  --label NAME   name of the target in the output\n"
            "  --json         JSON summary on stdout (table goes to stderr)\n"
            "  -q             no progress lines\n");
    exit(2);
}

static double num(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || v < 0 || !isfinite(v))
        die("bad %s", what);
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"server-pid", required_argument, NULL, 1},
        {"json", no_argument, NULL, 2},
        {"text", no_argument, NULL, 3},
        {"connect-timeout", required_argument, NULL, 4},
        {"label", required_argument, NULL, 5},
        {"help", no_argument, NULL, 6},
        {"drain", required_argument, NULL, 7},
        {"deflate", no_argument, NULL, 8},
        {"payload", required_argument, NULL, 9},
        {"redis-pid", required_argument, NULL, 10},
        {"redis-port", required_argument, NULL, 11},
        {"lockstep", required_argument, NULL, 12},
        {NULL, 0, NULL, 0},
    };
    o.host = "127.0.0.1";
    o.path = "/ws";
    o.threads = 1;
    o.conns = 100;
    o.batch = 256;
    o.duration = 5;
    o.warmup = 1;
    o.connect_timeout = 30;
    o.drain = 2;
    o.count = 100000000; /* every run is bounded in count as well as time */
    o.size = 32;
    o.depth = 1;
    o.rate = -1;
    o.src_per_ip = 20000;
    o.sc = SC_ECHO;
    const char *ports = NULL, *pids = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "S:h:p:P:t:c:b:d:w:n:s:D:r:q", lo, NULL)) != -1) {
        switch (c) {
        case 'S': {
            size_t i;
            for (i = 0; i < sizeof(sc_names) / sizeof(sc_names[0]); i++)
                if (strcmp(optarg, sc_names[i]) == 0)
                    break;
            if (i == sizeof(sc_names) / sizeof(sc_names[0]))
                die("unknown scenario %s", optarg);
            o.sc = (enum scenario)i;
            break;
        }
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            ports = optarg;
            break;
        case 'P':
            o.path = optarg;
            break;
        case 't':
            o.threads = (int)num(optarg, "threads");
            break;
        case 'c':
            o.conns = (int)num(optarg, "connections");
            break;
        case 'b':
            o.batch = (int)num(optarg, "batch");
            break;
        case 'd':
            o.duration = num(optarg, "duration");
            break;
        case 'w':
            o.warmup = num(optarg, "warm-up");
            break;
        case 'n':
            o.count = (uint64_t)num(optarg, "count");
            break;
        case 's':
            o.size = (size_t)num(optarg, "size");
            break;
        case 'D':
            o.depth = (int)num(optarg, "depth");
            break;
        case 'r':
            o.rate = num(optarg, "rate");
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 1:
            pids = optarg;
            break;
        case 2:
            o.json = 1;
            break;
        case 3:
            o.text = 1;
            break;
        case 4:
            o.connect_timeout = num(optarg, "timeout");
            break;
        case 5:
            o.label = optarg;
            break;
        case 7:
            o.drain = num(optarg, "drain");
            break;
        case 8:
            o.deflate = 1;
            break;
        case 9:
            if (strcmp(optarg, "json") == 0)
                o.json_payload = 1;
            else if (strcmp(optarg, "x") != 0)
                die("--payload is x or json");
            break;
        case 10:
            o.redis_pid = (pid_t)num(optarg, "redis pid");
            break;
        case 11:
            o.redis_port = (int)num(optarg, "redis port");
            if (o.redis_port < 1 || o.redis_port > 65535)
                die("bad redis port");
            break;
        case 12:
            o.lockstep = (int)num(optarg, "lockstep");
            if (o.lockstep < 1 || o.lockstep > 1000)
                die("--lockstep is 1..1000 publishes");
            break;
        default:
            usage();
        }
    }
    if (optind != argc || !ports)
        usage();
    if (o.threads < 1 || o.threads > 256 || o.conns < 1 || o.batch < 1 || o.depth < 1)
        die("threads, connections, batch and depth must be >= 1");
    if (o.size < TS_LEN || o.size > 60000)
        die("size must be in [16, 60000]");
    if (o.duration > 3600 || o.warmup > 600 || o.drain > 600 || o.connect_timeout > 600)
        die("duration is capped at 3600 s, warm-up at 600 s");
    if (o.rate < 0)
        o.rate = o.sc == SC_N2 ? 10 : 1000;
    if (o.lockstep && o.sc != SC_FANOUT)
        die("--lockstep is for -S fanout only");
    if ((o.sc == SC_FANOUT || o.sc == SC_SLOW) && o.conns < 2)
        die("fanout needs at least 2 members");
    if (o.threads > o.conns)
        o.threads = o.conns;
    const char *h = strcmp(o.host, "localhost") == 0 ? "127.0.0.1" : o.host;
    struct in_addr host;
    if (inet_pton(AF_INET, h, &host) != 1)
        die("bad host %s (an IPv4 loopback address is required)", o.host);
    /* Load only ever goes to this machine. */
    if ((ntohl(host.s_addr) >> 24) != 127)
        die("refusing non-loopback target %s", o.host);
    for (const char *p = ports; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65535 || (*end && *end != ','))
            die("bad port list %s", ports);
        if (o.ndst == MAX_TARGETS)
            die("at most %d ports", MAX_TARGETS);
        o.dst[o.ndst].sin_family = AF_INET;
        o.dst[o.ndst].sin_port = htons((uint16_t)v);
        o.dst[o.ndst].sin_addr = host;
        o.ndst++;
        p = *end ? end + 1 : end;
    }
    for (const char *p = pids; p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || (*end && *end != ','))
            die("bad pid list %s", pids);
        if (o.npids == MAX_TARGETS)
            die("at most %d pids", MAX_TARGETS);
        o.server_pids[o.npids++] = (pid_t)v;
        p = *end ? end + 1 : end;
    }
    o.server_pid = o.npids ? o.server_pids[0] : 0;
    if (!o.label)
        o.label = "server";
}

static void raise_nofile(void)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)o.conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_max < need) {
        struct rlimit r2 = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
            return;
    }
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need)
            fprintf(stderr, "rcbench: RLIMIT_NOFILE is %llu, fewer than %d connections fit\n",
                    (unsigned long long)rl.rlim_cur, o.conns);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

struct totals {
    uint64_t opened, failed, closed, sent, recv, sent_m, recv_m, skipped, inflight, rbytes_m, pmd;
    int done;
};

static void sum(struct totals *s)
{
    memset(s, 0, sizeof(*s));
    s->done = 1;
    for (int i = 0; i < o.threads; i++) {
        struct tstats *st = &g_thr[i].st;
        s->opened += atomic_load_explicit(&st->opened, memory_order_relaxed);
        s->failed += atomic_load_explicit(&st->failed, memory_order_relaxed);
        s->closed += atomic_load_explicit(&st->closed, memory_order_relaxed);
        s->sent += atomic_load_explicit(&st->sent, memory_order_relaxed);
        s->recv += atomic_load_explicit(&st->recv, memory_order_relaxed);
        s->sent_m += atomic_load_explicit(&st->sent_m, memory_order_relaxed);
        s->recv_m += atomic_load_explicit(&st->recv_m, memory_order_relaxed);
        s->rbytes_m += atomic_load_explicit(&st->rbytes_m, memory_order_relaxed);
        s->pmd += atomic_load_explicit(&st->pmd, memory_order_relaxed);
        s->skipped += atomic_load_explicit(&st->skipped, memory_order_relaxed);
        s->inflight += atomic_load_explicit(&st->inflight, memory_order_relaxed);
        if (g_thr[i].budget > 0 && !atomic_load_explicit(&st->done, memory_order_relaxed))
            s->done = 0;
    }
}

static const char *phase_name(int ph)
{
    static const char *const n[] = {"connect", "settle", "run", "drain", "stop"};
    return n[ph];
}

static void progress(uint64_t t0, struct totals *prev, int ph)
{
    struct totals s;
    sum(&s);
    if (!o.quiet)
        fprintf(stderr,
                "[%5.1fs] %-7s open %" PRIu64 " fail %" PRIu64 " closed %" PRIu64 "  sent %" PRIu64
                " (+%" PRIu64 ")  recv %" PRIu64 " (+%" PRIu64 ")\n",
                (double)(now_ns() - t0) / 1e9, phase_name(ph), s.opened, s.failed, s.closed, s.sent,
                s.sent - prev->sent, s.recv, s.recv - prev->recv);
    *prev = s;
}

/* Sleeps up to `ns`, printing progress each second; returns early when
 * stop() says so. */
static void wait_phase(uint64_t t0, uint64_t until, struct totals *prev, uint64_t *next_tick,
                       int ph, int (*stop)(void), long *rss_max)
{
    while (!g_interrupted) {
        uint64_t now = now_ns();
        if (now >= until || (stop && stop()))
            return;
        if (now >= *next_tick) {
            progress(t0, prev, ph);
            *next_tick += 1000000000ull;
            struct psample ps;
            if (servers_sample(&ps) == 0 && ps.rss_kb > *rss_max)
                *rss_max = ps.rss_kb;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static int all_connected(void)
{
    struct totals s;
    sum(&s);
    return s.opened + s.failed >= (uint64_t)o.conns;
}

static int run_done(void)
{
    struct totals s;
    sum(&s);
    return s.done;
}

static uint64_t expected_deliveries(const struct totals *s, uint64_t members)
{
    if (o.sc == SC_ECHO)
        return s->sent_m;
    return s->sent_m * members;
}

static int drained(void)
{
    struct totals s;
    sum(&s);
    if (o.sc == SC_ECHO)
        return s.inflight == 0;
    uint64_t members = s.opened - s.closed - (o.sc == SC_SLOW ? 1 : 0);
    return s.recv_m >= expected_deliveries(&s, members);
}

struct result {
    struct totals s;
    struct hist lat, conn;
    double connect_s, measure_s;
    struct psample p0, p1, pbase;
    struct wsample w0, w1; /* the measure window's ends: precise CPU, steal */
    long rss_max;
    uint64_t members;
    double client_cpu_s;      /* rcbench's own user+sys over the measure window */
    struct psample r0, r1;    /* --redis-pid */
    long long calls0, calls1; /* --redis-port */
};

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* The server's CPU seconds over the window: the CPU clock's when it was
 * read at both ends and agrees with the tick count within the ticks' own
 * error (two 10 ms steps per sample and server, plus 1 %), else the ticks';
 * *src says which. */
static double server_cpu(const struct result *r, const char **src)
{
    double ticks = r->p1.cpu_s >= 0 && r->p0.cpu_s >= 0 ? r->p1.cpu_s - r->p0.cpu_s : -1;
    double clk = r->w1.cpu_clock_s >= 0 && r->w0.cpu_clock_s >= 0
                     ? r->w1.cpu_clock_s - r->w0.cpu_clock_s
                     : -1;
    double tol = 0.03 * o.npids + 0.01 * ticks;
    *src = "ticks";
    if (clk >= 0 && (ticks < 0 || fabs(clk - ticks) <= tol)) {
        *src = "clock";
        return clk;
    }
    if (clk >= 0)
        fprintf(stderr, "rcbench: server CPU clock %.4f s and ticks %.4f s disagree; using ticks\n",
                clk, ticks);
    return ticks;
}

struct steal {
    double server_s, client_s;     /* stolen seconds, summed over the CPUs */
    double server_pct, client_pct; /* per CPU, as % of the measure window; -1: unknown */
    double others_pct;             /* the server's CPUs busy with neither side, likewise */
    char server_cpus[256], client_cpus[256];
};

static void steal_of(const struct result *r, double server_cpu_s, struct steal *st)
{
    cpu_set_t sv, cl;
    window_cpus(&sv, &cl);
    st->server_s = steal_s(&r->w0, &r->w1, &sv, st->server_cpus, sizeof(st->server_cpus));
    st->client_s = steal_s(&r->w0, &r->w1, &cl, st->client_cpus, sizeof(st->client_cpus));
    int ns = CPU_COUNT(&sv), nc = CPU_COUNT(&cl);
    st->server_pct =
        st->server_s >= 0 && r->measure_s > 0 && ns ? 100 * st->server_s / (r->measure_s * ns) : -1;
    st->client_pct =
        st->client_s >= 0 && r->measure_s > 0 && nc ? 100 * st->client_s / (r->measure_s * nc) : -1;
    /* rcbench's own CPU counts against the server's CPUs when it may run
     * only on them (unpinned server), not when they are apart (pinned). */
    cpu_set_t both;
    CPU_AND(&both, &sv, &cl);
    double mine = CPU_EQUAL(&both, &cl) ? r->client_cpu_s : 0;
    double busy = busy_s(&r->w0, &r->w1, &sv);
    /* Ticks against a clock: a short window can read a tick over 100 %. */
    double others = busy - (server_cpu_s > 0 ? server_cpu_s : 0) - mine;
    if (others > r->measure_s * ns)
        others = r->measure_s * ns;
    st->others_pct = busy >= 0 && r->measure_s > 0 && ns
                         ? 100 * (others > 0 ? others : 0) / (r->measure_s * ns)
                         : -1;
}

static void print_table(FILE *f, const struct result *r)
{
    const struct totals *s = &r->s;
    const char *src;
    double cpu = server_cpu(r, &src);
    fprintf(f, "\nrcbench %s  target %s (%s:%u)  conns %d  threads %d\n", sc_names[o.sc], o.label,
            o.host, ntohs(o.dst[0].sin_port), o.conns, o.threads);
    fprintf(f,
            "  connections   opened %" PRIu64 "  failed %" PRIu64 "  closed %" PRIu64
            "  in %.3f s\n",
            s->opened, s->failed, s->closed, r->connect_s);
    if (o.sc == SC_IDLE || o.sc == SC_STORM) {
        fprintf(f, "  upgrades/s    %.0f\n", r->connect_s > 0 ? s->opened / r->connect_s : 0);
        fprintf(f, "  upgrade us    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
                hist_quantile(&r->conn, 0.5) / 1e3, hist_quantile(&r->conn, 0.9) / 1e3,
                hist_quantile(&r->conn, 0.99) / 1e3, hist_quantile(&r->conn, 0.999) / 1e3,
                r->conn.max / 1e3);
    }
    if (o.sc == SC_IDLE && r->pbase.rss_kb >= 0 && s->opened > 0) {
        fprintf(f, "  server RSS    %ld kB -> %ld kB  = %.0f B per connection\n", r->pbase.rss_kb,
                r->p0.rss_kb, (r->p0.rss_kb - r->pbase.rss_kb) * 1024.0 / (double)s->opened);
        if (cpu >= 0)
            fprintf(f, "  idle CPU      %.2f %% over %.1f s\n", 100 * cpu / r->measure_s,
                    r->measure_s);
        return;
    }
    if (o.sc == SC_IDLE || o.sc == SC_STORM) {
        if (cpu >= 0)
            fprintf(f, "  server CPU    %.3f s\n", cpu);
        return;
    }
    uint64_t exp = expected_deliveries(s, r->members);
    fprintf(f, "  params        size %zu  depth %d  rate %.0f  warm-up %.1f s  measured %.3f s\n",
            o.size, o.depth, o.rate, o.warmup, r->measure_s);
    if (o.lockstep)
        fprintf(f, "  lockstep      %d publishes per step (-r not used)\n", o.lockstep);
    fprintf(f,
            "  messages      sent %" PRIu64 " (measured %" PRIu64 ")  received %" PRIu64
            " (measured %" PRIu64 " of %" PRIu64 " expected = %.4f)  skipped %" PRIu64 "\n",
            s->sent, s->sent_m, s->recv, s->recv_m, exp, exp ? (double)s->recv_m / exp : 0,
            s->skipped);
    fprintf(f, "  %-13s %.0f\n", o.sc == SC_ECHO ? "msgs/s" : "deliveries/s",
            r->measure_s > 0 ? s->recv_m / r->measure_s : 0);
    fprintf(f, "  latency us    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
            hist_quantile(&r->lat, 0.5) / 1e3, hist_quantile(&r->lat, 0.9) / 1e3,
            hist_quantile(&r->lat, 0.99) / 1e3, hist_quantile(&r->lat, 0.999) / 1e3,
            r->lat.max / 1e3, hist_mean(&r->lat) / 1e3);
    fprintf(f, "  client        CPU %.3f s (%.0f %% of one core)\n", r->client_cpu_s,
            r->measure_s > 0 ? 100 * r->client_cpu_s / r->measure_s : 0);
    if (cpu >= 0)
        fprintf(f,
                "  server        CPU %.3f s (%.0f %%, %s)  %.0f per CPU-second  RSS %ld -> %ld kB"
                " (max %ld)\n",
                cpu, 100 * cpu / r->measure_s, src, cpu > 0 ? s->recv_m / cpu : 0, r->p0.rss_kb,
                r->p1.rss_kb, r->rss_max);
    struct steal st;
    steal_of(r, cpu, &st);
    if (st.server_pct >= 0)
        fprintf(f,
                "  steal         server CPUs %s: %.2f %%  client CPUs %s: %.2f %%"
                "  (server CPUs busy with others: %.1f %%)\n",
                st.server_cpus, st.server_pct, st.client_cpus, st.client_pct, st.others_pct);
}

static void json_hist(FILE *f, const char *name, const struct hist *h)
{
    fprintf(f,
            "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
            "\"max\":%.2f,\"mean\":%.2f}",
            name, h->count, hist_quantile(h, 0.5) / 1e3, hist_quantile(h, 0.9) / 1e3,
            hist_quantile(h, 0.99) / 1e3, hist_quantile(h, 0.999) / 1e3,
            h->count ? h->max / 1e3 : 0, hist_mean(h) / 1e3);
}

static void print_json(FILE *f, const struct result *r)
{
    const struct totals *s = &r->s;
    const char *src;
    double cpu = server_cpu(r, &src);
    double ticks = r->p1.cpu_s >= 0 && r->p0.cpu_s >= 0 ? r->p1.cpu_s - r->p0.cpu_s : -1;
    double clk = r->w1.cpu_clock_s >= 0 && r->w0.cpu_clock_s >= 0
                     ? r->w1.cpu_clock_s - r->w0.cpu_clock_s
                     : -1;
    double sched = r->w1.cpu_sched_s >= 0 && r->w0.cpu_sched_s >= 0
                       ? r->w1.cpu_sched_s - r->w0.cpu_sched_s
                       : -1;
    struct steal st;
    steal_of(r, cpu, &st);
    uint64_t exp = expected_deliveries(s, r->members);
    double per_s = r->measure_s > 0 ? s->recv_m / r->measure_s : 0;
    fprintf(f,
            "{\"scenario\":\"%s\",\"target\":\"%s\",\"port\":%u,\"conns\":%d,\"threads\":%d,"
            "\"size\":%zu,\"depth\":%d,\"rate\":%.1f,\"warmup_s\":%.3f,\"measure_s\":%.4f,"
            "\"opened\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"closed\":%" PRIu64
            ",\"connect_s\":%.4f,\"upgrades_per_s\":%.1f,",
            sc_names[o.sc], o.label, ntohs(o.dst[0].sin_port), o.conns, o.threads, o.size, o.depth,
            o.rate, o.warmup, r->measure_s, s->opened, s->failed, s->closed, r->connect_s,
            r->connect_s > 0 ? s->opened / r->connect_s : 0);
    fprintf(f,
            "\"sent\":%" PRIu64 ",\"sent_measured\":%" PRIu64 ",\"received\":%" PRIu64
            ",\"received_measured\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"skipped\":%" PRIu64
            ",\"members\":%" PRIu64 ",\"delivered_ratio\":%.6f,\"per_s\":%.1f,",
            s->sent, s->sent_m, s->recv, s->recv_m, exp, s->skipped, r->members,
            exp ? (double)s->recv_m / exp : 0, per_s);
    json_hist(f, "latency_us", &r->lat);
    fputc(',', f);
    json_hist(f, "upgrade_us", &r->conn);
    fprintf(f,
            ",\"server\":{\"pid\":%d,\"cpu_s\":%.4f,\"cpu_pct\":%.2f,\"per_cpu_s\":%.1f,"
            "\"rss_base_kb\":%ld,\"rss_start_kb\":%ld,\"rss_end_kb\":%ld,\"rss_max_kb\":%ld,"
            "\"rss_per_conn_b\":%.1f},\"client_cpu_pct\":%.2f,\"deflate_conns\":%" PRIu64
            ",\"wire_bytes_in\":%" PRIu64 ",\"wire_bytes_per_delivery\":%.1f",
            (int)o.server_pid, cpu, r->measure_s > 0 && cpu >= 0 ? 100 * cpu / r->measure_s : -1,
            cpu > 0 ? s->recv_m / cpu : -1, r->pbase.rss_kb, r->p0.rss_kb, r->p1.rss_kb, r->rss_max,
            o.sc == SC_IDLE && s->opened && r->pbase.rss_kb >= 0
                ? (r->p0.rss_kb - r->pbase.rss_kb) * 1024.0 / (double)s->opened
                : -1,
            r->measure_s > 0 ? 100 * r->client_cpu_s / r->measure_s : 0, s->pmd, s->rbytes_m,
            s->recv_m ? (double)s->rbytes_m / (double)s->recv_m : 0);
    fprintf(f, ",\"nodes\":%d,\"server_pids\":%d,\"lockstep\":%d", o.ndst, o.npids, o.lockstep);
    fprintf(f,
            ",\"server_cpu\":{\"src\":\"%s\",\"ticks_s\":%.4f,\"clock_s\":%.6f,\"sched_s\":%.6f,"
            "\"threads_start\":%d,\"threads_end\":%d}",
            src, ticks, clk, sched, r->w0.threads, r->w1.threads);
    fprintf(f,
            ",\"steal\":{\"server_pct\":%.3f,\"client_pct\":%.3f,\"server_s\":%.3f,"
            "\"client_s\":%.3f,\"server_cpus\":\"%s\",\"client_cpus\":\"%s\","
            "\"others_pct\":%.2f}",
            st.server_pct, st.client_pct, st.server_s, st.client_s, st.server_cpus, st.client_cpus,
            st.others_pct);
    /* Every CPU's own share, the ones neither side may run on included. */
    fputs(",\"steal_per_cpu_pct\":[", f);
    for (int c = 0; c < r->w0.ncpu && c < r->w1.ncpu; c++) {
        unsigned long long d =
            r->w1.steal[c] >= r->w0.steal[c] ? r->w1.steal[c] - r->w0.steal[c] : 0;
        fprintf(f, "%s%.3f", c ? "," : "",
                r->measure_s > 0 ? 100.0 * (double)d / (double)sysconf(_SC_CLK_TCK) / r->measure_s
                                 : -1.0);
    }
    fputc(']', f);
    if (o.redis_pid > 0 || o.redis_port > 0) {
        /* Publishes: what the publisher sent inside the measure window. */
        double rcpu = r->r1.cpu_s >= 0 && r->r0.cpu_s >= 0 ? r->r1.cpu_s - r->r0.cpu_s : -1;
        long long calls = r->calls1 >= 0 && r->calls0 >= 0 ? r->calls1 - r->calls0 : -1;
        fprintf(f,
                ",\"redis\":{\"pid\":%d,\"cpu_s\":%.4f,\"cpu_us_per_publish\":%.2f,"
                "\"commands\":%lld,\"commands_per_publish\":%.3f}",
                (int)o.redis_pid, rcpu,
                rcpu >= 0 && s->sent_m ? rcpu * 1e6 / (double)s->sent_m : -1, calls,
                calls >= 0 && s->sent_m ? (double)calls / (double)s->sent_m : -1);
    }
    fputs("}\n", f);
}

static void build_request(void)
{
    uint8_t raw[16];
    uint32_t seed = (uint32_t)now_ns() | 1;
    for (int i = 0; i < 16; i++)
        raw[i] = (uint8_t)xorshift(&seed);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[25];
    int k = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        key[k++] = b64[v >> 18 & 63];
        key[k++] = b64[v >> 12 & 63];
        key[k++] = b64[v >> 6 & 63];
        key[k++] = b64[v & 63];
    }
    uint32_t v = (uint32_t)raw[15] << 16;
    key[k++] = b64[v >> 18 & 63];
    key[k++] = b64[v >> 12 & 63];
    key[k++] = '=';
    key[k++] = '=';
    key[k] = 0;
    ws_accept_key(key, 24, g_accept);
    /* RFC 6455 §4.1: the client's opening handshake. */
    int n = snprintf(g_request, sizeof(g_request),
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o.path, o.host, ntohs(o.dst[0].sin_port), key,
                     o.deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(g_request))
        die("request path too long");
    g_request_len = (size_t)n;
}

/* Chat-like JSON text after the timestamp: ASCII only, so any cut is valid
 * UTF-8; as varied as real messages (names, numbers, a few hundred words),
 * so it compresses several times rather than a thousand. */
static void fill_json(uint8_t *p, size_t n, uint32_t seed)
{
    static const char *const words[] = {
        "hello",  "room",   "message", "again", "please", "thanks",  "tonight", "meeting",
        "update", "server", "client",  "today", "random", "release", "ship",    "it",
        "coffee", "later",  "agreed",  "ok",    "the",    "a",       "and",     "with",
    };
    size_t k = 0;
    while (k < n) {
        char item[256];
        uint32_t r = xorshift(&seed);
        int len = snprintf(item, sizeof(item),
                           ",\"type\":\"broadcast\",\"room_id\":\"room-%u\",\"user\":\"user%u\","
                           "\"seq\":%u,\"content\":\"%s %s %s %s %u\"}{\"ts\":%u",
                           r % 50, (r >> 8) % 1000, r % 100000, words[r % 24], words[(r >> 5) % 24],
                           words[(r >> 10) % 24], words[(r >> 15) % 24], r % 977, r);
        for (int i = 0; i < len && k < n; i++)
            p[k++] = (uint8_t)item[i];
    }
}

/* Before the idle baseline: a few complete upgrades and closes, one at a
 * time, so the server has paged in the code and built the state that every
 * connection uses once (OpenSSL's SHA-1 and provider set-up alone is about
 * 2 MB of library text). Without this the first idle run charges that
 * one-time cost to the connections: 200 B each at 10 000. */
static void warm_server(int n)
{
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return;
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[512];
        if (connect(fd, (struct sockaddr *)&o.dst[0], sizeof(o.dst[0])) == 0 &&
            write(fd, g_request, g_request_len) > 0 && read(fd, buf, sizeof(buf)) > 0) {
            static const uint8_t close_frame[] = {0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2};
            if (write(fd, close_frame, sizeof(close_frame)) > 0)
                while (read(fd, buf, sizeof(buf)) > 0)
                    ; /* until the server closes */
        }
        close(fd);
    }
    usleep(200 * 1000); /* let the server reap them */
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    build_request();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    static struct result r;
    r.rss_max = -1;
    r.w0.cpu_clock_s = r.w1.cpu_clock_s = r.w0.cpu_sched_s = r.w1.cpu_sched_s = -1;
    if (o.sc == SC_IDLE && o.server_pid > 0)
        warm_server(16);
    servers_sample(&r.pbase);

    g_thr = calloc((size_t)o.threads, sizeof(*g_thr));
    if (!g_thr)
        die("out of memory");
    int per = o.conns / o.threads, extra = o.conns % o.threads, first = 0;
    for (int i = 0; i < o.threads; i++) {
        struct thread *t = &g_thr[i];
        t->idx = i;
        t->first = first;
        t->n = per + (i < extra ? 1 : 0);
        first += t->n;
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        t->c = calloc((size_t)t->n, sizeof(*t->c));
        t->dirty = calloc((size_t)t->n, sizeof(int));
        t->scratch = malloc(SCRATCH);
        if (t->ep == -1 || !t->c || !t->dirty || !t->scratch)
            die("setup failed");
        memset(t->scratch, 'x', 65536);
        if (o.json_payload) {
            t->json = malloc(JSON_CORPUS);
            if (!t->json)
                die("setup failed");
            fill_json(t->json, JSON_CORPUS, (uint32_t)i * 7919u + 12345u);
        }
        if (o.deflate) {
            /* level 1, 15-bit window, memLevel 8: what browsers and ws use by default */
            if (deflateInit2(&t->def, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
                inflateInit2(&t->inf, -15) != Z_OK)
                die("zlib setup failed");
            t->zcap = deflateBound(&t->def, 65536) + 64;
            t->zbuf = malloc(t->zcap);
            t->ibuf = malloc(65536);
            if (!t->zbuf || !t->ibuf)
                die("setup failed");
        }
        for (int j = 0; j < t->n; j++) {
            t->c[j].gid = (uint32_t)(t->first + j);
            t->c[j].fd = -1;
        }
        t->rng = 0x9e3779b9u * (uint32_t)(i + 1);
        hist_reset(&t->lat);
        hist_reset(&t->conn);
        /* Budget: who sends how much. */
        if (o.sc == SC_ECHO || o.sc == SC_N2)
            t->budget = o.count / (uint64_t)o.threads + ((uint64_t)i < o.count % o.threads);
        else if ((o.sc == SC_FANOUT || o.sc == SC_SLOW) && i == 0)
            t->budget = o.count;
    }
    uint64_t t0 = now_ns(), next_tick = t0 + 1000000000ull;
    struct totals prev = {0};
    for (int i = 0; i < o.threads; i++)
        if (pthread_create(&g_thr[i].tid, NULL, thread_main, &g_thr[i]) != 0)
            die("pthread_create failed");

    /* CONNECT */
    wait_phase(t0, t0 + (uint64_t)(o.connect_timeout * 1e9), &prev, &next_tick, PH_CONNECT,
               all_connected, &r.rss_max);
    {
        uint64_t last = 0;
        for (int i = 0; i < o.threads; i++) {
            uint64_t l = atomic_load(&g_thr[i].st.last_open_ns);
            if (l > last)
                last = l;
        }
        r.connect_s = last > t0 ? (double)(last - t0) / 1e9 : 0;
    }
    struct totals s;
    sum(&s);
    if (s.opened < (uint64_t)o.conns)
        fprintf(stderr, "rcbench: only %" PRIu64 " of %d connections opened\n", s.opened, o.conns);

    uint64_t ms = 0, me = 0;
    if (s.opened == 0) {
        ms = me = now_ns(); /* nothing to measure: stop now */
    } else if (o.sc == SC_STORM) {
        servers_sample(&r.p1);
        r.client_cpu_s = self_cpu();
        r.p0 = r.pbase;
        ms = t0;
        me = now_ns();
    } else if (o.sc == SC_IDLE) {
        atomic_store(&g_phase, PH_SETTLE);
        uint64_t now = now_ns();
        wait_phase(t0, now + 500000000ull, &prev, &next_tick, PH_SETTLE, NULL, &r.rss_max);
        servers_sample(&r.p0);
        window_sample(&r.w0);
        ms = now_ns();
        wait_phase(t0, ms + (uint64_t)(o.duration * 1e9), &prev, &next_tick, PH_SETTLE, NULL,
                   &r.rss_max);
        me = now_ns();
        servers_sample(&r.p1);
        window_sample(&r.w1);
    } else {
        atomic_store(&g_phase, PH_SETTLE);
        wait_phase(t0, now_ns() + SETTLE_NS, &prev, &next_tick, PH_SETTLE, NULL, &r.rss_max);
        uint64_t start = now_ns();
        ms = start + (uint64_t)(o.warmup * 1e9);
        me = ms + (uint64_t)(o.duration * 1e9);
        atomic_store(&g_run_start, start);
        atomic_store(&g_measure_start, ms);
        atomic_store(&g_measure_end, me);
        servers_sample(&r.p0);
        atomic_store_explicit(&g_phase, PH_RUN, memory_order_release);
        wait_phase(t0, ms, &prev, &next_tick, PH_RUN, run_done, &r.rss_max);
        servers_sample(&r.p0);
        window_sample(&r.w0);
        proc_sample(o.redis_pid, &r.r0);
        r.calls0 = redis_calls();
        double c0 = self_cpu();
        wait_phase(t0, me, &prev, &next_tick, PH_RUN, run_done, &r.rss_max);
        r.client_cpu_s = self_cpu() - c0;
        uint64_t end = now_ns();
        if (end < me) { /* the count ran out first */
            me = end;
            atomic_store(&g_measure_end, me);
        }
        atomic_store(&g_phase, PH_DRAIN);
        /* Server CPU is taken when the senders stop; the drain that follows
         * only collects what is still in flight. */
        servers_sample(&r.p1);
        window_sample(&r.w1);
        proc_sample(o.redis_pid, &r.r1);
        r.calls1 = redis_calls();
        wait_phase(t0, now_ns() + (uint64_t)(o.drain * 1e9), &prev, &next_tick, PH_DRAIN, drained,
                   &r.rss_max);
        struct psample pe;
        if (servers_sample(&pe) == 0 && pe.rss_kb > r.rss_max)
            r.rss_max = pe.rss_kb;
        r.p1.rss_kb = pe.rss_kb;
    }
    r.measure_s = me > ms ? (double)(me - ms) / 1e9 : 0;
    sum(&r.s);
    r.members = r.s.opened - r.s.closed - (o.sc == SC_SLOW ? 1 : 0);
    atomic_store(&g_phase, PH_STOP);
    for (int i = 0; i < o.threads; i++)
        pthread_join(g_thr[i].tid, NULL);
    hist_reset(&r.lat);
    hist_reset(&r.conn);
    for (int i = 0; i < o.threads; i++) {
        hist_merge(&r.lat, &g_thr[i].lat);
        hist_merge(&r.conn, &g_thr[i].conn);
    }
    print_table(o.json ? stderr : stdout, &r);
    if (o.json)
        print_json(stdout, &r);
    if (g_interrupted)
        return 130;
    return r.s.opened == 0 ? 1 : 0;
}
