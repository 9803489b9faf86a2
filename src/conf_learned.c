/* conf_learned.c - the "learned" section of the config: what a refusal
 * looks like and how long what is learned from one lasts (learned.c).
 *
 *   "learned": {"refusal_codes": [429, 458, 509], "window": 60, "quiet": 300}
 *
 * refusal_codes are the HTTP statuses (400-599) a provider answers when a
 * login has too many connections: a check that ends on one is Refused, not
 * Error. 404 and 403 are left out by default: a dead or geo-blocked stream
 * says so too, and taking it for a full login would slow every check of the
 * login down. window (seconds): a second refusal within it halves the
 * learned limit again. quiet (seconds): with no refusal for this long, the
 * learned limit climbs back one step. recheck_after (seconds): a refused
 * stream is never checked again at once (a panel may drop someone's stream
 * to make room); it queues again after this long, and waits for a slot
 * under the lowered limit like any other. Kept out of conf.c, which holds the
 * rest of the schema. */
#include "conf_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>

static const char *const learned_keys[] = {"refusal_codes", "window", "quiet", "recheck_after",
                                           NULL};
static const sfl_json_numspec NS_CODE = {1, 400, 0, 599, 1};
static const sfl_json_numspec NS_SECONDS = {0, 0, 1, 86400, 1};

void sfl_conf_learned_defaults(sfl_conf *c)
{
    static const int codes[] = {429, 458, 509};
    c->nrefusal_codes = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < c->nrefusal_codes; i++)
        c->refusal_codes[i] = codes[i];
    c->learn_window = 60;
    c->learn_quiet = 300;
    c->learn_recheck_after = 10;
}

int sfl_conf_parse_learned(const sfl_json_ctx *e, const cJSON *root, sfl_conf *c)
{
    int rc;
    const cJSON *o = sfl_json_get_object(e, root, "learned", &rc);
    if (!o)
        return rc;
    if (sfl_json_check_keys(e, o, "learned", learned_keys) < 0 ||
        sfl_json_get_double(e, o, "window", "learned.window", &NS_SECONDS, &c->learn_window) < 0 ||
        sfl_json_get_double(e, o, "quiet", "learned.quiet", &NS_SECONDS, &c->learn_quiet) < 0 ||
        sfl_json_get_double(e, o, "recheck_after", "learned.recheck_after", &NS_SECONDS,
                            &c->learn_recheck_after) < 0)
        return -1;
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(o, "refusal_codes");
    if (!codes)
        return 0;
    if (!cJSON_IsArray(codes)) {
        char got[64];
        sfl_json_describe(codes, got, sizeof(got));
        return sfl_json_fail(e, "learned.refusal_codes", "expected an array of HTTP codes, got %s",
                             got);
    }
    int n = cJSON_GetArraySize(codes);
    if (n > SFL_REFUSAL_CODES_MAX)
        return sfl_json_fail(e, "learned.refusal_codes", "at most %d codes, got %d",
                             SFL_REFUSAL_CODES_MAX, n);
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, codes)
    {
        char path[48];
        snprintf(path, sizeof(path), "learned.refusal_codes[%zu]", i);
        if (!cJSON_IsNumber(it)) {
            char got[64];
            sfl_json_describe(it, got, sizeof(got));
            return sfl_json_fail(e, path, "expected an integer between 400 and 599, got %s", got);
        }
        if (sfl_json_check_num(e, path, &NS_CODE, it->valuedouble) < 0)
            return -1;
        c->refusal_codes[i++] = (int)it->valuedouble;
    }
    c->nrefusal_codes = i;
    return 0;
}
