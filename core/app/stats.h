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
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jwt.h"

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
    XX(fanout_flushes_total, counter,                                                              \
       "Connections flushed at the end of a fan-out window (fanout_delay)")                        \
    XX(queued_bytes, gauge, "Bytes waiting in send queues")                                        \
    XX(rooms, gauge, "Rooms owned by this worker")                                                 \
    XX(pings_sent_total, counter, "Heartbeat pings sent")                                          \
    XX(heartbeat_closes_total, counter, "Connections closed for a missing pong")                   \
    XX(handshake_timeouts_total, counter, "Connections closed for a slow handshake")               \
    XX(protocol_errors_total, counter, "Connections failed with 1002/1007/1009")                   \
    XX(lua_errors_total, counter, "Handler errors (exceptions and exhausted budgets)")             \
    XX(lua_waiting, gauge, "Handlers waiting now on an asynchronous call (store, publish, sleep)") \
    XX(lua_wait_timeouts_total, counter, "Handler waits ended by lua_wait_timeout")                \
    XX(recover_holds_ended_total, counter,                                                         \
       "Held joins ended by the core: their handler ended without conn:release")                   \
    XX(reloads_total, counter, "Successful script reloads")                                        \
    XX(reload_failures_total, counter, "Refused script reloads")                                   \
    XX(conns_open, gauge, "Open WebSocket connections (upgraded)")                                 \
    XX(refused_max_conns_total, counter, "Upgrades refused with 503 (max_connections)")            \
    XX(refused_per_ip_total, counter, "Connections refused by the per-IP cap")                     \
    XX(refused_accept_rate_total, counter, "Connections refused by the accept rate limit")         \
    XX(refused_origin_total, counter, "Upgrades refused with 403 (Origin not allowed)")            \
    XX(msg_rate_drops_total, counter, "Messages dropped by the per-connection rate limit")         \
    XX(msg_rate_closes_total, counter, "Connections closed 1008 by the message rate limit")        \
    XX(tls_handshake_failures_total, counter, "Failed TLS handshakes")                             \
    XX(deflate_conns, gauge, "Open connections with permessage-deflate negotiated")                \
    XX(deflate_negotiated_total, counter, "Upgrades that negotiated permessage-deflate")           \
    XX(deflate_in_wire_bytes_total, counter, "Compressed message bytes received")                  \
    XX(deflate_in_raw_bytes_total, counter, "Those messages' bytes after inflating")               \
    XX(deflate_out_raw_bytes_total, counter, "Message bytes compressed for sending")               \
    XX(deflate_out_wire_bytes_total, counter, "Their size after compressing")                      \
    XX(static_requests_total, counter, "Plain GET/HEAD requests answered from static_dir")

/* Close codes counted by stats_count_close(): 1000-1015 by value, then one
 * slot for the application range 3000-4999 and one for anything else. */
#define RC_CLOSE_SLOTS 18
/* Refused handshakes by HTTP status (stats_count_refusal()). */
#define RC_HS_STATUS_MAP(XX)                                                                       \
    XX(400) XX(403) XX(404) XX(405) XX(408) XX(426) XX(429) XX(431) XX(500) XX(503)
#define RC_HS_SLOTS 11 /* the statuses above plus "other" */
/* ... and by reason: the stable `kind` of struct ws_refusal (handshake.h,
 * guard.c, conn.c, the Lua connect hook), plus "other". */
/* clang-format off */
#define RC_HS_REASON_MAP(XX) \
    XX(method) XX(http_version) XX(host) XX(not_websocket) XX(connection) XX(key) XX(version) \
    XX(not_found) XX(origin) XX(max_connections) XX(script) XX(script_error) \
    XX(head_too_large) XX(malformed) XX(timeout) XX(internal)
/* clang-format on */
#define RC_HS_REASONS 17 /* the reasons above plus "other" */
/* Handler time histogram: upper bounds in microseconds, then +Inf. */
#define RC_HIST_BOUNDS_US                                                                          \
    {                                                                                              \
        10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000                        \
    }
#define RC_HIST_SLOTS 12

