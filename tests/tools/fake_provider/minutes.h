/* minutes.h - the fake provider's record per wall-clock minute (issue #18):
 * for each account and each UTC minute, the most connections it had open at
 * once and how many it admitted, so that a run of known load can be set
 * beside sfl's own history minute by minute. Answered by GET /minutes
 * (fake_provider.c); kept apart from it, which serves and counts. */
#ifndef FP_MINUTES_H
#define FP_MINUTES_H

#include <stdint.h>

typedef struct cJSON cJSON;

#define FP_MINUTES 1440 /* minutes kept per account: a day */

typedef struct fp_minute {
    long peak;   /* the most connections open at once within the minute */
    long opened; /* connections admitted within it */
} fp_minute;

/* One account's minutes, a ring: minute m (Unix seconds / 60) lives at
 * ring[m % FP_MINUTES] while first <= m <= last. */
typedef struct fp_minutes {
    int64_t first; /* the oldest minute kept */
    int64_t last;  /* the newest minute an event (or the start) touched */
    fp_minute ring[FP_MINUTES];
} fp_minutes;

/* Starts the record at now_s (Unix seconds) with current connections open:
 * the minute of now_s has peak current. Also what /reset does. */
void fp_minutes_init(fp_minutes *m, int64_t now_s, long current);
/* A connection admitted at now_s, current open before it. */
void fp_minutes_open(fp_minutes *m, int64_t now_s, long current);
/* A connection closed at now_s, current open before it. */
void fp_minutes_close(fp_minutes *m, int64_t now_s, long current);
/* The minutes of [from_s, to_s) that are kept and not after now_s, oldest
 * first, as a JSON array of {"t": minute start (Unix s), "utc": ISO-8601,
 * "peak", "opened", "complete": whether the minute is over at now_s}.
 * Minutes after the last event hold current open all along. NULL when out
 * of memory; the caller frees it with cJSON_Delete(). Changes nothing. */
cJSON *fp_minutes_json(const fp_minutes *m, int64_t now_s, long current, int64_t from_s,
                       int64_t to_s);

#endif
