/* worker.h - runs streams through the scheduler and the checks on one node:
 * what `sflimit check` and `sflimit node` share. */
#ifndef SFL_WORKER_H
#define SFL_WORKER_H

#include "check.h"

typedef struct sfl_app sfl_app;
typedef struct sfl_sched sfl_sched;
typedef struct sfl_worker sfl_worker;

/* One result per added stream, exactly once. result belongs to the callee.
 * started: the check ran (or began to); 0 for NoSlot, Cancelled before
 * start, unknown accounts. */
typedef void sfl_worker_done_fn(void *ctx, const sfl_stream *stream, cJSON *result,
                                sfl_status status, int started, void *arg);

/* A stream's wait for its slot ended: granted (its check starts now; for a
 * custom stream, its global slot) or not (NoSlot). wait_ms runs from
 * sfl_worker_add. Streams cancelled or of an unknown account are not
 * reported. */
typedef void sfl_worker_wait_fn(const sfl_stream *stream, int64_t wait_ms, int granted, void *arg);

/* Scheduler, runner and check settings from app->conf; app must outlive it.
 * NULL when out of memory. */
sfl_worker *sfl_worker_new(sfl_app *app, sfl_worker_done_fn *fn, void *arg);
/* Kills what still runs (no results) and frees. NULL is a no-op. */
void sfl_worker_free(sfl_worker *w);
/* fn is called at the end of every wait, before the stream's check starts or
 * its NoSlot result is reported; NULL: nobody is told. */
void sfl_worker_on_wait(sfl_worker *w, sfl_worker_wait_fn *fn, void *arg);

/* Queues stream (it must outlive its result). ctx comes back with the result.
 * 0, or -1 when out of memory or cancelled. */
int sfl_worker_add(sfl_worker *w, const sfl_stream *stream, void *ctx);
/* Queued streams get Cancelled at once; running checks are stopped and
 * report Cancelled. Nothing new starts. */
void sfl_worker_cancel(sfl_worker *w);
/* Queued streams get Cancelled at once (started = 0); running checks go on.
 * Nothing new starts. */
void sfl_worker_drain(sfl_worker *w);
/* After a reconnect: denied accounts ask again at once. */
void sfl_worker_kick(sfl_worker *w);

int sfl_worker_running(const sfl_worker *w);
size_t sfl_worker_queued(const sfl_worker *w);
sfl_sched *sfl_worker_sched(const sfl_worker *w);

#endif
