/* eddy: an intrusive, circular, doubly linked list. Embed a struct
 * eddy_list in your own struct, keep another as the list's head, and get
 * back from a link to its struct with eddy_list_entry(). Insertion and
 * removal are O(1) and never allocate. eddy uses it for its own lists
 * (live connections, async handles); programs can use it for theirs. */
#ifndef EDDY_LIST_H
#define EDDY_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct eddy_list {
    struct eddy_list *next;
    struct eddy_list *prev;
};

/* Makes head an empty list (a link is in no list until inserted). */
static inline void eddy_list_init(struct eddy_list *head)
{
    head->next = head->prev = head;
}

static inline bool eddy_list_empty(const struct eddy_list *head)
{
    return head->next == head;
}

/* Inserts node at the front of the list. */
static inline void eddy_list_push(struct eddy_list *head, struct eddy_list *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

/* Removes node from whatever list it is in. */
static inline void eddy_list_remove(struct eddy_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = node;
}

/* The struct of type `type` whose member `member` is the link ptr. */
#define eddy_list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Iterates over the links of a list; the body must not remove `pos`. */
#define eddy_list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif
