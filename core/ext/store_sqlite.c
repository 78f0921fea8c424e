#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "defs.h"
#include "err.h"
#include "frame_ref.h"
#include "log.h"
#include "strmap.h"

/* How long flush() waits for a failing disk before giving up. */
#define FLUSH_WAIT_MS 5000

/* One room as the store knows it. Owned by st->rooms (freed at destroy);
 * entries are never removed, so the pointer is stable for the store's life.
 *   mutex-protected: last_seq
 *   immutable after creation: epoch, name
 *   writer thread only: db_id, id_new, in_batch, batch_seq */
struct sroom {
    uint64_t last_seq; /* the last seq appended (or the continuation point) */
    char epoch[STORE_EPOCH_MAX + 1];
    int64_t db_id; /* rooms.id, 0 until the writer inserted the row */
    int id_new;    /* db_id assigned in the transaction in progress */
    int in_batch;
    uint64_t batch_seq;
    uint64_t contig_from; /* seqs >= this have no jump (the first after an unclean start) */
    struct sroom *batch_next;
    size_t len;
    char name[]; /* NUL-terminated */
};

/* One queued message (seq 0: only make sure the room's row exists).
 * Owned by the pending FIFO; immutable once pushed. */
struct pend {
    struct pend *next;
    struct sroom *room;
    uint64_t seq;
    int64_t ts_ms;
    uint32_t flags;
    size_t len;
    char data[];
};

/* One read request, then its answer. Owned by the reader queue, then by the
 * posted answer (freed on the worker after cb ran). */
struct rreq {
    struct rreq *next;
    struct store_sqlite *st;
    int worker;
    struct store_query q;
    store_read_cb cb;
    void *ud;
    int status;
    struct store_room info;
    /* Only for a query without a sink (collect_sink): with one, the rows
     * went to it and msgs stays NULL, n 0. */
    struct store_msg *msgs; /* owned; data points into `rows` */
    size_t n, cap;
    /* The messages' bytes, one after the other (each NUL-terminated) in one
     * block: one allocation per read instead of one per row, and a
     * recycled one (frame_ref's cache of big blocks), so the worker that
     * frees the answer frees one block instead of up to STORE_READ_MAX.
     * offs[i]: where message i starts, until serve_read points msgs at it. */
    struct frame_ref *rows;
    size_t *offs;
    size_t len;
    char room[]; /* NUL-terminated */
};

struct store_sqlite {
    struct store base;
    struct store_sqlite_opts o;
    char *path;  /* owned */
    int lock_fd; /* holds the flock while open; closed last (see open_lock) */
    int unclean;

    pthread_mutex_t mu;   /* rooms, pending FIFO, read queue, counters below */
    pthread_cond_t wcond; /* the writer waits here */
    pthread_cond_t rcond; /* the reader waits here */
    pthread_cond_t fcond; /* flush() waits here */
    struct strmap rooms;  /* name -> struct sroom */
    struct pend *head, *tail;
    uint64_t npend;             /* in the FIFO, in flight included */
    uint64_t pushed, popped;    /* FIFO totals (flush waits for popped >= pushed at call) */
    struct timespec pend_since; /* monotonic: the oldest entry waits since */
    int flush_req;
    int stop;
    struct rreq *rhead, *rtail;
    size_t rows_hint; /* reader thread only: the last collected read's bytes of rows */
    size_t row_bytes; /* reader thread only: the last read's bytes per database row (+1) */

    _Atomic int degraded;
    char why[96]; /* under mu */
    _Atomic uint64_t c_appended, c_committed, c_batches, c_errors, c_dropped, c_refused, c_reads,
        c_trimmed;

    sqlite3 *wdb, *rdb;
    pthread_t writer, reader;
    int threads;
};

/* -- small helpers ------------------------------------------------------------ */

static void set_err(char *err, size_t cap, const char *path, const char *fmt, ...) RC_PRINTF(4, 5);

static void set_err(char *err, size_t cap, const char *path, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    int n = snprintf(err, cap, "%s: ", path);
    if (n < 0 || (size_t)n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
}

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

static struct timespec ts_add_ms(struct timespec t, int64_t ms)
{
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

static int ts_before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* A fresh epoch: 8 characters of [0-9a-z]. */
static void new_epoch(char out[STORE_EPOCH_MAX + 1])
{
    static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char r[8];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t x =
            (uint64_t)now_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(r); i++, x >>= 8)
            r[i] = (unsigned char)x;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        out[i] = al[r[i] % 36];
    out[sizeof(r)] = '\0';
}

static struct sroom *room_new(const char *name, size_t len, uint64_t last, const char *epoch)
{
    struct sroom *r = rc_xcalloc(1, sizeof(*r) + len + 1);
    memcpy(r->name, name, len);
    r->len = len;
    r->last_seq = last;
    if (epoch != NULL)
        snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    else
        new_epoch(r->epoch);
    return r;
}

/* -- opening and checking -------------------------------------------------------- */

/* The directory part of path ("." when none). Owned by the caller. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return rc_xstrdup(".");
    if (slash == path)
        return rc_xstrdup("/");
    return rc_xstrndup(path, (size_t)(slash - path));
}

/* mkdir -p. Returns 0 or -errno. */
static int mkdirs(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
    if (errno != ENOENT)
        return -errno;
    char *parent = dir_of(dir);
    int rc = 0;
    if (strcmp(parent, dir) != 0)
        rc = mkdirs(parent);
    rc_free(parent);
    if (rc != 0)
        return rc;
    if (mkdir(dir, 0755) == -1 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Takes an exclusive flock on the database file itself (created when missing).
 * flock locks are separate from SQLite's POSIX record locks on Linux. The fd
 * stays open until destroy: closing any fd of the file would drop SQLite's
 * own POSIX locks, so it is closed only after the connections. */
static int open_lock(const char *path, int create, int *fd_out, char *err, size_t cap)
{
    int fd = open(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
    if (fd == -1) {
        int e = errno;
        if (e == EACCES || e == EROFS || e == EPERM)
            set_err(err, cap, path, "not writable (%s)", strerror(e));
        else
            set_err(err, cap, path, "cannot open (%s)", strerror(e));
        return -e;
    }
    if (flock(fd, (create ? LOCK_EX : LOCK_SH) | LOCK_NB) == -1) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            set_err(err, cap, path, "locked by another roomcast process");
        else
            set_err(err, cap, path, "cannot lock (%s)", strerror(e));
        return -e;
    }
    *fd_out = fd;
    return 0;
}

/* The database's cause as one phrase. */
static void sql_cause(char *err, size_t cap, const char *path, sqlite3 *db, int rc)
{
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    if ((rc & 0xff) == SQLITE_NOTADB)
        set_err(err, cap, path, "not a database");
    else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        set_err(err, cap, path, "locked by another process");
    else if ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN ||
             (rc & 0xff) == SQLITE_PERM)
        set_err(err, cap, path, "not writable (%s)", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    else
        set_err(err, cap, path, "%s (sqlite %d)", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                ext);
}

static int get_user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Migrations: migration[v] takes a database of user_version v to v + 1.
 * A later release appends a step (ALTER TABLE, a new table, a copy) and bumps
 * STORE_SQLITE_SCHEMA; open runs the missing steps in one transaction, so a
 * file is never left half-migrated. */
static const char *const migration[STORE_SQLITE_SCHEMA] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta(key, value) VALUES('clean', 1);"
    "CREATE TABLE rooms(id INTEGER PRIMARY KEY, name BLOB NOT NULL UNIQUE, epoch TEXT NOT NULL,"
    " last_seq INTEGER NOT NULL, reserved INTEGER NOT NULL);"
    "CREATE TABLE messages(room INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,"
    " flags INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(room, seq)) WITHOUT ROWID;",
};

static int migrate(sqlite3 *db, int from, char *err, size_t cap, const char *path)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    for (int v = from; rc == SQLITE_OK && v < STORE_SQLITE_SCHEMA; v++)
        rc = sqlite3_exec(db, migration[v], NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SQLITE_SCHEMA);
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sql_cause(err, cap, path, db, rc);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    } else if (from > 0) {
        rc_info("history: %s: migrated schema %d -> %d", path, from, STORE_SQLITE_SCHEMA);
    }
    sqlite3_free(msg);
    return rc;
}

