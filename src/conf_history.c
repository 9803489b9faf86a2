/* conf_history.c - the "history" section of the config: whether a process
 * that takes leases writes what it saw per login and minute, and per
 * stream, into Redis (history.c), and how long that is kept.
 *
 *   "history": {"enabled": true, "retention_days": 7, "stream_results": 20,
 *               "flush_ms": 60000}
 *
 * retention_days (1..365): an hour's key expires this long after the hour
 * ends. stream_results (0..1000): how many results each stream keeps (0: no
 * per-stream history). flush_ms (1000..60000): how often a process sends
 * what it gathered. enabled false: nothing is written at all. Kept out of
 * conf.c, which holds the rest of the schema. */
#include "conf_int.h"

#include <cjson/cJSON.h>

static const char *const history_keys[] = {"enabled", "retention_days", "stream_results",
                                           "flush_ms", NULL};
static const sfl_json_numspec NS_RETENTION = {1, 1, 0, 365, 1};
static const sfl_json_numspec NS_STREAM_RESULTS = {1, 0, 0, 1000, 1};
static const sfl_json_numspec NS_FLUSH = {1, 1000, 0, 60000, 1};

void sfl_conf_history_defaults(sfl_conf *c)
{
    c->history_enabled = 1;
    c->history_retention_days = 7;
    c->history_stream_results = 20;
    c->history_flush_ms = 60000;
}

int sfl_conf_parse_history(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "history", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "history", history_keys) < 0 ||
        sfl_json_get_bool(e, o, "enabled", "history.enabled", &c->history_enabled) < 0 ||
        sfl_json_get_int(e, o, "retention_days", "history.retention_days", &NS_RETENTION,
                         &c->history_retention_days) < 0 ||
        sfl_json_get_int(e, o, "stream_results", "history.stream_results", &NS_STREAM_RESULTS,
                         &c->history_stream_results) < 0 ||
        sfl_json_get_int64(e, o, "flush_ms", "history.flush_ms", &NS_FLUSH, &c->history_flush_ms) <
            0)
        return -1;
    return 0;
}

int sfl_conf_validate_history(const sfl_conf *c, const sfl_json_ctx *e)
{
    if (sfl_json_check_num(e, "history.retention_days", &NS_RETENTION,
                           (double)c->history_retention_days) < 0 ||
        sfl_json_check_num(e, "history.stream_results", &NS_STREAM_RESULTS,
                           (double)c->history_stream_results) < 0 ||
        sfl_json_check_num(e, "history.flush_ms", &NS_FLUSH, (double)c->history_flush_ms) < 0)
        return -1;
    return 0;
}
