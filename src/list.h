/* list.h - the one intrusive doubly-linked list sfl uses: any struct with
 * `prev` and `next` pointers to its own type, and a head pointer (NULL when
 * empty). Push at the head and unlink are O(1); nothing is allocated. Macros
 * (as BSD's sys/queue.h), so that one helper serves every element type. */
#ifndef SFL_LIST_H
#define SFL_LIST_H

/* Puts x at the front of the list whose head is the lvalue head. */
#define SFL_LIST_PUSH(head, x)                                                                     \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)

/* Takes x out of the list (a no-op for an x in no list: prev and next NULL
 * and not the head). x's links are NULL afterwards. */
#define SFL_LIST_UNLINK(head, x)                                                                   \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else if ((head) == (x))                                                                    \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
        (x)->prev = (x)->next = NULL;                                                              \
    } while (0)

#endif
