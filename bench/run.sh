#!/usr/bin/env bash
# bench/run.sh: the whole benchmark suite of issue 8, one command, on this machine.
#
# Builds a Release tree in build-bench (or BUILD_DIR), then runs, each printing its own
# table of figures and ratios measured side by side in the same run:
#   bench_hist    histogram record ns beside one clock read, wire bytes of windows
#   bench_wire    protobuf bytes per node-sample, encode / decode beside a memcpy
#   bench_sim     what one simulated node at 5,000 requests/s costs per request (simulator
#                 and recording) beside a clock read
#   footprint.sh  one agent at 1 Hz recording 5,000 requests/s from the request log fed by
#                 waferwatch-sim, beside that sender, the agent with the simulator inside it,
#                 the floor (a bare CURVE DEALER with the same libraries) and collectd
#                 (WW_BENCH_FOOT_SECONDS, default 120)
#   sli_period.sh one latency SLI over the 30-day period: from the per-minute rollups
#                 alone vs with the hourly rollups, on the same data
#   capacity.sh   one phase's capacity evaluation (10,870 nodes): schema 24's per-label
#                 figures and the site evaluator's write beside the version-23 function;
#                 the fleet's sum over 30 days of site_capacity rows
#   pgext.sh      the extension's ww_hist: SQL ww_merge beside the C merge of the same rows
#                 and beside the former composite + plpgsql; bytes on disk per latency
#                 window beside the composite, the payload, its entropy floor, HdrHistogram
#   bench_sblock  the sample block of compaction: bytes per sample beside the entropy of
#                 the readings' deltas, encode / decode ns per sample
#   tiers.sh      the storage tiers: bytes per row of each, the builder's cost per minute of
#                 the fleet, the full fleet's storage at the default retention
#   fleet.sh      the whole 32,600-node fleet through one collector: binary COPY ceiling vs
#                 the collector's end-to-end rate, 5 minutes sustained at 1 Hz with the
#                 sample-to-commit delay (WW_FLEET_* variables, see bench/fleet.sh)
#   hostile.sh    the collector's peak RSS and the other agents' ack delay while one agent
#                 sends maximum-size hostile messages, beside the same with no attack
#   outage.sh     messages per batch through a 3-minute PostgreSQL outage (Pending and the
#                 agents' backoff), every sample stored once
#   otlp.sh       the agent's OTLP/HTTP intake at 5,000 spans/s beside the request log at the
#                 same rate (CPU, RSS), and flat out (spans per CPU second, RSS bounded)
# About 30 minutes in all. Exit status: non-zero when a part fails to run (the figures
# against the targets are printed, not turned into an exit status, except footprint's).
#
#   bench/run.sh [BUILD_DIR]
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$WW_ROOT"
. deploy/deps.sh
ww_install_deps
build=${1:-build-bench}
case "$build" in /*) ;; *) build="$WW_ROOT/$build" ;; esac
echo "== build $build (Release)"
ww_build "$build" -DCMAKE_BUILD_TYPE=Release
echo "== $(date -u +%FT%TZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
echo "== bench_hist"
"$build/bench/bench_hist"
echo "== bench_wire"
"$build/bench/bench_wire" 1000 200
echo "== bench_sim"
"$build/bench/bench_sim"
echo "== bench_sblock"
"$build/bench/bench_sblock"
echo "== footprint"
foot=0
bench/footprint.sh "$build" "${WW_BENCH_FOOT_SECONDS:-120}" || foot=$?
echo "== sli_period"
bench/sli_period.sh "$build" 30
echo "== capacity"
bench/capacity.sh "$build"
echo "== pgext"
bench/pgext.sh "$build"
echo "== tiers"
bench/tiers.sh "$build"
echo "== fleet"
bench/fleet.sh "$build"
echo "== logical"
bench/logical.sh "$build"
echo "== hostile"
bench/hostile.sh "$build"
echo "== outage"
bench/outage.sh "$build"
echo "== otlp"
bench/otlp.sh "$build"
[ "$foot" -le 1 ] || exit "$foot"
