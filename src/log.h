/* log.h - the node's log lines on stderr. */
#ifndef SFL_LOG_H
#define SFL_LOG_H

typedef enum { SFL_LOG_DEBUG = 0, SFL_LOG_INFO, SFL_LOG_WARN, SFL_LOG_ERROR } sfl_log_level;

typedef enum { SFL_LOG_TEXT = 0, SFL_LOG_JSON } sfl_log_format;
/* text: "<time> <LEVEL> - <message>"; json: {"ts","level","msg"} per line. */
void sfl_log_set_format(sfl_log_format f);

/* Lines below this level are dropped. Default: INFO (or $SFL_LOG_LEVEL). */
void sfl_log_set_level(sfl_log_level level);
/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int sfl_log_parse_level(const char *name);

void sfl_log(sfl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sfl_debug(...) sfl_log(SFL_LOG_DEBUG, __VA_ARGS__)
#define sfl_info(...) sfl_log(SFL_LOG_INFO, __VA_ARGS__)
#define sfl_warn(...) sfl_log(SFL_LOG_WARN, __VA_ARGS__)
#define sfl_error(...) sfl_log(SFL_LOG_ERROR, __VA_ARGS__)

#define UNUSED(x) (void)(x)

/* Hides credentials in s, in place: the user:pass before the last '@' of a
 * URL's authority, the USER and the PASS of Xtream paths (/live/USER/PASS/,
 * also movie, series, timeshift) and username=, password=, token=, api_key=
 * query values are each replaced by three stars, or by as many stars as they
 * have characters when shorter. So s never gets longer, no credential keeps a
 * character, and redacting twice changes nothing more. */
void sfl_redact(char *s);

#endif
