#!/usr/bin/env bash
# Installs the built library for C and C++ programs (make install runs it after the release
# build): PREFIX (default /usr/local), LIBDIR (default lib), DESTDIR (staging root, default none).
#   $PREFIX/include/rmq.h
#   $PREFIX/$LIBDIR/librmq.so.X.Y.Z, librmq.so.0 -> it (the SONAME), librmq.so -> librmq.so.0
#   $PREFIX/$LIBDIR/librmq.a                 (debug info stripped)
#   $PREFIX/$LIBDIR/pkgconfig/rmq.pc         (pkg-config --cflags --libs rmq)
#   $PREFIX/$LIBDIR/cmake/rmq/rmqConfig.cmake, rmqConfigVersion.cmake   (find_package(rmq))
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
libdir="${LIBDIR:-lib}"
dest="${DESTDIR:-}"
[[ "$prefix" == /* ]] || { echo "install: PREFIX must be an absolute path, not '$prefix'" >&2; exit 1; }
version=$(sed -n 's/^#define RMQ_VERSION_STRING "\(.*\)"$/\1/p' include/rmq.h)
major=${version%%.*}
for f in target/release/librmq.so target/release/librmq.a; do
  [[ -f "$f" ]] || { echo "install: $f is missing; run 'cargo build --release' (make install does)" >&2; exit 1; }
done

root="$dest$prefix"
install -d "$root/include" "$root/$libdir/pkgconfig" "$root/$libdir/cmake/rmq"
install -m 644 include/rmq.h "$root/include/rmq.h"
install -m 755 target/release/librmq.so "$root/$libdir/librmq.so.$version"
ln -sf "librmq.so.$version" "$root/$libdir/librmq.so.$major"
ln -sf "librmq.so.$major" "$root/$libdir/librmq.so"
install -m 644 target/release/librmq.a "$root/$libdir/librmq.a"
strip --strip-debug "$root/$libdir/librmq.a" 2>/dev/null || true
subst() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" "$1"; }
subst packaging/rmq.pc.in >"$root/$libdir/pkgconfig/rmq.pc"
subst packaging/rmqConfig.cmake.in >"$root/$libdir/cmake/rmq/rmqConfig.cmake"
subst packaging/rmqConfigVersion.cmake.in >"$root/$libdir/cmake/rmq/rmqConfigVersion.cmake"
echo "install: rmq $version in $root (pkg-config: PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig; CMake: CMAKE_PREFIX_PATH=$prefix)"
