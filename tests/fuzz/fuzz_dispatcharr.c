/* fuzz_dispatcharr.c - sfl_dispatcharr_limits_from_json() on arbitrary
 * bytes (the body of Dispatcharr's GET /api/m3u/accounts/).
 *
 * Checked: on failure *out is NULL, *n 0, no conflicts and err says why; on
 * success the array has exactly n entries (NULL when 0) with limits >= 0,
 * each with at least one login that has an id and search exactly when
 * replace, and every conflict names a login. Everything is freed: LSan is
 * on. */
#include "conf.h"
#include "dispatcharr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    size_t n = 12345, nconf = 12345;
    sfl_dispatcharr_conflict *conf = (sfl_dispatcharr_conflict *)1;
    char err[256];
    err[0] = '\0';
    int rc = sfl_dispatcharr_limits_from_json((const char *)data, size, &accs, &n, &conf, &nconf,
                                              err, sizeof(err));
    if (rc < 0) {
        CHECK(accs == NULL && n == 0 && conf == NULL && nconf == 0 && err[0] != '\0');
        return 0;
    }
    CHECK(rc == 0);
    CHECK((n == 0) == (accs == NULL));
    CHECK((nconf == 0) == (conf == NULL));
    for (size_t i = 0; i < n; i++) {
        CHECK(accs[i].max_streams >= 0);
        CHECK(accs[i].nlogins >= 1 && accs[i].logins != NULL);
        for (size_t j = 0; j < accs[i].nlogins; j++) {
            const sfl_login_conf *l = &accs[i].logins[j];
            CHECK(l->id != NULL && l->id[0] != '\0' && l->max_streams >= 0);
            CHECK((l->search == NULL) == (l->replace == NULL));
        }
    }
    /* A conflict names its login and differs; a profile left out (a pattern
     * sfl cannot run) says why instead, and names no login. */
    for (size_t i = 0; i < nconf; i++)
        CHECK(conf[i].why[0] ? conf[i].login[0] == '\0'
                             : conf[i].login[0] != '\0' && conf[i].max_streams != conf[i].used);
    free(conf);
    sfl_dispatcharr_accounts_free(accs, n);
    return 0;
}
