/* cmd_accounts.h - `sflimit accounts ...` and `sflimit status`: account
 * limits in Redis, set, listed, synced and shown with their holders. */
#ifndef SFL_CMD_ACCOUNTS_H
#define SFL_CMD_ACCOUNTS_H

/* Exit codes of DESIGN §3. */
int sfl_cmd_accounts(int argc, char **argv);
int sfl_cmd_status(int argc, char **argv);

#endif
