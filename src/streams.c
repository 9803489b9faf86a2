/* streams.c - turns a StreamFlow stream list (DESIGN §5) into sfl_streams.
 *
 * StreamFlow's stream objects carry many fields sfl does not use, so unknown
 * fields are ignored; the five fields sfl does use are checked strictly,
 * because a wrong m3u_account would put a stream under the wrong provider
 * limit (or under none). Every stream of the input either becomes one
 * sfl_stream or the whole batch is refused with a message naming the element
 * and the field: a batch is never half-taken.
 *
 * What a check may open is a second, separate step (sfl_streams_allowed):
 * every URL must begin with "<scheme>://" and the scheme must be one the
 * config allows (check.schemes), so that a token holder cannot make a node
 * read file:///etc/passwd or stdin ("-", "pipe:0") with ffmpeg. The parse
 * itself knows no config: the queue decoder, the fuzzers and the tests use
 * it alone, and each place streams come in (check, submit, POST /v1/checks,
 * a node taking a queue entry) asks both.
 *
 * Never: print, touch Redis, or put a URL into an error message (URLs carry
 * provider credentials). */
#include "streams.h"

#include "json.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STREAMS_MAX_BYTES (256u * 1024 * 1024)
#define MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1 */

typedef struct pctx {
    const char *name;
    const char *prefix; /* "" for a bare array, "streams" for {"streams": [...]} */
    char *err;
    size_t errlen;
} pctx;

/* "<name>: <prefix>[i].<field>: <message>"; field may be NULL. Returns -1. */
__attribute__((format(printf, 4, 5))) static int fail(const pctx *p, long long idx,
                                                      const char *field, const char *fmt, ...)
{
    if (!p->err || p->errlen == 0)
        return -1;
    int w;
    if (idx < 0)
        w = snprintf(p->err, p->errlen, "%s: ", p->name);
    else
        w = snprintf(p->err, p->errlen, "%s: %s[%lld]%s%s: ", p->name, p->prefix, idx,
                     field ? "." : "", field ? field : "");
    size_t n = w < 0 ? 0 : (size_t)w < p->errlen ? (size_t)w : p->errlen - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A JSON member by exact key; a key given twice is an error (which one
 * would count is not obvious). 0 absent, 1 found, -1 error. */
static int member(const pctx *p, size_t i, const cJSON *obj, const char *key, const cJSON **out)
{
    *out = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string || strcmp(it->string, key) != 0)
            continue;
        if (*out)
            return fail(p, (long long)i, key, "given twice");
        *out = it;
    }
    return *out ? 1 : 0;
}

static int is_int(const cJSON *v, double min, double max)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && fabs(d) <= MAX_SAFE_INT && d >= min && d <= max;
}

/* An integer, but beyond what a JSON number carries exactly (the reader's
 * double already lost digits, and so would every printer after it). */
static int is_unsafe_int(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && fabs(d) > MAX_SAFE_INT;
}

static int expected(const pctx *p, size_t i, const char *field, const char *what, const cJSON *v)
{
    char got[64];
    sfl_json_describe(v, got, sizeof(got));
    return fail(p, (long long)i, field, "expected %s, got %s", what, got);
}

/* The number read has already lost digits: quoting it would show a value
 * that is not in the text. */
static int unsafe(const pctx *p, size_t i, const char *field, const char *range)
{
    return fail(p, (long long)i, field,
                "expected an integer %s, got one beyond 2^53-1, the largest a JSON number "
                "carries exactly",
                range);
}

