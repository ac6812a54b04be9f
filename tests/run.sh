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
build_suite() {
  local dir=$1; shift
  echo "== build $dir ($*)"
  ww_build "$dir" -DWW_WERROR=ON "$@"
}
test_suite() {
  local dir=$1
  echo "== ctest $dir"
  local args=(--test-dir "$dir" --output-on-failure -j"$(nproc)")
  [ -n "$label" ] && args+=(-L "$label")
  [ -n "${exclude:-}" ] && args+=(-E "$exclude")
  ctest "${args[@]}"
}

sanitize_opts=(-DCMAKE_BUILD_TYPE=Debug -DWW_SANITIZE=address,undefined)
build_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWW_SANITIZE=
# The plain build's tests leave the CPUs mostly idle (they wait on PostgreSQL, sockets and
# timers: ~65% idle on 2 cores), so the builds that follow them are made meanwhile, at the
# lowest priority (nice 19: a test that wants a CPU gets it): the sanitizer build, then
# build-fuzz warmed up with tests/fuzz/run.sh's configuration and its fuzz targets (that
# script still configures and builds it, a no-op then; the warm-up is skipped where clang
# is missing, and when it fails it only costs time: the script's own build reports).
# Measured on 2 cores: 35 s + 46 s of builds off the critical path, the plain ctest no slower.
stop_tree() { # stop_tree PID: the process and its descendants
  local p kids
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  kill "$1" 2>/dev/null || true
  for p in $kids; do stop_tree "$p"; done
}
bg=""
if [ "${WW_TEST_SANITIZE:-1}" != 0 ] || [ "${WW_TEST_FUZZ:-1}" != 0 ]; then
  (
    renice -n 19 -p "$BASHPID" >/dev/null
    if [ "${WW_TEST_SANITIZE:-1}" != 0 ]; then
      build_suite build-asan "${sanitize_opts[@]}" >/dev/null
    fi
    if [ "${WW_TEST_FUZZ:-1}" != 0 ] && command -v clang >/dev/null &&
      { [ ! -f build-fuzz/CMakeCache.txt ] || grep -q '^CMAKE_C_COMPILER:.*clang' build-fuzz/CMakeCache.txt; }; then
      mkdir -p build-fuzz
      # Configured twice: a tree's first configure writes other include flags than the
      # next ones do (pkg-config's -isystem /usr/include/mit-krb5 moves from C_INCLUDES to
      # C_FLAGS), so without the second the script's own configure rebuilt it all (27 s).
      fuzz_cfg=(-S "$WW_ROOT" -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo
        -DWW_WERROR=ON -DWW_FUZZ=ON -DWW_FUZZ_SECONDS="${WW_FUZZ_SECONDS:-15}")
      {
        cmake "${fuzz_cfg[@]}" && cmake "${fuzz_cfg[@]}" &&
          mapfile -t targets < <(ctest --test-dir build-fuzz -L fuzz -N |
            sed -n 's/^ *Test *#[0-9]*: \(fuzz_[a-z_]*\)$/\1/p') &&
          cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
      } >build-fuzz/warm.log 2>&1 || true
    fi
  ) &
  bg=$!
  trap '[ -z "$bg" ] || stop_tree "$bg"' EXIT
fi
test_suite build
if [ -n "$bg" ]; then
  wait "$bg" || { bg=""; echo "waferwatch: the sanitizer build failed" >&2; exit 1; }
  bg=""
fi
if [ "${WW_TEST_SANITIZE:-1}" != 0 ]; then
  echo "== build build-asan (${sanitize_opts[*]}): made during the plain build's tests"
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
    test_suite build-asan
fi
# Every decoder of untrusted bytes under libFuzzer (clang, ASan+UBSan), briefly; run
# tests/fuzz/run.sh 3600 to fuzz for longer.
if [ "${WW_TEST_FUZZ:-1}" != 0 ]; then
  tests/fuzz/run.sh "${WW_FUZZ_SECONDS:-15}"
fi
echo "== all test suites passed"
