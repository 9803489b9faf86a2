/* node_view.h - what a node shows of itself: its /healthz document, the
 * local fields of /v1/accounts (held_here, waiting_here), its own /metrics
 * families. cmd_node.c owns the node and keeps one of these beside it;
 * the HTTP API (http_api.h's sfl_http_node) calls the three functions with
 * it as their argument. */
#ifndef SFL_NODE_VIEW_H
#define SFL_NODE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "metrics.h"

struct evbuffer;
typedef struct cJSON cJSON;
typedef struct sfl_app sfl_app;
typedef struct sfl_worker sfl_worker;

typedef struct sfl_node_view {
    sfl_app *app;
    sfl_worker *worker;
    const int *stopping;        /* the node's: 1 once it stops taking work */
    const size_t *held_entries; /* the node's: queue entries it holds */
    int64_t started_mono;       /* sfl_mono_ms at start */
    /* Counted by the node as checks end and slots come: */
    uint64_t checks[SFL_STATUS_COUNT];
    sfl_histogram lease_wait;
} sfl_node_view;

/* Fills a /healthz document; 1 when healthy (Redis up). arg: the view. */
int sfl_node_view_health(cJSON *doc, void *arg);
/* Adds "held_here" and "waiting_here" to each entry of an accounts array. */
void sfl_node_view_accounts(cJSON *accounts, void *arg);
/* Writes the node's own metric families (leases, checks, queue). */
void sfl_node_view_metrics(struct evbuffer *out, void *arg);

#endif
