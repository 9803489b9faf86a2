/* exec.h - `sflimit exec`: run one command while holding one lease. */
#ifndef SFL_EXEC_H
#define SFL_EXEC_H

int sfl_exec_main(int argc, char **argv);

#endif
