/* submit.h - `sflimit submit`: a batch onto the shared queue. */
#ifndef SFL_SUBMIT_H
#define SFL_SUBMIT_H

int sfl_submit_main(int argc, char **argv);

#endif
