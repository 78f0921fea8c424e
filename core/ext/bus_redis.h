/* bus_redis.h - the cluster bus (bus.h) and history store (store.h) on Redis.
 *
 * Where it runs: one dedicated bus thread with its own ev_loop owns both
 * Redis connections (hiredis async on its libev adapter). Workers never touch
 * a Redis socket: a call from a worker copies what it needs into a request,
 * appends it to the bus thread's queue (a short mutex + ev_async, like a
 * worker mailbox) and returns; answers go back through host->post. So a slow
 * or dead Redis never stalls a worker loop, the per-room gap state needs no
 * lock (the bus thread alone touches it), and the whole node shares two
 * connections however many workers it has.
 *
 *   worker --publish--> [queue] --> bus thread --EVALSHA--> Redis (INCR, XADD, PUBLISH)
 *      ^                              |  <--------- reply (seq) --------'
 *      `-------- ack(seq) via post ---'
 *   Redis --message on rc:{room}--> bus thread: parse, epoch, gap? backfill (XRANGE) : dedupe
 *                                      `--post--> owner worker: host->deliver (seq order)
 *
 * Connections: a command connection (scripts, XRANGE, presence, heartbeat)
 * and a subscriber connection (SUBSCRIBE rc:{room} for every room with local
 * members, rc:u:{user} for every user with a local connection). The bus is
 * "up" when both are ready; a failure of either (EOF, error, a command older
 * than RC_BUS_CMD_TIMEOUT) drops both and reconnects with exponential backoff
 * and jitter. While it is not up, publish and send_to_user answer RC_E_DENIED
 * at once; requests in flight when it fails are answered RC_E_DENIED (never
 * silently lost); the queue is bounded (RC_BUS_MAX_INFLIGHT requests,
 * RC_BUS_MAX_INFLIGHT_BYTES of payload).
 *
 * Keys and channels carry the room in a hash tag so that Redis Cluster can
 * place a room's keys on one shard:
 *   rc:{room}:seq     INCR counter (the room's last seq)
 *   rc:{room}:epoch   the room's epoch (recreated when Redis lost the room)
 *   rc:{room}:h       stream, entry id "<seq>-0", fields d (data), t (ts), f (flags)
 *   rc:{room}         channel, messages in busmsg.h's room format
 *   rc:{room}:p:NODE  hash user -> connections of that user on NODE, and "" -> all of
 *                     NODE's connections in the room, user or not (TTL node_ttl: the
 *                     count and the users expire together; a count reads "" alone)
 *   rc:{room}:pn      set of NODEs that have presence in the room
 *   rc:u:{user}       channel of direct messages to a user
 *   rc:nodes          sorted set NODE -> expiry (ms, Redis clock)
 */
#ifndef RC_EXT_BUS_REDIS_H
#define RC_EXT_BUS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "store.h"

#define RC_BUS_MAX_INFLIGHT 65536             /* queued + in-flight requests per node */
#define RC_BUS_MAX_INFLIGHT_BYTES (64L << 20) /* and their payload bytes */
#define RC_BUS_CMD_TIMEOUT 3.0                /* seconds before a silent Redis counts as down */

struct bus_redis_cfg {
    const char *url;      /* redis://... (redisurl.h); borrowed during the call */
    const char *password; /* NULL: the URL's, if any; else AUTH with this (password_env) */
    const char *node_id;  /* 1..64 bytes of 0x21..0x7e */
    double node_ttl;      /* seconds: presence and node registration expire after this */
    uint32_t keep;        /* stream length kept per room (XADD MAXLEN ~ keep), >= 1 */
};

/* Checks cfg, then starts the bus thread, which connects in the background
 * (an unreachable Redis is retried, never fatal). host is copied. Returns the
 * bus, or NULL with a reason in why (bad URL or node id). Main thread. */
struct bus *bus_redis_new(const struct bus_redis_cfg *cfg, const struct bus_host *host, char *why,
                          size_t cap);

/* The history store of cluster mode: the rooms' streams, read through the
 * bus's command connection. append is a no-op (the publish script already
 * wrote the entry); room_open returns what this node's bus knows of the room
 * (last seq delivered here, epoch) and never waits. The store borrows `bus`,
 * which must outlive it. Main thread. */
struct store *store_redis_new(struct bus *bus, const struct store_host *host);

/* The default node id: "HOST:PORT-XXXXXX" (gethostname, the ws:// port, six
 * random characters, so two nodes on one host and a restarted node differ).
 * Writes at most cap bytes (NUL included, cap >= 16); the result is a valid
 * node id (busmsg_valid_node). Any thread. */
void bus_redis_default_node_id(char *out, size_t cap, int port);

/* Counters of one bus, for tests and benches (any thread). */
struct bus_redis_counters {
    uint64_t publishes, publish_unavailable, deliveries, duplicates, backfills, backfilled, lost,
        bad_messages, epoch_changes, reconnects, directs_in;
    long nodes_seen;
    int up;
};
void bus_redis_counters(struct bus *bus, struct bus_redis_counters *out);

#endif
