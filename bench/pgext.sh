#!/usr/bin/env bash
# pgext.sh BUILD_DIR [ROWS] [NODES] [SECONDS]: the waferwatch PostgreSQL extension's ww_hist
# (pgext/, issue 17) beside the C code and beside the composite type + plpgsql it replaced
# (commit 94044df), side by side in one run on one throwaway PostgreSQL.
#
# Installs the extension built in BUILD_DIR into the system PostgreSQL (cmake --install
# --component pgext: root, or writable directories), starts a throwaway cluster, and:
#  1. Merge speed. bench_pgext generates TTFT histograms of 30 s windows of the default
#     simulator (the agent's latency windows; ~280 requests each, so that a window spans
#     what the issue measured, ~530 buckets at scale 6) and loads ROWS (default 100,000)
#     of them into t(id int, h ww_hist) by binary COPY (the packed bytes, as the collector
#     writes them), and the first 10,000 also into t_10k. Times `SELECT ww_merge(h) FROM t`
#     by EXPLAIN (ANALYZE, TIMING OFF) execution time, min of 5 (twice, the lesser), serial
#     (max_parallel_workers_per_gather = 0) and with 2 parallel workers (the plan is checked
#     to launch 2), beside `SELECT count(*)` the same way (the scan floor). In the same run
#     the C merge of the same rows (read back from the COPY file), min of 5, once before
#     and once after the SQL timings, the lesser kept: ww_hist_merge() of the unpacked
#     histograms (the reference), ww_hist_merge_packed() and ww_hist_merge_stored() (the
#     aggregate's path) of the packed bytes. The "before" column:
#     the composite ww_hist and its plpgsql ww_merge from `git show 94044df` in another
#     database, the first 10,000 rows loaded by text COPY as dense bigint[].
#  2. Bytes on disk per latency window. A database migrated by the collector
#     (--migrate-only, daily partitions by ww_ensure_partitions), NODES (default 20) nodes
#     x SECONDS (default 3600) of the default simulator in 10 s windows (~21,600 windows)
#     COPYed into latency_windows by ww_copy_window (the collector's encoder); then, after
#     VACUUM ANALYZE, pg_total_relation_size over pg_partition_tree (the partitions that
#     hold rows) / rows, with heap,
#     index and TOAST apart. Beside it the same rows in the v12 layout (composite ww_hist,
#     in the "before" database) and in a table of the same columns and indexes without the
#     four histograms; the histogram payload (packed bytes, octet_length(ww_hist_send()),
#     pg_column_size()); the entropy floor of the bucket counts (per histogram
#     log2 C(m + span - 1, span - 1), m its values in buckets, summed over the four); and
#     The same windows compacted as the tier job compacts them (ww_compact_window_hours:
#     one window block per node-hour, migration 0021), checked to give every window back
#     bit for bit, measured the same way (the block table's heap, TOAST and indexes). And
#     HdrHistogram's compressed form of the same raw values (microseconds, 2 significant
#     digits, encodeIntoCompressedBase64, decoded length) by hdr-histogram-js 3.0.1, which
#     this bench alone installs with npm into WW_BENCH_NPM_DIR (default
#     /tmp/ww-bench-npm); without npm or node that column says "not measured".
# About 3 minutes. Prints the tables; exit 1 when a check fails (a plan not parallel, SQL
# and C merges that disagree).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args pgext 37 "$@"
rows=${2:-100000}
nodes=${3:-20}
seconds=${4:-3600}
old_rows=10000
for v in "$rows" "$nodes" "$seconds"; do
  case "$v" in '' | *[!0-9]*) echo "pgext: ROWS, NODES and SECONDS are whole numbers" >&2; exit 2 ;; esac
done
[ "$rows" -ge "$old_rows" ] || { echo "pgext: ROWS is at least $old_rows" >&2; exit 2; }
# shellcheck disable=SC2154 # build: set by ww_bench_args
collector=$build/collector/waferwatch-collector
helper=$build/bench/bench_pgext
ww_bench_need pgext "$collector" "$helper"
[ -f "$build/pgext/waferwatch.so" ] || { echo "pgext: $build/pgext/waferwatch.so missing (configure with -DWW_PGEXT=ON)" >&2; exit 2; }
"$root/pgext/install.sh" "$build" >/dev/null ||
  { echo "pgext: cannot install the extension (run as root)" >&2; exit 2; }

