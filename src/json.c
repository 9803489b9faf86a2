/* json.c - reading JSON input and saying exactly what is wrong with it.
 *
 * Shape: sfl_json_read_text() reads a file whole, refusing it past a size
 * bound; sfl_json_parse() runs a precheck for what cJSON lets through or
 * words badly, then cJSON, and turns a failure into line, column and byte;
 * the member getters check one member's JSON type and range and name its
 * path. Every message reads "<name>: <json.path>: <what is wrong>" and names
 * the value found (strings cut at 40 characters, control bytes as '?'), so a
 * person can fix the input without reading code.
 *
 * The rules of a particular input (which keys, which ranges) belong to its
 * reader (conf.c, streams.c, ...); this file only applies them.
 *
 * Never: print, exit, or keep state between calls. */
#include "json.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*--- Messages ---*/

int sfl_json_fail(const sfl_json_ctx *e, const char *path, const char *fmt, ...)
{
    if (!e->err || e->errlen == 0)
        return -1;
    size_t n = 0;
    int w;
    if (path && *path)
        w = snprintf(e->err, e->errlen, "%s: %s: ", e->name, path);
    else
        w = snprintf(e->err, e->errlen, "%s: ", e->name);
    if (w > 0)
        n = (size_t)w < e->errlen ? (size_t)w : e->errlen - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err + n, e->errlen - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies s for a message: at most 40 characters, control characters as '?'. */
void sfl_json_quote(const char *s, char *buf, size_t len)
{
    size_t i = 0, o = 0;
    if (len < 8) {
        if (len)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; s[i] && o + 5 < len && i < 40; i++)
        buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* What a JSON value is, for "got ...". */
void sfl_json_describe(const cJSON *v, char *buf, size_t len)
{
    if (!v)
        snprintf(buf, len, "nothing");
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsTrue(v))
        snprintf(buf, len, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, len, "false");
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e17)
            snprintf(buf, len, "%.0f", d);
        else
            snprintf(buf, len, "%.15g", d);
    } else if (cJSON_IsString(v))
        sfl_json_quote(v->valuestring, buf, len);
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, len, "an object");
    else
        snprintf(buf, len, "an unknown value");
}

/* "prefix.key" (just key at the top level), for the path in a message. */
static void join(char *buf, size_t len, const char *prefix, const char *key)
{
    char k[64];
    sfl_json_quote(key, k, sizeof(k));
    /* Plain keys print bare; odd ones (spaces, control characters) quoted. */
    int plain = *key != '\0';
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            plain = 0;
    const char *shown = plain && strlen(key) <= 40 ? key : k;
    if (prefix && *prefix)
        snprintf(buf, len, "%s.%s", prefix, shown);
    else
        snprintf(buf, len, "%s", shown);
}

/*--- Numbers ---*/

static void numspec_text(const sfl_json_numspec *s, char *buf, size_t len)
{
    const char *what = s->integer ? "an integer" : "a number";
    if (s->show_max)
        snprintf(buf, len, "%s between %.0f and %.0f", what, s->min, s->max);
    else
        snprintf(buf, len, "%s %s %.15g", what, s->min_excl ? ">" : ">=", s->min);
}

static int num_ok(const sfl_json_numspec *s, double d)
{
    if (!isfinite(d))
        return 0;
    if (s->integer && (d != floor(d) || fabs(d) > SFL_JSON_MAX_SAFE_INT))
        return 0;
    if (s->min_excl ? !(d > s->min) : !(d >= s->min))
        return 0;
    return d <= s->max;
}

