/* text.h - text that reaches a terminal or a JSON answer: control
 * characters and invalid UTF-8 found, escaped or replaced (see text.c). */
#ifndef SFL_TEXT_H
#define SFL_TEXT_H

#include <stddef.h>

/* 0 when s (NUL-terminated) is valid UTF-8 with no control character (C0,
 * DEL or C1: U+0000-U+001F, U+007F-U+009F); else -1 with the first problem
 * in why, e.g. "contains a control character (U+001B at byte 3)" or "is not
 * valid UTF-8 (byte 0xFF at 0)". A NULL s is fine. */
int sfl_text_check(const char *s, char *why, size_t whylen);

/* s made safe to print on a terminal, into buf (always NUL-terminated when
 * len > 0): every control character and every byte that is not part of
 * valid UTF-8 becomes a visible escape (ESC -> \x1b, CR -> \x0d, U+009B ->
 * \u009b, a stray 0xff -> \xff); everything else is copied. Never cuts a
 * character or an escape: what does not fit is left out whole. Returns the
 * bytes written (without the NUL). A NULL s gives "". */
size_t sfl_text_escape(const char *s, char *buf, size_t len);
/* The same, without a size limit, into a malloc'd string the caller frees.
 * NULL when out of memory (or s is NULL). */
char *sfl_text_escape_dup(const char *s);

/* len bytes of text as valid UTF-8: every byte that does not begin a valid
 * sequence becomes U+FFFD. Returns a malloc'd, NUL-terminated copy the
 * caller frees (its length in *outlen when outlen is not NULL), or NULL
 * when out of memory. JSON text stays JSON: the bytes replaced are never
 * ASCII, so they were inside strings. */
char *sfl_text_utf8_valid(const char *text, size_t len, size_t *outlen);

#endif