run=$(ww_bench_workdir pgext)
pgdir=$run/pg
cleanup() { "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
"$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
q() { local db=$1; shift; psql -qXAt -d "$db" -v ON_ERROR_STOP=1 "$@"; }
kv() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; } # kv FILE KEY: a figure of bench_pgext
calc() { awk "BEGIN { printf \"$1\", $2 }"; }          # calc FORMAT EXPR
fail=0

ww_bench_header pgext
echo "== generating (bench_pgext)"
"$helper" merge "$run" "$rows" "$old_rows" 30 >"$run/merge.out"
head -n 1 "$run/merge.out"
"$helper" windows "$run" "$nodes" "$seconds" >"$run/win.out"
head -n 1 "$run/win.out"
for f in merge.out win.out; do
  [ "$(kv "$run/$f" raw_mismatch)" = 0 ] || { echo "pgext: FAIL: raw values disagree with the windows ($f)" >&2; fail=1; }
done

# ---- the databases -------------------------------------------------------------------
q postgres -c "CREATE DATABASE pgx" -c "CREATE DATABASE pgold" -c "CREATE DATABASE lw"
q pgx -c "CREATE EXTENSION waferwatch" \
  -c "CREATE TABLE t (id int, h ww_hist)" -c "CREATE TABLE t_10k (id int, h ww_hist)"
q pgx -c "\\copy t FROM '$run/merge.bin' WITH (FORMAT binary)"
q pgx -c "INSERT INTO t_10k SELECT * FROM t WHERE id <= $old_rows" -c "VACUUM ANALYZE t" \
  -c "VACUUM ANALYZE t_10k"
# The former type and its functions, as they were at 94044df (the type named ww_hist).
git -C "$root" show 94044df:collector/migrations/0012_baseline.sql |
  sed -n '/^CREATE TYPE ww_hist AS (/,/^);/p' >"$run/old_type.sql"
git -C "$root" show 94044df:collector/sql/10_functions_hist.sql >"$run/old_functions.sql"
q pgold -f "$run/old_type.sql" -f "$run/old_functions.sql" -c "CREATE TABLE t_10k (id int, h ww_hist)"
q pgold -c "\\copy t_10k FROM '$run/merge_old.txt'" -c "VACUUM ANALYZE t_10k"

# ---- 1. merge speed ------------------------------------------------------------------
serial="SET max_parallel_workers_per_gather = 0"
parallel="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;
          SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
          SET parallel_leader_participation = on"
