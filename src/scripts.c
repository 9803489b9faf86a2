/* scripts.c - lookup in the generated table of embedded Lua scripts. */
#include "scripts.h"

#include <string.h>

const sfl_script *sfl_script_get(const char *name)
{
    for (int i = 0; i < sfl_scripts_count; i++)
        if (strcmp(sfl_scripts[i].name, name) == 0)
            return &sfl_scripts[i];
    return NULL;
}
