/* glue.h - attaches a hiredis async context to a libevent loop (glue.c). */
#ifndef SFL_GLUE_H
#define SFL_GLUE_H

struct redisAsyncContext;
struct event_base;

/* Hooks ac's reads and writes to base; the glue is freed with ac (hiredis
 * calls its cleanup). 0, or -1 when out of memory (ac untouched). */
int sfl_glue_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
