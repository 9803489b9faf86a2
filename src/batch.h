/* batch.h - `sflimit check`: a batch of streams checked on this node. */
#ifndef SFL_BATCH_H
#define SFL_BATCH_H

int sfl_batch_main(int argc, char **argv);

#endif
