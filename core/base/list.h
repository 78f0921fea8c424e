/* list.h - intrusive circular doubly-linked list (header-only).
 *
 *   head <-> a <-> b <-> c <-> head
 *
 * A node that is not on any list has next == prev == itself (rc_list_init),
 * so rc_list_remove is safe to call twice and rc_list_linked tells whether a
 * node is on a list.
 */
#ifndef RC_BASE_LIST_H
#define RC_BASE_LIST_H

#include "defs.h"

struct rc_list {
    struct rc_list *next, *prev;
};

static inline void rc_list_init(struct rc_list *l)
{
    l->next = l->prev = l;
}

static inline int rc_list_empty(const struct rc_list *head)
{
    return head->next == head;
}

static inline int rc_list_linked(const struct rc_list *n)
{
    return n->next != n;
}

static inline void rc_list_insert_before(struct rc_list *pos, struct rc_list *n)
{
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}

static inline void rc_list_push_back(struct rc_list *head, struct rc_list *n)
{
    rc_list_insert_before(head, n);
}

static inline void rc_list_push_front(struct rc_list *head, struct rc_list *n)
{
    rc_list_insert_before(head->next, n);
}

static inline void rc_list_remove(struct rc_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define rc_list_entry(ptr, type, member) rc_container_of(ptr, type, member)
#define rc_list_first(head, type, member) rc_list_entry((head)->next, type, member)

/* Iteration that tolerates removal of the current node. */
#define rc_list_foreach_safe(pos, tmp, head)                                                       \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
