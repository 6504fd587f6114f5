#!/usr/bin/env bash
# The examples as built in the build tree (linked to build/libnatter.so):
# echo sends bytes through two forwards and checks them; simple_c and
# simple_cpp --check see both clients check in.
#
# Environment: NATTER_BUILD_DIR, the build tree (default: build).
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
source "$here/lib.sh"

build=$(realpath "${NATTER_BUILD_DIR:-build}")
examples=$build/examples
for bin in echo simple_c simple_cpp; do
  [[ -x $examples/$bin ]] || fail "$examples/$bin not built (BUILD_EXAMPLES=OFF?)"
done

say "echo"
run_echo "$examples/echo"
say "simple_c --check"
run_check "$examples/simple_c"
say "simple_cpp --check"
run_check "$examples/simple_cpp"
say "examples: all passed"
