/* cmd_init.h - `sflimit init`: mark a Redis no check has used, so that its
 * first leases need not wait out a recovery window. */
#ifndef SFL_CMD_INIT_H
#define SFL_CMD_INIT_H

/* Exit codes of DESIGN §3. */
int sfl_cmd_init(int argc, char **argv);

#endif
