/* api.h - the HTTP API for backends under /api/ on the admin listener
 * (README "HTTP API"). admin.c parses the HTTP request and hands it here.
 *
 *   POST /api/publish    {"room_id","content"|"data"} -> {"seq":N}
 *        admin thread --mail_call--> room owner: handler->api_publish (the
 *        script's on_api_publish decides the payload) -> api_publish_payload
 *        -> room_publish_ack -> bus.publish (sequence, encode, store.append,
 *        deliver: the member's pipeline, local or cluster bus alike)
 *        --ack(seq) on that worker--> api_complete --> [lock|queue|unlock]
 *        --ev_async--> admin: reply hook
 *   POST /api/send       {"user_id","content"}        -> {"delivered":n}
 *        admin --mail_call--> a worker: bus.send_to_user --ack(n)--> api_complete
 *        (n: connections reached on this node; a cluster bus acks 1 once it
 *        took the message, bus.h)
 *   GET  /api/rooms                                   -> {"rooms":[...]}
 *   GET  /api/rooms/<room>/presence                   -> {"room_id","users","count"}
 *   GET  /api/rooms/<room>/count                      -> {"room_id","count"}
 *        count: the room's connections, with a user id or without; in a
 *        cluster every node's (bus.presence / bus.presence_count, asked on
 *        the room's owner worker; the count alone never reads a member)
 *   GET  /api/rooms/<room>/history?since=&before=&limit=
 *        -> {"room_id","epoch","last_seq","messages"}: admin --mail_call-->
 *        room owner: store.read --host.post--> answer on that worker
 *        --api_complete--> admin (the same queue as publishes)
 *   POST /api/disconnect {"user_id","code","reason"}  -> {"closed":n}
 *
 * Errors: {"code":"<stable code>","message":"..."} with 400 (bad_json,
 * missing_field, invalid_field, chunked_body), 401 (unauthorized), 404
 * (api_disabled, not_found, room_not_found, no_publish_hook), 405
 * (method_not_allowed), 413 (too_big), 503 (draining, script_error,
 * unavailable).
 * Thread: everything but api_complete and api_publish_payload runs on the
 * admin (main) thread. Rooms and presence are read through room.h (under
 * the rooms' locks); disconnect finds the user's connections in users.h
 * (this node only).
 */
#ifndef RC_APP_API_H
#define RC_APP_API_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct rc_config;

/* Delivers a deferred answer (api_handle returned API_PENDING) on the admin
 * loop: req as given to api_handle, status, body (owned JSON text). */
typedef void (*api_reply_fn)(uint64_t req, int status, char *body);

/* Sets up the completion queue on loop. Admin thread, before requests. */
void api_init(struct ev_loop *loop, struct server *srv, const struct rc_config *cfg,
              api_reply_fn reply);
/* From now on publishes get 503 draining (SIGTERM began the drain). */
void api_set_draining(void);

/* Drops pending completions and stops the watcher. */
void api_stop(void);

#define API_PENDING 0

/* One API request. auth: the Authorization header value (NULL if absent).
 * Returns the HTTP status with *body (owned JSON) and *extra (static header
 * lines or NULL) set, or API_PENDING: the reply hook will be called exactly
 * once, later, on the admin loop, for this req. */
int api_handle(uint64_t req, const char *method, size_t mlen, const char *path, size_t plen,
               const char *query, size_t qlen, const char *auth, size_t alen, const char *body,
               size_t blen, char **out, const char **extra);

/* Completes a pending request (any thread; the body is copied). */
void api_complete(uint64_t req, int status, const char *body, size_t len);

/* On worker w (the handler's api_publish hook): publishes the payload the
 * script chose through the bus, and completes req with {"seq":N} when the
 * bus acks it (or with the error). flags: ROOM_PUB_STAMP and friends. */
struct worker;
void api_publish_payload(struct worker *w, uint64_t req, const char *room, size_t rl,
                         const void *payload, size_t plen, unsigned flags);

/* A JSON error body {"code":..,"message":..} (owned). */
char *api_error_body(const char *code, const char *message);

#endif