static int check_dir(const char *path, int create, char *err, size_t cap)
{
    char *dir = dir_of(path);
    int rc = 0;
    if (create) {
        rc = mkdirs(dir);
        if (rc != 0)
            set_err(err, cap, path, "cannot create directory %s (%s)", dir, strerror(-rc));
    } else {
        /* -t: the nearest existing ancestor must be a writable directory. */
        char *d = rc_xstrdup(dir);
        struct stat sb;
        while (stat(d, &sb) == -1 && errno == ENOENT && strcmp(d, "/") != 0 &&
               strcmp(d, ".") != 0) {
            char *p = dir_of(d);
            rc_free(d);
            d = p;
        }
        if (stat(d, &sb) == -1) {
            rc = -errno;
            set_err(err, cap, path, "cannot create directory %s (%s)", dir, strerror(errno));
        } else if (!S_ISDIR(sb.st_mode)) {
            rc = -ENOTDIR;
            set_err(err, cap, path, "cannot create directory %s (%s is not a directory)", dir, d);
        } else if (access(d, W_OK) == -1) {
            rc = -errno;
            set_err(err, cap, path, "directory %s not writable (%s)", d, strerror(errno));
        }
        rc_free(d);
    }
    if (rc == 0 && create && access(dir, W_OK) == -1) {
        rc = -errno;
        set_err(err, cap, path, "directory %s not writable (%s)", dir, strerror(errno));
    }
    rc_free(dir);
    return rc;
}

/* Once per process, before SQLite's first use: no memory statistics. With
 * them on (Debian's default) every allocation of SQLite's takes a global
 * mutex and updates counters; nothing here reads them (sqlite3_status), and
 * reading a row of over a page's payload allocates (its overflow chain is
 * assembled in a buffer of SQLite's): about 10 % of the reader's
 * instructions for 2 KB rows (tests/bench/history_callgrind.py). A later
 * call, after SQLite started (another user in the process), fails
 * harmlessly with SQLITE_MISUSE. */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

int store_sqlite_check(const char *path, char *err, size_t cap)
{
    pthread_once(&sqlite_once, sqlite_setup);
    if (path == NULL || *path == '\0') {
        set_err(err, cap, "history", "no path");
        return RC_E_CONFIG;
    }
    int rc = check_dir(path, 0, err, cap);
    if (rc != 0)
        return RC_E_CONFIG;
    struct stat sb;
    if (stat(path, &sb) == -1)
        return 0; /* created at start */
    if (access(path, R_OK | W_OK) == -1) {
        set_err(err, cap, path, "not writable (%s)", strerror(errno));
        return RC_E_CONFIG;
    }
    int fd;
    if (open_lock(path, 0, &fd, err, cap) != 0)
        return RC_E_CONFIG;
    sqlite3 *db = NULL;
    int v = 0;
    int s = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (s == SQLITE_OK)
        s = get_user_version(db, &v);
    if (s != SQLITE_OK) {
        sql_cause(err, cap, path, db, s);
        rc = RC_E_CONFIG;
    } else if (v > STORE_SQLITE_SCHEMA) {
        set_err(err, cap, path, "schema version %d is newer than this roomcast supports (%d)", v,
                STORE_SQLITE_SCHEMA);
        rc = RC_E_CONFIG;
    }
    sqlite3_close(db);
    close(fd);
    return rc;
}

static sqlite3 *open_conn(const char *path, int readonly, int *src)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    *src = sqlite3_open_v2(path, &db, flags, NULL);
    if (*src == SQLITE_OK)
        sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Loads every room; on an unclean start gives each a new epoch and continues
 * after its reservation (see the header). Main thread, at open. */