# ms DB SETTINGS SQL [WORKERS]: the execution time of SQL (EXPLAIN (ANALYZE, TIMING OFF)),
# min of 5, in ms; with WORKERS, the plan must launch that many workers.
ms() {
  local db=$1 set=$2 sql=$3 workers=${4:-} best="" t plan
  for _ in 1 2 3 4 5; do
    plan=$(q "$db" -c "$set" -c "EXPLAIN (ANALYZE, TIMING OFF) $sql")
    if [ -n "$workers" ] && ! grep -q "Workers Launched: $workers" <<<"$plan"; then
      echo "pgext: FAIL: not $workers parallel workers for $sql on $db:" >&2
      echo "$plan" >&2
      fail=1
    fi
    t=$(sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p' <<<"$plan")
    best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  echo "$best"
}
echo "== merge: EXPLAIN (ANALYZE, TIMING OFF) execution time, min of 5"
"$helper" cmerge "$run" "$old_rows" >"$run/c1.out" # C: before the SQL timings and after
declare -A T
# The extension's figures twice, before and after the composite's (as C's), the lesser kept.
min_t() { # KEY MS
  T[$1]=$(awk -v a="$2" -v b="${T[$1]:-}" 'BEGIN { print (b == "" || a < b) ? a : b }')
}
time_new() {
  for tbl in t_10k t; do
    min_t "new_s_$tbl" "$(ms pgx "$serial" "SELECT ww_merge(h) FROM $tbl")"
    min_t "new_p_$tbl" "$(ms pgx "$parallel" "SELECT ww_merge(h) FROM $tbl" 2)"
    min_t "scan_s_$tbl" "$(ms pgx "$serial" "SELECT count(*) FROM $tbl")"
    min_t "scan_p_$tbl" "$(ms pgx "$parallel" "SELECT count(*) FROM $tbl" 2)"
  done
}
time_new
T[old_s_t_10k]=$(ms pgold "$serial" "SELECT ww_merge(h) FROM t_10k")
T[old_p_t_10k]=$(ms pgold "$parallel" "SELECT ww_merge(h) FROM t_10k" 2)
T[oscan_s_t_10k]=$(ms pgold "$serial" "SELECT count(*) FROM t_10k")
T[oscan_p_t_10k]=$(ms pgold "$parallel" "SELECT count(*) FROM t_10k" 2)
time_new
"$helper" cmerge "$run" "$old_rows" >"$run/c2.out"
# The C figures: the lesser of the two runs (each already the fastest of 5).
awk '$1 in v { if ($2 < v[$1]) v[$1] = $2; next } { v[$1] = $2; k[n++] = $1 }
     END { for (i = 0; i < n; i++) print k[i], v[k[i]] }' "$run/c1.out" "$run/c2.out" >"$run/c.out"

# The same sums both ways: SQL (serial and parallel) and C over the same rows.
for tbl in t_10k t; do
  n=$( [ "$tbl" = t ] && echo "$rows" || echo "$old_rows")
  c=$(kv "$run/c.out" "c_merged_count_$n")
  s=$(q pgx -c "$serial" -c "SELECT ww_hist_count(ww_merge(h)) FROM $tbl")
  p=$(q pgx -c "$parallel" -c "SELECT ww_hist_count(ww_merge(h)) FROM $tbl")
  [ "$(kv "$run/c.out" "c_merged_same_$n")" = 1 ] && [ "$s" = "$c" ] && [ "$p" = "$c" ] ||
    { echo "pgext: FAIL: merged counts differ on $tbl: C $c, SQL serial $s, parallel $p" >&2; fail=1; }
done
o=$(q pgold -c "SELECT (ww_merge(h)).count FROM t_10k")
[ "$o" = "$(kv "$run/c.out" "c_merged_count_$old_rows")" ] ||
  { echo "pgext: FAIL: the composite merge counts $o" >&2; fail=1; }
# Same buckets: the composite merge's dense counts equal the extension's.
e=$(q pgx -c "SELECT ww_hist_offset(m), ww_hist_counts(m) FROM (SELECT ww_merge(h) m FROM t_10k) x" | md5sum)
f=$(q pgold -c "SELECT (m).offset, (m).counts FROM (SELECT ww_merge(h) m FROM t_10k) x" | md5sum)
[ "$e" = "$f" ] || { echo "pgext: FAIL: the composite and extension merges differ in their buckets" >&2; fail=1; }

us() { calc '%.2f' "$1 * 1000 / $2"; } # us MS ROWS: us per row
printf 'TTFT windows of 30 s: %s requests, span %s buckets (%s non-empty), %s B packed, %s B as a dense bigint[]\n' \
  "$(kv "$run/merge.out" requests)" "$(kv "$run/merge.out" span)" "$(kv "$run/merge.out" nonempty)" \
  "$(kv "$run/merge.out" packed)" "$(kv "$run/merge.out" dense_span_bytes)"
printf '%-58s %10s %10s\n' "us per row (SQL: execution time / rows; min of 5)" "10k rows" "$((rows / 1000))k rows"
row() { printf '%-58s %10s %10s\n' "$@"; }
row "composite + plpgsql ww_merge, serial (before, 94044df)" "$(us "${T[old_s_t_10k]}" $old_rows)" "-"
row "composite + plpgsql ww_merge, 2 workers" "$(us "${T[old_p_t_10k]}" $old_rows)" "-"
row "  its scan floor: count(*), serial" "$(us "${T[oscan_s_t_10k]}" $old_rows)" "-"
row "extension ww_merge, serial" "$(us "${T[new_s_t_10k]}" $old_rows)" "$(us "${T[new_s_t]}" "$rows")"
row "extension ww_merge, 2 workers" "$(us "${T[new_p_t_10k]}" $old_rows)" "$(us "${T[new_p_t]}" "$rows")"
row "  its scan floor: count(*), serial" "$(us "${T[scan_s_t_10k]}" $old_rows)" "$(us "${T[scan_s_t]}" "$rows")"
row "  its scan floor: count(*), 2 workers" "$(us "${T[scan_p_t_10k]}" $old_rows)" "$(us "${T[scan_p_t]}" "$rows")"
cu() { calc '%.3f' "$(kv "$run/c.out" "$1")/1000"; }
row "C ww_hist_merge, unpacked (the reference)" "$(cu c_merge_ns_$old_rows)" "$(cu c_merge_ns_"$rows")"
row "C ww_hist_merge_packed, packed bytes" "$(cu c_merge_packed_ns_$old_rows)" "$(cu c_merge_packed_ns_"$rows")"
row "C ww_hist_merge_stored (the aggregate's)" "$(cu c_merge_stored_ns_$old_rows)" "$(cu c_merge_stored_ns_"$rows")"
row "C ww_hist_unpack alone" "$(cu c_unpack_ns_$old_rows)" "$(cu c_unpack_ns_"$rows")"
ratio() { calc '%.1f' "($1 * 1000000 / $2) / $(kv "$run/c.out" "$3")"; } # ms rows key
row "SQL serial / C reference (target <= 2)" "$(ratio "${T[new_s_t_10k]}" $old_rows c_merge_ns_$old_rows)" \
  "$(ratio "${T[new_s_t]}" "$rows" c_merge_ns_"$rows")"
row "SQL serial / C merge_packed" "$(ratio "${T[new_s_t_10k]}" $old_rows c_merge_packed_ns_$old_rows)" \
  "$(ratio "${T[new_s_t]}" "$rows" c_merge_packed_ns_"$rows")"
row "SQL serial minus scan floor / C reference" \
  "$(calc '%.1f' "((${T[new_s_t_10k]} - ${T[scan_s_t_10k]}) * 1000000 / $old_rows) / $(kv "$run/c.out" c_merge_ns_$old_rows)")" \
  "$(calc '%.1f' "((${T[new_s_t]} - ${T[scan_s_t]}) * 1000000 / $rows) / $(kv "$run/c.out" c_merge_ns_"$rows")")"
row "before / extension, serial" "$(calc '%.0f' "${T[old_s_t_10k]} / ${T[new_s_t_10k]}")" "-"

# ---- 2. bytes on disk per latency window ---------------------------------------------
echo "== bytes on disk per latency window"
"$collector" --insecure --pg dbname=lw --migrate-only >"$run/migrate.log" 2>&1 ||
  { cat "$run/migrate.log" >&2; echo "pgext: migration failed" >&2; exit 2; }
day=$(q lw -c "SELECT to_char(to_timestamp(1798761600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
cols="time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout, requests_rejected, prompt_tokens, output_tokens"
q lw -c "SELECT ww_ensure_partitions('$day', 1)" >/dev/null
q lw -c "\\copy latency_windows ($cols, queue, ttft, tpot, e2e) FROM '$run/lw.bin' WITH (FORMAT binary)"
# The same columns and indexes without the histograms (v12 DDL, a partition per day).
nohist_ddl() { # TABLE HIST_COLUMNS
  cat <<SQL
CREATE TABLE $1 (time timestamptz NOT NULL, node_id text NOT NULL, model text NOT NULL,
  duration_s double precision NOT NULL, requests_ok bigint NOT NULL,
  requests_error bigint NOT NULL, requests_timeout bigint NOT NULL,
  requests_rejected bigint NOT NULL, prompt_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL, $2 parts integer NOT NULL DEFAULT 1) PARTITION BY RANGE (time);
CREATE UNIQUE INDEX ${1}_key ON $1 (node_id, time, model);
CREATE INDEX ${1}_time_brin ON $1 USING brin (time);
CREATE TABLE ${1}_default PARTITION OF $1 DEFAULT;
CREATE TABLE ${1}_day PARTITION OF $1 FOR VALUES FROM ('$day') TO ('$day'::date + 1);
SQL
}
nohist_ddl lw_nohist "" | q lw
q lw -c "INSERT INTO lw_nohist SELECT $cols, parts FROM latency_windows"
nohist_ddl latency_windows "queue ww_hist NOT NULL, ttft ww_hist NOT NULL, tpot ww_hist NOT NULL, e2e ww_hist NOT NULL," |
  q pgold
q pgold -c "\\copy latency_windows ($cols, queue, ttft, tpot, e2e) FROM '$run/lw_old.txt'"
# Compacted (migration 0021): the tier job's own function writes the blocks of every
# node-hour, the tier state set so that the whole day counts as compacted and not emptied.
q lw -c "UPDATE ww_tier_state SET start = '$day', windows_start = '$day',
           windows_dropped_through = '$day', truncated_through = '$day',
           compacted_through = '$day'::timestamptz + interval '1 day', compact_node = NULL,
           hours_done = '$day'::timestamptz + interval '1 day',
           minutes_done = '$day'::timestamptz + interval '1 day',
           watermark = '$day'::timestamptz + interval '1 day'" \
  >/dev/null
cstart=$(date +%s.%N)
q lw -c "SELECT ww_compact_window_hours(array_agg(h), array_agg(n))
         FROM (SELECT DISTINCT date_trunc('hour', time, 'UTC') AS h, node_id AS n
               FROM latency_windows) x" >/dev/null
compact_ms=$(awk -v a="$cstart" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
q lw -c "VACUUM ANALYZE latency_windows" -c "VACUUM ANALYZE lw_nohist" \
  -c "VACUUM ANALYZE latency_windows_compact"
# Every window back from the blocks, bit for bit (ww_wblock_windows against the rows).
wcols="node_id, time, model, duration_s, requests_ok, requests_error, requests_timeout,
       requests_rejected, prompt_tokens, output_tokens, parts, ww_hist_send(queue),
       ww_hist_send(ttft), ww_hist_send(tpot), ww_hist_send(e2e)"
wdiff=$(q lw -c "WITH b AS (SELECT c.node_id, d.* FROM latency_windows_compact c
                            CROSS JOIN LATERAL ww_wblock_windows(c.block) d)
  SELECT (SELECT count(*) FROM (SELECT $wcols FROM latency_windows
                                EXCEPT ALL SELECT $wcols FROM b) x)
       + (SELECT count(*) FROM (SELECT $wcols FROM b
                                EXCEPT ALL SELECT $wcols FROM latency_windows) y)")
[ "$wdiff" = 0 ] || { echo "pgext: FAIL: $wdiff windows differ between the blocks and the rows" >&2; fail=1; }
q pgold -c "VACUUM ANALYZE latency_windows"
# sizes DB TABLE: rows total heap index toast (bytes, summed over its partitions that hold
# rows: the migrator's empty daily partitions around today are a fixed cost, not per row)
sizes() {
  q "$1" -F ' ' -c "SELECT (SELECT count(*) FROM $2), sum(pg_total_relation_size(c.oid)),
       sum(pg_relation_size(c.oid)), sum(pg_indexes_size(c.oid)),
       sum(CASE WHEN c.reltoastrelid <> 0 THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)
     FROM pg_partition_tree('$2') p JOIN pg_class c ON c.oid = p.relid
     WHERE p.isleaf AND c.relpages > 0"
}
read -r n_new tot_new heap_new idx_new toast_new <<<"$(sizes lw latency_windows)"
read -r n_nh tot_nh heap_nh idx_nh toast_nh <<<"$(sizes lw lw_nohist)"
read -r n_old tot_old heap_old idx_old toast_old <<<"$(sizes pgold latency_windows)"
read -r _ tot_c heap_c idx_c toast_c <<<"$(sizes lw latency_windows_compact)"
read -r n_c blk_c <<<"$(q lw -F ' ' -c "SELECT sum(windows), round(sum(octet_length(block))::numeric / sum(windows), 1) FROM latency_windows_compact")"
windows=$(kv "$run/win.out" windows)
[ "$n_new" = "$windows" ] && [ "$n_old" = "$windows" ] && [ "$n_nh" = "$windows" ] &&
  [ "$n_c" = "$windows" ] ||
  { echo "pgext: FAIL: rows $n_new / $n_old / $n_nh, $n_c in blocks, $windows windows" >&2; fail=1; }
read -r send_b col_b row_b <<<"$(q lw -F ' ' -c "SELECT
    round(avg(octet_length(ww_hist_send(queue)) + octet_length(ww_hist_send(ttft))
            + octet_length(ww_hist_send(tpot)) + octet_length(ww_hist_send(e2e))), 1),
    round(avg(pg_column_size(queue) + pg_column_size(ttft) + pg_column_size(tpot)
            + pg_column_size(e2e)), 1),
    round(avg(pg_column_size(w.*)), 1) FROM latency_windows w")"
read -r ocol_b orow_b <<<"$(q pgold -F ' ' -c "SELECT
    round(avg(pg_column_size(queue) + pg_column_size(ttft) + pg_column_size(tpot)
            + pg_column_size(e2e)), 1),
    round(avg(pg_column_size(w.*)), 1) FROM latency_windows w")"
read -r nhrow_b <<<"$(q lw -c "SELECT round(avg(pg_column_size(w.*)), 1) FROM lw_nohist w")"
percol=$(q lw -F ' ' -c "SELECT round(avg(octet_length(ww_hist_send(queue))), 1),
    round(avg(octet_length(ww_hist_send(ttft))), 1), round(avg(octet_length(ww_hist_send(tpot))), 1),
    round(avg(octet_length(ww_hist_send(e2e))), 1) FROM latency_windows")

# HdrHistogram, 2 significant digits, microseconds: hdr-histogram-js (bench only).
hdr="not measured"
npmdir=${WW_BENCH_NPM_DIR:-/tmp/ww-bench-npm}
if command -v node >/dev/null && command -v npm >/dev/null &&
  { [ -d "$npmdir/node_modules/hdr-histogram-js" ] ||
    { mkdir -p "$npmdir" && timeout 120 npm install --prefix "$npmdir" --no-audit --no-fund \
      hdr-histogram-js@3.0.1 >"$run/npm.log" 2>&1; }; }; then
  cat >"$run/hdr.js" <<'JS'
const hdr = require('hdr-histogram-js');
const lines = require('fs').readFileSync(process.argv[2], 'utf8').split('\n');
const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 4096e6,
                      numberOfSignificantValueDigits: 2 });
let bytes = 0, n = 0;
for (const line of lines) {
  if (line === '' && n === lines.length - 1) break;
  h.reset();
  if (line !== '') for (const v of line.split(' ')) h.recordValue(Math.min(Number(v), 4096e6));
  bytes += Buffer.from(hdr.encodeIntoCompressedBase64(h), 'base64').length;
  n++;
}
console.log((bytes / (n / 4)).toFixed(1));
JS
  hdr=$(NODE_PATH="$npmdir/node_modules" timeout 300 node "$run/hdr.js" "$run/hdr.txt" 2>"$run/hdr.err") ||
    { hdr="not measured"; head -n 3 "$run/hdr.err" >&2; }
fi

per() { calc '%.1f' "$1 / $windows"; }
printf '%s latency windows (%s requests each, %s nodes x %s s of the default simulator, 10 s windows)\n' \
  "$windows" "$(kv "$run/win.out" win_requests)" "$nodes" "$seconds"
printf '%-58s %9s %9s %9s %9s\n' "bytes per window (pg_partition_tree, after VACUUM)" total heap indexes toast
b4() { printf '%-58s %9s %9s %9s %9s\n' "$1" "$(per "$2")" "$(per "$3")" "$(per "$4")" "$(per "$5")"; }
b4 "extension ww_hist (after, 0015-0017)" "$tot_new" "$heap_new" "$idx_new" "$toast_new"
b4 "compacted: window blocks per node-hour (0021)" "$tot_c" "$heap_c" "$idx_c" "$toast_c"
printf '%-58s %9s\n' "  window block bytes (octet_length(block) / windows)" "$blk_c"
printf '%-58s %9s\n' "  compaction (ww_compact_window_hours), us per window" "$(calc '%.1f' "$compact_ms * 1000 / $windows")"
b4 "composite ww_hist (before, v12)" "$tot_old" "$heap_old" "$idx_old" "$toast_old"
b4 "same rows, no histogram columns" "$tot_nh" "$heap_nh" "$idx_nh" "$toast_nh"
printf '%-58s %9s\n' "  histogram columns on disk (after - no histograms)" "$(calc '%.1f' "($tot_new - $tot_nh) / $windows")"
printf '%-58s %9s\n' "  histogram columns on disk (before - no histograms)" "$(calc '%.1f' "($tot_old - $tot_nh) / $windows")"
printf '%-58s %9s\n' "pg_column_size(row): after / before / no histograms" "$row_b / $orow_b / $nhrow_b"
printf '%-58s %9s\n' "histograms, pg_column_size of the 4: after / before" "$col_b / $ocol_b"
printf '%-58s %9s\n' "histograms, packed bytes (C, ww_hist_pack)" "$(kv "$run/win.out" payload)"
printf '%-58s %9s\n' "histograms, octet_length(ww_hist_send()) (SQL)" "$send_b"
printf '%-58s %9s\n' "  queue / ttft / tpot / e2e" "${percol// / / }"
printf '%-58s %9s\n' "entropy floor of the bucket counts" "$(kv "$run/win.out" floor)"
printf '%-58s %9s\n' "  queue / ttft / tpot / e2e" "$(kv "$run/win.out" floor_queue) / $(kv "$run/win.out" floor_ttft) / $(kv "$run/win.out" floor_tpot) / $(kv "$run/win.out" floor_e2e)"
printf '%-58s %9s\n' "HdrHistogram 2-digit compressed (hdr-histogram-js 3.0.1)" "$hdr"
printf '%-58s %9s\n' "target (issue 17): total per window (as stored after compaction)" "<= 250"
exit "$fail"
