#!/usr/bin/env bash
# tiers.sh BUILD_DIR [NODES] [MINUTES] [LATENCY_NODES]: the storage tiers of a fleet-day
# (migration 0018, issue 18): bytes per row of every tier, the tier builder's cost per
# minute of data, and the storage of the whole fleet (32,600 nodes, 3 models) at the
# default retention, projected from them. One throwaway PostgreSQL, a database migrated by
# the collector (--migrate-only):
#  1. node_samples: NODES (default 1,000) nodes x MINUTES (default 120) at 1 Hz, written by
#     SQL with the simulator's ranges at sensor resolution (power 1 W, temperatures 0.1 C,
#     flow 0.1 L/min, utilisation 0.001), nodes in 2 sites x 2 halls x 3 phases. Row sizes
#     are fixed-width but for node_id (14 characters, as bench_pgext's), so the values only
#     matter for the NULL bitmap (humidity: half the nodes measure it).
#  2. latency_windows: LATENCY_NODES (default 60) nodes x 1 h of the default simulator in
#     10 s windows, COPYed as the collector encodes them (bench_pgext windows).
#  3. The production builder (ww_tier_build of collector/sql/25_functions_tiers.sql), 10
#     minutes a transaction as the collector runs it, timed; then one late hour of one node
#     (60 node-minutes in ww_tier_dirty) rebuilt, timed.
#  4. The production compaction (ww_compact of collector/sql/22_functions_compact.sql,
#     1,000 node-hours a transaction as the collector runs it, the latency windows' blocks
#     with the samples', migration 0021), timed; every sample of two nodes read back through
#     ww_samples() against their raw rows, every window through ww_windows(); the Shannon entropy of
#     the quantized readings (of 100 nodes: per column, the lesser of the entropy of its
#     values and of its deltas from the node's previous sample), the floor of any coder.
#  5. After VACUUM ANALYZE: pg_total_relation_size over each table's partition tree (heap,
#     indexes, TOAST, FSM/VM) / rows (node_samples_compact: / samples,
#     latency_windows_compact: / windows), beside the raw
#     node_samples row; then rows per day at full fleet x bytes x the default retention
#     (collector.yaml: retention.*, compaction.age).
# About 3 minutes at the defaults. Exit 1 when a tier does not have the rows it should.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args tiers 21 "$@"
nodes=${2:-1000}
minutes=${3:-120}
lnodes=${4:-60}
for v in "$nodes" "$minutes" "$lnodes"; do
  case "$v" in '' | *[!0-9]*) echo "tiers: NODES, MINUTES and LATENCY_NODES are whole numbers" >&2; exit 2 ;; esac
done
[ "$minutes" -ge 60 ] || { echo "tiers: MINUTES is at least 60 (an hour tier needs an hour)" >&2; exit 2; }
collector=$build/collector/waferwatch-collector
helper=$build/bench/bench_pgext
ww_bench_need tiers "$collector" "$helper"
"$root/pgext/install.sh" "$build" >/dev/null

run=$(mktemp -d /tmp/ww-bench-tiers.XXXXXX)
chmod 755 "$run"
pgdir=$run/pg
cleanup() { "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
"$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
q() { psql -qXAt -d tiers -v ON_ERROR_STOP=1 "$@"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; } # calc FORMAT EXPR
fail=0

ww_bench_header tiers
psql -qXAt -d postgres -c "CREATE DATABASE tiers"
"$collector" --insecure --pg dbname=tiers --migrate-only >"$run/migrate.log" 2>&1 ||
  { cat "$run/migrate.log" >&2; echo "tiers: migration failed" >&2; exit 2; }
# bench_pgext's windows start at 2027-01-01T12:00:00Z; the samples too.
t0="2027-01-01 12:00:00+00"
q -c "SELECT ww_ensure_partitions('2027-01-01', 2)" >/dev/null
q -c "UPDATE ww_tier_state SET start = '$t0', watermark = '$t0', minutes_done = '$t0', hours_done = '$t0', compacted_through = '$t0', truncated_through = '$t0', windows_start = '$t0', windows_dropped_through = '$t0'"

echo "== generating: $nodes nodes x $minutes min of samples, $lnodes nodes x 1 h of latency windows"
q -c "INSERT INTO nodes (node_id, agent_id, site, hall, phase, rated_kw, interval_ms)
      SELECT format('wse-hall1-%s', lpad(i::text, 4, '0')), 'bench', 'site-' || (i % 2),
             'hall-' || (i / 2 % 2), 'phase-' || (i % 3 + 1), 23, 1000
      FROM generate_series(0, $nodes - 1) i"
q -c "INSERT INTO node_samples (time, node_id, power_w, inlet_c, outlet_c, flow_lpm,
        wafer_hotspot_c, utilization, tokens_per_s, requests_queued, requests_in_flight,
        requests_completed, throttled, throttle_factor, humidity_pct)
      SELECT timestamptz '$t0' + make_interval(secs => s), format('wse-hall1-%s', lpad(i::text, 4, '0')),
             round(9200 + 13800 * u), round((24 + 2 * random())::numeric, 1),
             round((30 + 12 * u)::numeric, 1), round((95 + 10 * random())::numeric, 1),
             round((60 + 25 * u)::numeric, 1), round(u::numeric, 3), round(2000 * u),
             (8 * random())::int, (64 * u)::int, (30 * random())::int, false, 1,
             CASE WHEN i % 2 = 0 THEN round((40 + 5 * random())::numeric, 1) END
      FROM generate_series(0, $nodes - 1) i, generate_series(0, $minutes * 60 - 1) s,
           LATERAL (SELECT 0.5 + 0.4 * sin(s / 900.0 + i)) AS x(u)"
