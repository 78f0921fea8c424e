/* stats.h - per-worker counters.
 *
 * Each counter has exactly one writer (its worker thread) and is read by the
 * admin endpoint from another thread, so relaxed atomics are enough: no
 * counter is ever used to order other memory. STAT_INC on the hot path is
 * a plain add on x86 with memory_order_relaxed.
 */
#ifndef RC_APP_STATS_H
#define RC_APP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define RC_STATS_MAP(XX)                                                                           \
    XX(conns_active, gauge, "Open connections (any state)")                                        \
    XX(conns_total, counter, "Connections accepted")                                               \
    XX(upgrades_total, counter, "Successful WebSocket upgrades")                                   \
    XX(handshake_failures_total, counter, "Refused or failed handshakes")                          \
    XX(msgs_in_total, counter, "Data messages received")                                           \
    XX(msgs_out_total, counter, "Data messages queued to clients")                                 \
    XX(bytes_in_total, counter, "Bytes read from clients")                                         \
    XX(bytes_out_total, counter, "Bytes written to clients")                                       \
    XX(drops_total, counter, "Data frames dropped by the slow-consumer policy")                    \
    XX(slow_closes_total, counter, "Connections closed by the slow-consumer policy")               \
    XX(queued_bytes, gauge, "Bytes waiting in send queues")                                        \
    XX(rooms, gauge, "Rooms owned by this worker")                                                 \
    XX(pings_sent_total, counter, "Heartbeat pings sent")                                          \
    XX(heartbeat_closes_total, counter, "Connections closed for a missing pong")                   \
    XX(handshake_timeouts_total, counter, "Connections closed for a slow handshake")               \
    XX(protocol_errors_total, counter, "Connections failed with 1002/1007/1009")                   \
    XX(lua_errors_total, counter, "Handler errors (exceptions and exhausted budgets)")             \
    XX(reloads_total, counter, "Successful script reloads")                                        \
    XX(reload_failures_total, counter, "Refused script reloads")

struct worker_stats {
#define RC_STATS_FIELD(name, kind, help) atomic_uint_fast64_t name;
    RC_STATS_MAP(RC_STATS_FIELD)
#undef RC_STATS_FIELD
};

#define STAT_ADD(st, field, n)                                                                     \
    atomic_store_explicit(&(st)->field,                                                            \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n),          \
                          memory_order_relaxed)
#define STAT_INC(st, field) STAT_ADD(st, field, 1)
#define STAT_DEC(st, field) STAT_ADD(st, field, (uint_fast64_t)-1)
#define STAT_GET(st, field) atomic_load_explicit(&(st)->field, memory_order_relaxed)

#endif
