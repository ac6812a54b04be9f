#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz (AddressSanitizer,
# UndefinedBehaviorSanitizer, LeakSanitizer) and runs each one for SECONDS (default 20),
# all in parallel, over a work copy of its seed corpus (build-fuzz/tests/fuzz/work/).
#
#   tests/fuzz/run.sh            20 s per target
#   tests/fuzz/run.sh 3600       an hour per target; the work corpus grows run after run
#
# Exits non-zero when a target crashes, leaks, times out or violates an invariant, and
# prints each reproducer (build-fuzz/tests/fuzz/artifacts/<target>/crash-...) with the
# command that replays it.
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$WW_ROOT"
secs=${1:-20}
case $secs in
  '' | *[!0-9]*) echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac

. deploy/deps.sh
# clang, and libFuzzer's runtime (libclang_rt.fuzzer), which clang only recommends.
ww_install_deps clang libclang-rt-14-dev

dir=build-fuzz
# A build directory configured with another compiler cannot be switched to clang.
if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER_ID:.*Clang\|^CMAKE_C_COMPILER:.*clang' "$dir/CMakeCache.txt"; then
  rm -rf "$dir"
fi
echo "== build $dir (clang, libFuzzer, ASan+UBSan)"
# Only the fuzz targets (and the libraries they link) are built: what else is in the tree
# is not needed here. The compiler's output goes to $dir/build.log, shown on failure.
mkdir -p "$dir"
if ! { cmake -S "$WW_ROOT" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DWW_WERROR=ON -DWW_FUZZ=ON -DWW_FUZZ_SECONDS="$secs" &&
       cmake --build "$dir" -j"$(nproc)" --target fuzz_wire fuzz_hist fuzz_hist_pack fuzz_config fuzz_reqlog fuzz_sblock fuzz_wblock fuzz_otlp_trace; } \
     >"$dir/build.log" 2>&1; then
  cat "$dir/build.log" >&2
  echo "waferwatch: build in $dir failed (log: $dir/build.log)" >&2
  exit 1
fi

echo "== fuzz ${secs}s per target"
rc=0
ctest --test-dir "$dir" -L fuzz --output-on-failure -j4 || rc=$?

art=$dir/tests/fuzz/artifacts
found=0
for f in "$art"/*/*; do
  [ -f "$f" ] || continue
  found=1
  t=$(basename "$(dirname "$f")")
  echo "waferwatch: fuzz_$t found $(basename "$f"): $WW_ROOT/$f" >&2
  echo "  replay: $dir/tests/fuzz/fuzz_$t $f" >&2
  echo "  bytes:  $(head -c 512 "$f" | od -An -tx1 -v | tr -d '\n' | tr -s ' ')" >&2
done
if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
  echo "waferwatch: fuzzing failed" >&2
  exit 1
fi
for t in wire hist hist_pack config reqlog sblock wblock otlp_trace; do
  n=$(find "$dir/tests/fuzz/work/$t" -type f | wc -l)
  echo "fuzz_$t: work corpus $n inputs"
done
echo "== fuzzing passed"