"$helper" windows "$run" "$lnodes" 3600 >"$run/win.out"
cols="time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout, requests_rejected, prompt_tokens, output_tokens"
q -c "\\copy latency_windows ($cols, queue, ttft, tpot, e2e) FROM '$run/lw.bin' WITH (FORMAT binary)"
# The per-phase latency rollups as the ingest path keeps them (one row per minute, phase
# and model), from the windows, so that their hour tier is built too.
q -c "INSERT INTO latency_rollup_1m
      SELECT date_trunc('minute', w.time, 'UTC'), coalesce(n.phase, ''), w.model, count(*),
             sum(requests_ok), sum(requests_error), sum(requests_timeout), sum(requests_rejected),
             sum(prompt_tokens), sum(output_tokens), ww_merge(queue), ww_merge(ttft),
             ww_merge(tpot), ww_merge(e2e)
      FROM latency_windows w LEFT JOIN nodes n USING (node_id) GROUP BY 1, 2, 3"
q -c "VACUUM ANALYZE"

echo "== building (ww_tier_build, 10 minutes a transaction)"
q -c "UPDATE ww_tier_state SET watermark = timestamptz '$t0' + interval '$minutes minutes'"
start=$(date +%s.%N)
left=1
while [ "$left" != 0 ]; do
  left=$(q -c "SELECT CASE WHEN behind_s > 0 OR dirty_left > 0 THEN 1 ELSE 0 END FROM ww_tier_build(10, 100000)")
done
build_s=$(calc '%.2f' "$(date +%s.%N) - $start")
# One node's late hour: its 60 minutes marked as the ingest path would, rebuilt.
q -c "INSERT INTO ww_tier_dirty SELECT 's', 'wse-hall1-0001', timestamptz '$t0' + make_interval(mins => m)
      FROM generate_series(0, 59) m"
start=$(date +%s.%N)
q -c "SELECT * FROM ww_tier_build(10, 100000)" >/dev/null
late_s=$(calc '%.3f' "$(date +%s.%N) - $start")

echo "== compacting (ww_compact, 1,000 node-hours a transaction)"
start=$(date +%s.%N)
while [ "$(q -c "SELECT node_hours + hours FROM ww_compact('0', 1000)")" != 0 ]; do :; done
compact_s=$(calc '%.2f' "$(date +%s.%N) - $start")
samples_c=$(q -c "SELECT coalesce(sum(samples), 0) FROM node_samples_compact")
[ "$samples_c" = "$((nodes * minutes * 60))" ] ||
  { echo "tiers: FAIL: $samples_c samples compacted, not $((nodes * minutes * 60))" >&2; fail=1; }
two="ARRAY['wse-hall1-0001', 'wse-hall1-0002']"
differ=$(q -c "SELECT (SELECT count(*) FROM (SELECT s::text FROM ww_samples('$t0', 'infinity', $two) s
                 EXCEPT ALL SELECT s::text FROM node_samples s WHERE node_id = ANY ($two)) x)
              + (SELECT count(*) FROM (SELECT s::text FROM node_samples s WHERE node_id = ANY ($two)
                 EXCEPT ALL SELECT s::text FROM ww_samples('$t0', 'infinity', $two) s) y)")
[ "$differ" = 0 ] || { echo "tiers: FAIL: $differ samples of two nodes differ after compaction" >&2; fail=1; }
windows_c=$(q -c "SELECT coalesce(sum(windows), 0) FROM latency_windows_compact")
windows_r=$(q -c "SELECT count(*) FROM latency_windows")
[ "$windows_c" = "$windows_r" ] ||
  { echo "tiers: FAIL: $windows_c windows compacted, not $windows_r" >&2; fail=1; }
