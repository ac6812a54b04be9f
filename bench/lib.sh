# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share. Sourced (after `set -euo pipefail`) by
# the bench/*.sh scripts; defines functions only.

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
  local notes
  # enroll's notes (e.g. "also allowing node f0") would fill the report: shown on failure only
  if ! notes=$("$cli" enroll "$dir/$id.pub" "$id" "$@" 2>&1 >>"$dir/allowlist"); then
    echo "$notes" >&2
    return 1
  fi
}

# ww_bench_args NAME HEADER_LINES "$@": the common start of a bench's arguments. -h or
# --help prints the script's header comment (lines 2..HEADER_LINES) and exits 0; no
# argument prints it to stderr and exits 2. Otherwise sets `build` to the absolute path of
# BUILD_DIR ($1), or exits 2 naming it.
ww_bench_args() {
  local name=$1 last=$2
  shift 2
  if [ $# -lt 1 ]; then
    sed -n "2,${last}p" "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
  fi
  case "$1" in -h | --help)
    sed -n "2,${last}p" "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  esac
  # shellcheck disable=SC2034 # for the caller
  build=$(cd "$1" && pwd) || { echo "$name: no build directory $1" >&2; exit 2; }
}

# ww_bench_need NAME FILE...: each FILE must be executable (the tree is built), else exit 2.
ww_bench_need() {
  local name=$1 b
  shift
  for b in "$@"; do
    [ -x "$b" ] || { echo "$name: $b missing (build the tree first)" >&2; exit 2; }
  done
}

# ww_bench_workdir NAME: a fresh run directory /tmp/ww-NAME.XXXXXX, mode 0755 (the
# throwaway PostgreSQL runs as postgres and must reach it); prints its path.
ww_bench_workdir() {
  local d
  d=$(mktemp -d "/tmp/ww-$1.XXXXXX")
  chmod 755 "$d"
  echo "$d"
}