static int load_rooms(struct store_sqlite *st, char *err, size_t cap)
{
    sqlite3 *db = st->wdb;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'clean'", -1, &s, NULL);
    if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        st->unclean = sqlite3_column_int(s, 0) == 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_prepare_v2(db, "SELECT id, name, epoch, last_seq, reserved FROM rooms", -1, &s,
                            NULL);
    sqlite3_stmt *up = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "UPDATE rooms SET epoch = ?2, last_seq = ?3 WHERE id = ?1", -1,
                                &up, NULL);
    while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        const void *name = sqlite3_column_blob(s, 1);
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        const char *epoch = (const char *)sqlite3_column_text(s, 2);
        uint64_t last = (uint64_t)sqlite3_column_int64(s, 3);
        uint64_t reserved = (uint64_t)sqlite3_column_int64(s, 4);
        struct sroom *r;
        if (st->unclean) {
            r = room_new(name ? name : "", len, reserved > last ? reserved : last, NULL);
            sqlite3_bind_int64(up, 1, sqlite3_column_int64(s, 0));
            sqlite3_bind_text(up, 2, r->epoch, -1, SQLITE_STATIC);
            /* last_seq is "the last seq issued or skipped": a clean close
             * after this start must not hand the skipped range out again. */
            sqlite3_bind_int64(up, 3, (sqlite3_int64)r->last_seq);
            rc = sqlite3_step(up) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
            sqlite3_reset(up);
        } else {
            r = room_new(name ? name : "", len, last, epoch);
        }
        r->db_id = sqlite3_column_int64(s, 0);
        if (st->unclean)
            r->contig_from = r->last_seq + 1;
        strmap_put(&st->rooms, r->name, len, r);
    }
    sqlite3_finalize(s);
    sqlite3_finalize(up);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "UPDATE meta SET value = 0 WHERE key = 'clean'", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    if (st->unclean && st->rooms.count > 0)
        rc_warn("history: %s was not closed cleanly: %zu rooms continue after their reserved "
                "seqs with a new epoch",
                st->path, st->rooms.count);
    return 0;
fail:
    sql_cause(err, cap, st->path, db, rc);
    return RC_E_CONFIG;
}

/* -- the writer thread ---------------------------------------------------------------- */

/* The writer's statements, prepared once: BEGIN and COMMIT too (through
 * sqlite3_exec every batch parsed and compiled them anew: a fifth of the
 * writer's instructions at one message per batch, callgrind_budget's
 * fanout_sqlite). */
struct wstmt {
    sqlite3_stmt *ins, *room_ins, *room_upd, *trim_keep, *trim_below, *trim_age, *ids;
    sqlite3_stmt *begin, *commit, *rollback;
};

