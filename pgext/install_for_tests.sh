#!/bin/sh
# install_for_tests.sh BUILD_DIR MODULE PKGLIBDIR SHAREDIR: makes the PostgreSQL extension built in
# BUILD_DIR the one the server loads, before the integration tests (the ctest fixture
# `pgext`, see tests/integration/CMakeLists.txt). As root: `cmake --install --component
# pgext` (installing identical files again is harmless). Otherwise the same when the
# directories are writable; else it passes only if what is installed is byte for byte
# what was built, and tells how to install it.
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
if same; then
  # Nothing to do, and nothing rewritten under a server that may have the module mapped.
  echo "pgext_install: the waferwatch extension installed in $pkglibdir is this build's"
  exit 0
fi
if [ "$(id -u)" = 0 ] || { [ -w "$pkglibdir" ] && [ -w "$sharedir/extension" ]; }; then
  cmake --install "$build" --component pgext || exit 1
  same && exit 0
  echo "pgext_install: installed files differ from the built ones after cmake --install" >&2
  exit 1
fi
echo "pgext_install: the waferwatch PostgreSQL extension installed in $pkglibdir is missing or" \
     "not this build's; install the waferwatch PostgreSQL extension:" \
     "sudo cmake --install $build --component pgext" >&2
exit 1
