/* cmd_node.h - `sflimit node`: the checker daemon of one host. */
#ifndef SFL_CMD_NODE_H
#define SFL_CMD_NODE_H

int sfl_cmd_node(int argc, char **argv);

#endif