static int parse_one(const pctx *p, size_t i, const cJSON *o, sfl_stream *s)
{
    const cJSON *v;
    int rc;

    s->account = -1;
    if (!cJSON_IsObject(o))
        return expected(p, i, NULL, "an object", o);

    if ((rc = member(p, i, o, "id", &v)) < 0)
        return -1;
    if (rc == 0)
        return fail(p, (long long)i, "id", "missing");
    if (is_unsafe_int(v))
        return unsafe(p, i, "id", "from -9007199254740991 to 9007199254740991");
    if (!is_int(v, -MAX_SAFE_INT, MAX_SAFE_INT))
        return expected(p, i, "id", "an integer", v);
    s->id = (long long)v->valuedouble;

    if ((rc = member(p, i, o, "url", &v)) < 0)
        return -1;
    if (rc == 0)
        return fail(p, (long long)i, "url", "missing");
    if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring) {
        if (cJSON_IsString(v))
            return fail(p, (long long)i, "url", "must not be empty");
        return expected(p, i, "url", "a non-empty string", v);
    }
    for (const char *c = v->valuestring; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(p, (long long)i, "url", "contains a control character");
    if (!(s->url = strdup(v->valuestring)))
        return fail(p, (long long)i, "url", "out of memory");

    if ((rc = member(p, i, o, "name", &v)) < 0)
        return -1;
    if (rc == 1 && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || !v->valuestring)
            return expected(p, i, "name", "a string or null", v);
        if (!(s->name = strdup(v->valuestring)))
            return fail(p, (long long)i, "name", "out of memory");
    }

    if ((rc = member(p, i, o, "m3u_account", &v)) < 0)
        return -1;
    if (rc == 1 && !cJSON_IsNull(v)) {
        if (is_unsafe_int(v) && v->valuedouble > 0)
            return unsafe(p, i, "m3u_account", "from 0 to 9007199254740991 or null");
        if (!is_int(v, 0, MAX_SAFE_INT))
            return expected(p, i, "m3u_account", "an integer >= 0 or null", v);
        s->account = (long long)v->valuedouble;
    }

    if ((rc = member(p, i, o, "priority", &v)) < 0)
        return -1;
    if (rc == 1 && !cJSON_IsNull(v)) {
        if (!is_int(v, INT_MIN, INT_MAX))
            return expected(p, i, "priority", "an integer", v);
        s->priority = (int)v->valuedouble;
    }
    return 0;
}

/*--- Duplicate ids: an open-addressing table id -> first position ---*/

typedef struct idtab {
    size_t *slot; /* position + 1; 0 = empty */
    size_t mask;
} idtab;

static int idtab_init(idtab *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->mask = cap - 1;
    t->slot = calloc(cap, sizeof(*t->slot));
    return t->slot ? 0 : -1;
}

/* Adds v[pos].id; returns the earlier position holding the same id, or SIZE_MAX. */
static size_t idtab_add(idtab *t, const sfl_stream *v, size_t pos)
{
    uint64_t h = (uint64_t)v[pos].id * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 32) & t->mask;; i = (i + 1) & t->mask) {
        if (t->slot[i] == 0) {
            t->slot[i] = pos + 1;
            return SIZE_MAX;
        }
        if (v[t->slot[i] - 1].id == v[pos].id)
            return t->slot[i] - 1;
    }
}

void sfl_streams_free(sfl_streams *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].url);
    }
    free(s->v);
    free(s);
}

sfl_streams *sfl_streams_parse(const char *json, size_t len, const char *name, char *err,
                               size_t errlen)
{
    pctx p = {name ? name : "(streams)", "", err, errlen};
    sfl_streams *ss = NULL;
    cJSON *root = NULL;
    idtab ids = {NULL, 0};
    if (!json) {
        fail(&p, -1, NULL, "no text");
        return NULL;
    }
    if (!(root = sfl_json_parse(json, len, p.name, err, errlen)))
        return NULL;

    const cJSON *arr = root;
    if (cJSON_IsObject(root)) {
        arr = cJSON_GetObjectItemCaseSensitive(root, "streams");
        p.prefix = "streams";
        if (!cJSON_IsArray(arr)) {
            char got[64];
            sfl_json_describe(arr, got, sizeof(got));
            if (arr)
                fail(&p, -1, NULL, "streams: expected an array, got %s", got);
            else
                fail(&p, -1, NULL, "(top level): an object needs a \"streams\" array");
            goto err;
        }
    } else if (!cJSON_IsArray(root)) {
        char got[64];
        sfl_json_describe(root, got, sizeof(got));
        fail(&p, -1, NULL,
             "(top level): expected an array of streams or {\"streams\": [...]}, "
             "got %s",
             got);
        goto err;
    }

    if (!(ss = calloc(1, sizeof(*ss)))) {
        fail(&p, -1, NULL, "out of memory");
        goto err;
    }
    ss->wrapped = cJSON_IsObject(root);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > 0 && !(ss->v = calloc(n, sizeof(*ss->v)))) {
        fail(&p, -1, NULL, "out of memory");
        goto err;
    }
    if (idtab_init(&ids, n) < 0) {
        fail(&p, -1, NULL, "out of memory");
        goto err;
    }
    /* One pass in input order, so the first problem in the text is the one reported. */
    size_t i = 0;
    for (const cJSON *it = arr->child; it && i < n; it = it->next, i++) {
        ss->n = i + 1; /* so sfl_streams_free frees a half-filled element */
        if (parse_one(&p, i, it, &ss->v[i]) < 0)
            goto err;
        size_t first = idtab_add(&ids, ss->v, i);
        if (first != SIZE_MAX) {
            fail(&p, (long long)i, "id", "duplicate id %lld (also at %s[%zu])", ss->v[i].id,
                 p.prefix, first);
            goto err;
        }
    }
    free(ids.slot);
    cJSON_Delete(root);
    return ss;
