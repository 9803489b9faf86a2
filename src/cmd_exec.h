/* cmd_exec.h - `sflimit exec`: run one command while holding one lease. */
#ifndef SFL_CMD_EXEC_H
#define SFL_CMD_EXEC_H

int sfl_cmd_exec(int argc, char **argv);

#endif
