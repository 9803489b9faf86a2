/* fuzz_conf.c - sfl_conf_parse() on arbitrary bytes (a config file's text).
 *
 * The bytes go in as they are, not NUL-terminated: the parser promises to
 * read only len bytes. A config it accepts must pass sfl_conf_validate()
 * again unchanged (parse = read + validate), and everything is freed: LSan
 * is on. */
#include "conf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_conf: check failed: %s (line %d)\n", #cond, __LINE__);           \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    sfl_conf *c = sfl_conf_parse((const char *)data, size, "fuzz.json", err, sizeof(err));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (!c) {
        CHECK(err[0] != '\0'); /* a refusal always says why */
        return 0;
    }
    char again[256];
    CHECK(sfl_conf_validate(c, again, sizeof(again)) == 0);
    CHECK(c->redis_url && c->node_id && c->check_argc > 0 && c->check_command);
    CHECK(c->check_command[c->check_argc] == NULL);
    for (size_t i = 0; i < c->naccounts; i++)
        CHECK(sfl_conf_account(c, c->accounts[i].id) != NULL);
    sfl_conf_free(c);
    return 0;
}