static int prep_writer(struct store_sqlite *st, struct wstmt *w)
{
    sqlite3 *db = st->wdb;
    int rc = sqlite3_prepare_v2(
        db,
        "INSERT OR REPLACE INTO messages(room, seq, ts, flags, data) VALUES(?1, ?2, ?3, ?4, ?5)",
        -1, &w->ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO rooms(name, epoch, last_seq, reserved) "
                                "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET "
                                "epoch = excluded.epoch RETURNING id",
                                -1, &w->room_ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "UPDATE rooms SET last_seq = ?2, reserved = ?3 WHERE id = ?1",
                                -1, &w->room_upd, NULL);
    if (rc == SQLITE_OK)
        /* By count, not by seq: seqs jump after an unclean start. */
        rc = sqlite3_prepare_v2(db,
                                "DELETE FROM messages WHERE room = ?1 AND seq < (SELECT seq FROM "
                                "messages WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                                -1, &w->trim_keep, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "DELETE FROM messages WHERE room = ?1 AND seq <= ?2", -1,
                                &w->trim_below, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "DELETE FROM messages WHERE room = ?1 AND ts < ?2", -1,
                                &w->trim_age, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT id FROM rooms", -1, &w->ids, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &w->begin, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "COMMIT", -1, &w->commit, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "ROLLBACK", -1, &w->rollback, NULL);
    return rc;
}

static void free_writer(struct wstmt *w)
{
    sqlite3_finalize(w->ins);
    sqlite3_finalize(w->room_ins);
    sqlite3_finalize(w->room_upd);
    sqlite3_finalize(w->trim_keep);
    sqlite3_finalize(w->trim_below);
    sqlite3_finalize(w->trim_age);
    sqlite3_finalize(w->ids);
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_finalize(w->rollback);
}

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int ensure_room(struct store_sqlite *st, struct wstmt *w, struct sroom *r)
{
    if (r->db_id != 0)
        return SQLITE_OK;
    sqlite3_bind_blob(w->room_ins, 1, r->name, (int)r->len, SQLITE_STATIC);
    sqlite3_bind_text(w->room_ins, 2, r->epoch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->room_ins, 3, 0);
    sqlite3_bind_int64(w->room_ins, 4, 0);
    int rc = sqlite3_step(w->room_ins);
    if (rc == SQLITE_ROW) {
        r->db_id = sqlite3_column_int64(w->room_ins, 0);
        r->id_new = 1;
        rc = SQLITE_OK;
    }
    sqlite3_reset(w->room_ins);
    (void)st;
    return rc;
}

/* Writes batch[0..n) in one transaction. Writer thread. The entries were
 * collected under the mutex (their next links may be written by appenders). */
static int write_batch(struct store_sqlite *st, struct wstmt *w, struct pend **batch, uint64_t n)
{
    sqlite3 *db = st->wdb;
    struct sroom *touched = NULL;
    int rc = step_done(w->begin);
    for (uint64_t i = 0; rc == SQLITE_OK && i < n; i++) {
        struct pend *p = batch[i];
        struct sroom *r = p->room;
        rc = ensure_room(st, w, r);
        if (rc != SQLITE_OK || p->seq == 0)
            continue;
        sqlite3_bind_int64(w->ins, 1, r->db_id);
        sqlite3_bind_int64(w->ins, 2, (sqlite3_int64)p->seq);
        sqlite3_bind_int64(w->ins, 3, p->ts_ms);
        sqlite3_bind_int64(w->ins, 4, p->flags);
        sqlite3_bind_blob(w->ins, 5, p->data, (int)p->len, SQLITE_STATIC);
        rc = step_done(w->ins);
        if (!r->in_batch) {
            r->in_batch = 1;
            r->batch_next = touched;
            touched = r;
        }
        r->batch_seq = p->seq;
    }
    for (struct sroom *r = touched; rc == SQLITE_OK && r != NULL; r = r->batch_next) {
        sqlite3_bind_int64(w->room_upd, 1, r->db_id);
        sqlite3_bind_int64(w->room_upd, 2, (sqlite3_int64)r->batch_seq);
        sqlite3_bind_int64(w->room_upd, 3, (sqlite3_int64)(r->batch_seq + STORE_SQLITE_RESERVE));
        rc = step_done(w->room_upd);
        if (rc == SQLITE_OK && st->o.keep > 0 && r->batch_seq > st->o.keep) {
            uint64_t floor = r->batch_seq - st->o.keep; /* the newest seq to delete */
            if (floor >= r->contig_from) {
                /* No seq jump among the last `keep`: a range delete of the
                 * few rows that fell out (cheap: the common case). */
                sqlite3_bind_int64(w->trim_below, 1, r->db_id);
                sqlite3_bind_int64(w->trim_below, 2, (sqlite3_int64)floor);
                rc = step_done(w->trim_below);
            } else {
                /* A jump (unclean start) inside the window: count instead. */
                sqlite3_bind_int64(w->trim_keep, 1, r->db_id);
                sqlite3_bind_int64(w->trim_keep, 2, (sqlite3_int64)st->o.keep - 1);
                rc = step_done(w->trim_keep);
            }
            if (rc == SQLITE_OK)
                atomic_fetch_add(&st->c_trimmed, (uint64_t)sqlite3_changes(db));
        }
    }
    if (rc == SQLITE_OK)
        rc = step_done(w->commit);
    int failed = rc != SQLITE_OK;
    if (failed)
        step_done(w->rollback);
    /* Rooms inserted by a rolled-back transaction have no row after all. */
    for (uint64_t i = 0; i < n; i++) {
        if (failed && batch[i]->room->id_new)
            batch[i]->room->db_id = 0;
        batch[i]->room->id_new = 0;
    }
    while (touched != NULL) {
        struct sroom *next = touched->batch_next;
        touched->in_batch = 0;
        touched->batch_next = NULL;
        touched = next;
    }
    return rc;
}

static void trim_age(struct store_sqlite *st, struct wstmt *w)
{
    sqlite3 *db = st->wdb;
    int64_t cut = now_wall_ms() - st->o.max_age_ms;
    int rc = step_done(w->begin);
    uint64_t gone = 0;
    while (rc == SQLITE_OK && sqlite3_step(w->ids) == SQLITE_ROW) {
        sqlite3_bind_int64(w->trim_age, 1, sqlite3_column_int64(w->ids, 0));
        sqlite3_bind_int64(w->trim_age, 2, cut);
        rc = step_done(w->trim_age);
        gone += (uint64_t)sqlite3_changes(db);
    }
    sqlite3_reset(w->ids);
    if (rc == SQLITE_OK)
        rc = step_done(w->commit);
    if (rc != SQLITE_OK)
        step_done(w->rollback);
    else
        atomic_fetch_add(&st->c_trimmed, gone);
}

static void *writer_main(void *arg)
{
    struct store_sqlite *st = arg;
    pthread_setname_np(pthread_self(), "rc-hist-write");
    rc_log_set_thread_tag(-1);
    struct wstmt w = {0};
    int prc = prep_writer(st, &w);
    if (prc != SQLITE_OK)
        rc_error("history: %s: cannot prepare statements: %s", st->path, sqlite3_errmsg(st->wdb));
    struct timespec retry_at = {0, 0};
    struct timespec trim_at = ts_add_ms(mono_now(), st->o.trim_ms);
    struct rc_ratelimit rl = {0};
    int64_t last_log_ms = 0;
    struct pend **batch = rc_xmalloc(st->o.batch_max * sizeof(*batch));

    pthread_mutex_lock(&st->mu);
    for (;;) {
        struct timespec now = mono_now();
        int degraded = atomic_load(&st->degraded);
        /* When to act next. */
        struct timespec due = trim_at;
        int ready = 0;
        if (st->npend > 0) {
            struct timespec flush_at = ts_add_ms(st->pend_since, st->o.flush_ms);
            if (degraded)
                flush_at = retry_at;
            if (st->flush_req && !degraded)
                ready = 1;
            else if (st->npend >= st->o.batch_max && !degraded)
                ready = 1;
            else if (!ts_before(now, flush_at))
                ready = 1;
            else if (ts_before(flush_at, due))
                due = flush_at;
        }
        if (!ready && st->stop && (st->npend == 0 || degraded))
            break;
        if (!ready && st->stop)
            ready = st->npend > 0;
        if (!ready && ts_before(now, trim_at)) {
            pthread_cond_timedwait(&st->wcond, &st->mu, &due);
            continue;
        }
        if (!ready) {
            /* The max_age pass. */
            trim_at = ts_add_ms(now, st->o.trim_ms);
            pthread_mutex_unlock(&st->mu);
            if (st->o.max_age_ms > 0 && prc == SQLITE_OK)
                trim_age(st, &w);
            pthread_mutex_lock(&st->mu);
            continue;
        }
        uint64_t n = st->npend < st->o.batch_max ? st->npend : st->o.batch_max;
        struct pend *p = st->head;
        for (uint64_t i = 0; i < n; i++, p = p->next)
            batch[i] = p;
        pthread_mutex_unlock(&st->mu);

        int rc = prc == SQLITE_OK ? write_batch(st, &w, batch, n) : prc;

        pthread_mutex_lock(&st->mu);
        if (rc == SQLITE_OK) {
            for (uint64_t i = 0; i < n; i++) {
                struct pend *done = st->head;
                st->head = done->next;
                rc_free(done);
            }
            if (st->head == NULL)
                st->tail = NULL;
            st->npend -= n;
            st->popped += n;
            st->pend_since = mono_now();
            if (st->npend == 0)
                st->flush_req = 0;
            atomic_fetch_add(&st->c_committed, n);
            atomic_fetch_add(&st->c_batches, 1);
            if (atomic_exchange(&st->degraded, 0))
                rc_info("history: %s: writes resumed (%llu queued messages written)", st->path,
                        (unsigned long long)n);
            pthread_cond_broadcast(&st->fcond);
        } else {
            atomic_fetch_add(&st->c_errors, 1);
            snprintf(st->why, sizeof(st->why), "write error: %s", sqlite3_errstr(rc));
            atomic_store(&st->degraded, 1);
            retry_at = ts_add_ms(mono_now(), st->o.retry_ms);
            int64_t wall = now_wall_ms();
            if (wall - last_log_ms >= (int64_t)st->o.retry_ms) {
                last_log_ms = wall;
                rc_log_limited(&rl, 1, RC_LOG_ERROR,
                               "history: %s: %s; %llu messages queued, live delivery goes on",
                               st->path, sqlite3_errstr(rc), (unsigned long long)st->npend);
            }
            pthread_cond_broadcast(&st->fcond);
            if (st->stop)
                break; /* the last try at exit failed: close_all reports what is lost */
        }
    }
    pthread_mutex_unlock(&st->mu);
    rc_free(batch);
    free_writer(&w);
    return NULL;
}

static struct sroom *room_get(struct store_sqlite *st, const char *name, size_t len);
static void push_locked(struct store_sqlite *st, struct pend *p);

/* -- the reader thread ------------------------------------------------------------------- */

/* How a read's answer is made (serve_read): the rows go once, oldest or
 * newest first as the statement yields them, into a sink (store.h):
 *
 *   FIFO (not committed yet) --copy under mu--> pcopy --+
 *                                                       +--> sink.row --> the caller's
 *   database rows (sqlite3_column_blob) ----------------+                 buffer (one copy)
 *
 * The database part is bounded above by the room's first entry still in the
 * FIFO (and by its last seq at the read), so the two parts never overlap and
 * their order is known: database rows are the older ones. No merge, no sort,
 * no intermediate copy of the database's rows. When the query has no sink,
 * the collector below is the sink: it keeps the rows for cb (msgs). */

#define ROWS_MIN 4096

static void rreq_push(struct rreq *q, uint64_t seq, int64_t ts, uint32_t flags, const void *data,
                      size_t len)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->msgs = rc_xrealloc(q->msgs, q->cap * sizeof(*q->msgs));
        q->offs = rc_xrealloc(q->offs, q->cap * sizeof(*q->offs));
    }
    size_t used = q->rows ? q->rows->len : 0;
    if (q->rows == NULL || q->rows->cap - used < len + 1) {
        /* the size of the previous read's rows first (the same query
         * again, usually), then doubling */
        size_t want = q->rows ? 2 * q->rows->cap : q->st->rows_hint;
        if (want < ROWS_MIN)
            want = ROWS_MIN;
        while (want < used + len + 1)
            want *= 2;
        struct frame_ref *g = frame_ref_new(want, 0);
        if (used > 0)
            memcpy(g->data, q->rows->data, used);
        g->len = used;
        if (q->rows)
            frame_ref_put(q->rows);
        q->rows = g;
    }
    char *b = (char *)q->rows->data + used;
    if (len > 0)
        memcpy(b, data, len);
    b[len] = '\0';
    q->rows->len = used + len + 1;
    q->offs[q->n] = used;
    q->msgs[q->n] =
        (struct store_msg){.seq = seq, .ts_ms = ts, .flags = flags, .data = NULL, .len = len};
    q->n++;
}

