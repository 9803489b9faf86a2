/* cli.h - what every subcommand's option parsing shares. */
#ifndef SFL_CLI_H
#define SFL_CLI_H

typedef struct sfl_conf sfl_conf;

/* Exit codes (DESIGN §3). */
enum { SFL_EXIT_OK = 0, SFL_EXIT_FAIL = 1, SFL_EXIT_USAGE = 2, SFL_EXIT_TEMPFAIL = 75 };

/* Loads the config (path may be NULL: $SFL_CONFIG, ./sflimit.json, defaults),
 * applies --redis (may be NULL) and validates. On failure prints
 * "sflimit: <message>" on stderr and returns NULL: exit SFL_EXIT_USAGE. */
sfl_conf *sfl_cli_conf(const char *path, const char *redis_url);
/* Parses a whole decimal integer >= min; prints "sflimit: <what>: ..." and
 * returns -1 when it is not one. */
int sfl_cli_integer(const char *what, const char *text, long long min, long long *out);
/* Parses a number of seconds >= 0 (fractions allowed). */
int sfl_cli_seconds(const char *what, const char *text, double *out);

#endif
