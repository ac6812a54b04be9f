#!/bin/bash
# check_docs.sh SRC_DIR: the documentation an SRE navigates stays navigable.
#  - README.md stays under 15,000 bytes (the overview; the rest lives in docs/);
#  - every docs/*.md page and bench/RESULTS.md is linked from README.md;
#  - every relative markdown link in README.md, docs/*.md and bench/RESULTS.md names a
#    file (or directory) that exists. Anchors (#...) are not checked, only their files.
# Exits 1 naming each problem, 0 when there is none.
set -euo pipefail

[ $# = 1 ] || { echo "usage: $0 SRC_DIR" >&2; exit 2; }
src=$1
[ -f "$src/README.md" ] || { echo "FAIL: $src/README.md does not exist" >&2; exit 1; }

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

max=15000
size=$(wc -c <"$src/README.md")
[ "$size" -lt "$max" ] ||
    fail "README.md is $size bytes, the limit is under $max: move detail into docs/"

# The targets of the inline links [text](target) of a markdown file, one a line, outside
# fenced code blocks and code spans.
links() {
    awk '
        /^[ \t]*```/ { fence = !fence; next }
        fence { next }
        {
            line = $0
            gsub(/`[^`]*`/, "", line)
            while (match(line, /\]\([^)[:space:]]+/)) {
                print substr(line, RSTART + 2, RLENGTH - 2)
                line = substr(line, RSTART + RLENGTH)
            }
        }
    ' "$1"
}

readme_files=$(links "$src/README.md" | sed 's/#.*//')
pages=()
for f in "$src"/docs/*.md "$src/bench/RESULTS.md"; do
    [ -e "$f" ] || continue
    pages+=("$f")
    rel=${f#"$src"/}
    grep -qxF -e "$rel" -e "./$rel" <<<"$readme_files" ||
        fail "README.md does not link to $rel"
done
[ -e "$src/bench/RESULTS.md" ] || fail "bench/RESULTS.md does not exist"

for f in "$src/README.md" "${pages[@]}"; do
    rel=${f#"$src"/}
    dir=$(dirname "$f")
    while IFS= read -r target; do
        [ -n "$target" ] || continue
        case $target in
            '#'* | *://* | mailto:*) continue ;; # same page, or not a file
        esac
        path=${target%%#*}
        path=${path%%\?*}
        [ -e "$dir/$path" ] || fail "$rel: link to '$target': $path does not exist"
    done < <(links "$f")
done

if [ "$fails" != 0 ]; then
    echo "docs: $fails problem(s)" >&2
    exit 1
fi
echo "docs: README.md $size bytes, ${#pages[@]} pages linked, every relative link resolves: ok"
