/* test_store_sqlite.c - store_sqlite.c against real SQLite files in a
 * temporary directory: append/read (pending and committed merged), paging,
 * keep and max_age retention, clean and unclean restarts (seq continuity,
 * reservation, epoch), every start-up error, write errors (RLIMIT_FSIZE)
 * with degraded health, refuse mode and recovery, and concurrent appenders.
 * The "workers" are a test host whose post() queues callbacks that the test
 * thread runs. Built and run under TSan as well (label "tsan"). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "alloc.h"
#include "err.h"
#include "scratch.h"
#include "store_sqlite.h"

/* -- a host whose "workers" are the test thread ------------------------------------ */

struct posted {
    struct posted *next;
    void (*fn)(void *);
    void *arg;
    int worker;
};

static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcond = PTHREAD_COND_INITIALIZER;
static struct posted *hhead, *htail;

static void host_post(void *ctx, int worker, void (*fn)(void *), void *arg)
{
    (void)ctx;
    struct posted *p = calloc(1, sizeof(*p));
    p->fn = fn;
    p->arg = arg;
    p->worker = worker;
    pthread_mutex_lock(&hmu);
    if (htail)
        htail->next = p;
    else
        hhead = p;
    htail = p;
    pthread_cond_signal(&hcond);
    pthread_mutex_unlock(&hmu);
}

static const struct store_host host = {.ctx = NULL, .nworkers = 2, .post = host_post};

/* Runs one posted callback, waiting up to 5 s for it. Returns 1 if one ran. */
static int run_one(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&hmu);
    while (hhead == NULL)
        if (pthread_cond_timedwait(&hcond, &hmu, &until) == ETIMEDOUT)
            break;
    struct posted *p = hhead;
    if (p) {
        hhead = p->next;
        if (!hhead)
            htail = NULL;
    }
    pthread_mutex_unlock(&hmu);
    if (!p)
        return 0;
    p->fn(p->arg);
    free(p);
    return 1;
}

/* -- reads ---------------------------------------------------------------------------- */

struct got {
    int called;
    int status;
    struct store_room info;
    size_t n;
    uint64_t seqs[STORE_READ_MAX];
    char first[64], last[64];
};

static void on_read(void *ud, int status, const struct store_room *info,
                    const struct store_msg *msgs, size_t n)
{
    struct got *g = ud;
    g->called++;
    g->status = status;
    g->info = *info;
    g->n = n;
    for (size_t i = 0; i < n; i++)
        g->seqs[i] = msgs[i].seq;
    if (n > 0) {
        snprintf(g->first, sizeof(g->first), "%.*s", (int)msgs[0].len, msgs[0].data);
        snprintf(g->last, sizeof(g->last), "%.*s", (int)msgs[n - 1].len, msgs[n - 1].data);
    }
}

static void read_q(struct store *st, const char *room, uint64_t since, uint64_t before,
                   uint32_t limit, int newest, struct got *g)
{
    memset(g, 0, sizeof(*g));
    struct store_query q = {.since = since, .before = before, .limit = limit, .newest = newest};
    assert_int_equal(st->ops->read(st, 1, room, strlen(room), &q, on_read, g), 0);
    assert_int_equal(g->called, 0); /* never synchronously */
    assert_true(run_one());
    assert_int_equal(g->called, 1);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int append_n(struct store *st, const char *room, uint64_t from, uint64_t to, int64_t ts)
{
    int rc = 0;
    for (uint64_t s = from; s <= to && rc == 0; s++) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"n\":%llu}", (unsigned long long)s);
        struct store_msg m = {
            .seq = s, .ts_ms = ts ? ts : wall_ms(), .data = buf, .len = (size_t)n};
        rc = st->ops->append(st, room, strlen(room), &m, NULL);
    }
    return rc;
}

/* -- fixture: a fresh directory per test ----------------------------------------------- */

static char tmpdir[256];
static char dbpath[300];