int sfl_json_check_num(const sfl_json_ctx *e, const char *path, const sfl_json_numspec *s, double d)
{
    if (num_ok(s, d))
        return 0;
    char want[96], got[48];
    numspec_text(s, want, sizeof(want));
    if (isfinite(d) && d == floor(d) && fabs(d) < 1e17)
        snprintf(got, sizeof(got), "%.0f", d);
    else
        snprintf(got, sizeof(got), "%.15g", d);
    const char *why = "";
    if (isfinite(d) && (!s->integer || d == floor(d)) && d > s->max && !s->show_max)
        why = " (too large)";
    return sfl_json_fail(e, path, "expected %s, got %s%s", want, got, why);
}

/*--- Members of an object ---*/

/* Every key of obj must be in allowed (NULL-terminated) and appear once. */
int sfl_json_check_keys(const sfl_json_ctx *e, const cJSON *obj, const char *prefix,
                        const char *const *allowed)
{
    char path[160];
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        int known = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                known = 1;
        join(path, sizeof(path), prefix, k);
        if (!known)
            return sfl_json_fail(e, path, "unknown key");
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (prev->string && strcmp(prev->string, k) == 0)
                return sfl_json_fail(e, path, "duplicate key");
    }
    return 0;
}

/* Returns the member as an object, NULL when absent. -1 in *rc on a wrong type. */
const cJSON *sfl_json_get_object(const sfl_json_ctx *e, const cJSON *obj, const char *key, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *rc = 0;
    if (!v)
        return NULL;
    if (!cJSON_IsObject(v)) {
        char got[64];
        sfl_json_describe(v, got, sizeof(got));
        *rc = sfl_json_fail(e, key, "expected an object, got %s", got);
        return NULL;
    }
    return v;
}

/* 0 absent (out untouched), 1 set, -1 error. */
int sfl_json_get_num(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                     const sfl_json_numspec *s, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v)) {
        char want[96], got[64];
        numspec_text(s, want, sizeof(want));
        sfl_json_describe(v, got, sizeof(got));
        return sfl_json_fail(e, path, "expected %s, got %s", want, got);
    }
    if (sfl_json_check_num(e, path, s, v->valuedouble) < 0)
        return -1;
    *out = v->valuedouble;
    return 1;
}

int sfl_json_get_int64(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                       const sfl_json_numspec *s, int64_t *out)
{
    double d = 0;
    int rc = sfl_json_get_num(e, obj, key, path, s, &d);
    if (rc == 1)
        *out = (int64_t)d;
    return rc;
}

int sfl_json_get_int(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                     const sfl_json_numspec *s, int *out)
{
    double d = 0;
    int rc = sfl_json_get_num(e, obj, key, path, s, &d);
    if (rc == 1)
        *out = (int)d;
    return rc;
}

int sfl_json_get_double(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                        const sfl_json_numspec *s, double *out)
{
    return sfl_json_get_num(e, obj, key, path, s, out);
}

int sfl_json_get_bool(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                      int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        char got[64];
        sfl_json_describe(v, got, sizeof(got));
        return sfl_json_fail(e, path, "expected true or false, got %s", got);
    }
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 1;
}

/* Replaces *out with a copy of the string (or NULL for JSON null when
 * nullable). 0 absent, 1 set, -1 error. */
int sfl_json_get_string(const sfl_json_ctx *e, const cJSON *obj, const char *key, const char *path,
                        int nullable, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (nullable && cJSON_IsNull(v)) {
        free(*out);
        *out = NULL;
        return 1;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        char got[64];
        sfl_json_describe(v, got, sizeof(got));
        return sfl_json_fail(e, path, "expected a string%s, got %s", nullable ? " or null" : "",
                             got);
    }
    char *copy = strdup(v->valuestring);
    if (!copy)
        return sfl_json_fail(e, path, "out of memory");
    free(*out);
    *out = copy;
    return 1;
}

/*--- Parsing ---*/

