/* store_sqlite.h - the embedded history store (store.h) on one SQLite file.
 *
 *   owner workers                     writer thread (one)            reader thread (one)
 *   room_open: map lookup (memory)    every flush_ms or batch_max:   read requests (FIFO):
 *   append: copy -> pending FIFO ---> BEGIN; INSERT...; rooms row;   pending copy + SELECT,
 *                (mutex, no I/O)      keep-trim; COMMIT; pop FIFO    merged by seq
 *                                     every trim period: max_age     --> host.post(worker, answer)
 *
 * A worker's loop never waits on SQLite: room_open answers from the room
 * table loaded at open (before workers start), append only queues a copy.
 * Reads see what was appended but is not committed yet (they merge the
 * pending FIFO with the database), so a read right after a publish finds it.
 *
 * Seq safety across crashes (kill -9): BOTH a durable reservation and an
 * epoch change. Every batch also writes, per room, `reserved` = the batch's
 * last seq + STORE_SQLITE_RESERVE; a clean close (destroy) resets reserved to
 * the last seq and marks the file clean. On an unclean start (the file is not
 * marked clean) each room continues after `reserved`, so a seq that clients
 * may have seen but that never reached the disk is not issued again (unless
 * more than STORE_SQLITE_RESERVE seqs of one room were issued and not
 * committed, which takes a write stall of minutes at a high rate), and each
 * room gets a new epoch, because the tail of its history (at most the last
 * flush window, or what piled up during a write error) may be lost: a client
 * resuming with the old epoch is told recovered=false instead of silently
 * missing that tail. A reservation alone would hide the loss; an epoch alone
 * would let clients that dedupe by seq drop new messages.
 *
 * Write errors (disk full, I/O error): the batch stays queued (up to
 * pending_max messages; later ones are not stored and counted as dropped),
 * the store reports degraded, logs once per `retry_ms`, and retries every
 * retry_ms; the first successful commit clears it. With refuse_on_error,
 * append returns RC_E_DENIED while degraded.
 */
#ifndef RC_EXT_STORE_SQLITE_H
#define RC_EXT_STORE_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The schema this build writes (PRAGMA user_version). A file with a higher
 * version is refused; a lower one is migrated step by step at open. */
#define STORE_SQLITE_SCHEMA 1
/* Seqs reserved ahead of the last committed one, per room (see above). */
#define STORE_SQLITE_RESERVE 1000000ULL

struct store_sqlite_opts {
    const char *path;     /* the database file; its directory is created when missing */
    uint32_t keep;        /* messages kept per room (0: no limit); default 1000 */
    int64_t max_age_ms;   /* older messages are deleted (0: no limit); default 7 days */
    uint32_t flush_ms;    /* commit at least this often while appends are pending; default 10 */
    uint32_t batch_max;   /* or as soon as this many are pending; default 1000 */
    uint32_t pending_max; /* messages queued while writes fail; default 100000 */
    uint32_t retry_ms;    /* retry (and log) period after a write error; default 1000 */
    uint32_t trim_ms;     /* max_age pass period; default min(60 s, max_age / 4) */
    int refuse_on_error;  /* store_errors = "refuse": append -> RC_E_DENIED while degraded */
};

/* Fills the defaults above (path NULL). */
void store_sqlite_defaults(struct store_sqlite_opts *o);

/* Opens (creating the directory and file when missing), checks and migrates
 * the database, takes the file's lock against another roomcast, loads every
 * room's seq and epoch, and starts the writer and reader threads.
 * host is copied. Main thread, before workers start.
 * Returns 0 and *out, or a negative code with err set to one line
 * "PATH: cause" (the directory cannot be created or written, not a
 * database, a newer schema, locked by another roomcast, ...). */
int store_sqlite_open(const struct store_sqlite_opts *o, const struct store_host *host,
                      struct store **out, char *err, size_t cap);

/* The same checks for `roomcast -t`, changing nothing: the directory (or
 * the nearest existing ancestor) is writable, an existing file is a database
 * of a schema we can read and is not locked by a running roomcast.
 * Returns 0, or a negative code with err set as above. */
int store_sqlite_check(const char *path, char *err, size_t cap);

/* Counters for /metrics and /stats (any thread; monotonic unless noted). */
struct store_sqlite_counters {
    uint64_t appended;     /* messages accepted by append */
    uint64_t committed;    /* messages written */
    uint64_t batches;      /* transactions committed */
    uint64_t write_errors; /* failed transactions */
    uint64_t dropped;      /* messages not stored (pending_max reached) */
    uint64_t refused;      /* appends refused (refuse_on_error) */
    uint64_t reads;        /* reads answered */
    uint64_t trimmed;      /* messages deleted by retention */
    uint64_t pending;      /* gauge: queued, not yet committed */
    int degraded;          /* gauge */
};
/* st must be a store made by store_sqlite_open. */
void store_sqlite_counters(struct store *st, struct store_sqlite_counters *out);

/* Tests: 1 when the last open found the file not marked clean. */
int store_sqlite_was_unclean(struct store *st);

#endif
