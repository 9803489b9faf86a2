/* history_format.h - the positions of one minute's record in a login's
 * usage history (format v1, README "History"):
 *   <ns>:history:<login>:<YYYYMMDDHH>   HASH minute "0".."59" -> "v0,v1,..."
 * Positions 0-3 are always written, trailing zeros may be left out (read 0).
 * Writers send deltas; lua/history.lua adds the "sum" positions and keeps
 * the larger of the "max" ones. Written by history.c, read by history_read.c. */
#ifndef SFL_HISTORY_FORMAT_H
#define SFL_HISTORY_FORMAT_H

enum {
    SFL_HIST_START = 0,    /* sum: leases a process held when the minute began */
    SFL_HIST_PEAK,         /* max: in use after a grant (the answer's, or the process's if more) */
    SFL_HIST_HELD_MS,      /* sum: lease-ms held inside the minute */
    SFL_HIST_LIMIT,        /* max: effective limit known; -1 unknown, 0 unlimited */
    SFL_HIST_OTHERS_PEAK,  /* max: others' connections */
    SFL_HIST_OTHERS_SUM,   /* sum: of the others' samples */
    SFL_HIST_OTHERS_N,     /* sum: number of samples */
    SFL_HIST_WAITING_PEAK, /* max: the largest queue position a denied ask got */
    SFL_HIST_GRANTS,       /* sum */
    SFL_HIST_DENIALS,      /* sum */
    SFL_HIST_LOST,         /* sum */
    SFL_HIST_PREEMPTED,    /* sum: checks ended Preempted (intermediate ones too) */
    SFL_HIST_REFUSED,      /* sum: checks refused by the provider (intermediate ones too) */
    SFL_HIST_CHECKS,       /* sum: checks finished */
    SFL_HIST_WAITS,        /* sum: lease waits */
    SFL_HIST_WAIT_BIN0,    /* sum: 19 bins, wait <= sfl_wait_bounds[i] (metrics.h), the last
                              above them all */
    SFL_HIST_NPOS = SFL_HIST_WAIT_BIN0 + 19
};

#endif