/* Line and column (1-based) of byte offset off. */
static void where(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* What cJSON lets through or words badly: raw control bytes (cJSON takes any
 * byte <= 0x20 for blank, and a NUL ends its strings), \u0000 (which would cut
 * a string short: a URL checked would not be the URL given), and nesting past
 * cJSON's limit (valid JSON, but cJSON only says "not valid"). One pass;
 * -1 with the message set. */
static int json_precheck(const sfl_json_ctx *e, const char *json, size_t len)
{
    size_t line, col;
    int in_string = 0;
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)json[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            where(json, i, &line, &col);
            sfl_json_fail(e, NULL,
                          "not valid JSON: control byte 0x%02x at line %zu, column %zu (byte %zu)",
                          ch, line, col, i);
            return -1;
        }
        if (in_string) {
            if (ch == '"') {
                in_string = 0;
            } else if (ch == '\\' && i + 1 < len) {
                if (json[i + 1] == 'u' && i + 5 < len && memcmp(json + i + 2, "0000", 4) == 0) {
                    where(json, i, &line, &col);
                    sfl_json_fail(e, NULL,
                                  "a string holds \\u0000 (NUL), which is refused, at line %zu, "
                                  "column %zu (byte %zu)",
                                  line, col, i);
                    return -1;
                }
                i++; /* the escaped character */
            }
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > CJSON_NESTING_LIMIT) {
                where(json, i, &line, &col);
                sfl_json_fail(
                    e, NULL, "JSON nested deeper than %d levels at line %zu, column %zu (byte %zu)",
                    CJSON_NESTING_LIMIT, line, col, i);
                return -1;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static cJSON *parse_json(const sfl_json_ctx *e, const char *json, size_t len)
{
    const char *end = NULL;
    size_t line, col;
    if (len == 0) {
        sfl_json_fail(e, NULL, "not valid JSON: the text is empty");
        return NULL;
    }
    if (json_precheck(e, json, len) < 0)
        return NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
        if (off >= len) {
            sfl_json_fail(e, NULL, "not valid JSON: unexpected end of text");
        } else {
            where(json, off, &line, &col);
            sfl_json_fail(e, NULL, "not valid JSON near line %zu, column %zu (byte %zu)", line, col,
                          off);
        }
        return NULL;
    }
    size_t off = (size_t)(end - json);
    while (off < len &&
           (json[off] == ' ' || json[off] == '\t' || json[off] == '\n' || json[off] == '\r'))
        off++;
    if (off < len) {
        where(json, off, &line, &col);
        sfl_json_fail(e, NULL,
                      "not valid JSON: unexpected text after the value at line %zu, column %zu "
                      "(byte %zu)",
                      line, col, off);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

struct cJSON *sfl_json_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen)
{
    sfl_json_ctx e = {name ? name : "(input)", err, errlen};
    return parse_json(&e, text, len);
}

/*--- Reading ---*/

char *sfl_json_read_text(const char *path, size_t max, size_t *lenp, char *err, size_t errlen)
{
    int is_stdin = strcmp(path, "-") == 0;
    sfl_json_ctx e = {is_stdin ? "(stdin)" : path, err, errlen};
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, len = 0;
    char *buf = NULL;
    int saved;
    struct stat st;
    if (fd < 0) {
        saved = errno;
        goto err;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        saved = EISDIR;
        goto err;
    }
    saved = ENOMEM;
    if (!(buf = malloc(cap)))
        goto err;
    for (;;) {
        if (len + 1 >= cap) {
            saved = EFBIG;
            if (cap > max)
                goto err;
            saved = ENOMEM;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto err;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            saved = errno;
            goto err;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    saved = EFBIG;
    if (len > max)
        goto err;
    if (!is_stdin)
        close(fd);
    buf[len] = '\0';
    *lenp = len;
    return buf;
err:
    free(buf);
    if (fd >= 0 && !is_stdin)
        close(fd);
    if (saved == EFBIG)
        sfl_json_fail(&e, NULL, "cannot read: larger than %zu bytes", max);
    else
        sfl_json_fail(&e, NULL, "cannot read: %s", strerror(saved));
    errno = saved;
    return NULL;
}
