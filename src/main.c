/* main.c - `sflimit COMMAND ...`: picks the command and hands over. */
#include "cli.h"
#include "cmd_accounts.h"
#include "cmd_check.h"
#include "cmd_exec.h"
#include "cmd_init.h"
#include "cmd_node.h"
#include "cmd_submit.h"
#include "log.h"

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
    "  status --history [--since 24h]      each login's use over time\n"
    "  init [--force]                     mark a Redis no check has used (no first wait)\n"
    "\n"
    "Every command takes -c/--config FILE (default $SFL_CONFIG, ./sflimit.json,\n"
    "built-in defaults), --redis URL (redis://[user:pass@]host:port/db,\n"
    "unix:///path, or 'embedded'), --log-level debug|info|warn|error,\n"
    "--log-format text|json and --help.\n"
    "Exit codes: 0 done, 1 runtime failure, 2 usage or config error, 75 no slot in time.\n";

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv);
} command;

/* clang-format off */
static const command commands[] = {
    {"check", sfl_cmd_check},
    {"exec", sfl_cmd_exec},
    {"node", sfl_cmd_node},
    {"submit", sfl_cmd_submit},
    {"accounts", sfl_cmd_accounts},
    {"status", sfl_cmd_status},
    {"init", sfl_cmd_init},
};
/* clang-format on */

/* Takes --log-level X and --log-format X out of argv (anywhere before a
 * "--"), so every command has them. -1 with a message on a bad value. */
static int log_options(int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        int is_level = strcmp(argv[i], "--log-level") == 0;
        int is_format = strcmp(argv[i], "--log-format") == 0;
        if (!is_level && !is_format) {
            argv[out++] = argv[i];
            continue;
        }
        const char *v = i + 1 < *argc ? argv[++i] : NULL;
        if (is_level) {
            int l = sfl_log_parse_level(v);
            if (l < 0) {
                fprintf(stderr,
                        "sflimit: --log-level: expected debug, info, warn or error, "
                        "got '%s'\n",
                        v ? v : "");
                return -1;
            }
            sfl_log_set_level((sfl_log_level)l);
        } else if (v && strcmp(v, "json") == 0) {
            sfl_log_set_format(SFL_LOG_JSON);
        } else if (!v || strcmp(v, "text") != 0) {
            fprintf(stderr, "sflimit: --log-format: expected text or json, got '%s'\n", v ? v : "");
            return -1;
        }
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    if (log_options(&argc, argv) < 0)
        return SFL_EXIT_USAGE;
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
