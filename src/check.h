/* check.h - one check of one stream: its command, its output, its result. */
#ifndef SFL_CHECK_H
#define SFL_CHECK_H

#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;
typedef struct sfl_conf sfl_conf;
typedef struct sfl_stream sfl_stream;
typedef struct sfl_runner sfl_runner;
typedef struct sfl_routes sfl_routes;
typedef struct sfl_lease sfl_lease;
typedef struct sfl_check sfl_check;

typedef enum {
    SFL_STATUS_OK = 0,
    SFL_STATUS_TIMEOUT,
    SFL_STATUS_ERROR,
    SFL_STATUS_LEASE_LOST,
    SFL_STATUS_NOSLOT,
    SFL_STATUS_CANCELLED,
    SFL_STATUS_PREEMPTED, /* gave way to viewers: the stream is checked again later */
    SFL_STATUS_REFUSED,   /* the provider refused it for its connection count (an HTTP code of
                             learned.refusal_codes): checked again later, under the lowered limit */
    SFL_STATUS_COUNT
} sfl_status;

/* "OK", "Timeout", "Error", "LeaseLost", "NoSlot", "Cancelled", "Preempted", "Refused". */
const char *sfl_status_name(sfl_status st);

/* What every check of a node shares; must outlive its checks. */
typedef struct sfl_check_env {
    struct event_base *base;
    sfl_runner *runner;
    const sfl_conf *conf;
    sfl_routes *routes; /* a lease's login -> the URL to open; NULL: the URL as given */
} sfl_check_env;

/* result belongs to the callee: a JSON object of DESIGN §5. The check is
 * freed after the callback returns. */
typedef void sfl_check_done_fn(sfl_check *c, cJSON *result, void *arg);

/* Starts the check of stream (which must outlive the check) under lease
 * (NULL for a custom stream; the lease stays the caller's). wait_ms is
 * reported as lease_wait_ms. NULL with err if it cannot start at all. */
sfl_check *sfl_check_start(const sfl_check_env *env, const sfl_stream *stream, sfl_lease *lease,
                           int64_t wait_ms, sfl_check_done_fn *fn, void *arg, char *err,
                           size_t errlen);
/* Stops the check (its command is terminated); its result will carry
 * status why (SFL_STATUS_LEASE_LOST or SFL_STATUS_CANCELLED). */
void sfl_check_stop(sfl_check *c, sfl_status why);

/* A result for a stream that was never checked (NoSlot, Cancelled, ...). */
cJSON *sfl_result_new(const sfl_stream *stream, const char *node, sfl_status status,
                      const char *error);

#endif