static void rreq_free(struct rreq *q)
{
    if (q->rows != NULL)
        frame_ref_put(q->rows);
    rc_free(q->offs);
    rc_free(q->msgs);
    rc_free(q);
}

/* The collector (a query without a sink): the rows into q->rows, for cb. */
static void collect_begin(void *arg, const struct store_room *info, int desc, size_t bytes)
{
    (void)arg;
    (void)info;
    (void)desc;
    (void)bytes;
}

static void collect_row(void *arg, const struct store_msg *m)
{
    rreq_push(arg, m->seq, m->ts_ms, m->flags, m->data, m->len);
}

static void collect_end(void *arg, int status)
{
    (void)status;
    struct rreq *q = arg;
    for (size_t i = 0; i < q->n; i++) /* the rows block moves no more */
        q->msgs[i].data = (const char *)q->rows->data + q->offs[i];
    if (q->rows != NULL)
        q->st->rows_hint = q->rows->len + q->rows->len / 8;
    if (q->q.newest) /* they came newest first; cb gets them oldest first */
        for (size_t i = 0; i < q->n / 2; i++) {
            struct store_msg t = q->msgs[i];
            q->msgs[i] = q->msgs[q->n - 1 - i];
            q->msgs[q->n - 1 - i] = t;
        }
}

static const struct store_sink collect_sink = {
    .begin = collect_begin, .row = collect_row, .end = collect_end};

/* On the asking worker: the answer. */
static void answer_on_worker(void *arg)
{
    struct rreq *q = arg;
    q->cb(q->ud, q->status, &q->info, q->msgs, q->n);
    rreq_free(q);
}

static int matches(const struct store_query *q, uint64_t seq)
{
    return seq > q->since && (q->before == 0 || seq < q->before);
}

/* The room's matching FIFO entries a read needs, copied under mu (the
 * writer frees an entry once it is committed, which may happen while the
 * database is read): at most `limit` of them, the oldest for an ascending
 * read, the newest for `newest`. Usually a few (flush_ms worth); up to
 * `limit` while the disk fails. Oldest first. */
struct pcopy {
    struct store_msg *m; /* owned; data points into bytes */
    size_t n;
    char *bytes; /* owned */
    size_t used;
};

static void pcopy_take(struct pcopy *pc, struct store_sqlite *st, const struct sroom *r,
                       const struct store_query *q, uint64_t *first_seq)
{
    size_t all = 0;
    *first_seq = 0;
    for (const struct pend *p = st->head; p != NULL; p = p->next) {
        if (p->room != r || p->seq == 0)
            continue;
        if (*first_seq == 0)
            *first_seq = p->seq;
        all += matches(q, p->seq);
    }
    size_t want = all < q->limit ? all : q->limit;
    size_t skip = q->newest ? all - want : 0;
    *pc = (struct pcopy){0};
    if (want == 0)
        return;
    const struct pend *from = st->head; /* the first one to copy */
    size_t bytes = 0, i = 0, k = 0;
    for (const struct pend *p = st->head; p != NULL && k < want; p = p->next) {
        if (p->room != r || p->seq == 0 || !matches(q, p->seq) || i++ < skip)
            continue;
        if (k++ == 0)
            from = p;
        bytes += p->len;
    }
    pc->m = rc_xmalloc(want * sizeof(*pc->m));
    pc->bytes = rc_xmalloc(bytes + 1);
    for (const struct pend *p = from; p != NULL && pc->n < want; p = p->next) {
        if (p->room != r || p->seq == 0 || !matches(q, p->seq))
            continue;
        if (p->len > 0)
            memcpy(pc->bytes + pc->used, p->data, p->len);
        pc->m[pc->n++] = (struct store_msg){.seq = p->seq,
                                            .ts_ms = p->ts_ms,
                                            .flags = p->flags,
                                            .data = pc->bytes + pc->used,
                                            .len = p->len};
        pc->used += p->len;
    }
}

static void pcopy_free(struct pcopy *pc)
{
    rc_free(pc->m);
    rc_free(pc->bytes);
}

