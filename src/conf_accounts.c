/* conf_accounts.c - the "accounts" section of the config (DESIGN §4, §10):
 * each account's id, name and limit, or its logins (id, max_streams, the
 * URL rewrite), parsed and checked; part of conf (conf_int.h). */
#include "conf.h"
#include "conf_int.h"

#include "json.h"
#include "rewrite.h"
#include "routes.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sfl_json_numspec NS_NONNEG_INT64 = {1, 0, 0, SFL_JSON_MAX_SAFE_INT, 0}; /* >= 0 */
static const char *const account_keys[] = {"id", "name", "max_streams", "logins", NULL};
static const char *const login_keys[] = {"id",      "max_streams", "search", "replace",
                                         "reserve", "cooldown_ms", "xtream", NULL};
static const char *const xtream_keys[] = {"url",        "username", "password", "poll_s",
                                          "max_age_ms", "ca_file",  NULL};
static const sfl_json_numspec NS_POLL_S = {0, 1, 0, 86400, 1};
static const sfl_json_numspec NS_MAX_AGE = {1, 1000, 0, 86400000, 1};
static const sfl_json_numspec NS_COOLDOWN = {1, 0, 0, 600000, 1};

void sfl_account_conf_clear(sfl_account_conf *a)
{
    if (!a)
        return;
    free(a->name);
    for (size_t i = 0; i < a->nlogins; i++) {
        free(a->logins[i].id);
        free(a->logins[i].search);
        free(a->logins[i].replace);
        free(a->logins[i].profiles);
        free(a->logins[i].xtream_url);
        free(a->logins[i].xtream_username);
        free(a->logins[i].xtream_password);
        free(a->logins[i].xtream_ca_file);
    }
    free(a->logins);
    a->name = NULL;
    a->logins = NULL;
    a->nlogins = 0;
}

const sfl_account_conf *sfl_conf_account(const sfl_conf *c, long long id)
{
    for (size_t i = 0; c && i < c->naccounts; i++)
        if (c->accounts[i].id == id)
            return &c->accounts[i];
    return NULL;
}

/*--- Parsing ---*/

/* The login's credentials out of its rewrite's target, ".../live/U/P/...":
 * the URL a check of the login opens names them. 0, or -1 (none there, or
 * made of the search's groups). */
static int credentials_of(const char *replace, sfl_login_conf *l)
{
    const char *p = replace ? strstr(replace, "/live/") : NULL;
    if (!p)
        return -1;
    p += 6;
    size_t ul = strcspn(p, "/");
    size_t pl = p[ul] == '/' ? strcspn(p + ul + 1, "/") : 0;
    if (ul == 0 || pl == 0 || p[ul + 1 + pl] != '/')
        return -1;
    for (size_t i = 0; i < ul + 1 + pl; i++)
        if (p[i] == '$' || p[i] == '\\')
            return -1;
    l->xtream_username = strndup(p, ul);
    l->xtream_password = strndup(p + ul + 1, pl);
    return l->xtream_username && l->xtream_password ? 0 : -1;
}

/* logins[k].xtream, if there: the panel that counts the login's
 * connections (player_api.php), polled every poll_s (60); its figure is good
 * max_age_ms (3 polls). */
