/* clock.c - monotonic and wall clocks, timers on the loop, and a little
 * randomness (lease ids, jitter). */
#include "clock.h"

#include <event2/event.h>

#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int64_t sfl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sfl_mono_ms(void)
{
    return sfl_mono_us() / 1000;
}

int64_t sfl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sfl_wall_iso(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

uint64_t sfl_random64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    static uint64_t fallback;
    fallback = fallback * 6364136223846793005ULL + 1442695040888963407ULL +
               (uint64_t)sfl_mono_us() + (uint64_t)getpid();
    return fallback;
}

void sfl_timer_in(struct event *ev, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}