/* Steps s (bound by serve_read) and gives each row to the sink: the data
 * column's bytes where SQLite holds them (its statement's register: SQLite
 * copies a blob out of the page itself, and WITHOUT ROWID tables have no
 * incremental blob I/O to avoid that), no copy of ours. payload: s selects
 * flags and data only (seq and ts are 0 then). Returns the rows given; *rc
 * the last step's result (SQLITE_DONE when all is well). */
static size_t stream_rows(sqlite3_stmt *s, int payload, const struct store_sink *sink, void *arg,
                          size_t *bytes, int *rc)
{
    size_t n = 0;
    int c = payload ? 0 : 2; /* the flags column; data follows it */
    while ((*rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_msg m = {.flags = (uint32_t)sqlite3_column_int64(s, c),
                              .data = sqlite3_column_blob(s, c + 1)};
        m.len = (size_t)sqlite3_column_bytes(s, c + 1);
        if (!payload) {
            m.seq = (uint64_t)sqlite3_column_int64(s, 0);
            m.ts_ms = sqlite3_column_int64(s, 1);
        }
        *bytes += m.len;
        sink->row(arg, &m);
        n++;
    }
    return n;
}

static void serve_read(struct store_sqlite *st, sqlite3_stmt *stmts[2][2], struct rreq *q)
{
    /* 1. What is queued and not committed yet (copied first: whatever leaves
     *    the FIFO after this copy is already committed, so step 2 sees it). */
    pthread_mutex_lock(&st->mu);
    struct sroom *r = strmap_get(&st->rooms, q->room, q->len);
    if (r == NULL && !st->stop) {
        /* A room read before its first message gets its epoch now (and a
         * row), so that `joined` and later reads agree on it. */
        r = room_get(st, q->room, q->len);
        struct pend *p = rc_xcalloc(1, sizeof(*p));
        p->room = r;
        push_locked(st, p);
    }
    struct pcopy pc = {0};
    uint64_t first_pending = 0;
    if (r != NULL) {
        q->info.last_seq = r->last_seq;
        memcpy(q->info.epoch, r->epoch, sizeof(q->info.epoch));
        pcopy_take(&pc, st, r, &q->q, &first_pending);
    }
    pthread_mutex_unlock(&st->mu);
    if (r == NULL)
        return; /* no such room: status 0, nothing */

    /* 2. The database, below every entry still queued at step 1 (a room's
     *    entries are queued and committed in seq order, so those are its
     *    newest) and at most the last seq of step 1 (a later commit does not
     *    show up ahead of info). */
    uint64_t hi = q->info.last_seq < INT64_MAX ? q->info.last_seq + 1 : INT64_MAX;
    if (q->q.before != 0 && q->q.before < hi)
        hi = q->q.before;
    if (first_pending != 0 && first_pending < hi)
        hi = first_pending;
    uint32_t limit = q->q.limit;
    uint32_t db_limit = q->q.newest ? limit - (uint32_t)pc.n : limit;
    const struct store_sink *sink = q->q.sink ? q->q.sink : &collect_sink;
    void *arg = q->q.sink ? q->q.sink_arg : q;

    /* The bytes to come, for one allocation: the rows the seq range can
     * hold (at most db_limit) at the last read's bytes per row. */
    uint64_t span = hi > q->q.since + 1 ? hi - q->q.since - 1 : 0;
    size_t est = (span < db_limit ? (size_t)span : db_limit) * st->row_bytes;
    for (size_t i = 0; i < pc.n; i++)
        est += pc.m[i].len;

    sink->begin(arg, &q->info, q->q.newest, est);
    int payload = sink->payload_only;
    sqlite3_stmt *s = stmts[payload][q->q.newest != 0];
    int rc = SQLITE_DONE;
    size_t n = 0, bytes = 0;
    if (q->q.newest) /* newest first: the queued entries, then the database's */
        for (size_t i = pc.n; i-- > 0;)
            sink->row(arg, &pc.m[i]);
    if (db_limit > 0 && hi > q->q.since + 1) {
        sqlite3_bind_blob(s, 1, q->room, (int)q->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)q->q.since);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)hi);
        sqlite3_bind_int(s, 4, (int)db_limit);
        n = stream_rows(s, payload, sink, arg, &bytes, &rc);
        sqlite3_reset(s);
    }
    if (!q->q.newest) /* oldest first: the database's, then the queued ones */
        for (size_t i = 0; i < pc.n && n + i < limit; i++)
            sink->row(arg, &pc.m[i]);
    if (n > 0)
        st->row_bytes = bytes / n + 1;
    if (rc != SQLITE_DONE) {
        q->status = -EIO;
        rc_warn("history: %s: read failed: %s", st->path, sqlite3_errstr(rc));
    }
    sink->end(arg, q->status);
    pcopy_free(&pc);
}

/* The reader yields to the workers: a large read (1000 rows of 2 KB) is
 * milliseconds of copying that must not take a core from a loop serving
 * everyone else (tests/bench/history_stall.py pins the server to one core:
 * at equal priority the reader took over half of it, and the other
 * connections' p99 moved with its time slices). SCHED_BATCH keeps it from
 * preempting a woken worker; nice 10 gives a worker ~10x its share when both
 * want the core. Both are allowed unprivileged; a failure only logs. */
static void reader_yield_to_workers(const char *path)
{
    struct sched_param sp = {.sched_priority = 0};
    int e = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (e != 0)
        rc_debug("history: %s: reader stays SCHED_OTHER: %s", path, strerror(e));
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        rc_debug("history: %s: reader keeps its nice value: %s", path, strerror(errno));
}

static void *reader_main(void *arg)
{
    struct store_sqlite *st = arg;
    pthread_setname_np(pthread_self(), "rc-hist-read");
    reader_yield_to_workers(st->path);
    /* [payload only][newest]: a sink that reads only flags and bytes
     * (store_sink.payload_only) gets statements that fetch nothing else */
    sqlite3_stmt *stmts[2][2] = {{NULL, NULL}, {NULL, NULL}};
    int prc = SQLITE_OK;
    for (int p = 0; p < 2 && prc == SQLITE_OK; p++)
        for (int d = 0; d < 2 && prc == SQLITE_OK; d++) {
            char sql[512];
            snprintf(sql, sizeof(sql),
                     "SELECT %s data FROM messages WHERE room = "
                     "(SELECT id FROM rooms WHERE name = ?1) AND seq > ?2 AND seq < ?3 "
                     "ORDER BY seq %s LIMIT ?4",
                     p ? "flags," : "seq, ts, flags,", d ? "DESC" : "ASC");
            prc = sqlite3_prepare_v2(st->rdb, sql, -1, &stmts[p][d], NULL);
        }
    if (prc != SQLITE_OK)
        rc_error("history: %s: cannot prepare reads: %s", st->path, sqlite3_errmsg(st->rdb));

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (st->rhead == NULL && !st->stop)
            pthread_cond_wait(&st->rcond, &st->mu);
        struct rreq *q = st->rhead;
        if (q == NULL)
            break;
        st->rhead = q->next;
        if (st->rhead == NULL)
            st->rtail = NULL;
        pthread_mutex_unlock(&st->mu);
        if (prc == SQLITE_OK)
            serve_read(st, stmts, q);
        else
            q->status = -EIO;
        atomic_fetch_add(&st->c_reads, 1);
        st->base.host.post(st->base.host.ctx, q->worker, answer_on_worker, q);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < 2; d++)
            sqlite3_finalize(stmts[p][d]);
    return NULL;
}