static int setup(void **state)
{
    (void)state;
    scratch_dir(tmpdir, sizeof(tmpdir), "rc_store_");
    /* A missing subdirectory: open must create it. */
    snprintf(dbpath, sizeof(dbpath), "%s/var/sub/roomcast.db", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(scratch_remove(tmpdir), 0);
    return 0;
}

static struct store *open_ok(struct store_sqlite_opts *o)
{
    char err[512] = "";
    struct store *st = NULL;
    o->path = dbpath;
    int rc = store_sqlite_open(o, &host, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: %s", err);
    return st;
}

static struct store *open_default(void)
{
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    return open_ok(&o);
}

static long count_rows(const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    long n = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void assert_integrity_ok(void)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* -- tests -------------------------------------------------------------------------------- */

static void test_append_read_restart(void **state)
{
    (void)state;
    struct store *st = open_default();
    assert_string_equal(st->ops->name, "sqlite");
    struct store_room info;
    assert_int_equal(st->ops->room_open(st, "lobby", 5, &info), 0);
    assert_int_equal(info.last_seq, 0);
    assert_int_equal(strlen(info.epoch), 8);
    char epoch[STORE_EPOCH_MAX + 1];
    strcpy(epoch, info.epoch);

    assert_int_equal(append_n(st, "lobby", 1, 100, 0), 0);
    /* Read at once: what is still queued is merged in. */
    struct got g;
    read_q(st, "lobby", 0, 0, 1000, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 100);
    assert_int_equal(g.info.last_seq, 100);
    assert_string_equal(g.info.epoch, epoch);
    for (size_t i = 0; i < g.n; i++)
        assert_int_equal(g.seqs[i], i + 1);
    assert_string_equal(g.first, "{\"n\":1}");
    assert_string_equal(g.last, "{\"n\":100}");

    /* flush: everything durable, visible to another connection. */
    st->ops->flush(st);
    assert_int_equal(count_rows("SELECT count(*) FROM messages"), 100);
    struct store_sqlite_counters c;
    store_sqlite_counters(st, &c);
    assert_int_equal(c.appended, 100);
    assert_int_equal(c.committed, 101); /* + the room's row */
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.degraded, 0);

    /* since: only later ones. An unknown room: status 0, nothing. */
    read_q(st, "lobby", 90, 0, 1000, 0, &g);
    assert_int_equal(g.n, 10);
    assert_int_equal(g.seqs[0], 91);
    read_q(st, "nowhere", 0, 0, 10, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.info.last_seq, 0);
    /* Bad queries fail at once and never call back. */
    struct store_query bad = {.limit = 0};
    assert_int_equal(st->ops->read(st, 0, "lobby", 5, &bad, on_read, &g), RC_E_INVAL);
    bad.limit = STORE_READ_MAX + 1;
    assert_int_equal(st->ops->read(st, 0, "lobby", 5, &bad, on_read, &g), RC_E_INVAL);
    st->ops->destroy(st);
    assert_int_equal(count_rows("SELECT value FROM meta WHERE key = 'clean'"), 1);
    assert_int_equal(count_rows("PRAGMA user_version"), STORE_SQLITE_SCHEMA);

    /* A clean restart: same seq, same epoch, same history. */
    st = open_default();
    assert_int_equal(store_sqlite_was_unclean(st), 0);
    assert_int_equal(st->ops->room_open(st, "lobby", 5, &info), 0);
    assert_int_equal(info.last_seq, 100);
    assert_string_equal(info.epoch, epoch);
    read_q(st, "lobby", 0, 0, 1000, 0, &g);
    assert_int_equal(g.n, 100);
    assert_int_equal(append_n(st, "lobby", 101, 105, 0), 0);
    st->ops->destroy(st);
    assert_int_equal(count_rows("SELECT count(*) FROM messages"), 105);
}

static void test_room_without_messages_keeps_epoch(void **state)
{
    (void)state;
    struct store *st = open_default();
    struct store_room a, b;
    st->ops->room_open(st, "quiet", 5, &a);
    st->ops->destroy(st);
    st = open_default();
    st->ops->room_open(st, "quiet", 5, &b);
    assert_string_equal(a.epoch, b.epoch);
    assert_int_equal(b.last_seq, 0);
    st->ops->destroy(st);
}

static void test_paging(void **state)
{
    (void)state;
    struct store *st = open_default();
    assert_int_equal(append_n(st, "p", 1, 250, 0), 0);
    st->ops->flush(st);
    assert_int_equal(append_n(st, "p", 251, 300, 0), 0); /* some still pending */
    struct got g;
    /* The last 50, oldest first. */
    read_q(st, "p", 0, 0, 50, 1, &g);
    assert_int_equal(g.n, 50);
    assert_int_equal(g.seqs[0], 251);
    assert_int_equal(g.seqs[49], 300);
    /* Page back: before the first one we have. */
    read_q(st, "p", 0, 251, 100, 1, &g);
    assert_int_equal(g.n, 100);
    assert_int_equal(g.seqs[0], 151);
    assert_int_equal(g.seqs[99], 250);
    read_q(st, "p", 0, 151, 1000, 1, &g);
    assert_int_equal(g.n, 150);
    assert_int_equal(g.seqs[0], 1);
    /* Oldest-first replay with since and a limit across pending and committed. */
    read_q(st, "p", 240, 0, 20, 0, &g);
    assert_int_equal(g.n, 20);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(g.seqs[i], 241 + i);
    read_q(st, "p", 10, 20, 1000, 0, &g);
    assert_int_equal(g.n, 9);
    assert_int_equal(g.seqs[0], 11);
    st->ops->destroy(st);
}

/* store_query.sink: begin, the rows, end, on the reader thread, before cb;
 * the rows straight from the database (and the FIFO), oldest first, or
 * newest first for a `newest` read; cb then gets no msgs (none kept). */
struct sunk {
    int begins, ends, rows_after_end, end_status, desc, on_caller_thread, content_ok;
    size_t n, bytes_hint, zero_seq;
    uint64_t seqs[STORE_READ_MAX];
    uint64_t info_last;
};
static pthread_t caller;

static void sink_begin(void *arg, const struct store_room *info, int desc, size_t bytes)
{
    struct sunk *k = arg;
    k->begins++;
    k->desc = desc;
    k->bytes_hint = bytes;
    k->info_last = info->last_seq;
    k->on_caller_thread = pthread_equal(pthread_self(), caller);
    k->content_ok = 1;
}

static void sink_row(void *arg, const struct store_msg *m)
{
    struct sunk *k = arg;
    if (k->ends > 0 || k->begins != 1 || k->n == STORE_READ_MAX) {
        k->rows_after_end++;
        return;
    }
    /* each message is {"n":SEQ,"pad":"xxx..."} with SEQ its seq (a
     * payload-only sink may get seq 0: it is taken from the text then) */
    uint64_t n = 0;
    size_t i = 5;
    if (m->len < 8 || memcmp(m->data, "{\"n\":", 5) != 0)
        k->content_ok = 0;
    while (i < m->len && m->data[i] >= '0' && m->data[i] <= '9')
        n = n * 10 + (uint64_t)(m->data[i++] - '0');
    if (i == 5 || i == m->len || m->data[i] != ',' || m->data[m->len - 1] != '}' ||
        (m->seq != 0 && m->seq != n) || n > k->info_last)
        k->content_ok = 0;
    k->zero_seq += m->seq == 0;
    k->seqs[k->n++] = n;
}

static void sink_end(void *arg, int status)
{
    struct sunk *k = arg;
    k->ends++;
    k->end_status = status;
}

static const struct store_sink test_sink = {.begin = sink_begin, .row = sink_row, .end = sink_end};
static const struct store_sink test_sink_payload = {
    .begin = sink_begin, .row = sink_row, .end = sink_end, .payload_only = 1};

struct sunk_got {
    struct sunk k;
    int called, status, cb_after_end;
    size_t n;
    const struct store_msg *msgs;
};

static void on_sunk_read(void *ud, int status, const struct store_room *info,
                         const struct store_msg *msgs, size_t n)
{
    (void)info;
    struct sunk_got *g = ud;
    g->called++;
    g->status = status;
    g->cb_after_end = g->k.begins == 1 && g->k.ends == 1 && g->k.end_status == status;
    g->n = n;
    g->msgs = msgs;
}

/* One read through test_sink; checks the protocol around it and that the
 * rows are exactly lo..hi, in the order the sink was told. */
static void sink_read1(struct store *st, const struct store_sink *sink, const char *room,
                       uint64_t since, uint64_t before, uint32_t limit, int newest, uint64_t lo,
                       uint64_t hi)
{
    struct sunk_got *g = calloc(1, sizeof(*g));
    struct store_query q = {.since = since,
                            .before = before,
                            .limit = limit,
                            .newest = newest,
                            .sink = sink,
                            .sink_arg = &g->k};
    assert_int_equal(st->ops->read(st, 1, room, strlen(room), &q, on_sunk_read, g), 0);
    assert_true(run_one());
    assert_int_equal(g->called, 1);
    assert_int_equal(g->status, 0);
    assert_true(g->cb_after_end);
    assert_int_equal(g->k.rows_after_end, 0);
    assert_false(g->k.on_caller_thread); /* the reader thread */
    assert_true(g->k.content_ok);
    assert_int_equal(g->k.desc, newest);
    assert_int_equal(g->n, 0); /* nothing kept for cb */
    assert_null(g->msgs);
    size_t want = lo <= hi ? (size_t)(hi - lo + 1) : 0;
    assert_int_equal(g->k.n, want);
    for (size_t i = 0; i < want; i++)
        assert_int_equal(g->k.seqs[i], newest ? hi - i : lo + i);
    free(g);
}

/* The same read through a sink that wants every field and through a
 * payload-only one (the SQLite store's other statements). */
static void sink_read(struct store *st, const char *room, uint64_t since, uint64_t before,
                      uint32_t limit, int newest, uint64_t lo, uint64_t hi)
{
    sink_read1(st, &test_sink, room, since, before, limit, newest, lo, hi);
    sink_read1(st, &test_sink_payload, room, since, before, limit, newest, lo, hi);
}

static int append_padded(struct store *st, const char *room, uint64_t from, uint64_t to, size_t pad)
{
    static char buf[40000];
    int rc = 0;
    for (uint64_t s = from; s <= to && rc == 0; s++) {
        int k = snprintf(buf, sizeof(buf), "{\"n\":%llu,\"pad\":\"", (unsigned long long)s);
        memset(buf + k, 'x', pad);
        memcpy(buf + k + pad, "\"}", 2);
        struct store_msg m = {
            .seq = s, .ts_ms = wall_ms(), .data = buf, .len = (size_t)k + pad + 2};
        rc = st->ops->append(st, room, strlen(room), &m, NULL);
    }
    return rc;
}

static void test_sink_reads(void **state)
{
    (void)state;
    caller = pthread_self();
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    o.flush_ms = 600000; /* the writer commits at flush() only (fewer than batch_max) */
    struct store *st = open_ok(&o);
    /* 1..200 of varied sizes committed, 201..260 still queued */
    for (uint64_t s = 1; s <= 200; s++)
        assert_int_equal(append_padded(st, "sh", s, s, (size_t)(s * 37 % 3000)), 0);
    st->ops->flush(st);
    assert_int_equal(append_padded(st, "sh", 201, 260, 20000), 0);
    struct store_sqlite_counters c;
    store_sqlite_counters(st, &c);
    assert_int_equal(c.pending, 60);
    sink_read(st, "sh", 0, 0, 1000, 0, 1, 260);
    sink_read(st, "sh", 0, 0, 1000, 1, 1, 260);
    /* limits across the two parts, both ways */
    sink_read(st, "sh", 150, 0, 100, 0, 151, 250); /* 50 committed + 50 queued */
    sink_read(st, "sh", 0, 0, 100, 1, 161, 260);   /* 60 queued + 40 committed */
    sink_read(st, "sh", 0, 0, 30, 1, 231, 260);    /* the queued ones only */
    sink_read(st, "sh", 0, 230, 50, 1, 180, 229);  /* paging back across both */
    sink_read(st, "sh", 180, 190, 1000, 0, 181, 189);
    sink_read(st, "sh", 180, 190, 1000, 1, 181, 189);
    sink_read(st, "sh", 260, 0, 10, 0, 1, 0); /* nothing after the last */
    sink_read(st, "sh", 250, 0, 5, 0, 251, 255);
    st->ops->flush(st); /* everything committed: the database alone */
    sink_read(st, "sh", 0, 0, 1000, 0, 1, 260);
    sink_read(st, "sh", 0, 0, 1000, 1, 1, 260);
    sink_read(st, "sh", 0, 0, 7, 1, 254, 260);
    /* the bytes hint: from the last read's bytes per row, for the rows the
     * seq range can hold */
    struct sunk_got *g = calloc(1, sizeof(*g));
    struct store_query q = {.since = 0, .limit = 10, .sink = &test_sink, .sink_arg = &g->k};
    assert_int_equal(st->ops->read(st, 0, "sh", 2, &q, on_sunk_read, g), 0);
    assert_true(run_one());
    assert_int_equal(g->k.n, 10);
    assert_true(g->k.bytes_hint > 10 * 1000 && g->k.bytes_hint < 10 * 30000);
    assert_int_equal(g->k.zero_seq, 0);
    /* payload only: the database's rows come without seq and ts (the
     * statements that do not fetch them) */
    memset(g, 0, sizeof(*g));
    q.sink = &test_sink_payload;
    assert_int_equal(st->ops->read(st, 0, "sh", 2, &q, on_sunk_read, g), 0);
    assert_true(run_one());
    assert_int_equal(g->k.n, 10);
    assert_int_equal(g->k.zero_seq, 10);
    assert_true(g->k.content_ok);
    assert_int_equal(g->k.seqs[9], 10);
    q.sink = &test_sink;
    /* a room without messages: begin and end, no row */
    memset(g, 0, sizeof(*g));
    assert_int_equal(st->ops->read(st, 0, "none", 4, &q, on_sunk_read, g), 0);
    assert_true(run_one());
    assert_int_equal(g->called, 1);
    assert_true(g->cb_after_end);
    assert_int_equal(g->k.n, 0);
    free(g);
    st->ops->destroy(st);
}

static void test_keep(void **state)
{
    (void)state;
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    o.keep = 10;
    struct store *st = open_ok(&o);
    assert_int_equal(append_n(st, "k", 1, 55, 0), 0);
    assert_int_equal(append_n(st, "other", 1, 5, 0), 0);
    st->ops->flush(st);
    assert_int_equal(count_rows("SELECT count(*) FROM messages"), 15);
    assert_int_equal(count_rows("SELECT min(seq) FROM messages m JOIN rooms r ON r.id = m.room "
                                "WHERE r.name = CAST('k' AS BLOB)"),
                     46);
    struct got g;
    read_q(st, "k", 0, 0, 1000, 0, &g);
    assert_int_equal(g.n, 10);
    assert_int_equal(g.seqs[0], 46);
    struct store_sqlite_counters c;
    store_sqlite_counters(st, &c);
    assert_int_equal(c.trimmed, 45);
    st->ops->destroy(st);
}

static void test_max_age(void **state)
{
    (void)state;
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    o.max_age_ms = 2000;
    o.trim_ms = 50;
    struct store *st = open_ok(&o);
    int64_t now = wall_ms();
    assert_int_equal(append_n(st, "a", 1, 20, now - 60000), 0); /* a minute old */
    assert_int_equal(append_n(st, "a", 21, 25, now), 0);
    st->ops->flush(st);
    long n = 0;
    for (int i = 0; i < 100; i++) { /* the background pass runs every 50 ms */
        n = count_rows("SELECT count(*) FROM messages");
        if (n == 5)
            break;
        usleep(20000);
    }
    assert_int_equal(n, 5);
    struct got g;
    read_q(st, "a", 0, 0, 100, 0, &g);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.seqs[0], 21);
    st->ops->destroy(st);
}

/* A child appends, flushes part, and dies without closing (as kill -9). */
static void test_unclean_restart(void **state)
{
    (void)state;
    struct store *st = open_default();
    struct store_room info;
    st->ops->room_open(st, "u", 1, &info);
    char epoch[STORE_EPOCH_MAX + 1];
    strcpy(epoch, info.epoch);
    append_n(st, "u", 1, 10, 0);
    st->ops->destroy(st);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store_sqlite_opts o;
        store_sqlite_defaults(&o);
        o.path = dbpath;
        o.flush_ms = 60000; /* nothing written unless flushed */
        o.batch_max = 100000;
        struct store *cs = NULL;
        char err[256];
        if (store_sqlite_open(&o, &host, &cs, err, sizeof(err)) != 0)
            _exit(2);
        append_n(cs, "u", 11, 20, 0);
        cs->ops->flush(cs);
        append_n(cs, "u", 21, 30, 0); /* issued, never written */
        raise(SIGKILL);
        _exit(3);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws));

    st = open_default();
    assert_int_equal(store_sqlite_was_unclean(st), 1);
    st->ops->room_open(st, "u", 1, &info);
    /* Continues after the reservation: 21..30 are never issued again. */
    assert_int_equal(info.last_seq, 20 + STORE_SQLITE_RESERVE);
    assert_string_not_equal(info.epoch, epoch);
    struct got g;
    read_q(st, "u", 0, 0, 100, 0, &g);
    assert_int_equal(g.n, 20);
    assert_int_equal(g.seqs[19], 20);
    assert_string_equal(g.info.epoch, info.epoch);
    /* keep counts messages, not seqs: the jump trims nothing below it. */
    assert_int_equal(append_n(st, "u", info.last_seq + 1, info.last_seq + 1, 0), 0);
    st->ops->flush(st);
    assert_int_equal(count_rows("SELECT count(*) FROM messages"), 21);
    st->ops->destroy(st);
    assert_integrity_ok();
    /* A clean close after the unclean start: the next start keeps the epoch. */
    st = open_default();
    struct store_room again;
    st->ops->room_open(st, "u", 1, &again);
    assert_string_equal(again.epoch, info.epoch);
    assert_int_equal(again.last_seq, 21 + STORE_SQLITE_RESERVE);
    st->ops->destroy(st);
}

