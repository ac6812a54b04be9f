# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share. Sourced (after `set -euo pipefail`) by
# bench/hostile.sh, outage.sh and fleet.sh; defines functions only.

# ww_bench_header NAME: the first line of every report: what ran, when, on which commit
# (+dirty when the tree has uncommitted changes) and how many cores.
ww_bench_header() {
  echo "waferwatch $1 bench, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores"
}

# ww_bench_keys CLI DIR: the collector's CURVE key pair DIR/collector.{key,pub} and an
# empty DIR/allowlist, with CLI the `waferwatch` binary.
ww_bench_keys() {
  mkdir -p "$2"
  "$1" keygen "$2/collector" >/dev/null
  : >"$2/allowlist"
}

# ww_bench_enrol CLI DIR AGENT_ID NODE_PATTERN...: a key pair DIR/AGENT_ID.{key,pub} and
# its allowlist line, as an operator makes them (`waferwatch enroll`).
ww_bench_enrol() {
  local cli=$1 dir=$2 id=$3
  shift 3
  "$cli" keygen "$dir/$id" >/dev/null
  "$cli" enroll "$dir/$id.pub" "$id" "$@" >>"$dir/allowlist"
}