static int parse_xtream(const sfl_json_ctx *e, const cJSON *login, const char *at, size_t k,
                        sfl_login_conf *l)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(login, "xtream");
    char path[128], got[64];
    snprintf(path, sizeof(path), "%slogins[%zu].xtream", at, k);
    if (!o)
        return 0;
    if (!cJSON_IsObject(o)) {
        sfl_json_describe(o, got, sizeof(got));
        return sfl_json_fail(e, path,
                             "expected an object {\"url\", \"username\", \"password\"}, "
                             "got %s",
                             got);
    }
    if (sfl_json_check_keys(e, o, path, xtream_keys) < 0)
        return -1;
    static const char *const fields[] = {"url", "username", "password"};
    char **dst[] = {&l->xtream_url, &l->xtream_username, &l->xtream_password};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%slogins[%zu].xtream.%s", at, k, fields[i]);
        if (sfl_json_get_string(e, o, fields[i], path, 0, dst[i]) < 0)
            return -1;
        if (*dst[i] && !**dst[i])
            return sfl_json_fail(e, path, "empty");
    }
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.url", at, k);
    if (!l->xtream_url)
        return sfl_json_fail(e, path, "missing");
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.%s", at, k,
             l->xtream_username ? "password" : "username");
    if (!l->xtream_username != !l->xtream_password)
        return sfl_json_fail(e, path, "missing (username and password come together)");
    if (!l->xtream_username && credentials_of(l->replace, l) < 0)
        return sfl_json_fail(e, path,
                             "missing: give username and password, or a replace with "
                             "/live/USER/PASS/ to take them from");
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.url", at, k);
    if (strncmp(l->xtream_url, "http://", 7) != 0 && strncmp(l->xtream_url, "https://", 8) != 0)
        return sfl_json_fail(e, path, "must begin with http:// or https://");
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.ca_file", at, k);
    if (sfl_json_get_string(e, o, "ca_file", path, 0, &l->xtream_ca_file) < 0 ||
        sfl_conf_check_ca_file(e, path, l->xtream_ca_file) < 0)
        return -1;
    double d = 60;
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.poll_s", at, k);
    if (sfl_json_get_num(e, o, "poll_s", path, &NS_POLL_S, &d) < 0)
        return -1;
    l->xtream_poll_ms = (long long)(d * 1000);
    l->max_age_ms = 3 * l->xtream_poll_ms;
    snprintf(path, sizeof(path), "%slogins[%zu].xtream.max_age_ms", at, k);
    int rc = sfl_json_get_num(e, o, "max_age_ms", path, &NS_MAX_AGE, &d);
    if (rc < 0)
        return -1;
    if (rc > 0)
        l->max_age_ms = (long long)d;
    if (l->max_age_ms < 2 * l->xtream_poll_ms)
        return sfl_json_fail(e, path, "must be at least 2 x poll_s (%lld ms), got %lld",
                             2 * l->xtream_poll_ms, l->max_age_ms);
    return 0;
}

/* accounts[i].logins, if there: each login's id, limit and rewrite; the
 * account's max_streams becomes their sum (0 if one is unlimited). */