static void expect_open_error(const char *path, const char *cause)
{
    struct store_sqlite_opts o;
    store_sqlite_defaults(&o);
    o.path = path;
    char err[512] = "";
    struct store *st = NULL;
    assert_int_equal(store_sqlite_open(&o, &host, &st, err, sizeof(err)), RC_E_CONFIG);
    assert_null(st);
    if (strncmp(err, path, strlen(path)) != 0 || strstr(err, cause) == NULL)
        fail_msg("open error \"%s\" lacks \"%s: ... %s\"", err, path, cause);
    assert_null(strchr(err, '\n'));
    err[0] = '\0';
    assert_int_equal(store_sqlite_check(path, err, sizeof(err)), RC_E_CONFIG);
    if (strncmp(err, path, strlen(path)) != 0 || strstr(err, cause) == NULL)
        fail_msg("check error \"%s\" lacks \"%s: ... %s\"", err, path, cause);
}

static void test_start_errors(void **state)
{
    (void)state;
    char path[400];
    /* Not a database. */
    snprintf(path, sizeof(path), "%s/junk.db", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("this is not an SQLite file, not at all, and long enough to have a header\n", f);
    fclose(f);
    expect_open_error(path, "not a database");

    /* A newer schema. */
    snprintf(path, sizeof(path), "%s/newer.db", tmpdir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE x(y); PRAGMA user_version = 99", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    expect_open_error(path, "schema version 99 is newer");

    /* A directory that cannot be created (its parent is a file). */
    snprintf(path, sizeof(path), "%s/junk.db/sub/x.db", tmpdir);
    expect_open_error(path, "cannot create directory");

    /* Locked by another roomcast. */
    struct store *st = open_default();
    expect_open_error(dbpath, "locked by another roomcast");
    st->ops->destroy(st);
    char err[256];
    assert_int_equal(store_sqlite_check(dbpath, err, sizeof(err)), 0);

    /* An unwritable directory: a read-only bind is not available to a test,
     * so use a directory whose permissions deny writes, unless we are root
     * (root writes anyway; the integration test covers a read-only mount). */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro", tmpdir);
        mkdir(path, 0555);
        snprintf(path, sizeof(path), "%s/ro/x.db", tmpdir);
        expect_open_error(path, "not writable");
    }
    /* -t on a missing file in a missing directory: fine, nothing created. */
    snprintf(path, sizeof(path), "%s/later/x.db", tmpdir);
    assert_int_equal(store_sqlite_check(path, err, sizeof(err)), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);
}

/* Write errors: RLIMIT_FSIZE makes writes past the limit fail (EFBIG ->
 * SQLITE_FULL/IOERR) like a full disk. */
static void test_write_errors(void **state)
{
    (void)state;
    for (int refuse = 0; refuse <= 1; refuse++) {
        char sub[300];
        snprintf(dbpath, sizeof(dbpath), "%s/err%d/roomcast.db", tmpdir, refuse);
        (void)sub;
        struct store_sqlite_opts o;
        store_sqlite_defaults(&o);
        o.retry_ms = 50;
        o.refuse_on_error = refuse;
        struct store *st = open_ok(&o);
        assert_int_equal(append_n(st, "w", 1, 10, 0), 0);
        st->ops->flush(st);

        signal(SIGXFSZ, SIG_IGN);
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 64 * 1024;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        static char big[8192];
        memset(big, 'x', sizeof(big));
        uint64_t seq = 10;
        int denied = 0;
        char why[128] = "";
        for (int i = 0; i < 400 && !denied; i++) {
            struct store_msg m = {
                .seq = ++seq, .ts_ms = wall_ms(), .data = big, .len = sizeof(big)};
            int rc = st->ops->append(st, "w", 1, &m, NULL);
            if (rc == RC_E_DENIED) {
                denied = 1;
                seq--;
                break;
            }
            assert_int_equal(rc, 0);
            usleep(2000);
            if (!refuse && st->ops->health(st, why, sizeof(why)) == 1)
                break;
        }
        int degraded = 0;
        for (int i = 0; i < 200 && !degraded; i++) {
            degraded = st->ops->health(st, why, sizeof(why)) == 1;
            if (!degraded)
                usleep(10000);
        }
        assert_true(degraded);
        assert_non_null(strstr(why, "write error"));
        struct store_sqlite_counters c;
        store_sqlite_counters(st, &c);
        assert_true(c.write_errors >= 1);
        assert_true(c.pending >= 1);
        if (refuse) {
            struct store_msg m = {.seq = seq + 1, .ts_ms = wall_ms(), .data = "x", .len = 1};
            assert_int_equal(st->ops->append(st, "w", 1, &m, NULL), RC_E_DENIED);
            store_sqlite_counters(st, &c);
            assert_true(c.refused >= 1);
        }
        /* Reads still answer, queued messages included. */
        struct got g;
        read_q(st, "w", 0, 0, 1000, 0, &g);
        assert_int_equal(g.n, seq);

        /* The cause goes away: writing resumes by itself. */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        for (int i = 0; i < 300 && st->ops->health(st, why, sizeof(why)) != 0; i++)
            usleep(10000);
        assert_int_equal(st->ops->health(st, why, sizeof(why)), 0);
        st->ops->flush(st);
        store_sqlite_counters(st, &c);
        assert_int_equal(c.pending, 0);
        st->ops->destroy(st);
        assert_int_equal(count_rows("SELECT count(*) FROM messages"), (long)seq);
        assert_int_equal(count_rows("SELECT max(seq) FROM messages"), (long)seq);
    }
    snprintf(dbpath, sizeof(dbpath), "%s/var/sub/roomcast.db", tmpdir);
}

/* Several workers append to their own rooms at once. */
struct app {
    struct store *st;
    int id;
};

#define PER_THREAD 20000

static void *appender(void *arg)
{
    struct app *a = arg;
    char room[16];
    snprintf(room, sizeof(room), "room%d", a->id);
    struct store_room info;
    a->st->ops->room_open(a->st, room, strlen(room), &info);
    append_n(a->st, room, 1, PER_THREAD, 0);
    return NULL;
}

static void test_concurrent_appenders(void **state)
{
    (void)state;
    struct store *st = open_default();
    pthread_t t[3];
    struct app a[3];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 3; i++) {
        a[i] = (struct app){st, i};
        pthread_create(&t[i], NULL, appender, &a[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    st->ops->flush(st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("store_sqlite: %d appends + commit in %.3f s (%.0f msg/s)\n", 3 * PER_THREAD, s,
                  3 * PER_THREAD / s);
    /* keep = 1000 per room. */
    assert_int_equal(count_rows("SELECT count(*) FROM messages"), 3 * 1000);
    struct got g;
    read_q(st, "room2", 0, 0, 1000, 1, &g);
    assert_int_equal(g.n, 1000);
    assert_int_equal(g.seqs[999], PER_THREAD);
    st->ops->destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_without_messages_keeps_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unclean_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appenders, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
