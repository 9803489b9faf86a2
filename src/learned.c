/* learned.c - a node's side of learned limits (learned.h): it reports what
 * happened to lua/learn.lua, which holds the rules and the state in the
 * login's conf hash, and logs each change of the effective limit with the
 * reason the script gives.
 *
 * Why a script and not a value each node keeps: every node checks through
 * the same logins, so what one node learned from a refusal must hold for
 * all at once, and two refusals seen by two nodes at the same moment must
 * be one lowering then one halving, not two lowerings from the same level.
 * The script runs atomically in Redis; the scripts that grant
 * (acquire.lua, renew.lua, release.lua) read the same fields.
 *
 * What it must never do: log or send a URL or a credential. It sends the
 * login id (a name the config gives, never a credential), an HTTP code and
 * numbers; the reasons come back from the script, built of the same. */
#include "learned.h"

#include "conf.h"
#include "keys.h"
#include "log.h"
#include "store.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct learn_call {
    char login[80];
} learn_call;

static void limit_text(long long v, char *buf, size_t len)
{
    if (v < 0)
        snprintf(buf, len, "none");
    else if (v == 0)
        snprintf(buf, len, "unlimited");
    else
        snprintf(buf, len, "%lld", v);
}

static void on_learned(sfl_store *st, redisReply *r, void *arg)
{
    learn_call *c = arg;
    (void)st;
    if (!r) {
        free(c);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sfl_warn("learned limit of login %s: %s", c->login, r->str);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
               r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[3]->type == REDIS_REPLY_STRING) {
        long long changed = r->element[0]->integer;
        long long from = r->element[1]->type == REDIS_REPLY_INTEGER ? r->element[1]->integer : -1;
        long long to = r->element[2]->type == REDIS_REPLY_INTEGER ? r->element[2]->integer : -1;
        char a[24], b[24];
        limit_text(from, a, sizeof(a));
        limit_text(to, b, sizeof(b));
        if (changed)
            sfl_info("login %s: effective limit %s -> %s (%s)", c->login, a, b, r->element[3]->str);
        else if (r->element[3]->str[0])
            sfl_info("login %s: effective limit stays %s (%s)", c->login, a, r->element[3]->str);
    }
    free(c);
}

static int send_learn(sfl_store *st, const char *login, const char *prefix, int nargs,
                      const char **args)
{
    char keys[2][SFL_KEY_LEN];
    snprintf(keys[0], sizeof(keys[0]), "%sconf", prefix);
    snprintf(keys[1], sizeof(keys[1]), "%sleases", prefix);
    const char *kv[2] = {keys[0], keys[1]};
    learn_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    snprintf(c->login, sizeof(c->login), "%s", login);
    if (sfl_store_eval(st, "learn", 2, kv, nargs, args, on_learned, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int sfl_learned_check(sfl_store *st, const sfl_conf *conf, const char *login, const char *prefix,
                      sfl_learn_event ev, int http_code)
{
    char window[24], quiet[24], code[16];
    snprintf(window, sizeof(window), "%lld", (long long)llround(conf->learn_window * 1000));
    snprintf(quiet, sizeof(quiet), "%lld", (long long)llround(conf->learn_quiet * 1000));
    if (http_code > 0)
        snprintf(code, sizeof(code), "%d", http_code);
    else
        snprintf(code, sizeof(code), "redirect");
    const char *args[4] = {ev == SFL_LEARN_REFUSED ? "refused" : "ok", window, quiet, code};
    return send_learn(st, login, prefix, 4, args);
}

int sfl_learned_panel(sfl_store *st, const char *login, const char *prefix,
                      long long max_connections, const char *exp_date, const char *status)
{
    char max[24];
    snprintf(max, sizeof(max), "%lld", max_connections);
    const char *args[4] = {"panel", max, exp_date ? exp_date : "", status ? status : ""};
    return send_learn(st, login, prefix, 4, args);
}

int sfl_learned_reset(sfl_store *st, const char *login, const char *prefix)
{
    const char *args[1] = {"reset"};
    return send_learn(st, login, prefix, 1, args);
}

double sfl_effective_limit(double max_streams, double panel_max, double learned)
{
    double eff = max_streams, caps[2] = {panel_max, learned};
    for (int i = 0; i < 2; i++)
        if (eff >= 0 && caps[i] > 0 && (eff == 0 || caps[i] < eff))
            eff = caps[i];
    return eff;
}
