#!/usr/bin/env bash
# cmake --install into a temporary prefix, then build the examples against
# what was installed, twice: with pkg-config and plain cc/c++ command lines,
# and with a small CMake project using find_package(natter). Runs echo
# (shared and static libnatter) and simple_c/simple_cpp --check against the
# installed libraries, checks the installed files, the SONAME and that the
# shared library exports natter_* symbols only.
#
# Environment:
#   NATTER_SOURCE_DIR  the source tree (default: two levels up from here)
#   NATTER_BUILD_DIR   a built build tree (default: $NATTER_SOURCE_DIR/build)
#   CC, CXX            compilers (default cc, c++)
#   NATTER_TEST_FLAGS  extra compile and link flags for the examples, e.g.
#                      the sanitizer flags the library was built with
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
source "$here/lib.sh"

src=$(realpath "${NATTER_SOURCE_DIR:-$here/../..}")
build=$(realpath "${NATTER_BUILD_DIR:-$src/build}")
cc=${CC:-cc}
cxx=${CXX:-c++}
read -r -a flags <<<"${NATTER_TEST_FLAGS:-}"
examples=$src/examples

tmp=$(mktemp -d "${TMPDIR:-/tmp}/natter-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

say "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

# ---- what was installed ----
pc=$(find "$prefix" -name natter.pc -path '*/pkgconfig/*')
[[ -n $pc ]] || fail "natter.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
for f in include/natter.h bin/natter; do
  [[ -e $prefix/$f ]] || fail "$f not installed"
done
for f in libnatter.so libnatter.so.0 libnatter.a cmake/natter/natterConfig.cmake \
  cmake/natter/natterConfigVersion.cmake cmake/natter/natterTargets.cmake; do
  [[ -e $libdir/$f ]] || fail "${libdir#"$prefix"/}/$f not installed"
done
soname=$(readelf -d "$libdir/libnatter.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libnatter.so.0 ]] || fail "SONAME is '$soname', expected libnatter.so.0"
leaked=$(nm -D --defined-only "$libdir/libnatter.so" | awk '$3 !~ /^natter_/ {print $3}')
[[ -z $leaked ]] || fail "libnatter.so exports non-natter_* symbols: $leaked"
"$prefix/bin/natter" --version | grep -q "natter $(sed -n \
  's/^project(natter VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ||
  fail "installed natter --version disagrees with CMakeLists.txt"

# ---- pkg-config and plain compiler command lines ----
export PKG_CONFIG_PATH=$libdir/pkgconfig
say "pkg-config: $(pkg-config --cflags --libs natter)"
pkg-config --exists natter || fail "pkg-config cannot use natter.pc"
read -r -a pcflags <<<"$(pkg-config --cflags --libs natter)"
mkdir -p "$tmp/pc" "$tmp/static-only"
"$cc" -Wall -Wextra -Werror "${flags[@]}" -o "$tmp/pc/simple_c" \
  "$examples/simple_c.c" "${pcflags[@]}"
"$cxx" -Wall -Wextra -Werror "${flags[@]}" -o "$tmp/pc/simple_cpp" \
  "$examples/simple_cpp.cpp" "${pcflags[@]}"
"$cc" -Wall -Wextra -Werror "${flags[@]}" -o "$tmp/pc/echo" \
  "$examples/echo.c" "${pcflags[@]}"
# Static libnatter.a, shared dependencies: a directory holding only
# libnatter.a, searched first, so -lnatter takes the archive, plus the
# Requires.private modules' flags. (pkg-config --static would also ask for
# the dependencies' own private libraries, e.g. GnuTLS's -lunistring, whose
# development files need not be installed.)
cp "$libdir/libnatter.a" "$tmp/static-only/"
read -r -a private <<<"$(pkg-config --print-requires-private natter |
  awk '{printf "%s ", $1}')"
((${#private[@]} > 0)) || fail "natter.pc has no Requires.private"
read -r -a pcstatic <<<"$(pkg-config --cflags --libs natter "${private[@]}")"
"$cc" -Wall -Wextra -Werror "${flags[@]}" -o "$tmp/pc/echo_static" \
  "$examples/echo.c" -L"$tmp/static-only" "${pcstatic[@]}"
if readelf -d "$tmp/pc/echo_static" | grep -q 'libnatter\.so'; then
  fail "echo_static links libnatter.so, not libnatter.a"
fi
# ldd's output is captured first: with pipefail, grep -q closing the pipe
# early would make ldd's SIGPIPE fail the check at random.
loads=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/pc/echo")
grep -q "$libdir/libnatter.so.0" <<<"$loads" ||
  fail "pkg-config build of echo does not load the installed libnatter.so.0"

say "run echo (pkg-config build, installed libnatter.so)"
run_echo "$tmp/pc/echo" LD_LIBRARY_PATH="$libdir"
say "run echo (pkg-config build, libnatter.a)"
run_echo "$tmp/pc/echo_static"
say "run simple_c --check (pkg-config build)"
run_check "$tmp/pc/simple_c" LD_LIBRARY_PATH="$libdir"
say "run simple_cpp --check (pkg-config build)"
run_check "$tmp/pc/simple_cpp" LD_LIBRARY_PATH="$libdir"

# ---- CMake: find_package(natter) ----
mkdir -p "$tmp/cmake-project"
cat >"$tmp/cmake-project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(natter_consumer LANGUAGES C CXX)
find_package(natter 0.1 REQUIRED COMPONENTS static)
if(NOT TARGET natter::natter OR NOT TARGET natter::natter_static)
  message(FATAL_ERROR "find_package(natter) gave no natter::natter target")
endif()
add_compile_options(-Wall -Wextra -Werror)
add_executable(simple_c "$examples/simple_c.c")
add_executable(simple_cpp "$examples/simple_cpp.cpp")
add_executable(echo "$examples/echo.c")
add_executable(echo_static "$examples/echo.c")
target_link_libraries(simple_c PRIVATE natter::natter)
target_link_libraries(simple_cpp PRIVATE natter::natter)
target_link_libraries(echo PRIVATE natter::natter)
target_link_libraries(echo_static PRIVATE natter::natter_static)
CMAKE
say "cmake: find_package(natter) with CMAKE_PREFIX_PATH=$prefix"
cmake -S "$tmp/cmake-project" -B "$tmp/cmake-build" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_FLAGS="${flags[*]}" \
  -DCMAKE_CXX_FLAGS="${flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${flags[*]}" \
  >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; fail "configuring the find_package project failed"; }
cmake --build "$tmp/cmake-build" -j2 >"$tmp/cmake-build.log" 2>&1 ||
  { cat "$tmp/cmake-build.log" >&2; fail "building the find_package project failed"; }
# No LD_LIBRARY_PATH: CMake's build RPATH points at the installed library.
loads=$(ldd "$tmp/cmake-build/echo")
grep -q "$libdir/libnatter.so.0" <<<"$loads" ||
  fail "find_package build of echo does not load the installed libnatter.so.0"
say "run echo (find_package build, natter::natter)"
run_echo "$tmp/cmake-build/echo"
say "run echo (find_package build, natter::natter_static)"
run_echo "$tmp/cmake-build/echo_static"
say "run simple_cpp --check (find_package build)"
run_check "$tmp/cmake-build/simple_cpp"
say "run simple_c --check (find_package build)"
run_check "$tmp/cmake-build/simple_c"

# A version the package does not satisfy must be refused.
sed -i 's/find_package(natter 0.1 /find_package(natter 99.0 /' \
  "$tmp/cmake-project/CMakeLists.txt"
if cmake -S "$tmp/cmake-project" -B "$tmp/cmake-build99" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_CXX_COMPILER="$cxx" >"$tmp/cmake99.log" 2>&1; then
  fail "find_package(natter 99.0) succeeded against version $(pkg-config --modversion natter)"
fi
grep -q 'requested version "99.0"' "$tmp/cmake99.log" ||
  fail "find_package(natter 99.0) failed for another reason: $(tail -5 "$tmp/cmake99.log")"

say "install: all passed"