wdiffer=$(q -c "SELECT (SELECT count(*) FROM (SELECT w::text FROM ww_windows('$t0', 'infinity') w
                  EXCEPT ALL SELECT w::text FROM latency_windows w) x)
               + (SELECT count(*) FROM (SELECT w::text FROM latency_windows w
                  EXCEPT ALL SELECT w::text FROM ww_windows('$t0', 'infinity') w) y)")
[ "$wdiffer" = 0 ] || { echo "tiers: FAIL: $wdiffer windows differ after compaction" >&2; fail=1; }
fleet_hour_s=$(calc '%.2f' "$compact_s / ($minutes / 60) * 32600 / $nodes")
echo "compacted $((nodes * minutes / 60)) node-hours in ${compact_s} s (${fleet_hour_s} s of PostgreSQL per hour of the full fleet, $(calc '%.1f' "$fleet_hour_s / 3600 * 100")% of one core; with the windows of $lnodes nodes); two nodes read back: $differ samples differ; every window read back: $wdiffer differ"
# The floor: per column, H(values) or H(deltas), whichever is less, in bits per sample.
cols13="power_w inlet_c outlet_c flow_lpm wafer_hotspot_c utilization tokens_per_s requests_queued requests_in_flight requests_completed throttled throttle_factor humidity_pct"
lagged=""; pairs=""
for c in $cols13; do
  v="s.$c"; [ "$c" = throttled ] && v="s.$c::int"
  lagged="$lagged, ($v)::float8 AS ${c}_v, ($v)::float8 - lag(($v)::float8) OVER w AS ${c}_d"
  pairs="$pairs, ('$c', 'v', d.${c}_v::text), ('$c', 'd', d.${c}_d::text)"
