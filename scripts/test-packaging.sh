#!/usr/bin/env bash
# rmq as a new user gets it, outside this tree (make packaging-test; make test runs it). Needs
# RMQ_NAMESRV (a running cluster), the release build and `make go-lib` (the make target does both).
#   header  include/rmq.h compiles as C89 -pedantic, C99, C11 and C++11, -Werror
#   c       make install into a temporary PREFIX; a program built with pkg-config and one with
#           CMake (shared and static) run without LD_LIBRARY_PATH and send
#   python  the wheel of bindings/python installed in a fresh venv: import from another
#           directory with no RMQ_LIBRARY, a blocking and an asyncio send, mypy --strict
#   go      a module in a temporary directory requires the rmq module (replace => this tree) and
#           builds with plain go build, then sends; without the bundled library the build
#           stops with the sentence that says what to run; -tags rmq_dynamic through pkg-config
# Prints "packaging: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
: "${RMQ_NAMESRV:?set RMQ_NAMESRV to a running name server (make test does)}"
topic=RmqPackagingTopic
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rmq-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
export CC="${CC:-cc}" CXX="${CXX:-c++}"
unset LD_LIBRARY_PATH RMQ_LIBRARY

passed=0 failed=0
check() { # check NAME COMMAND...: runs it, output to a log shown on failure
  local name=$1; shift
  if "$@" >"$tmp/log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$tmp/log" | tail -40
  fi
}
sends() { "$@" | tee /dev/stderr | grep -q "msgId=\|^sent "; } # ran and printed a send result

# --- header
for std in c89 c99 c11; do
  check "header -std=$std -pedantic -Werror" \
    "$CC" -std=$std -pedantic -Wall -Wextra -Werror -Iinclude -c tests/install/header_std.c -o "$tmp/h.o"
done
check "header -std=c++11 -pedantic -Werror" \
  "$CXX" -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -c tests/install/header_std.c -o "$tmp/h.o"

# --- C / C++ through make install
check "make install PREFIX=<tmp>" env PREFIX="$prefix" scripts/install.sh
check "SONAME librmq.so.0 and its links" bash -c "
  readelf -d '$prefix/lib/librmq.so.0' | grep -q 'Library soname: \[librmq.so.0\]' &&
  [[ \$(readlink '$prefix/lib/librmq.so') == librmq.so.0 ]] && [[ -f '$prefix/lib/librmq.a' ]]"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "C program via pkg-config, run without LD_LIBRARY_PATH" bash -c "
  \"$CC\" examples/c/producer.c \$(pkg-config --cflags --libs rmq) -Wl,-rpath,\$(pkg-config --variable=libdir rmq) \
    -lpthread -o '$tmp/producer_pc' &&
  readelf -d '$tmp/producer_pc' | grep -q 'NEEDED.*librmq.so.0' &&
  { '$tmp/producer_pc' '$RMQ_NAMESRV' $topic | grep -q '^sync '; }"
cmake_bin=$(command -v cmake || true)
if [[ -z "$cmake_bin" ]]; then # not on every machine: the PyPI package brings one
  python3 -m venv "$tmp/cmake-venv" && "$tmp/cmake-venv/bin/pip" -q install cmake >/dev/null &&
    cmake_bin="$tmp/cmake-venv/bin/cmake"
fi
check "C program via CMake find_package(rmq), shared and static" bash -c "
  '$cmake_bin' -S tests/install -B '$tmp/cmake' -DCMAKE_PREFIX_PATH='$prefix' \
    -DRMQ_EXAMPLE_SOURCE='$repo/examples/c/producer.c' >/dev/null &&
  '$cmake_bin' --build '$tmp/cmake' >/dev/null &&
  { '$tmp/cmake/producer_shared' '$RMQ_NAMESRV' $topic | grep -q '^sync '; } &&
  { '$tmp/cmake/producer_static' '$RMQ_NAMESRV' $topic | grep -q '^sync '; }"

# --- Python: the wheel in a fresh venv, used from another directory
venv="$tmp/venv"
check "pip install ./bindings/python into a fresh venv (wheel with librmq)" bash -c "
  python3 -m venv '$venv' && '$venv/bin/pip' -q install --disable-pip-version-check '$repo/bindings/python' &&
  ls '$venv'/lib/python3*/site-packages/rmq/_librmq*"
cp tests/install/python_user.py "$tmp/"
check "python: import rmq from elsewhere, no RMQ_LIBRARY; blocking and asyncio sends" bash -c "
  cd '$tmp' && '$venv/bin/python' python_user.py '$RMQ_NAMESRV' $topic >out.txt && cat out.txt &&
  grep -q '^sent SEND_OK .* library=$venv/' out.txt && grep -q '^sent async SEND_OK' out.txt"
check "python: RMQ_LIBRARY still chooses the library" bash -c "
  cd '$tmp' && RMQ_LIBRARY='$prefix/lib/librmq.so.0' '$venv/bin/python' -c 'import rmq; print(rmq.library_path)' |
  grep -qx '$prefix/lib/librmq.so.0'"
check "python: mypy --strict on a user program" bash -c "
  '$venv/bin/pip' -q install --disable-pip-version-check mypy && cd '$tmp' && '$venv/bin/mypy' --strict python_user.py"

# --- Go: a module outside the tree
gomod() { # gomod DIR RMQ_MODULE_DIR
  mkdir -p "$1" && cp tests/install/gouser/main.go "$1/" &&
    printf 'module example.com/rmquser\n\ngo 1.22\n\nrequire github.com/rmq-client/rmq/bindings/go v0.0.0\n\nreplace github.com/rmq-client/rmq/bindings/go => %s\n' "$2" >"$1/go.mod"
}
gomod "$tmp/gouser" "$repo/bindings/go"
check "go: outside module builds with plain go build and sends" bash -c "
  cd '$tmp/gouser' && go build -o gouser . && ./gouser '$RMQ_NAMESRV' $topic | grep -q '^sent SEND_OK'"
mkdir -p "$tmp/rmq-go-nolib" && (cd bindings/go && tar cf - --exclude=./rmq/lib .) | tar xf - -C "$tmp/rmq-go-nolib"
gomod "$tmp/gouser-nolib" "$tmp/rmq-go-nolib"
check "go: without the library the build says to run make go-lib" bash -c "
  cd '$tmp/gouser-nolib' && ! go build -o gouser . 2>err.txt && cat err.txt && grep -q 'run \`make go-lib\`' err.txt"
check "go: -tags rmq_dynamic links the installed library through pkg-config" bash -c "
  cd '$tmp/gouser-nolib' && go build -tags rmq_dynamic -o gouser . &&
  LD_LIBRARY_PATH='$prefix/lib' ./gouser '$RMQ_NAMESRV' $topic | grep -q '^sent SEND_OK'"

echo "packaging: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
