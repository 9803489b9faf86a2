/* fuzz_redact.c - sfl_redact() on arbitrary text (a log line).
 *
 * The bytes are copied into an exactly-sized NUL-terminated buffer (an
 * embedded NUL just ends the string early), so any write or read past it is
 * an ASan report. Checked: no crash or UB, the text never gets longer (as
 * log.h promises: sfl_log redacts in place in a fixed buffer), and redacting
 * the result again changes nothing, so no credential the redactor would
 * recognise there still has a character left. */
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
    size_t after = strlen(s);
    CHECK(after <= before);
    char *again = malloc(after + 1);
    if (again) {
        memcpy(again, s, after + 1);
        sfl_redact(again);
        CHECK(strcmp(again, s) == 0);
        free(again);
    }
    free(s);
    return 0;
}
