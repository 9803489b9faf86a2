/* clock.h - the two clocks sfl uses.
 *
 * Lease deadlines on a node are kept on the monotonic clock (never the wall
 * clock: it can jump). Wall-clock time appears only in results (started_at) and in what is
 * named by the time of day (history's minutes). */
#ifndef SFL_CLOCK_H
#define SFL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

struct event;

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sfl_mono_ms(void);
/* Microseconds of CLOCK_MONOTONIC. */
int64_t sfl_mono_us(void);
/* Milliseconds of the wall clock (CLOCK_REALTIME) since the epoch: only for
 * what is named by time of day (history's minutes), never for a deadline. */
int64_t sfl_wall_ms(void);
/* Writes an ISO-8601 UTC timestamp with milliseconds ("2026-01-01T00:00:00.000Z"). */
void sfl_wall_iso(char *buf, size_t len);
/* A random 64-bit number from getrandom(2) (falls back to time and pid). */
uint64_t sfl_random64(void);

/* Arms the timer ev to fire in ms (now when ms <= 0). */
void sfl_timer_in(struct event *ev, int64_t ms);

#endif
