/* fuzz_http_body.c - the node's request body parsers (http_body.h) on
 * arbitrary bytes, as the routes call them.
 *
 * The first byte picks the route: 'L' POST /v1/leases
 * (sfl_http_parse_lease_body), 'A' PUT /v1/accounts/{id}
 * (sfl_http_parse_account_body), 'C' POST /v1/checks
 * (sfl_http_parse_checks_body); any other byte picks by its value mod 3. The
 * rest is the body, not NUL-terminated. Checked: a refusal carries a message
 * (the 400 reply's text); an accepted body gives values within the ranges
 * http_body.h states (a checks body: every URL of an allowed scheme); an
 * accepted lease or account body, written back as JSON, parses to the same
 * values. */
#include "http_body.h"
#include "streams.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_body: check failed: %s (line %d)\n", #cond, __LINE__);      \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* The message buffer is filled with 'x' (no NUL) first: a refusal must
 * write a terminated, non-empty message over it. */
static void check_refusal(const char *err, size_t errlen)
{
    CHECK(memchr(err, '\0', errlen) != NULL);
    CHECK(err[0] != '\0');
}

/* doc printed and parsed again; the caller frees the text. */
static char *print(cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return text;
}

static void lease(const char *body, size_t len)
{
    sfl_http_lease_ask a;
    char err[256];
    memset(err, 'x', sizeof(err));
    if (sfl_http_parse_lease_body(body, len, &a, err, sizeof(err)) < 0) {
        check_refusal(err, sizeof(err));
        return;
    }
    CHECK(a.account >= 0 && a.account <= 999999999999999LL);
    CHECK(a.wait_ms >= 0 && a.wait_ms <= 3600000);
    CHECK(memchr(a.label, '\0', sizeof(a.label)) != NULL);

    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return;
    cJSON_AddNumberToObject(doc, "account", (double)a.account);
    cJSON_AddNumberToObject(doc, "wait_ms", (double)a.wait_ms);
    cJSON_AddStringToObject(doc, "label", a.label);
    char *text = print(doc);
    if (!text)
        return;
    sfl_http_lease_ask b;
    int rc = sfl_http_parse_lease_body(text, strlen(text), &b, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "fuzz_http_body: %s refused: %s\n", text, err);
    free(text);
    CHECK(rc == 0);
    CHECK(b.account == a.account && b.wait_ms == a.wait_ms && strcmp(b.label, a.label) == 0);
}

static void account(const char *body, size_t len)
{
    sfl_http_account_put a;
    char err[256];
    memset(err, 'x', sizeof(err));
    if (sfl_http_parse_account_body(body, len, &a, err, sizeof(err)) < 0) {
        check_refusal(err, sizeof(err));
        sfl_http_account_put_clear(&a); /* logins read before the error */
        return;
    }
    CHECK(a.max_streams >= 0 && a.max_streams <= 1000000);
    CHECK(a.has_name == 0 || a.has_name == 1);
    CHECK(memchr(a.name, '\0', sizeof(a.name)) != NULL);
    CHECK(a.has_name || a.name[0] == '\0');

    CHECK((a.nlogins == 0) == (a.logins == NULL));
    /* What was accepted, as max_streams and name, is accepted again. */
    cJSON *doc = cJSON_CreateObject();
    char *text = NULL;
    if (doc) {
        cJSON_AddNumberToObject(doc, "max_streams", (double)a.max_streams);
        if (a.has_name)
            cJSON_AddStringToObject(doc, "name", a.name);
        text = print(doc);
    }
    if (text) {
        sfl_http_account_put b;
        int rc = sfl_http_parse_account_body(text, strlen(text), &b, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "fuzz_http_body: %s refused: %s\n", text, err);
        free(text);
        CHECK(rc == 0);
        CHECK(b.max_streams == a.max_streams && b.has_name == a.has_name &&
              strcmp(b.name, a.name) == 0 && b.nlogins == 0);
        sfl_http_account_put_clear(&b);
    }
    sfl_http_account_put_clear(&a);
}

static void checks(const char *body, size_t len)
{
    char err[512];
    memset(err, 'x', sizeof(err));
    static char *const schemes[] = {"http", "https", "rtmp", "rtsp", "udp", "rtp", "srt"};
    sfl_streams *s = sfl_http_parse_checks_body(body, len, schemes, 7, err, sizeof(err));
    if (!s) {
        check_refusal(err, sizeof(err));
        return;
    }
    CHECK(s->n >= 1 && s->v != NULL);
    CHECK(sfl_streams_allowed(s, schemes, 7, "body", NULL, 0) == 0);
    sfl_streams_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The body in a buffer of its own exact size: an over-read is an ASan report. */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, len);
    switch (data[0] == 'L' ? 0 : data[0] == 'A' ? 1 : data[0] == 'C' ? 2 : data[0] % 3) {
    case 0:
        lease(body, len);
        break;
    case 1:
        account(body, len);
        break;
    default:
        checks(body, len);
        break;
    }
    free(body);
    return 0;
}
