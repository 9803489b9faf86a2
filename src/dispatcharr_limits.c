/* dispatcharr_limits.c - account limits out of Dispatcharr's answer (pure).
 *
 * The body of GET /api/m3u/accounts/ in, {id, name, max_streams} per active
 * account out. An account with several active profiles (several credentials
 * at one provider) really has the sum of their max_streams; an active
 * profile with 0 makes it unlimited; with no active profile the account's
 * own max_streams counts. Every shape it relies on is checked, and a wrong
 * one is an error naming the JSON path: a half-read answer must never become
 * limits in Redis. A name is only shown, so an odd one is no reason to
 * refuse the answer: its control characters and bytes that are not UTF-8
 * are kept as visible escapes (text.c), as every other entry refuses them.
 * No I/O, no globals: the client (dispatcharr.c), the unit tests and the
 * fuzz target call it alike.
 */
#include "dispatcharr_limits.h"

#include "conf.h"
#include "json.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*--- The limit computation ---------------------------------------------------*/

static int shape_error(char *err, size_t errlen, const char *path, const char *want,
                       const cJSON *got)
{
    char desc[64];
    if (got)
        sfl_json_describe(got, desc, sizeof(desc));
    else
        snprintf(desc, sizeof(desc), "nothing");
    snprintf(err, errlen, "%s: expected %s, got %s", path, want, desc);
    return -1;
}

/* A whole number >= 0 that a double holds exactly. */
static int json_count(const cJSON *v, long long *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 9007199254740992.0 || floor(v->valuedouble) != v->valuedouble)
        return -1;
    *out = (long long)v->valuedouble;
    return 0;
}

/* is_active: absent means active (the model's default); otherwise a bool. */
static int json_active(const cJSON *obj, const char *path, int *active, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "is_active");
    if (!v) {
        *active = 1;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        char p[128];
        snprintf(p, sizeof(p), "%s.is_active", path);
        return shape_error(err, errlen, p, "true or false", v);
    }
    *active = cJSON_IsTrue(v);
    return 0;
}

/* One account: 1 and *acc filled when active, 0 when inactive, -1 on a
 * wrong shape. */
static int account_limit(const cJSON *a, size_t idx, sfl_account_conf *acc, char *err,
                         size_t errlen)
{
    char path[64], p[96];
    snprintf(path, sizeof(path), "[%zu]", idx);
    if (!cJSON_IsObject(a))
        return shape_error(err, errlen, path, "an account object", a);
    int active;
    if (json_active(a, path, &active, err, errlen) < 0)
        return -1;
    if (!active)
        return 0;
    long long id, own;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "id");
    if (json_count(v, &id) < 0) {
        snprintf(p, sizeof(p), "%s.id", path);
        return shape_error(err, errlen, p, "an integer >= 0", v);
    }
    snprintf(path, sizeof(path), "[%zu] (account %lld)", idx, id);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        snprintf(p, sizeof(p), "%s.name", path);
        return shape_error(err, errlen, p, "a string", name);
    }
    v = cJSON_GetObjectItemCaseSensitive(a, "max_streams");
    if (json_count(v, &own) < 0) {
        snprintf(p, sizeof(p), "%s.max_streams", path);
        return shape_error(err, errlen, p, "an integer >= 0", v);
    }
    const cJSON *profiles = cJSON_GetObjectItemCaseSensitive(a, "profiles");
    if (profiles && !cJSON_IsNull(profiles) && !cJSON_IsArray(profiles)) {
        snprintf(p, sizeof(p), "%s.profiles", path);
        return shape_error(err, errlen, p, "an array", profiles);
    }
    long long sum = 0;
    int nactive = 0, unlimited = 0;
    size_t j = 0;
    const cJSON *list = cJSON_IsArray(profiles) ? profiles : NULL, *pr;
    cJSON_ArrayForEach(pr, list)
    {
        snprintf(p, sizeof(p), "%s.profiles[%zu]", path, j++);
        if (!cJSON_IsObject(pr))
            return shape_error(err, errlen, p, "a profile object", pr);
        int pactive;
        if (json_active(pr, p, &pactive, err, errlen) < 0)
            return -1;
        if (!pactive)
            continue;
        long long m;
        v = cJSON_GetObjectItemCaseSensitive(pr, "max_streams");
        if (json_count(v, &m) < 0) {
            char q[128];
            snprintf(q, sizeof(q), "%s.max_streams", p);
            return shape_error(err, errlen, q, "an integer >= 0", v);
        }
        nactive++;
        if (m == 0)
            unlimited = 1;
        else
            sum = sum > 9007199254740992LL - m ? 9007199254740992LL : sum + m;
    }
    acc->id = id;
    acc->max_streams = nactive == 0 ? own : unlimited ? 0 : sum;
    /* A name with control characters (or bytes that are not UTF-8) is kept
     * escaped, "\x1b[31m" for ESC [31m: refusing the whole sync for one odd
     * name would leave every limit stale. */
    acc->name = NULL;
    if (cJSON_IsString(name) && !(acc->name = sfl_text_escape_dup(name->valuestring))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 1;
}

int sfl_dispatcharr_limits_from_json(const char *json, size_t len, sfl_account_conf **out,
                                     size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    cJSON *doc = sfl_json_parse(json, len, "accounts", err, errlen);
    if (!doc)
        return -1;
    sfl_account_conf *accs = NULL;
    size_t got = 0;
    int rc = -1;
    if (!cJSON_IsArray(doc)) {
        shape_error(err, errlen, "accounts", "a JSON array of accounts", doc);
        goto done;
    }
    size_t total = (size_t)cJSON_GetArraySize(doc);
    if (total > 0 && !(accs = calloc(total, sizeof(*accs)))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    size_t i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, doc)
    {
        int r = account_limit(a, i++, &accs[got], err, errlen);
        if (r < 0)
            goto done;
        got += (size_t)r;
    }
    rc = 0;
done:
    cJSON_Delete(doc);
    if (rc < 0) {
        sfl_dispatcharr_accounts_free(accs, got);
        return -1;
    }
    if (got == 0) {
        free(accs);
        accs = NULL;
    }
    *out = accs;
    *n = got;
    return 0;
}

void sfl_dispatcharr_accounts_free(sfl_account_conf *accs, size_t n)
{
    if (!accs)
        return;
    for (size_t i = 0; i < n; i++)
        sfl_account_conf_clear(&accs[i]);
    free(accs);
}
