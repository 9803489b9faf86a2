/* rewrite.h - a stream URL turned into one login's URL, as Dispatcharr's
 * profiles do it (search_pattern / replace_pattern: a Python regex and a
 * replacement with $1-style group references).
 *
 * The regex is translated to POSIX extended syntax (regcomp): what that
 * cannot express is refused with a message naming it, never approximated. */
#ifndef SFL_REWRITE_H
#define SFL_REWRITE_H

#include <stddef.h>

typedef struct sfl_rewrite sfl_rewrite;

/* Compiles search and replace. NULL, with err naming what is wrong (the
 * construct and its offset), when search cannot be translated or compiled,
 * or replace names a group that search does not have. */
sfl_rewrite *sfl_rewrite_new(const char *search, const char *replace, char *err, size_t errlen);
/* url with every non-overlapping match of search replaced, left to right
 * (Python's re.sub); a copy of url when nothing matches. malloc'd; NULL only
 * when out of memory. */
char *sfl_rewrite_apply(const sfl_rewrite *rw, const char *url);
/* NULL is a no-op. */
void sfl_rewrite_free(sfl_rewrite *rw);

#endif
