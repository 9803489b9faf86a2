/* scripts.h - the Lua scripts of lua/, embedded at build time.
 *
 * cmake/embed_lua.cmake generates the table from the files in lua/; the sha1 is the
 * one Redis will answer to SCRIPT LOAD, so a mismatch means a broken build. */
#ifndef SFL_SCRIPTS_H
#define SFL_SCRIPTS_H

#include <stddef.h>

typedef struct sfl_script {
    const char *name; /* file name without .lua */
    const char *text;
    size_t len;
    const char *sha1; /* 40 hex digits */
} sfl_script;

extern const sfl_script sfl_scripts[];
extern const int sfl_scripts_count;

/* The script called name, or NULL. */
const sfl_script *sfl_script_get(const char *name);

#endif
