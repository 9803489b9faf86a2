/* node.h - `sflimit node`: the checker daemon of one host. */
#ifndef SFL_NODE_H
#define SFL_NODE_H

int sfl_node_main(int argc, char **argv);

#endif