static int parse_logins(const sfl_json_ctx *e, const cJSON *acc, const char *at,
                        sfl_account_conf *a)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(acc, "logins");
    char path[96], got[64];
    snprintf(path, sizeof(path), "%slogins", at);
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        sfl_json_describe(arr, got, sizeof(got));
        return sfl_json_fail(e, path, "expected a non-empty array of logins, got %s", got);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), k = 0;
    if (!(a->logins = calloc(n, sizeof(*a->logins))))
        return sfl_json_fail(e, path, "out of memory");
    long long sum = 0;
    for (const cJSON *it = arr->child; it; it = it->next, k++) {
        sfl_login_conf *l = &a->logins[k];
        a->nlogins = k + 1;
        snprintf(path, sizeof(path), "%slogins[%zu]", at, k);
        if (!cJSON_IsObject(it)) {
            sfl_json_describe(it, got, sizeof(got));
            return sfl_json_fail(e, path, "expected an object, got %s", got);
        }
        if (sfl_json_check_keys(e, it, path, login_keys) < 0)
            return -1;
        snprintf(path, sizeof(path), "%slogins[%zu].id", at, k);
        if (sfl_json_get_string(e, it, "id", path, 0, &l->id) < 0)
            return -1;
        if (!sfl_login_id_valid(l->id))
            return sfl_json_fail(e, path, "%s",
                                 l->id ? "must be 1 to 64 of A-Z a-z 0-9 . _ -" : "missing");
        for (size_t j = 0; j < k; j++)
            if (strcmp(a->logins[j].id, l->id) == 0)
                return sfl_json_fail(e, path, "duplicate login %s (also at logins[%zu])", l->id, j);
        double d;
        snprintf(path, sizeof(path), "%slogins[%zu].max_streams", at, k);
        int rc = sfl_json_get_num(e, it, "max_streams", path, &NS_NONNEG_INT64, &d);
        if (rc <= 0)
            return rc < 0 ? -1 : sfl_json_fail(e, path, "missing");
        l->max_streams = (long long)d;
        sum = sum < 0 || l->max_streams == 0 ? -1 : sum + l->max_streams;
        snprintf(path, sizeof(path), "%slogins[%zu].reserve", at, k);
        if ((rc = sfl_json_get_num(e, it, "reserve", path, &NS_NONNEG_INT64, &d)) < 0)
            return -1;
        l->reserve = rc ? (long long)d : 0;
        if (l->reserve > 0 && (l->max_streams == 0 || l->reserve > l->max_streams))
            return sfl_json_fail(e, path, "%lld, more than the login's max_streams (%lld%s)",
                                 l->reserve, l->max_streams,
                                 l->max_streams == 0 ? ": unlimited, nothing to keep" : "");
        snprintf(path, sizeof(path), "%slogins[%zu].cooldown_ms", at, k);
        if ((rc = sfl_json_get_num(e, it, "cooldown_ms", path, &NS_COOLDOWN, &d)) < 0)
            return -1;
        l->cooldown_ms = rc ? (long long)d : 0;
        snprintf(path, sizeof(path), "%slogins[%zu].search", at, k);
        if (sfl_json_get_string(e, it, "search", path, 0, &l->search) < 0)
            return -1;
        snprintf(path, sizeof(path), "%slogins[%zu].replace", at, k);
        if (sfl_json_get_string(e, it, "replace", path, 1, &l->replace) < 0)
            return -1;
        if (!l->search != !l->replace) {
            snprintf(path, sizeof(path), "%slogins[%zu].%s", at, k,
                     l->search ? "replace" : "search");
            return sfl_json_fail(e, path, "missing (search and replace come together)");
        }
        char why[192];
        sfl_rewrite *rw =
            l->search ? sfl_rewrite_new(l->search, l->replace, why, sizeof(why)) : NULL;
        if (l->search && !rw) {
            snprintf(path, sizeof(path), "%slogins[%zu].search", at, k);
            return sfl_json_fail(e, path, "%s", why);
        }
        sfl_rewrite_free(rw);
        if (parse_xtream(e, it, at, k, l) < 0)
            return -1;
    }
    sum = sum < 0 ? 0 : sum;
    snprintf(path, sizeof(path), "%smax_streams", at);
    if (a->max_streams >= 0 && a->max_streams != sum)
        return sfl_json_fail(e, path, "%lld, but its logins add up to %lld%s: leave it out",
                             a->max_streams, sum, sum == 0 ? " (unlimited)" : "");
    a->max_streams = sum;
    return 0;
}

