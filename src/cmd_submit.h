/* cmd_submit.h - `sflimit submit`: a batch onto the shared queue. */
#ifndef SFL_CMD_SUBMIT_H
#define SFL_CMD_SUBMIT_H

int sfl_cmd_submit(int argc, char **argv);

#endif