err:
    free(ids.slot);
    cJSON_Delete(root);
    sfl_streams_free(ss);
    return NULL;
}

sfl_streams *sfl_streams_load(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = sfl_json_read_text(path, STREAMS_MAX_BYTES, &len, err, errlen);
    if (!text)
        return NULL;
    sfl_streams *s =
        sfl_streams_parse(text, len, strcmp(path, "-") == 0 ? "(stdin)" : path, err, errlen);
    free(text);
    return s;
}

/*--- What a check may open ---*/

size_t sfl_scheme_span(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    size_t n = 1;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' || s[n] == '.')
        n++;
    return n;
}

/* "http, https, ..." into buf. */
static void scheme_list(char *const *schemes, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", schemes[i]);
        used += w < 0 ? 0 : (size_t)w;
    }
}

int sfl_url_allowed(const char *url, char *const *schemes, size_t n, char *why, size_t whylen)
{
    size_t k = sfl_scheme_span(url);
    if (k > 0 && k <= SFL_SCHEME_MAX && strncmp(url + k, "://", 3) == 0)
        for (size_t i = 0; i < n; i++)
            if (strlen(schemes[i]) == k && strncasecmp(schemes[i], url, k) == 0)
                return 0;
    if (why && whylen) {
        char list[256];
        scheme_list(schemes, n, list, sizeof(list));
        if (k == 0 || strncmp(url + k, "://", 3) != 0)
            snprintf(why, whylen, "has no scheme:// in front (check.schemes: %s)", list);
        else if (k > SFL_SCHEME_MAX)
            snprintf(why, whylen, "has a scheme longer than %d characters (check.schemes: %s)",
                     SFL_SCHEME_MAX, list);
        else
            snprintf(why, whylen, "scheme \"%.*s\" is not allowed (check.schemes: %s)", (int)k, url,
                     list);
    }
    return -1;
}

int sfl_streams_allowed(const sfl_streams *s, char *const *schemes, size_t n, const char *name,
                        char *err, size_t errlen)
{
    for (size_t i = 0; s && i < s->n; i++) {
        char why[400];
        if (sfl_url_allowed(s->v[i].url, schemes, n, why, sizeof(why)) == 0)
            continue;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s[%zu].url (stream %lld): %s", name ? name : "(streams)",
                     s->wrapped ? "streams" : "", i, s->v[i].id, why);
        return -1;
    }
    return 0;
}

int sfl_stream_json_add_id(cJSON *obj, const char *key, long long id)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%lld", id);
    return cJSON_AddRawToObject(obj, key, digits) ? 0 : -1;
}

char *sfl_stream_to_json(const sfl_stream *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int bad = sfl_stream_json_add_id(o, "id", s->id) < 0;
    if (s->name)
        bad |= !cJSON_AddStringToObject(o, "name", s->name);
    bad |= !cJSON_AddStringToObject(o, "url", s->url);
    if (s->account >= 0)
        bad |= sfl_stream_json_add_id(o, "m3u_account", s->account) < 0;
    else
        bad |= !cJSON_AddNullToObject(o, "m3u_account");
    bad |= !cJSON_AddNumberToObject(o, "priority", s->priority);
    char *text = bad ? NULL : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
