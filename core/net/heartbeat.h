/* heartbeat.h - timeout lists: one ordered list and ONE timer per distinct
 * timeout value (libev manual, "Be smart about timeouts", method 4), on the
 * worker loop (wloop.h).
 *
 *   tlist(timeout T):  head -> [c7 stamp=10.0] -> [c2 stamp=10.4] -> [c9 stamp=12.1]
 *                      timer armed for head.stamp + T
 *
 * Invariant: nodes are in non-decreasing `stamp` order, because a node is only
 * ever (re)inserted at the tail with stamp = the loop's current time.
 * Activity is O(1): unlink and append; the timer is not touched. When the
 * timer fires, every node whose stamp + T has passed is unlinked and handed
 * to the expire callback (which may re-add it to this or another list), then
 * the timer is re-armed for the new head.
 *
 * A node is on at most one tlist at a time. Single-threaded (the worker's loop).
 */
#ifndef RC_NET_HEARTBEAT_H
#define RC_NET_HEARTBEAT_H

#include "list.h"
#include "wloop.h"

struct tnode {
    struct rc_list link; /* unlinked: points to itself */
    double stamp;
    struct tlist *on; /* the list it is on, or NULL */
};

struct tlist;
/* Called for each expired node, already unlinked. May re-add it anywhere. */
typedef void (*tlist_expire_cb)(struct tlist *tl, struct tnode *n);

struct tlist {
    struct rc_list head;
    struct wtimer timer;
    struct wloop *loop; /* borrowed */
    double timeout;
    tlist_expire_cb expire;
    void *data; /* for the callback */
};

void tnode_init(struct tnode *n);
void tlist_init(struct tlist *tl, struct wloop *loop, double timeout, tlist_expire_cb cb,
                void *data);
/* Moves n (from whichever list it is on) to the tail of tl with stamp = now. */
void tlist_add(struct tlist *tl, struct tnode *n);
/* Unlinks n from its list, if any. Safe to call twice. */
void tlist_remove(struct tnode *n);
/* Stops the timer; nodes are left linked (the owner unlinks them). */
void tlist_stop(struct tlist *tl);

#endif