done
entropy=$(q -c "WITH d AS (SELECT s.node_id $lagged FROM node_samples s
                           WHERE s.node_id < 'wse-hall1-0100' WINDOW w AS (PARTITION BY s.node_id ORDER BY s.time)),
                 u AS (SELECT x.c, x.k, x.v FROM d, LATERAL (VALUES ${pairs#, }) AS x(c, k, v)),
                 f AS (SELECT c, k, count(*)::float8 AS n FROM u GROUP BY c, k, v),
                 h AS (SELECT c, k, sum(n) AS tot, (sum(n) * ln(sum(n)) - sum(n * ln(n))) / ln(2) AS bits
                       FROM f GROUP BY c, k)
            SELECT round((sum(m) / 8 / max(tot))::numeric, 2)
            FROM (SELECT c, min(bits) AS m, max(tot) AS tot FROM h GROUP BY c) AS per")
q -c "VACUUM ANALYZE"

# bytes TABLE: pg_total_relation_size of the partition tree, and rows.
# (pg_partition_tree is empty for a table that is not partitioned: the table itself then.)
bytes() {
  q -c "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('$1')),
                        pg_total_relation_size('$1'))"
}
rows() { q -c "SELECT count(*) FROM $1"; }
declare -A B R
for t in node_samples node_samples_compact node_rollup_1m node_rollup_1h site_rollup_1m site_rollup_1h latency_windows latency_windows_compact latency_node_1h latency_rollup_1m latency_rollup_1h; do
  B[$t]=$(bytes "$t")
  R[$t]=$(rows "$t")
  [ "$t" = node_samples_compact ] && R[$t]=$samples_c # per sample, not per block
  [ "$t" = latency_windows_compact ] && R[$t]=$windows_c # per window, not per block
  [ "${R[$t]}" -gt 0 ] || { echo "tiers: FAIL: $t has no rows" >&2; fail=1; }
done
want_1m=$((nodes * minutes))
[ "${R[node_rollup_1m]}" = "$want_1m" ] || { echo "tiers: FAIL: node_rollup_1m has ${R[node_rollup_1m]} rows, not $want_1m" >&2; fail=1; }
fleet_minute_s=$(calc '%.2f' "$build_s / $minutes * 32600 / $nodes")
echo "built $minutes minutes of $nodes nodes in ${build_s} s (${fleet_minute_s} s of PostgreSQL per minute of the full fleet, $(calc '%.1f' "$fleet_minute_s / 60 * 100")% of one core); one node's late hour rebuilt in ${late_s} s"

echo "== bytes per row (pg_total_relation_size of the partition tree / rows) and the full fleet"
# Rows a day at full fleet: 32,600 nodes, 3 models; site tiers: 2 sites x 2 halls x 3 phases
# here (12 rows a minute), as measured; latency per phase: 3 phases x 3 models.
fleet=32600
sites_per_min=$(q -c "SELECT count(*) / $minutes FROM site_rollup_1m")
declare -A PERDAY=(
  [node_samples]=$((fleet * 86400)) [node_samples_compact]=$((fleet * 86400)) [node_rollup_1m]=$((fleet * 1440)) [node_rollup_1h]=$((fleet * 24))
  [site_rollup_1m]=$((sites_per_min * 1440)) [site_rollup_1h]=$((sites_per_min * 24))
  [latency_windows]=$((fleet * 3 * 8640)) [latency_windows_compact]=$((fleet * 3 * 8640))
  [latency_node_1h]=$((fleet * 3 * 24))
  [latency_rollup_1m]=$((9 * 1440)) [latency_rollup_1h]=$((9 * 24)))
# The default retention of each (ww_collector_conf.c): raw samples until their day is
# compacted (the day, plus compaction.age 3 h: 1.125 d at its fullest), compacted samples
# 14 d, latency windows until the day before yesterday is dropped (retention.window_days 1),
# as rows until their day is emptied (at 04:00: the day's last hour ends at midnight, then
# compaction.age 3 h and the hour of the job) and as blocks from 4 h after their hour until
# the drop (the hourly retention runs after midnight). Both are largest together just before
# that drop: rows of yesterday and today's first hour (1.042 d), blocks of the day before
# yesterday and of yesterday's first 21 hours (1.875 d): 25 h x rows + 45 h x blocks is more
# than at 04:00 (28 h + 24 h) or at midnight (24 h + 44 h) whenever a window's block bytes
# are more than a seventh of its row's.
# Node minutes 35 d, node hours 400 d, latency per node-hour 35 d, site and phase rollups
# 400 d (rollup_days).
declare -A DAYS=(
  [node_samples]=1.125 [node_samples_compact]=14 [node_rollup_1m]=35 [node_rollup_1h]=400 [site_rollup_1m]=400
  [site_rollup_1h]=400 [latency_windows]=1.042 [latency_windows_compact]=1.875
  [latency_node_1h]=35 [latency_rollup_1m]=400
  [latency_rollup_1h]=400)
printf '%-18s %12s %10s %14s %10s %12s\n' table rows "B/row" "rows/day fleet" "GB/day" "TB retained"
total=0
for t in node_samples node_samples_compact node_rollup_1m node_rollup_1h site_rollup_1m site_rollup_1h latency_windows latency_windows_compact latency_node_1h latency_rollup_1m latency_rollup_1h; do
  per=$(calc '%.1f' "${B[$t]} / ${R[$t]}")
  gb=$(calc '%.2f' "$per * ${PERDAY[$t]} / 1e9")
  tb=$(calc '%.3f' "$gb * ${DAYS[$t]} / 1e3")
  total=$(calc '%.3f' "$total + $tb")
  printf '%-18s %12s %10s %14s %10s %12s\n' "$t" "${R[$t]}" "$per" "${PERDAY[$t]}" "$gb" "$tb (${DAYS[$t]} d)"
done
echo "projected full-fleet storage at the default retention: $total TB"
echo "node-minute tier per node-sample: $(calc '%.2f' "${B[node_rollup_1m]} / ${R[node_rollup_1m]} / 60") B (raw: $(calc '%.1f' "${B[node_samples]} / ${R[node_samples]}") B)"
payload=$(q -c "SELECT round(sum(octet_length(block))::numeric / sum(samples), 2) FROM node_samples_compact")
heap=$(q -c "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('node_samples_compact')")
idx=$(q -c "SELECT sum(pg_indexes_size(relid)) FROM pg_partition_tree('node_samples_compact')")
toast=$(q -c "SELECT coalesce(sum(pg_total_relation_size(c.reltoastrelid)), 0) FROM pg_partition_tree('node_samples_compact') t
              JOIN pg_class c ON c.oid = t.relid WHERE c.reltoastrelid <> 0")
echo "compacted raw per node-sample: $(calc '%.2f' "${B[node_samples_compact]} / $samples_c") B all-in (heap $(calc '%.2f' "$heap / $samples_c"), TOAST $(calc '%.2f' "$toast / $samples_c"), indexes $(calc '%.2f' "$idx / $samples_c")); block payload $payload B; entropy of the quantized readings $entropy B; raw rows $(calc '%.1f' "${B[node_samples]} / ${R[node_samples]}") B (target <= 24 B all-in)"
exit $fail
