#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors, and runs the
# whole ctest suite (cmocka unit tests, and integration tests against a throwaway
# PostgreSQL started and stopped by the suite's `pg` fixture) twice: a plain build and one
# with AddressSanitizer + UndefinedBehaviorSanitizer; then runs the libFuzzer targets.
#
#   tests/run.sh                 both builds
#   WW_TEST_SANITIZE=0 tests/run.sh   skip the sanitizer build
#   WW_TEST_FUZZ=0 tests/run.sh       skip the fuzzers (15 s each by default: WW_FUZZ_SECONDS)
#   WW_TEST_LABEL=unit tests/run.sh   only tests labelled unit (or integration)
# First of all, every tracked C file must be as clang-format (.clang-format) writes it.
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$WW_ROOT"
. deploy/deps.sh
ww_install_deps clang-format
# node and npm for test_otlp's real OpenTelemetry SDK (tests/otel_sdk; its packages are
# cached in ~/.cache/waferwatch/otel-sdk). Checked by command: a Node.js from elsewhere
# (nodesource) ships its own npm and conflicts with Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  ww_install_deps nodejs npm
fi

echo "== clang-format"
if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t sources < <(git ls-files '*.c' '*.h')
else
  mapfile -t sources < <(find agent cli collector lib proto tests bench -name '*.[ch]')
fi
if ! clang-format --dry-run --Werror "${sources[@]}" 2>"${TMPDIR:-/tmp}/ww-format.log"; then
  grep -o '^[^:]*\.[ch]' "${TMPDIR:-/tmp}/ww-format.log" | sort -u | sed 's/^/  not formatted: /' >&2
  echo "waferwatch: run clang-format -i on the files above" >&2
  exit 1
fi

label=${WW_TEST_LABEL:-}
run_suite() {
  local dir=$1; shift
  echo "== build $dir ($*)"
  ww_build "$dir" -DWW_WERROR=ON "$@"
  echo "== ctest $dir"
  local args=(--test-dir "$dir" --output-on-failure -j"$(nproc)")
  [ -n "$label" ] && args+=(-L "$label")
  [ -n "${exclude:-}" ] && args+=(-E "$exclude")
  ctest "${args[@]}"
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWW_SANITIZE=
if [ "${WW_TEST_SANITIZE:-1}" != 0 ]; then
  # Not under the sanitizers: test_slo's two *_quiet runs (a 12-node fleet for 75 s each,
  # checking that the shipped phases files raise no alert: SLO arithmetic, not memory
  # safety; every path they take runs under the sanitizers in shorter tests). They were
  # 2 x 78 s of the ~15 minutes this command may take. Nor test_delivery's remote_apply
  # failover (PostgreSQL's synchronous replication; the agent's repair code runs under the
  # sanitizers in the lagging-standby failover beside it). Nor test_sites (three clusters
  # and logical replication between them: PostgreSQL's machinery; the collector's fleet
  # role runs in the plain build).
  exclude='_quiet$|_needs_no_repair$|^test_sites\.' \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DWW_SANITIZE=address,undefined
fi
# Every decoder of untrusted bytes under libFuzzer (clang, ASan+UBSan), briefly; run
# tests/fuzz/run.sh 3600 to fuzz for longer.
if [ "${WW_TEST_FUZZ:-1}" != 0 ]; then
  tests/fuzz/run.sh "${WW_FUZZ_SECONDS:-15}"
fi
echo "== all test suites passed"
