/* cmd_check.h - `sflimit check`: a batch of streams checked on this node. */
#ifndef SFL_CMD_CHECK_H
#define SFL_CMD_CHECK_H

int sfl_cmd_check(int argc, char **argv);

#endif
