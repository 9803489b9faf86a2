/* streams.h - the input of a check batch (DESIGN §5): StreamFlow-shaped
 * streams, as a JSON array or {"streams": [...]}. */
#ifndef SFL_STREAMS_H
#define SFL_STREAMS_H

#include <stddef.h>

typedef struct cJSON cJSON;

typedef struct sfl_stream {
    long long id;      /* unique within the batch */
    char *name;        /* may be NULL */
    char *url;         /* non-empty, no control characters */
    long long account; /* m3u_account; -1 = custom stream (null/missing): never limited */
    int priority;      /* default 0, higher first */
} sfl_stream;

typedef struct sfl_streams {
    sfl_stream *v; /* in input order; NULL when n == 0 */
    size_t n;
    int wrapped; /* came as {"streams": [...]}: paths in messages read streams[i] */
} sfl_streams;

/* Parses len bytes of JSON (need not be NUL-terminated). Returns a batch the
 * caller frees with sfl_streams_free(), or NULL with a message in err naming
 * the source (name), the element and the field, e.g.
 * "streams.json: [3].id: duplicate id 101 (also at [0])"; for the
 * {"streams": [...]} form the path reads "streams[3].id". Fields other than
 * id, name, url, m3u_account and priority are ignored, as are keys other than
 * "streams" in the wrapping object. An empty array is a valid, empty batch. */
sfl_streams *sfl_streams_parse(const char *json, size_t len, const char *name, char *err,
                               size_t errlen);
/* Reads path ("-" = stdin, named "(stdin)" in messages) and parses it. */
sfl_streams *sfl_streams_load(const char *path, char *err, size_t errlen);
/* NULL is a no-op. */
void sfl_streams_free(sfl_streams *s);

/*--- What a check may open ---*/

#define SFL_SCHEME_MAX 32 /* longer schemes are refused (config) or not taken as one (URL) */

/* The length of the longest prefix of s that has a URL scheme's syntax (RFC
 * 3986: a letter, then letters, digits, '+', '-' and '.'); 0 when s does not
 * begin with a letter. */
size_t sfl_scheme_span(const char *s);
/* 0 when url begins with "<scheme>://" and that scheme is one of the n in
 * schemes (compared without regard to ASCII case); else -1 with why, e.g.
 * "scheme "file" is not allowed (check.schemes: http, https)" or "has no
 * scheme:// (check.schemes: http, https)". why never holds more of url than
 * its scheme (a URL carries credentials). */
int sfl_url_allowed(const char *url, char *const *schemes, size_t n, char *why, size_t whylen);
/* Every stream's url by sfl_url_allowed: 0, or -1 with the first refusal in
 * err naming the source, the element and the stream: "<name>: [3].url
 * (stream 104): scheme "file" is not allowed (check.schemes: ...)". */
int sfl_streams_allowed(const sfl_streams *s, char *const *schemes, size_t n, const char *name,
                        char *err, size_t errlen);

/* The stream as JSON text ({"id","name","url","m3u_account","priority"}),
 * which sfl_streams_parse reads back exactly. Caller frees. NULL when out of
 * memory. */
char *sfl_stream_to_json(const sfl_stream *s);

/* Adds "key": id to the object obj, written out digit for digit. cJSON's own
 * number printer writes 15 significant digits when it deems that close
 * enough, which changes integers from about 4.5e15 on (5000000000000001
 * becomes 5e+15). Every id sfl_streams_parse accepts (|id| <= 2^53-1) so
 * reads back exactly, also as a double. The item is a cJSON raw item: for
 * printing, not for reading back with cJSON_IsNumber. 0, or -1 when out of
 * memory (obj unchanged). */
int sfl_stream_json_add_id(cJSON *obj, const char *key, long long id);

#endif
