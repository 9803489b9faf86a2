/* epoch.c - reading the namespace's epoch marker (epoch.h, lua/epoch.lua).
 *
 * Pure helpers for store.c's connection setup: the decoding of epoch.lua's
 * answer, and the log line that tells an operator why new leases wait. Never decides a grant: the
 * scripts do. */
#include "epoch.h"

#include "log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

const char *sfl_epoch_mode_arg(sfl_epoch_mode mode)
{
    switch (mode) {
    case SFL_EPOCH_FRESH:
        return "fresh";
    case SFL_EPOCH_INIT:
        return "init";
    case SFL_EPOCH_FORCE:
        return "force";
    default:
        return "";
    }
}

static long long el_int(const redisReply *e)
{
    return e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
}

int sfl_epoch_decode(const redisReply *r, sfl_epoch *e)
{
    memset(e, 0, sizeof(*e));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
        return -1;
    static const char *const names[] = {"", "missing", "created", "changed", "closed", "intact"};
    for (int i = 1; i < 6; i++)
        if (strcmp(r->element[0]->str, names[i]) == 0)
            e->state = (sfl_epoch_state)i;
    if (e->state == SFL_EPOCH_UNKNOWN)
        return -1;
    e->recovering_ms = el_int(r->element[1]);
    snprintf(e->reason, sizeof(e->reason), "%s", r->element[2]->str);
    e->created_ms = el_int(r->element[3]);
    if (r->elements > 4 && r->element[4]->type == REDIS_REPLY_STRING)
        snprintf(e->policy, sizeof(e->policy), "%s", r->element[4]->str);
    return 0;
}

void sfl_epoch_log(const sfl_epoch *e, const char *where)
{
    if (e->policy[0] && strcmp(e->policy, "noeviction") != 0)
        sfl_warn("redis %s: maxmemory-policy is %s: under memory pressure Redis may evict leases "
                 "or the epoch marker, and slots in use would be given again; set "
                 "maxmemory-policy noeviction",
                 where, e->policy);
    switch (e->state) {
    case SFL_EPOCH_MISSING:
        sfl_warn("redis %s: no sfl epoch marker in this Redis (it is new, or lost its data): "
                 "the first lease or limit written opens a recovery window of one lease TTL, in "
                 "which running checks re-take their slots and nothing new is granted; on a "
                 "Redis no check has used yet, `sflimit init` skips it",
                 where);
        break;
    case SFL_EPOCH_CREATED:
        sfl_info("redis %s: epoch marker made (a Redis no check has used)", where);
        break;
    case SFL_EPOCH_CHANGED:
        sfl_warn("redis %s: %s: this Redis process may lack the newest leases; new leases wait "
                 "%lld ms while running checks re-take theirs",
                 where,
                 strcmp(e->reason, "failover") == 0 ? "a replica took over (failover)"
                 : strcmp(e->reason, "restart") == 0
                     ? "Redis restarted"
                     : "the epoch marker was lost and made again by a script",
                 e->recovering_ms);
        break;
    case SFL_EPOCH_CLOSED:
        sfl_info("redis %s: recovery window (%s) closed by init", where, e->reason);
        break;
    case SFL_EPOCH_INTACT:
        if (e->recovering_ms > 0)
            sfl_info("redis %s: recovery window open (%s): new leases wait %lld ms more", where,
                     e->reason, e->recovering_ms);
        break;
    default:
        break;
    }
}
