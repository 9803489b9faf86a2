# Script mode: cmake -DOUT=file.c -DLUA_DIR=dir -DLUA_OUT=dir -P embed_lua.cmake
# Each script is lua/prelude.lua followed by lua/<name>.lua (the prelude holds
# the rules the scripts share; it is not a script of its own). The built
# scripts are written to LUA_OUT/<name>.lua, runnable with `redis-cli --eval`,
# and embedded as a C table {name, text, sha1}, texts as byte arrays, sha1 as
# computed here (the store checks it against SCRIPT LOAD's answer).
file(GLOB scripts ${LUA_DIR}/*.lua)
list(REMOVE_ITEM scripts ${LUA_DIR}/prelude.lua)
list(SORT scripts)
file(READ ${LUA_DIR}/prelude.lua prelude)
set(body "/* Generated from the scripts in lua/ by cmake/embed_lua.cmake. Do not edit. */\n#include \"scripts.h\"\n\n")
set(table "")
set(n 0)
file(MAKE_DIRECTORY ${LUA_OUT})
foreach(path ${scripts})
  get_filename_component(name ${path} NAME_WE)
  file(READ ${path} own)
  set(built ${LUA_OUT}/${name}.lua)
  file(WRITE ${built}.tmp "${prelude}${own}")
  file(COPY_FILE ${built}.tmp ${built} ONLY_IF_DIFFERENT)
  file(REMOVE ${built}.tmp)
  file(READ ${built} hex HEX)
  file(SHA1 ${built} sha)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const char text_${name}[] = {${bytes}0};\n")
  string(APPEND table "    {\"${name}\", text_${name}, ${len}, \"${sha}\"},\n")
  math(EXPR n "${n} + 1")
endforeach()
string(APPEND body "\nconst sfl_script sfl_scripts[] = {\n${table}    {0, 0, 0, 0},\n};\nconst int sfl_scripts_count = ${n};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
