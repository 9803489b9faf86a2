/* minutes.c - see minutes.h. The provider's own view of each minute, the
 * ground truth a history run (tests/tools/history_run.sh) compares sfl's
 * GET /v1/history with.
 *
 * A minute's peak starts at what is open when the minute begins (a
 * connection held across the boundary counts in both minutes) and grows
 * with every admission; its held_ms adds, between two events, the number
 * open times the milliseconds of the minute between them. Events touch the ring lazily: the first
 * one in a new minute fills every minute since the last event with the count held all that time,
 * which did not change, since nothing happened. Time comes in as an argument (the caller reads the
 * wall clock), so that the logic can be tested with any clock. A wall clock that steps back counts
 * its events in the newest minute already kept, never rewrites an older one, and counts no held
 * time until it is past the last event again. */
#include "minutes.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define FP_MINUTE_MS 60000

/* The minute (Unix ms / 60000, floored) of a time in ms. */
static int64_t fp_minute_of(int64_t ms)
{
    return ms >= 0 ? ms / FP_MINUTE_MS : -((-ms + FP_MINUTE_MS - 1) / FP_MINUTE_MS);
}

static fp_minute *fp_minutes_slot(fp_minutes *m, int64_t minute)
{
    return &m->ring[((minute % FP_MINUTES) + FP_MINUTES) % FP_MINUTES];
}

static const fp_minute *fp_minutes_at(const fp_minutes *m, int64_t minute)
{
    return &m->ring[((minute % FP_MINUTES) + FP_MINUTES) % FP_MINUTES];
}

/* The milliseconds of [from_ms, to_ms) inside minute k. */
static int64_t fp_overlap_ms(int64_t from_ms, int64_t to_ms, int64_t k)
{
    int64_t a = k * FP_MINUTE_MS, b = a + FP_MINUTE_MS;
    if (from_ms > a)
        a = from_ms;
    if (to_ms < b)
        b = to_ms;
    return b > a ? b - a : 0;
}

void fp_minutes_init(fp_minutes *m, int64_t now_ms, long current)
{
    memset(m, 0, sizeof(*m));
    m->first = m->last = fp_minute_of(now_ms);
    m->last_ms = now_ms;
    fp_minutes_slot(m, m->last)->peak = current;
}

/* Brings the ring up to now_ms: every minute after the last one touched
 * held current open all along, and so did the time since the last event. */
static fp_minute *fp_minutes_touch(fp_minutes *m, int64_t now_ms, long current)
{
    int64_t now = fp_minute_of(now_ms);
    if (now > m->last) {
        int64_t from = m->last + 1;
        if (from < now - FP_MINUTES + 1)
            from = now - FP_MINUTES + 1;
        for (int64_t k = from; k <= now; k++)
            *fp_minutes_slot(m, k) = (fp_minute){.peak = current};
        m->last = now;
        if (m->first < now - FP_MINUTES + 1)
            m->first = now - FP_MINUTES + 1;
    }
    if (now_ms > m->last_ms) {
        int64_t k = fp_minute_of(m->last_ms);
        if (k < m->last - FP_MINUTES + 1)
            k = m->last - FP_MINUTES + 1;
        for (; current > 0 && k <= now; k++)
            fp_minutes_slot(m, k)->held_ms += current * fp_overlap_ms(m->last_ms, now_ms, k);
        m->last_ms = now_ms;
    }
    return fp_minutes_slot(m, m->last);
}

void fp_minutes_open(fp_minutes *m, int64_t now_ms, long current)
{
    fp_minute *slot = fp_minutes_touch(m, now_ms, current);
    slot->opened++;
    if (current + 1 > slot->peak)
        slot->peak = current + 1;
}

void fp_minutes_close(fp_minutes *m, int64_t now_ms, long current)
{
    fp_minutes_touch(m, now_ms, current);
}

cJSON *fp_minutes_json(const fp_minutes *m, int64_t now_ms, long current, int64_t from_s,
                       int64_t to_s)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return NULL;
    int64_t now = fp_minute_of(now_ms);
    if (now < m->last)
        now = m->last;
    int64_t lo = m->first, hi = now; /* kept: [first, now], the ring's size at most */
    if (lo < hi - FP_MINUTES + 1)
        lo = hi - FP_MINUTES + 1;
    /* Minutes that start in [from_s, to_s). */
    int64_t from = fp_minute_of((from_s + 59) * 1000), to = fp_minute_of((to_s + 59) * 1000);
    if (from > lo)
        lo = from;
    if (to - 1 < hi)
        hi = to - 1;
    for (int64_t k = lo; k <= hi; k++) {
        fp_minute v = {.peak = current};
        if (k <= m->last)
            v = *fp_minutes_at(m, k);
        v.held_ms += current * fp_overlap_ms(m->last_ms, now_ms, k); /* since the last event */
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
            !cJSON_AddNumberToObject(o, "held_ms", (double)v.held_ms) ||
            !cJSON_AddBoolToObject(o, "complete", (k + 1) * FP_MINUTE_MS <= now_ms))
            goto err;
    }
    return arr;
err:
    cJSON_Delete(arr);
    return NULL;
}
