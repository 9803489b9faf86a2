# Script mode: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_file.cmake
# Writes `const char NAME[]` (NUL-terminated) and `const size_t NAME_len`.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN} by cmake/embed_file.cmake. Do not edit. */\n#include <stddef.h>\nconst char ${NAME}[] = {${bytes}0};\nconst size_t ${NAME}_len = ${len};\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
