#!/bin/bash
# check_reference.sh [--update] BUILD_DIR SRC_DIR [AGENT COLLECTOR CLI]
#
# The reference pages and man pages are generated from the config tables and the metrics
# registries by the binaries themselves (`--reference markdown|man`, see lib/ww_config.h),
# and checked in. This regenerates them into a scratch directory with the built binaries
# (by default BUILD_DIR/agent/waferwatch-agent, BUILD_DIR/collector/waferwatch-collector,
# BUILD_DIR/cli/waferwatch) and fails with a diff when a checked-in file differs, naming
# the command that regenerates them. Where `man` is installed, each man page must also
# format without a groff warning (man --warnings); elsewhere that part is skipped with a
# note. --update writes the generated files into SRC_DIR instead (the `reference` target).
set -euo pipefail

usage() {
    echo "usage: $0 [--update] BUILD_DIR SRC_DIR [AGENT COLLECTOR CLI]" >&2
    exit 2
}
update=0
if [ "${1:-}" = --update ]; then
    update=1
    shift
fi
[ $# = 2 ] || [ $# = 5 ] || usage
build=$1 src=$2
agent=${3:-$build/agent/waferwatch-agent}
collector=${4:-$build/collector/waferwatch-collector}
cli=${5:-$build/cli/waferwatch}

# Each checked-in file and the binary and format that generate it.
files=(docs/reference/agent.md docs/reference/collector.md
       man/waferwatch-agent.1 man/waferwatch-collector.1 man/waferwatch.1)
bins=("$agent" "$collector" "$agent" "$collector" "$cli")
formats=(markdown markdown man man man)

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

tmp=$(mktemp -d /tmp/ww-reference.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for i in "${!files[@]}"; do
    f=${files[$i]} bin=${bins[$i]} fmt=${formats[$i]}
    [ -x "$bin" ] || { fail "$bin is not built"; continue; }
    mkdir -p "$tmp/$(dirname "$f")"
    rc=0
    "$bin" --reference "$fmt" >"$tmp/$f" || rc=$?
    [ "$rc" = 0 ] || fail "$(basename "$bin") --reference $fmt exited $rc"
done
[ "$fails" = 0 ] || exit 1

if [ "$update" = 1 ]; then
    for f in "${files[@]}"; do
        mkdir -p "$src/$(dirname "$f")"
        cmp -s "$tmp/$f" "$src/$f" 2>/dev/null || { cp "$tmp/$f" "$src/$f"; echo "wrote $f"; }
    done
    echo "reference: ${#files[@]} files up to date in $src"
    exit 0
fi

for i in "${!files[@]}"; do
    f=${files[$i]}
    if [ ! -f "$src/$f" ]; then
        fail "$f is not checked in"
    elif ! diff -u "$src/$f" "$tmp/$f" >&2; then
        fail "$f differs from \`$(basename "${bins[$i]}") --reference ${formats[$i]}\` (diff above)"
    fi
done
if [ "$fails" != 0 ]; then
    echo "reference: $fails file(s) out of date: regenerate them with" >&2
    echo "  cmake --build $build --target reference" >&2
    echo "and commit the result." >&2
    exit 1
fi

if command -v man >/dev/null; then
    for f in "${files[@]}"; do
        case $f in *.1) ;; *) continue ;; esac
        warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l -Tutf8 "$src/$f" 2>&1 >/dev/null) ||
            fail "$f: man exited $?: $warn"
        [ -z "$warn" ] || fail "$f: groff warnings: $warn"
    done
    man_note="man pages format without a groff warning"
else
    man_note="man not installed: the groff warnings check skipped"
fi
[ "$fails" = 0 ] || exit 1
echo "reference: ${#files[@]} files match the binaries' --reference output; $man_note: ok"
