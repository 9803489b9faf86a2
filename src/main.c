/* main.c - `sflimit COMMAND ...`: picks the command and hands over. */
#include "accounts.h"
#include "batch.h"
#include "cli.h"
#include "exec.h"
#include "node.h"
#include "submit.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: sflimit COMMAND [OPTIONS]\n"
    "\n"
    "Checks IPTV streams from several hosts without ever opening more streams\n"
    "per provider account than its max_streams: slots are leases in Redis.\n"
    "\n"
    "commands:\n"
    "  check [STREAMS.json | -]           check a batch of streams on this node\n"
    "  exec -a ACCOUNT -- CMD [ARGS...]   run CMD while holding one slot of ACCOUNT\n"
    "  node                               run this host's checker daemon (queue, HTTP API)\n"
    "  submit [--wait] STREAMS.json       put a batch on the shared queue for all nodes\n"
    "  accounts set ID MAX | list | sync   account limits in Redis\n"
    "  status [--json]                     limits, use and holders of every account\n"
    "\n"
    "Every command takes -c/--config FILE (default $SFL_CONFIG, ./sflimit.json,\n"
    "built-in defaults), --redis URL (redis://[user:pass@]host:port/db,\n"
    "unix:///path, or 'embedded') and --help.\n"
    "Exit codes: 0 done, 1 runtime failure, 2 usage or config error, 75 no slot in time.\n";

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv);
} command;

static const command commands[] = {
    {"check", sfl_batch_main},
    {"exec", sfl_exec_main},
    {"node", sfl_node_main},
    {"submit", sfl_submit_main},
    {"accounts", sfl_accounts_main},
    {"status", sfl_status_main},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return SFL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return SFL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "sflimit: unknown command '%s'\n\n%s", argv[1], usage);
    return SFL_EXIT_USAGE;
}