/* -- store_ops ------------------------------------------------------------------------------ */

static struct store_sqlite *of(struct store *s)
{
    return (struct store_sqlite *)s;
}

/* Under mu: the room, created (with a fresh epoch, and queued for its row)
 * when new. */
static struct sroom *room_get(struct store_sqlite *st, const char *name, size_t len)
{
    struct sroom *r = strmap_get(&st->rooms, name, len);
    if (r != NULL)
        return r;
    r = room_new(name, len, 0, NULL);
    strmap_put(&st->rooms, name, len, r);
    return r;
}

static void push_locked(struct store_sqlite *st, struct pend *p)
{
    if (st->tail)
        st->tail->next = p;
    else
        st->head = p;
    st->tail = p;
    st->pushed++;
    if (st->npend++ == 0) {
        st->pend_since = mono_now();
        pthread_cond_signal(&st->wcond);
    } else if (st->npend == st->o.batch_max) {
        pthread_cond_signal(&st->wcond);
    }
}

static int s_room_open(struct store *s, const char *room, size_t len, struct store_room *out)
{
    struct store_sqlite *st = of(s);
    pthread_mutex_lock(&st->mu);
    int fresh = strmap_get(&st->rooms, room, len) == NULL;
    struct sroom *r = room_get(st, room, len);
    out->last_seq = r->last_seq;
    memcpy(out->epoch, r->epoch, sizeof(out->epoch));
    if (fresh) {
        /* Persist the epoch of a room that has no message yet, so a client
         * that saw it does not get recovered=false after a restart. */
        struct pend *p = rc_xcalloc(1, sizeof(*p));
        p->room = r;
        push_locked(st, p);
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static int s_append(struct store *s, const char *room, size_t len, const struct store_msg *m,
                    struct frame_ref *frame)
{
    (void)frame; /* copied: the writer may hold it for a long time while the disk fails */
    struct store_sqlite *st = of(s);
    if (st->o.refuse_on_error && atomic_load(&st->degraded)) {
        atomic_fetch_add(&st->c_refused, 1);
        return RC_E_DENIED;
    }
    struct pend *p = rc_xmalloc(sizeof(*p) + m->len);
    *p = (struct pend){.seq = m->seq, .ts_ms = m->ts_ms, .flags = m->flags, .len = m->len};
    if (m->len > 0)
        memcpy(p->data, m->data, m->len);
    pthread_mutex_lock(&st->mu);
    struct sroom *r = room_get(st, room, len);
    if (m->seq > r->last_seq)
        r->last_seq = m->seq;
    if (st->npend >= st->o.pending_max) {
        pthread_mutex_unlock(&st->mu);
        rc_free(p);
        atomic_fetch_add(&st->c_dropped, 1);
        return 0;
    }
    p->room = r;
    push_locked(st, p);
    pthread_mutex_unlock(&st->mu);
    atomic_fetch_add(&st->c_appended, 1);
    return 0;
}

static int s_read(struct store *s, int worker, const char *room, size_t len,
                  const struct store_query *q, store_read_cb cb, void *ud)
{
    struct store_sqlite *st = of(s);
    if (q->limit == 0 || q->limit > STORE_READ_MAX || cb == NULL || worker < 0 ||
        worker >= st->base.host.nworkers)
        return RC_E_INVAL;
    struct rreq *r = rc_xcalloc(1, sizeof(*r) + len + 1);
    memcpy(r->room, room, len);
    r->len = len;
    r->st = st;
    r->worker = worker;
    r->q = *q;
    r->cb = cb;
    r->ud = ud;
    pthread_mutex_lock(&st->mu);
    if (st->stop) {
        pthread_mutex_unlock(&st->mu);
        rc_free(r);
        return RC_E_CLOSED;
    }
    if (st->rtail)
        st->rtail->next = r;
    else
        st->rhead = r;
    st->rtail = r;
    pthread_cond_signal(&st->rcond);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static int s_health(struct store *s, char *why, size_t cap)
{
    struct store_sqlite *st = of(s);
    if (!atomic_load(&st->degraded)) {
        if (cap > 0)
            why[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&st->mu);
    if (cap > 0)
        snprintf(why, cap, "%s", st->why);
    pthread_mutex_unlock(&st->mu);
    return 1;
}

static void s_flush(struct store *s)
{
    struct store_sqlite *st = of(s);
    pthread_mutex_lock(&st->mu);
    uint64_t target = st->pushed;
    /* A failing disk gets two retries, not the whole wait. */
    int64_t wait = atomic_load(&st->degraded) ? 2 * (int64_t)st->o.retry_ms + 100 : FLUSH_WAIT_MS;
    if (wait > FLUSH_WAIT_MS)
        wait = FLUSH_WAIT_MS;
    struct timespec until = ts_add_ms(mono_now(), wait);
    st->flush_req = 1;
    pthread_cond_signal(&st->wcond);
    while (st->popped < target && st->threads) {
        if (pthread_cond_timedwait(&st->fcond, &st->mu, &until) == ETIMEDOUT) {
            rc_error("history: %s: flush gave up after %lld ms: %llu messages not written (%s)",
                     st->path, (long long)wait, (unsigned long long)(target - st->popped), st->why);
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

static void free_room(void *p)
{
    rc_free(p);
}

static void close_all(struct store_sqlite *st)
{
    if (st->threads) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_broadcast(&st->wcond);
        pthread_cond_broadcast(&st->rcond);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
        pthread_join(st->reader, NULL);
        st->threads = 0;
    }
    /* A clean close: nothing left behind, so the next start continues at
     * each room's last seq with the same epoch. */
    if (st->wdb != NULL && st->npend == 0 && !atomic_load(&st->degraded)) {
        int rc = sqlite3_exec(st->wdb,
                              "BEGIN IMMEDIATE; UPDATE rooms SET reserved = last_seq;"
                              "UPDATE meta SET value = 1 WHERE key = 'clean'; COMMIT;",
                              NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
            rc_warn("history: %s: cannot mark the file clean: %s", st->path, sqlite3_errstr(rc));
        }
    } else if (st->wdb != NULL && st->npend > 0) {
        rc_error("history: %s: %llu messages could not be written before exit", st->path,
                 (unsigned long long)st->npend);
    }
    while (st->head != NULL) {
        struct pend *p = st->head;
        st->head = p->next;
        rc_free(p);
    }
    while (st->rhead != NULL) { /* only when the reader never started */
        struct rreq *q = st->rhead;
        st->rhead = q->next;
        rreq_free(q);
    }
    sqlite3_close(st->rdb);
    sqlite3_close(st->wdb);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    strmap_clear(&st->rooms, free_room);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->wcond);
    pthread_cond_destroy(&st->rcond);
    pthread_cond_destroy(&st->fcond);
    rc_free(st->path);
    rc_free(st);
}

static void s_destroy(struct store *s)
{
    struct store_sqlite *st = of(s);
    s_flush(s);
    close_all(st);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .room_open = s_room_open,
    .append = s_append,
    .read = s_read,
    .health = s_health,
    .flush = s_flush,
    .destroy = s_destroy,
};

void store_sqlite_defaults(struct store_sqlite_opts *o)
{
    *o = (struct store_sqlite_opts){
        .keep = 1000,
        .max_age_ms = 7LL * 24 * 3600 * 1000,
        .flush_ms = 10,
        .batch_max = 1000,
        .pending_max = 100000,
        .retry_ms = 1000,
    };
}

int store_sqlite_open(const struct store_sqlite_opts *o, const struct store_host *host,
                      struct store **out, char *err, size_t cap)
{
    pthread_once(&sqlite_once, sqlite_setup);
    if (o->path == NULL || *o->path == '\0') {
        set_err(err, cap, "history", "no path");
        return RC_E_CONFIG;
    }
    if (check_dir(o->path, 1, err, cap) != 0)
        return RC_E_CONFIG;
    int fd;
    if (open_lock(o->path, 1, &fd, err, cap) != 0)
        return RC_E_CONFIG;

    struct store_sqlite *st = rc_xcalloc(1, sizeof(*st));
    st->base.ops = &sqlite_ops;
    st->base.host = *host;
    st->o = *o;
    if (st->o.flush_ms == 0)
        st->o.flush_ms = 1;
    if (st->o.batch_max == 0)
        st->o.batch_max = 1000;
    if (st->o.pending_max == 0)
        st->o.pending_max = 100000;
    if (st->o.retry_ms == 0)
        st->o.retry_ms = 1000;
    if (st->o.trim_ms == 0) {
        int64_t t = st->o.max_age_ms / 4;
        st->o.trim_ms = (uint32_t)(t <= 0 || t > 60000 ? 60000 : t < 100 ? 100 : t);
    }
    st->path = rc_xstrdup(o->path);
    st->o.path = st->path;
    st->lock_fd = fd;
    pthread_mutex_init(&st->mu, NULL);
    cond_init_mono(&st->wcond);
    cond_init_mono(&st->rcond);
    cond_init_mono(&st->fcond);
    strmap_init(&st->rooms);

    int src;
    st->wdb = open_conn(st->path, 0, &src);
    int v = 0;
    char *msg = NULL;
    if (src == SQLITE_OK)
        src = get_user_version(st->wdb, &v);
    if (src != SQLITE_OK) {
        sql_cause(err, cap, st->path, st->wdb, src);
        goto fail;
    }
    if (v > STORE_SQLITE_SCHEMA) {
        set_err(err, cap, st->path, "schema version %d is newer than this roomcast supports (%d)",
                v, STORE_SQLITE_SCHEMA);
        goto fail;
    }
    /* WAL: readers never block the writer; synchronous=NORMAL: a commit
     * survives a crash of the process (kill -9), which is what we promise; a
     * power cut may lose the last commits, never corrupt the file. */
    src = sqlite3_exec(st->wdb, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;", NULL,
                       NULL, &msg);
    sqlite3_free(msg);
    if (src != SQLITE_OK) {
        sql_cause(err, cap, st->path, st->wdb, src);
        goto fail;
    }
    if (v < STORE_SQLITE_SCHEMA && migrate(st->wdb, v, err, cap, st->path) != SQLITE_OK)
        goto fail;
    if (load_rooms(st, err, cap) != 0)
        goto fail;
    st->rdb = open_conn(st->path, 1, &src);
    if (src != SQLITE_OK) {
        sql_cause(err, cap, st->path, st->rdb, src);
        goto fail;
    }
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0)
        rc_panic("history: cannot start the writer thread");
    if (pthread_create(&st->reader, NULL, reader_main, st) != 0)
        rc_panic("history: cannot start the reader thread");
    st->threads = 1;
    *out = &st->base;
    return 0;
fail:
    /* Not ours to mark clean: the file may belong to someone else. */
    sqlite3_close(st->rdb);
    st->rdb = NULL;
    sqlite3_close(st->wdb);
    st->wdb = NULL;
    close_all(st);
    return RC_E_CONFIG;
}

void store_sqlite_counters(struct store *s, struct store_sqlite_counters *c)
{
    struct store_sqlite *st = of(s);
    c->appended = atomic_load(&st->c_appended);
    c->committed = atomic_load(&st->c_committed);
    c->batches = atomic_load(&st->c_batches);
    c->write_errors = atomic_load(&st->c_errors);
    c->dropped = atomic_load(&st->c_dropped);
    c->refused = atomic_load(&st->c_refused);
    c->reads = atomic_load(&st->c_reads);
    c->trimmed = atomic_load(&st->c_trimmed);
    c->degraded = atomic_load(&st->degraded);
    pthread_mutex_lock(&st->mu);
    c->pending = st->npend;
    pthread_mutex_unlock(&st->mu);
}

int store_sqlite_was_unclean(struct store *s)
{
    return of(s)->unclean;
}
