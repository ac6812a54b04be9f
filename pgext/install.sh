#!/usr/bin/env bash
# pgext/install.sh BUILD_DIR: makes the waferwatch PostgreSQL extension built in BUILD_DIR
# the one the system's PostgreSQL loads. Used by deploy/demo.sh and by the integration
# tests' fixture `pgext` (tests/integration/CMakeLists.txt), whose clusters run the
# system's binaries.
#
# PostgreSQL loads an extension only from its own directories (waferwatch.so from
# `pg_config --pkglibdir`, the control and SQL files from `pg_config --sharedir`/extension),
# never from a path a client or a configuration names: so the files go where the package
# postgresql-15-waferwatch puts them. The component is installed into a stage first
# (`cmake --install --component pgext` with DESTDIR: no root needed) to see whether what
# the server has is already this build's. Only then, as root (or where those directories
# are writable), is each file that differs copied in under a temporary name and renamed over
# the old one: a server running now (another cluster on this host) keeps the module it
# has mapped. The component's other files (the package's README and copyright) are not
# installed. Exit 0 when the server has this build's files; 1 with what to run otherwise.
set -euo pipefail
build=${1:?usage: pgext/install.sh BUILD_DIR}
pg_config=$(sed -n 's/^WW_PG_CONFIG:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -x "$pg_config" ] || { echo "pgext/install.sh: $build was configured without pg_config (the extension is not built)" >&2; exit 1; }
pg_bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ "$("$pg_config" --bindir)" != "$pg_bindir" ]; then
  echo "pgext/install.sh: the extension is built for $("$pg_config" --bindir), the system's PostgreSQL runs from $pg_bindir" >&2
  exit 1
fi
pkglibdir=$("$pg_config" --pkglibdir)
extdir=$("$pg_config" --sharedir)/extension
stage=$(mktemp -d "${TMPDIR:-/tmp}/ww-pgext.XXXXXX")
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage cmake --install "$build" --component pgext >/dev/null
files=()
stale=()
while IFS= read -r f; do
  f=${f#"$stage"}
  case $f in "$pkglibdir"/* | "$extdir"/*) ;; *) continue ;; esac
  files+=("$f")
  cmp -s "$stage$f" "$f" || stale+=("$f")
done < <(find "$stage" -type f | sort)
[ ${#files[@]} -gt 0 ] || { echo "pgext/install.sh: the pgext component installs nothing into PostgreSQL's directories" >&2; exit 1; }
if [ ${#stale[@]} -eq 0 ]; then
  echo "pgext/install.sh: already installed: ${files[*]}"
elif [ "$(id -u)" = 0 ] || { [ -w "$pkglibdir" ] && [ -w "$extdir" ]; }; then
  for f in "${stale[@]}"; do
    tmp=$(dirname "$f")/.$(basename "$f").$$
    install -m "$(stat -c %a "$stage$f")" "$stage$f" "$tmp" && mv -f "$tmp" "$f" ||
      { rm -f "$tmp"; echo "pgext/install.sh: could not install $f" >&2; exit 1; }
  done
  echo "pgext/install.sh: installed: ${stale[*]}"
else
  echo "pgext/install.sh: the waferwatch PostgreSQL extension is not installed in the system's" \
       "PostgreSQL, or differs from this build (${stale[*]}); PostgreSQL loads extensions only" \
       "from its own directories. Install it as root:" >&2
  echo "  sudo $(cd "$(dirname "$0")" && pwd)/install.sh $build" >&2
  exit 1
fi
