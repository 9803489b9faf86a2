/* keys.c - sfl's Redis key names (keys.h). Nothing here talks to Redis. */
#include "keys.h"

#include <stdio.h>

static const char *const suffixes[SFL_ACCOUNT_NKEYS] = {"leases", "holders", "conf",
                                                        "fence",  "waiters", "waiters:exp"};

void sfl_account_key(char *buf, size_t len, const char *ns, long long account, const char *suffix)
{
    snprintf(buf, len, "%s:{a:%lld}:%s", ns, account, suffix);
}

void sfl_epoch_key(char *buf, size_t len, const char *ns)
{
    snprintf(buf, len, "%s:epoch", ns);
}

void sfl_account_keys_init(sfl_account_keys *k, const char *ns, long long account)
{
    for (int i = 0; i < SFL_ACCOUNT_NKEYS; i++) {
        sfl_account_key(k->name[i], SFL_KEY_LEN, ns, account, suffixes[i]);
        k->argv[i] = k->name[i];
    }
}