struct worker_stats {
#define RC_STATS_FIELD(name, kind, help) atomic_uint_fast64_t name;
    RC_STATS_MAP(RC_STATS_FIELD)
#undef RC_STATS_FIELD
    atomic_uint_fast64_t closes_by_code[RC_CLOSE_SLOTS];
    atomic_uint_fast64_t refusals_by_status[RC_HS_SLOTS];
    atomic_uint_fast64_t refusals_by_reason[RC_HS_REASONS];
    atomic_uint_fast64_t jwt_refusals_by_reason[JWT_NREASONS]; /* by enum jwt_reason; 0 unused */
    atomic_uint_fast64_t handler_hist[RC_HIST_SLOTS]; /* not cumulative: one slot per bucket */
    atomic_uint_fast64_t handler_ns_sum;
};

#define STAT_ADD(st, field, n)                                                                     \
    atomic_store_explicit(&(st)->field,                                                            \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n),          \
                          memory_order_relaxed)
#define STAT_INC(st, field) STAT_ADD(st, field, 1)
#define STAT_DEC(st, field) STAT_ADD(st, field, (uint_fast64_t)-1)
#define STAT_GET(st, field) atomic_load_explicit(&(st)->field, memory_order_relaxed)

/* Counts one connection that stopped being open with `code` (sent or received). */
static inline void stats_count_close(struct worker_stats *st, unsigned code)
{
    size_t i = code >= 1000 && code <= 1015 ? code - 1000 : code >= 3000 && code <= 4999 ? 16 : 17;
    STAT_INC(st, closes_by_code[i]);
}

/* The names of RC_HS_REASON_MAP in slot order ("other" last). */
static const char *const rc_hs_reason_names[] = {
#define RC_HS_NAME(r) #r,
    RC_HS_REASON_MAP(RC_HS_NAME)
#undef RC_HS_NAME
        "other"};
_Static_assert(sizeof(rc_hs_reason_names) / sizeof(rc_hs_reason_names[0]) == RC_HS_REASONS,
               "RC_HS_REASONS must count RC_HS_REASON_MAP plus other");

/* Counts one handshake refused with HTTP `status` for reason `kind` (NULL or
 * unknown: "other"). */
static inline void stats_count_refusal(struct worker_stats *st, int status, const char *kind)
{
    static const int codes[] = {
#define RC_HS_CODE(c) c,
        RC_HS_STATUS_MAP(RC_HS_CODE)
#undef RC_HS_CODE
    };
    size_t i = 0;
    while (i < sizeof(codes) / sizeof(codes[0]) && codes[i] != status)
        i++;
    STAT_INC(st, refusals_by_status[i]);
    size_t k = 0;
    while (kind && k < RC_HS_REASONS - 1 && strcmp(rc_hs_reason_names[k], kind) != 0)
        k++;
    STAT_INC(st, refusals_by_reason[kind ? k : RC_HS_REASONS - 1]);
}
/* The histogram slot of a handler call that took `ns` nanoseconds: the
 * first bucket whose bound it does not exceed (Prometheus `le`), else +Inf. */
static inline size_t stats_handler_slot(uint64_t ns)
{
    static const uint64_t bounds[] = RC_HIST_BOUNDS_US;
    size_t i = 0;
    while (i < sizeof(bounds) / sizeof(bounds[0]) && ns > bounds[i] * 1000)
        i++;
    return i;
}

/* Records one handler call that took `ns` nanoseconds. Most calls land in
 * the first bucket: one compare against a constant and a fixed slot then,
 * not the table walk (the same slot either way). */
static inline void stats_observe_handler(struct worker_stats *st, uint64_t ns)
{
    const uint64_t first_bound_us = ((const uint64_t[])RC_HIST_BOUNDS_US)[0];
    if (__builtin_expect(ns <= first_bound_us * 1000, 1))
        STAT_INC(st, handler_hist[0]);
    else
        STAT_INC(st, handler_hist[stats_handler_slot(ns)]);
    STAT_ADD(st, handler_ns_sum, ns);
}

#endif
