/* keys.c - sfl's Redis key names (keys.h). Nothing here talks to Redis. */
#include "keys.h"

#include <stdio.h>
#include <time.h>

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

void sfl_history_hour_key(char *buf, size_t len, const char *ns, const char *login, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char hour[16] = "0000000000";
    if (gmtime_r(&tt, &tm))
        strftime(hour, sizeof(hour), "%Y%m%d%H", &tm);
    snprintf(buf, len, "%s:history:%s:%s", ns, login, hour);
}

void sfl_history_stream_key(char *buf, size_t len, const char *ns, long long stream_id)
{
    snprintf(buf, len, "%s:stream:%lld:history", ns, stream_id);
}
