/* fuzz_dispatcharr.c - sfl_dispatcharr_limits_from_json() on arbitrary
 * bytes (the body of Dispatcharr's GET /api/m3u/accounts/).
 *
 * Checked: on failure *out is NULL, *n 0 and err says why; on success the
 * array has exactly n entries (NULL when 0) with limits >= 0. Everything is
 * freed: LSan is on. */
#include "conf.h"
#include "dispatcharr.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_dispatcharr: check failed: %s (line %d)\n", #cond, __LINE__);    \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sfl_account_conf *accs = (sfl_account_conf *)1; /* must be overwritten */
    size_t n = 12345;
    char err[256];
    err[0] = '\0';
    int rc =
        sfl_dispatcharr_limits_from_json((const char *)data, size, &accs, &n, err, sizeof(err));
    if (rc < 0) {
        CHECK(accs == NULL && n == 0 && err[0] != '\0');
        return 0;
    }
    CHECK(rc == 0);
    CHECK((n == 0) == (accs == NULL));
    for (size_t i = 0; i < n; i++)
        CHECK(accs[i].max_streams >= 0);
    sfl_dispatcharr_accounts_free(accs, n);
    return 0;
}
