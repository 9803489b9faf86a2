/* http_body.c - request bodies of the HTTP API as pure functions: one JSON
 * object, no unknown or repeated member, every number an integer in range;
 * a refusal is the message of the 400 reply, naming "body" or the field. */
#include "http_body.h"

#include "conf.h"
#include "json.h"
#include "streams.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* An integer JSON member in [min, max]; 0 ok, 1 absent, -1 bad (message in err). */
static int json_int(const cJSON *obj, const char *key, long long min, long long max, long long *out,
                    char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 1;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)min || v->valuedouble > (double)max) {
        snprintf(err, errlen, "%s: expected an integer from %lld to %lld", key, min, max);
        return -1;
    }
    *out = (long long)v->valuedouble;
    return 0;
}

/* Every member of obj is one of keys, none given twice (which one would
 * count is not obvious). 0, or -1 with the message in err. */
static int only_keys(const cJSON *obj, const char *const *keys, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= strcmp(it->string, keys[i]) == 0;
        if (!known) {
            snprintf(err, errlen, "%s: unknown field", it->string);
            return -1;
        }
        for (const cJSON *o = obj->child; o != it; o = o->next) {
            if (strcmp(o->string, it->string) == 0) {
                snprintf(err, errlen, "%s: given twice", it->string);
                return -1;
            }
        }
    }
    return 0;
}

/* len bytes of a body as one JSON object (nothing after it); NULL with the
 * message in err. The caller deletes the tree. */
static cJSON *parse_object(const char *body, size_t len, char *err, size_t errlen)
{
    if (!body || len == 0) {
        snprintf(err, errlen, "body: empty, expected a JSON object");
        return NULL;
    }
    cJSON *doc = sfl_json_parse(body, len, "body", err, errlen);
    if (doc && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        snprintf(err, errlen, "body: expected a JSON object");
        return NULL;
    }
    return doc;
}

int sfl_http_parse_lease_body(const char *body, size_t len, sfl_http_lease_ask *out, char *err,
                              size_t errlen)
{
    static const char *const keys[] = {"account", "wait_ms", "label", NULL};
    memset(out, 0, sizeof(*out));
    out->wait_ms = 30000;
    snprintf(out->label, sizeof(out->label), "sidecar");
    cJSON *doc = parse_object(body, len, err, errlen);
    if (!doc)
        return -1;
    int rc = -1, r;
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(doc, "label");
    if (only_keys(doc, keys, err, errlen) < 0)
        goto done;
    if ((r = json_int(doc, "account", 0, 999999999999999LL, &out->account, err, errlen)) < 0)
        goto done;
    if (r == 1) {
        snprintf(err, errlen, "account: required");
        goto done;
    }
    if (json_int(doc, "wait_ms", 0, 3600000, &out->wait_ms, err, errlen) < 0)
        goto done;
    if (label) {
        if (!cJSON_IsString(label) || strlen(label->valuestring) >= sizeof(out->label)) {
            snprintf(err, errlen, "label: expected a string of at most %zu characters",
                     sizeof(out->label) - 1);
            goto done;
        }
        snprintf(out->label, sizeof(out->label), "%s", label->valuestring);
    }
    rc = 0;
done:
    cJSON_Delete(doc);
    return rc;
}

int sfl_http_parse_account_body(const char *body, size_t len, sfl_http_account_put *out, char *err,
                                size_t errlen)
{
    static const char *const keys[] = {"max_streams", "name", "logins", NULL};
    memset(out, 0, sizeof(*out));
    cJSON *doc = parse_object(body, len, err, errlen);
    if (!doc)
        return -1;
    int rc = -1, r;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
    if (only_keys(doc, keys, err, errlen) < 0)
        goto done;
    if ((r = json_int(doc, "max_streams", 0, 1000000, &out->max_streams, err, errlen)) < 0)
        goto done;
    if (cJSON_GetObjectItemCaseSensitive(doc, "logins")) {
        sfl_account_conf a = {.max_streams = r == 1 ? -1 : out->max_streams};
        int bad = sfl_account_logins_parse(doc, &a, err, errlen) < 0;
        out->logins = a.logins;
        out->nlogins = a.nlogins;
        out->max_streams = a.max_streams;
        if (bad)
            goto done;
        if (a.max_streams > 1000000) {
            snprintf(err, errlen, "logins: their max_streams add up to more than 1000000");
            goto done;
        }
    } else if (r == 1) {
        snprintf(err, errlen, "max_streams: required (0 = unlimited), or logins");
        goto done;
    }
    if (name && !cJSON_IsString(name) && !cJSON_IsNull(name)) {
        snprintf(err, errlen, "name: expected a string");
        goto done;
    }
    if (cJSON_IsString(name)) {
        char why[96];
        if (strlen(name->valuestring) >= sizeof(out->name)) {
            snprintf(err, errlen, "name: longer than %zu characters", sizeof(out->name) - 1);
            goto done;
        }
        if (sfl_text_check(name->valuestring, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "name: %s", why);
            goto done;
        }
        out->has_name = 1;
        snprintf(out->name, sizeof(out->name), "%s", name->valuestring);
    }
    rc = 0;
done:
    cJSON_Delete(doc);
    return rc;
}

void sfl_http_account_put_clear(sfl_http_account_put *p)
{
    sfl_account_conf a = {.logins = p->logins, .nlogins = p->nlogins};
    sfl_account_conf_clear(&a);
    p->logins = NULL;
    p->nlogins = 0;
}

sfl_streams *sfl_http_parse_checks_body(const char *body, size_t len, char *const *schemes,
                                        size_t n, char *err, size_t errlen)
{
    sfl_streams *s = sfl_streams_parse(body, len, "body", err, errlen);
    if (s && s->n == 0) {
        sfl_streams_free(s);
        snprintf(err, errlen, "body: no streams");
        return NULL;
    }
    if (s && sfl_streams_allowed(s, schemes, n, "body", err, errlen) < 0) {
        sfl_streams_free(s);
        return NULL;
    }
    return s;
}

int sfl_http_parse_id(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 15)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}
