/* limiter_events.c - tells one observer what the limiter does: grants,
 * denials, losses, releases and the end of waits (limiter.h, "Events").
 *
 * The limiter must not know who listens (history.c does, to keep per login
 * and minute what this process saw): limiter.c and wait.c call the two
 * emitters below at the points where they count their own stats, one line
 * each, and the observer copies what it needs. Kept apart from limiter.c
 * so that the lease code's own changes and this one stay out of each
 * other's way. Nothing here may change a lease or a wait. */
#include "limiter_int.h"

#include <stddef.h>

void sfl_limiter_on_event(sfl_limiter *lim, sfl_limiter_event_fn *fn, void *arg)
{
    lim->event_fn = fn;
    lim->event_arg = arg;
}

void sfl_limiter_emit_lease(sfl_limiter *lim, sfl_limiter_event_kind kind, const sfl_lease *l,
                            const sfl_lease_answer *a)
{
    if (!lim->event_fn)
        return;
    sfl_limiter_event ev = {.kind = kind,
                            .account = l->account,
                            .login = l->login,
                            .lease_id = l->id,
                            .in_use = a ? a->in_use : -1,
                            .limit = a ? a->limit : -1,
                            .wait_ms = -1};
    lim->event_fn(&ev, lim->event_arg);
}

void sfl_limiter_emit_ask(sfl_limiter *lim, sfl_limiter_event_kind kind, long long account,
                          const sfl_lease_answer *a, int64_t wait_ms, const sfl_lease *granted)
{
    if (!lim->event_fn)
        return;
    sfl_limiter_event ev = {.kind = kind,
                            .account = account,
                            .login = granted ? granted->login : NULL,
                            .lease_id = granted ? granted->id : NULL,
                            .in_use = a ? a->in_use : -1,
                            .limit = a ? a->limit : -1,
                            .position = a ? a->position : 0,
                            .wait_ms = wait_ms,
                            .granted = granted != NULL};
    lim->event_fn(&ev, lim->event_arg);
}
