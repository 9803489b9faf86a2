/* history_range.h - what time range, and in what steps, a history read
 * covers (GET /v1/history's from/to/step, `sflimit status --history`'s
 * --since/--step): the texts people write, parsed, and the points they make.
 * Pure functions: no I/O, no clock (now is given). */
#ifndef SFL_HISTORY_RANGE_H
#define SFL_HISTORY_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define SFL_HISTORY_MAX_POINTS 10080 /* a week of minutes */
#define SFL_HISTORY_AUTO_POINTS 360  /* the default step keeps a range within this */
#define SFL_HISTORY_MAX_STEP_S (366LL * 86400)

/* A range of points: [from_s, to_s) in steps of step_s, every step a point. */
typedef struct sfl_history_range {
    int64_t from_s;  /* the first point's start: a multiple of step_s (Unix seconds) */
    int64_t to_s;    /* the end, excluded: a whole minute */
    int64_t step_s;  /* a multiple of 60 */
    int64_t npoints; /* ceil((to_s - from_s) / step_s), 1..SFL_HISTORY_MAX_POINTS */
} sfl_history_range;

/* A time: Unix seconds ("1796191200"), ISO-8601 UTC ("2026-12-02T07:00:00Z",
 * seconds, fractions and the "Z" optional, "+00:00" too; or a date alone),
 * "now", or now less an amount ("-90m", "-24h", "-7d"; units s m h d w).
 * 0 and *out (Unix seconds, fractions dropped), or -1 with err naming what
 * (e.g. "from"). */
int sfl_history_parse_time(const char *what, const char *text, int64_t now_s, int64_t *out,
                           char *err, size_t errlen);

/* A step: seconds ("300") or an amount with a unit ("1m", "15m", "1h",
 * "1d"); a multiple of 60, at most SFL_HISTORY_MAX_STEP_S. 0, or -1 with
 * err naming what. */
int sfl_history_parse_step(const char *what, const char *text, int64_t *out, char *err,
                           size_t errlen);

/* What was asked: each text NULL for its default; each name is how
 * messages call it (NULL: "from", "to", "step"). */
typedef struct sfl_history_ask {
    const char *from, *to, *step;
    const char *from_name, *to_name, *step_name;
} sfl_history_ask;

/* The range asked for at now_s. to: default now, rounded up to a whole
 * minute (the minute going on is in). from: default to less an hour; it
 * must be before to; rounded up to a multiple of the step (down if that
 * reaches to): "-24h" in hours is 24 points, the last the hour going on,
 * "-7d" in minutes 10080. step: default
 * 60 s while that makes at most SFL_HISTORY_AUTO_POINTS points, else the
 * smallest multiple of 60 s that does; at most SFL_HISTORY_MAX_POINTS
 * points. 0, or -1 with err naming the parameter at fault (the range
 * untouched). */
int sfl_history_range_make(const sfl_history_ask *ask, int64_t now_s, sfl_history_range *out,
                           char *err, size_t errlen);

/* "2026-12-02T07:00:00Z" for Unix seconds s. */
void sfl_history_iso(int64_t s, char *buf, size_t len);

#endif
