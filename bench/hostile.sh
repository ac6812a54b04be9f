#!/usr/bin/env bash
# bench/hostile.sh BUILD_DIR [SECONDS] [AGENTS]: what one hostile agent costs the collector
# and the other agents (issue 14, item 4), measured side by side in one run.
#
# A throwaway PostgreSQL (127.0.0.1 is never used: Unix socket only), a CURVE collector on
# tcp://127.0.0.1:*, then bench_hostile (see bench/bench_hostile.c): AGENTS normal agents
# at one batch per second each, measuring their own send -> Ack delay, first with no
# attack, then while one enrolled agent sends maximum-size hostile messages back to back
# (16 MiB of ~8.4 M empty samples; then 16 MiB of ~16.7 M histogram bucket counts),
# SECONDS each (default 20: the whole run stays under 2 minutes). Prints the collector's
# peak RSS and the agents' ack delay p50 / p99 / max per phase, and the ratios.
#
#   WW_HOSTILE_WINDOW=N: the attacker keeps N messages unanswered (default 4); a large N
#   floods, and what the collector then queues is bounded by its ZMQ_RCVHWM.
#   WW_HOSTILE_COLLECTOR=path: another collector binary (e.g. an older commit's), same
#   setup, for a before / after comparison.
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$WW_ROOT"
. bench/lib.sh
ww_bench_args hostile 16 "$@"
seconds=${2:-20}
agents=${3:-8}
collector=${WW_HOSTILE_COLLECTOR:-$build/collector/waferwatch-collector}
cli=$build/cli/waferwatch
ww_bench_need hostile "$collector" "$cli" "$build/bench/bench_hostile"

work=$(ww_bench_workdir hostile)
pgdir=$work/pg
cpid=
cleanup() {
  [ -n "$cpid" ] && { kill -TERM "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true; }
  tests/pg_throwaway.sh stop "$pgdir" >/dev/null 2>&1 || true
  [ "${WW_HOSTILE_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

ww_bench_header hostile
echo "command: bench/hostile.sh $* (collector: $collector)"
tests/pg_throwaway.sh start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE hostile"

keys=$work/keys
ww_bench_keys "$cli" "$keys"
for ((a = 0; a < agents; a++)); do
  ww_bench_enrol "$cli" "$keys" "normal-$a" "normal-$a-node"
done
ww_bench_enrol "$cli" "$keys" hostile 'hostile-*'

"$collector" --listen 'tcp://127.0.0.1:*' --endpoint-file "$work/ep" \
  --server-key "$keys/collector.key" --allowlist "$keys/allowlist" --pg "dbname=hostile" \
  --log-level warn >"$work/collector.log" 2>&1 &
cpid=$!
for _ in $(seq 300); do [ -s "$work/ep" ] && break; sleep 0.1; done
[ -s "$work/ep" ] || { cat "$work/collector.log" >&2; echo "hostile: the collector did not start" >&2; exit 1; }

"$build/bench/bench_hostile" "$(cat "$work/ep")" "$keys" "$cpid" "$seconds" "$agents" "${WW_HOSTILE_WINDOW:-4}"
rows=$(psql -qAtX -d hostile -c "SELECT count(*) FROM node_samples")
rejects=$(psql -qAtX -d hostile -c "SELECT count(*) FROM ingest_rejects")
echo "stored: $rows normal samples, $rejects rejects recorded"
