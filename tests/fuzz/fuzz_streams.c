/* fuzz_streams.c - sfl_streams_parse() on arbitrary bytes (a streams file or
 * a POST /v1/checks body).
 *
 * Checked for an accepted batch: every stream has a non-empty URL without
 * control characters and a unique id, and survives a round trip through
 * sfl_stream_to_json() -> "[...]" -> sfl_streams_parse(), which is the path a
 * stream takes through the shared queue (queue.c wraps the entry's text in
 * brackets the same way). */
#include "streams.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_streams: check failed: %s (line %d)\n", #cond, __LINE__);        \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void round_trip(const sfl_stream *s)
{
    char *json = sfl_stream_to_json(s);
    if (!json)
        return; /* out of memory */
    size_t n = strlen(json);
    char *text = malloc(n + 2);
    CHECK(text != NULL);
    text[0] = '[';
    memcpy(text + 1, json, n);
    text[n + 1] = ']';
    free(json);
    char err[256];
    sfl_streams *back = sfl_streams_parse(text, n + 2, "round-trip", err, sizeof(err));
    free(text);
    if (!back)
        fprintf(stderr, "fuzz_streams: round trip refused: %s\n", err);
    CHECK(back != NULL && back->n == 1);
    const sfl_stream *b = &back->v[0];
    CHECK(b->id == s->id && b->account == s->account && b->priority == s->priority);
    CHECK(same_str(b->name, s->name) && same_str(b->url, s->url));
    sfl_streams_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    sfl_streams *ss = sfl_streams_parse((const char *)data, size, "fuzz.json", err, sizeof(err));
    if (!ss) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK((ss->n == 0) == (ss->v == NULL));
    for (size_t i = 0; i < ss->n; i++) {
        const sfl_stream *s = &ss->v[i];
        CHECK(s->url && s->url[0]);
        for (const char *p = s->url; *p; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        CHECK(s->account >= -1);
        for (size_t j = 0; j < i; j++)
            CHECK(ss->v[j].id != s->id);
        round_trip(s);
    }
    sfl_streams_free(ss);
    return 0;
}
