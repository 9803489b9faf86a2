/* minutes.h - the fake provider's record per wall-clock minute (issue #18):
 * for each account and each UTC minute, the most connections it had open at
 * once, how many it admitted and how long they were open (connection-ms),
 * so that a run of known load can be set beside sfl's own history minute by
 * minute. Answered by GET /minutes
 * (fake_provider.c); kept apart from it, which serves and counts. */
#ifndef FP_MINUTES_H
#define FP_MINUTES_H

#include <stdint.h>

typedef struct cJSON cJSON;

#define FP_MINUTES 1440 /* minutes kept per account: a day */

typedef struct fp_minute {
    long peak;       /* the most connections open at once within the minute */
    long opened;     /* connections admitted within it */
    int64_t held_ms; /* connection-milliseconds within it (mean open = held_ms / 60000) */
} fp_minute;

/* One account's minutes, a ring: minute m (Unix seconds / 60) lives at
 * ring[m % FP_MINUTES] while first <= m <= last. */
typedef struct fp_minutes {
    int64_t first;   /* the oldest minute kept */
    int64_t last;    /* the newest minute an event (or the start) touched */
    int64_t last_ms; /* when (Unix ms): held_ms is counted up to it */
    fp_minute ring[FP_MINUTES];
} fp_minutes;

/* Starts the record at now_ms (Unix milliseconds of the wall clock) with
 * current connections open: the minute of now_ms has peak current. Also
 * what /reset does. */
void fp_minutes_init(fp_minutes *m, int64_t now_ms, long current);
/* A connection admitted at now_ms, current open before it. */
void fp_minutes_open(fp_minutes *m, int64_t now_ms, long current);
/* A connection closed at now_ms, current open before it. */
void fp_minutes_close(fp_minutes *m, int64_t now_ms, long current);
/* The minutes starting in [from_s, to_s) (Unix seconds) that are kept and
 * not after now_ms, oldest first, as a JSON array of {"t": minute start
 * (Unix s), "utc": ISO-8601, "peak", "opened", "held_ms", "complete":
 * whether the minute is over at now_ms}. Since the last event current
 * connections have been open. NULL when out of memory; the caller frees it
 * with cJSON_Delete(). Changes nothing. */
cJSON *fp_minutes_json(const fp_minutes *m, int64_t now_ms, long current, int64_t from_s,
                       int64_t to_s);

#endif