int sfl_conf_parse_accounts(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "accounts");
    char path[64], got[64];
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr)) {
        sfl_json_describe(arr, got, sizeof(got));
        return sfl_json_fail(e, "accounts", "expected an array, got %s", got);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > 0 && !(c->accounts = calloc(n, sizeof(*c->accounts))))
        return sfl_json_fail(e, "accounts", "out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        sfl_account_conf *a = &c->accounts[i];
        c->naccounts = i + 1;
        snprintf(path, sizeof(path), "accounts[%zu]", i);
        if (!cJSON_IsObject(it)) {
            sfl_json_describe(it, got, sizeof(got));
            return sfl_json_fail(e, path, "expected an object, got %s", got);
        }
        if (sfl_json_check_keys(e, it, path, account_keys) < 0)
            return -1;
        double d;
        int rc;
        snprintf(path, sizeof(path), "accounts[%zu].id", i);
        if ((rc = sfl_json_get_num(e, it, "id", path, &NS_NONNEG_INT64, &d)) < 0)
            return -1;
        if (rc == 0)
            return sfl_json_fail(e, path, "missing");
        a->id = (long long)d;
        snprintf(path, sizeof(path), "accounts[%zu].name", i);
        if (sfl_json_get_string(e, it, "name", path, 1, &a->name) < 0)
            return -1;
        snprintf(path, sizeof(path), "accounts[%zu].max_streams", i);
        if ((rc = sfl_json_get_num(e, it, "max_streams", path, &NS_NONNEG_INT64, &d)) < 0)
            return -1;
        a->max_streams = rc ? (long long)d : -1;
        char at[48];
        snprintf(at, sizeof(at), "accounts[%zu].", i);
        if (parse_logins(e, it, at, a) < 0)
            return -1;
        if (rc == 0 && a->nlogins == 0)
            return sfl_json_fail(e, path, "missing");
    }
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int sfl_account_conf_copy(sfl_account_conf *dst, const sfl_account_conf *src)
{
    *dst = (sfl_account_conf){.id = src->id, .max_streams = src->max_streams};
    if ((src->name && !(dst->name = strdup(src->name))) ||
        (src->nlogins && !(dst->logins = calloc(src->nlogins, sizeof(*dst->logins)))))
        goto oom;
    for (size_t i = 0; i < src->nlogins; i++) {
        const sfl_login_conf *l = &src->logins[i];
        sfl_login_conf *c = &dst->logins[dst->nlogins++];
        *c = (sfl_login_conf){.max_streams = l->max_streams,
                              .reserve = l->reserve,
                              .cooldown_ms = l->cooldown_ms,
                              .max_age_ms = l->max_age_ms,
                              .id = strdup(l->id),
                              .search = dup_or_null(l->search),
                              .replace = dup_or_null(l->replace),
                              .xtream_url = dup_or_null(l->xtream_url),
                              .xtream_username = dup_or_null(l->xtream_username),
                              .xtream_password = dup_or_null(l->xtream_password),
                              .xtream_ca_file = dup_or_null(l->xtream_ca_file),
                              .xtream_poll_ms = l->xtream_poll_ms};
        if (!c->id || (l->search && !c->search) || (l->replace && !c->replace) ||
            (l->xtream_url && !c->xtream_url) || (l->xtream_username && !c->xtream_username) ||
            (l->xtream_password && !c->xtream_password) ||
            (l->xtream_ca_file && !c->xtream_ca_file))
            goto oom;
        if (l->nprofiles) {
            if (!(c->profiles = malloc(l->nprofiles * sizeof(*c->profiles))))
                goto oom;
            memcpy(c->profiles, l->profiles, l->nprofiles * sizeof(*c->profiles));
            c->nprofiles = l->nprofiles;
        }
    }
    return 0;
oom:
    sfl_account_conf_clear(dst);
    return -1;
}

int sfl_account_logins_parse(const cJSON *obj, sfl_account_conf *a, char *err, size_t errlen)
{
    sfl_json_ctx e = {"body", err, errlen};
    return parse_logins(&e, obj, "", a);
}

int sfl_conf_validate_accounts(const sfl_conf *c, const sfl_json_ctx *e)
{
    char path[64];
    for (size_t i = 0; i < c->naccounts; i++) {
        const sfl_account_conf *a = &c->accounts[i];
        snprintf(path, sizeof(path), "accounts[%zu].id", i);
        if (sfl_json_check_num(e, path, &NS_NONNEG_INT64, (double)a->id) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (c->accounts[j].id == a->id)
                return sfl_json_fail(e, path, "duplicate id %lld (also at accounts[%zu])", a->id,
                                     j);
        snprintf(path, sizeof(path), "accounts[%zu].max_streams", i);
        if (sfl_json_check_num(e, path, &NS_NONNEG_INT64, (double)a->max_streams) < 0)
            return -1;
        char why[96];
        snprintf(path, sizeof(path), "accounts[%zu].name", i);
        if (sfl_text_check(a->name, why, sizeof(why)) < 0)
            return sfl_json_fail(e, path, "%s", why);
    }

    return 0;
}
