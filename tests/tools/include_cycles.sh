#!/bin/sh
# include_cycles.sh [SRC_DIR] - is there a cycle in src/'s include graph?
#
# The graph is between modules, not files: x.c and x.h are one module x, and
# every `#include "y.h"` in either is an edge x -> y. (Between files alone,
# accounts.c -> dispatcharr.h and dispatcharr.c -> accounts.h is no cycle;
# between the modules it is.) A private header x_int.h belongs to module x
# (limiter_int.h: the insides limiter.c and wait.c share). tsort finds the cycles. Prints each one and
# exits 1, or says there is none and exits 0.
set -eu
src=${1:-$(dirname "$0")/../../src}
edges=$(mktemp)
trap 'rm -f "$edges" "$edges.err"' EXIT
for f in "$src"/*.c "$src"/*.h; do
    m=$(basename "$f")
    m=${m%.*}
    m=${m%_int}
    echo "$m $m" >>"$edges" # every module is a node, even one that includes nothing
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*\)\.h".*/\1/p' "$f" |
        while read -r dep; do
            dep=${dep%_int}
            [ "$dep" = "$m" ] || echo "$m $dep"
        done >>"$edges"
done
modules=$(awk '{print $1}' "$edges" | sort -u | wc -l)
deps=$(awk '$1 != $2' "$edges" | sort -u | wc -l)
if tsort <"$edges" >/dev/null 2>"$edges.err"; then
    echo "include_cycles: $modules modules, $deps edges, no cycle"
    exit 0
fi
sed -e 's/^tsort: -: /cycle: /' -e 's/^tsort: /  /' "$edges.err"
echo "include_cycles: $modules modules, $deps edges: cycle(s) above"
exit 1
