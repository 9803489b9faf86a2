/* node_view.c - a node as it shows itself (node_view.h): health, the
 * accounts it works for, its metrics. Reads only: the node (cmd_node.c)
 * changes what is shown, never this file. */
#include "node_view.h"

#include "app.h"
#include "clock.h"
#include "conf.h"
#include "limiter.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "worker.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <stdio.h>

int sfl_node_view_health(cJSON *doc, void *arg)
{
    const sfl_node_view *n = arg;
    int up = sfl_store_ready(n->app->store);
    cJSON_AddStringToObject(doc, "status", !up ? "degraded" : *n->stopping ? "stopping" : "ok");
    cJSON_AddStringToObject(doc, "redis", up ? "up" : "down");
    cJSON_AddStringToObject(doc, "node", n->app->conf->node_id);
    cJSON_AddNumberToObject(doc, "running", sfl_worker_running(n->worker));
    cJSON_AddNumberToObject(doc, "queued", (double)sfl_worker_queued(n->worker));
    cJSON_AddNumberToObject(doc, "held_entries", (double)*n->held_entries);
    cJSON_AddNumberToObject(doc, "leases", sfl_limiter_held(n->app->lim));
    cJSON_AddNumberToObject(doc, "uptime_s", (sfl_mono_ms() - n->started_mono) / 1000.0);
    return up;
}

typedef struct local_ctx {
    long long account;
    long long waiting;
} local_ctx;

static void count_waiting(const sfl_sched_account *a, void *arg)
{
    local_ctx *c = arg;
    if (a->account == c->account)
        c->waiting = (long long)a->queued;
}

void sfl_node_view_accounts(cJSON *accounts, void *arg)
{
    const sfl_node_view *n = arg;
    cJSON *a;
    cJSON_ArrayForEach(a, accounts)
    {
        local_ctx c = {(long long)cJSON_GetObjectItem(a, "id")->valuedouble, 0};
        sfl_sched_each_account(sfl_worker_sched(n->worker), count_waiting, &c);
        cJSON_AddNumberToObject(a, "held_here", sfl_limiter_held_for(n->app->lim, c.account));
        cJSON_AddNumberToObject(a, "waiting_here", (double)c.waiting);
    }
}

typedef struct held_ctx {
    const sfl_node_view *n;
    struct evbuffer *out;
} held_ctx;

static void held_sample(long long account, int held, void *arg)
{
    held_ctx *c = arg;
    char labels[48];
    snprintf(labels, sizeof(labels), "account=\"%lld\"", account);
    sfl_metrics_sample(c->out, "sfl_leases_held", labels, held);
}

/* Accounts with work here but no lease now: shown as 0. */
static void idle_sample(const sfl_sched_account *a, void *arg)
{
    held_ctx *c = arg;
    if (a->account >= 0 && sfl_limiter_held_for(c->n->app->lim, a->account) == 0)
        held_sample(a->account, 0, arg);
}

void sfl_node_view_metrics(struct evbuffer *out, void *arg)
{
    const sfl_node_view *n = arg;
    sfl_limiter_stats ls;
    sfl_limiter_get_stats(n->app->lim, &ls);
    sfl_metrics_family(out, "sfl_leases_held", "gauge", "leases this node holds now");
    held_ctx hc = {n, out};
    sfl_limiter_each_held(n->app->lim, held_sample, &hc);
    sfl_sched_each_account(sfl_worker_sched(n->worker), idle_sample, &hc);
    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"sfl_leases_acquired_total", "slots granted to this node", ls.acquired},
        {"sfl_leases_handed_total", "of those, slots handed over and started on the announcement",
         ls.claimed},
        {"sfl_leases_denied_total", "asks denied (account full or recovering)", ls.denied},
        {"sfl_leases_asked_in_release_total",
         "asks that rode in a release of this node (one script for the release and the ask)",
         ls.asked_in_release},
        {"sfl_leases_lost_total", "leases lost: checks stopped before their deadline", ls.lost},
        {"sfl_lease_renewals_failed_total", "renewals that failed or found the lease gone",
         ls.renew_failed},
        {"sfl_leases_retaken_total", "leases re-taken after Redis lost them", ls.retaken},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        sfl_metrics_family(out, counters[i].name, "counter", counters[i].help);
        sfl_metrics_sample(out, counters[i].name, "", (double)counters[i].v);
    }
    sfl_metrics_histogram(out, "sfl_lease_wait_seconds",
                          "from a stream's arrival on this node to its slot, or to NoSlot",
                          &n->lease_wait);
    sfl_metrics_family(out, "sfl_checks_total", "counter", "checks finished here, by status");
    for (int st = 0; st < SFL_STATUS_COUNT; st++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "status=\"%s\"", sfl_status_name(st));
        sfl_metrics_sample(out, "sfl_checks_total", labels, (double)n->checks[st]);
    }
    sfl_metrics_family(out, "sfl_checks_running", "gauge", "checks running on this node");
    sfl_metrics_sample(out, "sfl_checks_running", "", sfl_worker_running(n->worker));
    sfl_metrics_family(out, "sfl_node_queued", "gauge",
                       "streams taken from the shared queue and waiting on this node");
    sfl_metrics_sample(out, "sfl_node_queued", "", (double)sfl_worker_queued(n->worker));
}
