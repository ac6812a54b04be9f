#!/bin/sh
# install_for_tests.sh BUILD_DIR MODULE PKGLIBDIR SHAREDIR: makes the PostgreSQL extension built in
# BUILD_DIR the one the server loads, before the integration tests (the ctest fixture
# `pgext`, see tests/integration/CMakeLists.txt). PostgreSQL loads extensions only from its
# own directories (PKGLIBDIR, SHAREDIR/extension), so a test cluster of the system's
# binaries needs them there. As root (or where they are writable) the three files are
# copied in, each to a temporary name then renamed over the old one, so that a server that
# has the previous module mapped keeps its inode; nothing else is written (the package's
# docs are the Debian package's business). Otherwise it passes only if what is installed
# is byte for byte what was built, and tells how to install it.
set -u
build=${1:?usage: install_for_tests.sh BUILD_DIR MODULE PKGLIBDIR SHAREDIR}
module=${2:?}
pkglibdir=${3:?}
sharedir=${4:?}
src=$(cd "$(dirname "$0")" && pwd)
same() {
  cmp -s "$module" "$pkglibdir/waferwatch.so" &&
    cmp -s "$src/waferwatch.control" "$sharedir/extension/waferwatch.control" &&
    cmp -s "$src/waferwatch--1.0.sql" "$sharedir/extension/waferwatch--1.0.sql"
}
put() { # put FILE MODE DIR NAME
  tmp="$3/.$4.$$" &&
    cp "$1" "$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$3/$4" || { rm -f "$tmp"; return 1; }
}
same && exit 0
if [ "$(id -u)" = 0 ] || { [ -w "$pkglibdir" ] && [ -w "$sharedir/extension" ]; }; then
  put "$module" 0755 "$pkglibdir" waferwatch.so &&
    put "$src/waferwatch.control" 0644 "$sharedir/extension" waferwatch.control &&
    put "$src/waferwatch--1.0.sql" 0644 "$sharedir/extension" waferwatch--1.0.sql || exit 1
  same && exit 0
  echo "pgext_install: installed files differ from the built ones after copying them" >&2
  exit 1
fi
echo "pgext_install: the waferwatch PostgreSQL extension installed in $pkglibdir is missing or" \
     "not this build's; install the waferwatch PostgreSQL extension:" \
     "sudo cmake --install $build --component pgext" >&2
exit 1
