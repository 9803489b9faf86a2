/* conf_int.h - conf's insides, shared by its two files: conf.c (the
 * schema, loading, validation) and conf_accounts.c (the accounts section).
 * Everyone else uses conf.h. */
#ifndef SFL_CONF_INT_H
#define SFL_CONF_INT_H

#include "conf.h"
#include "json.h"

struct cJSON;

/* Reads root's "accounts" (absent: none) into c->accounts. */
int sfl_conf_parse_accounts(const sfl_json_ctx *e, const struct cJSON *root, sfl_conf *c);
/* Checks c->accounts: ids unique and >= 0, limits >= 0, names printable. */
int sfl_conf_validate_accounts(const sfl_conf *c, const sfl_json_ctx *e);
/* Reads root's "learned" (absent: the defaults stay). */
int sfl_conf_parse_learned(const sfl_json_ctx *e, const struct cJSON *root, sfl_conf *c);
/* refusal_codes 429 458 509, window 60 s, quiet 300 s. */
void sfl_conf_learned_defaults(sfl_conf *c);
/* Reads root's "history" (absent: the defaults stay). */
int sfl_conf_parse_history(const sfl_json_ctx *e, const struct cJSON *root, sfl_conf *c);
/* enabled, retention 7 days, 20 results per stream, flush every 60 s. */
void sfl_conf_history_defaults(sfl_conf *c);
/* The history fields within their ranges (after a caller changed them). */
int sfl_conf_validate_history(const sfl_conf *c, const sfl_json_ctx *e);
/* A CA file for https (tls.c): NULL (none), or a path to a readable file. */
int sfl_conf_check_ca_file(const sfl_json_ctx *e, const char *path, const char *file);

#endif
