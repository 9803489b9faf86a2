/* fuzz_redact.c - sfl_redact() on arbitrary text (a log line).
 *
 * The bytes are copied into an exactly-sized NUL-terminated buffer (an
 * embedded NUL just ends the string early), so any write or read past it is
 * an ASan report. Checked: no crash or UB, and the text only gets shorter,
 * as log.h promises (sfl_log redacts in place in a fixed buffer). */
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_redact: check failed: %s (line %d)\n", #cond, __LINE__);         \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t before = strlen(s);
    sfl_redact(s);
    CHECK(strlen(s) <= before);
    free(s);
    return 0;
}
