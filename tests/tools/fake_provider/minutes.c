/* minutes.c - see minutes.h. The provider's own view of each minute, the
 * ground truth a history run (tests/tools/history_run.sh) compares sfl's
 * GET /v1/history with.
 *
 * A minute's peak starts at what is open when the minute begins (a
 * connection held across the boundary counts in both minutes) and grows
 * with every admission. Events touch the ring lazily: the first one in a
 * new minute fills every minute since the last event with the count held
 * all that time, which did not change, since nothing happened. Time comes
 * in as an argument (the caller reads the wall clock), so that the logic
 * can be tested with any clock. A wall clock that steps back counts its
 * events in the newest minute already kept, never rewrites an older one. */
#include "minutes.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t fp_minute_of(int64_t s)
{
    return s >= 0 ? s / 60 : -((-s + 59) / 60);
}

static fp_minute *fp_minutes_slot(fp_minutes *m, int64_t minute)
{
    return &m->ring[((minute % FP_MINUTES) + FP_MINUTES) % FP_MINUTES];
}

static const fp_minute *fp_minutes_at(const fp_minutes *m, int64_t minute)
{
    return &m->ring[((minute % FP_MINUTES) + FP_MINUTES) % FP_MINUTES];
}

void fp_minutes_init(fp_minutes *m, int64_t now_s, long current)
{
    memset(m, 0, sizeof(*m));
    m->first = m->last = fp_minute_of(now_s);
    fp_minutes_slot(m, m->last)->peak = current;
}

/* Brings the ring up to the minute of now_s: every minute after the last
 * one touched held current open all along. */
static fp_minute *fp_minutes_touch(fp_minutes *m, int64_t now_s, long current)
{
    int64_t now = fp_minute_of(now_s);
    if (now > m->last) {
        int64_t from = m->last + 1;
        if (from < now - FP_MINUTES + 1)
            from = now - FP_MINUTES + 1;
        for (int64_t k = from; k <= now; k++)
            *fp_minutes_slot(m, k) = (fp_minute){.peak = current, .opened = 0};
        m->last = now;
        if (m->first < now - FP_MINUTES + 1)
            m->first = now - FP_MINUTES + 1;
    }
    return fp_minutes_slot(m, m->last);
}

void fp_minutes_open(fp_minutes *m, int64_t now_s, long current)
{
    fp_minute *slot = fp_minutes_touch(m, now_s, current);
    slot->opened++;
    if (current + 1 > slot->peak)
        slot->peak = current + 1;
}

void fp_minutes_close(fp_minutes *m, int64_t now_s, long current)
{
    fp_minutes_touch(m, now_s, current);
}

cJSON *fp_minutes_json(const fp_minutes *m, int64_t now_s, long current, int64_t from_s,
                       int64_t to_s)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return NULL;
    int64_t now = fp_minute_of(now_s);
    if (now < m->last)
        now = m->last;
    int64_t lo = m->first, hi = now; /* kept: [first, now], the ring's size at most */
    if (lo < hi - FP_MINUTES + 1)
        lo = hi - FP_MINUTES + 1;
    /* Minutes that start in [from_s, to_s). */
    int64_t from = fp_minute_of(from_s + 59), to = fp_minute_of(to_s + 59);
    if (from > lo)
        lo = from;
    if (to - 1 < hi)
        hi = to - 1;
    for (int64_t k = lo; k <= hi; k++) {
        fp_minute v = {.peak = current, .opened = 0};
        if (k <= m->last)
            v = *fp_minutes_at(m, k);
        time_t t = (time_t)(k * 60);
        struct tm tm;
        char utc[32];
        gmtime_r(&t, &tm);
        strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            goto err;
        if (!cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto err;
        }
        if (!cJSON_AddNumberToObject(o, "t", (double)(k * 60)) ||
            !cJSON_AddStringToObject(o, "utc", utc) ||
            !cJSON_AddNumberToObject(o, "peak", (double)v.peak) ||
            !cJSON_AddNumberToObject(o, "opened", (double)v.opened) ||
            !cJSON_AddBoolToObject(o, "complete", (k + 1) * 60 <= now_s))
            goto err;
    }
    return arr;
err:
    cJSON_Delete(arr);
    return NULL;
}
