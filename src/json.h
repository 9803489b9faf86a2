/* json.h - reading JSON input and saying exactly what is wrong with it:
 * bounded file reading, a strict parse, and typed member getters whose
 * messages read "<name>: <json.path>: <what is wrong>, got <value>". Used by
 * conf.c (the config schema), streams.c, http_body.c and dispatcharr.c. */
#ifndef SFL_JSON_H
#define SFL_JSON_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define SFL_JSON_MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: every integer up to here is exact */

/*--- Reading and parsing ---*/

/* Reads a whole file ("-" = stdin) into a NUL-terminated buffer the caller
 * frees; *len excludes the NUL. NULL with errno set (EFBIG past max bytes)
 * and "<path>: cannot read: <reason>" in err. */
char *sfl_json_read_text(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* cJSON_ParseWithLengthOpts with a message: "<name>: not valid JSON near line
 * L, column C (byte B)"; trailing text after the value is an error too, and so
 * are raw control bytes, \u0000 in a string and nesting deeper than cJSON
 * allows, each with its own message. name NULL reads "(input)". The caller
 * frees the tree with cJSON_Delete(). */
struct cJSON *sfl_json_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen);

/*--- Messages ---*/

/* Where messages about one input go: name is the file (or "environment",
 * "body", ...) they are about; it must outlive the context. */
typedef struct sfl_json_ctx {
    const char *name;
    char *err;
    size_t errlen;
} sfl_json_ctx;

/* Writes "name: path: message" (or "name: message" when path is NULL or
 * empty) into e->err; returns -1 so callers can `return sfl_json_fail(...)`. */
int sfl_json_fail(const sfl_json_ctx *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies s for a message, in double quotes: at most 40 characters (then
 * "..."), control characters as '?'. len < 8 gives "". */
void sfl_json_quote(const char *s, char *buf, size_t len);
/* "null", "true", "42", "1.5", "\"text\"" (cut at 40 characters), "an array",
 * "an object", "nothing" for NULL: for "got ..." in messages. */
void sfl_json_describe(const struct cJSON *v, char *buf, size_t len);

/*--- Numbers ---*/

/* A numeric field's rule, shared by the member getters (type + range) and a
 * caller's own checks of values it holds (range), so both say the same thing:
 * "expected an integer >= 0, got -1". */
typedef struct sfl_json_numspec {
    int integer; /* must be integral (and within +-2^53) */
    double min;
    int min_excl; /* "> min" instead of ">= min" */
    double max;   /* inclusive */
    int show_max; /* name max in messages (else it is only a C type's limit) */
} sfl_json_numspec;

/* 0 when d obeys s, else -1 with "expected <rule>, got <d>" at path. */
int sfl_json_check_num(const sfl_json_ctx *e, const char *path, const sfl_json_numspec *s,
                       double d);

/*--- Members of an object ---*/

/* Every key of obj must be in allowed (NULL-terminated) and appear once;
 * prefix is the object's path ("" for the top level). 0 or -1. */
int sfl_json_check_keys(const sfl_json_ctx *e, const struct cJSON *obj, const char *prefix,
                        const char *const *allowed);
/* Returns the member as an object, NULL when absent or on a wrong type (-1
 * in *rc then, else 0); the message names key as the path. Valid while obj
 * lives. */
const struct cJSON *sfl_json_get_object(const sfl_json_ctx *e, const struct cJSON *obj,
                                        const char *key, int *rc);
/* The typed getters: 0 when the member is absent (*out untouched), 1 when
 * set, -1 on a wrong type or a value outside s, with path in the message. */
int sfl_json_get_num(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                     const char *path, const sfl_json_numspec *s, double *out);
int sfl_json_get_int64(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                       const char *path, const sfl_json_numspec *s, int64_t *out);
int sfl_json_get_int(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                     const char *path, const sfl_json_numspec *s, int *out);
int sfl_json_get_double(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                        const char *path, const sfl_json_numspec *s, double *out);
int sfl_json_get_bool(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                      const char *path, int *out);
/* Replaces *out (free()d) with a malloc'd copy of the string, or with NULL
 * for JSON null when nullable. */
int sfl_json_get_string(const sfl_json_ctx *e, const struct cJSON *obj, const char *key,
                        const char *path, int nullable, char **out);

#endif
