/* cmd_history.h - `sflimit status --history`: how each login was used over
 * time, read from Redis (no node needed). */
#ifndef SFL_CMD_HISTORY_H
#define SFL_CMD_HISTORY_H

/* The whole command line of `status` (argv[0] "status") when it holds
 * --history; exit codes of DESIGN §3. */
int sfl_cmd_status_history(int argc, char **argv);

/* 1 when a `status` command line asks for the history (--history before
 * any "--"). */
int sfl_cmd_wants_history(int argc, char **argv);

#endif
