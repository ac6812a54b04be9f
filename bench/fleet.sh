#!/usr/bin/env bash
# bench/fleet.sh [BUILD_DIR]: the whole fleet through one collector, beside the physical
# limit of the same machine, measured in one run (issue 8).
#
#   1. e2e: the fleet agents spool BACKLOG seconds of the whole fleet while the collector
#      is stopped (SIGSTOP), then the collector is let go and the time to drain it all is
#      the collector's end-to-end rate: agents -> CURVE ZeroMQ -> decode and validate ->
#      binary COPY + rollups -> COMMIT -> Ack.
#   2. ceiling: the same rows (node_samples and latency_windows, read back from the
#      database) loaded with COPY ... FROM STDIN (FORMAT binary) from a file by psql into
#      a fresh database with the same tables and indexes, in one transaction.
#      Both twice: drain 1 then a ceiling; a ceiling, drain 2, a ceiling (this machine's
#      speed drifts within minutes: each drain is compared with the ceilings beside it).
#   3. sustained: a fresh database, the fleet live at 1 Hz for SECONDS (>= 300): the
#      committed rate per minute, the first minute beside the last, the sample-to-commit
#      delay (p50/p99 from the collector), and the CPU of every process involved. The
#      collector also evaluates the SLOs, capacity, power and thermal rules of the three
#      phases of deploy/phases.example.yaml every 30 s (the agents' nodes split across
#      them), as a production collector does; the evaluations' count and mean time are
#      reported (WW_FLEET_SLO=0 leaves the evaluator out). After the warm-up, the WAL
#      written and the database's growth per sample committed (what a standby or a WAL
#      archive carries), projected to 32,600 nodes.
#
# The fleet: AGENTS agent processes, each driving NODES/AGENTS simulated nodes with the
# real agent code path (simulator, latency histograms, fsync'd spool, protocol, CURVE).
# Every process shares this machine: the agents, the collector and PostgreSQL (durable:
# fsync and synchronous_commit on).
#
#   WW_FLEET_NODES=32600 WW_FLEET_AGENTS=8 WW_FLEET_SECONDS=300 WW_FLEET_BACKLOG=60
#   WW_FLEET_RATE=1 (requests/s per node)  bench/fleet.sh build
# WW_FLEET_SECONDS=0 stops after 1 and 2; WW_FLEET_PERF=FILE records the drain with
# `perf record -a -g` into FILE (every process on the machine).
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$WW_ROOT"
. bench/lib.sh
. deploy/deps.sh
ww_install_deps
build=${1:-build}
case "$build" in /*) ;; *) build="$WW_ROOT/$build" ;; esac
if [ ! -x "$build/collector/waferwatch-collector" ]; then
  ww_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
bin=$build
nodes=${WW_FLEET_NODES:-32600}
agents=${WW_FLEET_AGENTS:-8}
seconds=${WW_FLEET_SECONDS:-300}
backlog=${WW_FLEET_BACKLOG:-60}
rate=${WW_FLEET_RATE:-1}
per=$(((nodes + agents - 1) / agents))
# The phases of deploy/phases.example.yaml: agent a's nodes belong to phases[a % 3].
phases=(phase-2026a phase-2027a phase-2028a)
nodes=$((per * agents))

work=$(ww_bench_workdir fleet)
pgdir=$work/pg
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  tests/pg_throwaway.sh stop "$pgdir" >/dev/null 2>&1 || true
  [ "${WW_FLEET_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
# A durable server (fsync, synchronous_commit, full_page_writes on) sized for a write-heavy
# load as an SRE would: a larger WAL budget and a longer checkpoint interval, so that
# checkpoints (and the full-page images after them) do not come every few seconds, and
# compressed WAL. WW_FLEET_PG_CONF replaces these lines.
pg_conf=${WW_FLEET_PG_CONF-"shared_buffers = 1GB
max_wal_size = 16GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = lz4
wal_buffers = 64MB"}
WW_PG_CONF=$pg_conf tests/pg_throwaway.sh start-durable "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE e2e" -c "CREATE DATABASE e2e2" -c "CREATE DATABASE sustained"

keys=$work/keys
ww_bench_keys "$bin/cli/waferwatch" "$keys"
for ((a = 0; a < agents; a++)); do
  ww_bench_enrol "$bin/cli/waferwatch" "$keys" "fleet-$a" "f$a-*"
done

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
true_that() { awk "BEGIN { exit !($1) }"; }
# CPU seconds (user + system) of a process and of its threads.
cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy() { awk '$1 == "cpu" {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; } # all CPUs
pg_cpu() { # the cluster's postmaster and its children (backends, walwriter, checkpointer)
  local pm t=0 p
  pm=$(head -1 "$pgdir/data/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do
    t=$(awk -v t="$t" '{printf "%.2f", t + ($14 + $15) / 100}' "/proc/$p/stat" 2>/dev/null || echo "$t")
  done
  echo "$t"
}
# Rows committed so far, from the collector's /metrics.
metric() {
  local port=$1 name=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port" || { echo 0; return; }
  printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
  awk -v n="$name" '$1 == n {print $2}' <&3
  exec 3<&- 3>&-
}

# The cumulative buckets of the collector's sample-to-commit histogram: "le count" lines.
delay_buckets() {
  local port=$1
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
  printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
  sed -n 's/^waferwatch_collector_sample_to_commit_seconds_bucket{le="\([^"]*\)"} \([0-9.e+]*\).*/\1 \2/p' <&3
  exec 3<&- 3>&-
}
# Quantile Q of the batches observed between two bucket snapshots, interpolated inside
# its bucket as Prometheus' histogram_quantile does; in milliseconds.
delay_quantile() { # Q FROM_FILE TO_FILE
  paste "$2" "$3" | awk -v q="$1" '
    { le[NR] = $1; c[NR] = $4 - $2 }
    END {
      n = c[NR]; if (n <= 0) { print "nan"; exit }
      want = q * n; lo = 0; prev = 0
      for (i = 1; i <= NR; i++) {
        if (c[i] >= want) {
          if (le[i] == "+Inf") { printf "%.0f", lo * 1000; exit }
          f = (c[i] - prev) > 0 ? (want - prev) / (c[i] - prev) : 1
          printf "%.0f", (lo + (le[i] - lo) * f) * 1000; exit
        }
        prev = c[i]; lo = le[i]
      }
    }'
}

collector() { # DB LOG [ARGS...]: starts a collector, sets $cpid, $cep, $mport
  local db=$1 log=$2
  shift 2
  rm -f "$work/ep" "$work/$log"
  "$bin/collector/waferwatch-collector" --listen 'tcp://127.0.0.1:*' --endpoint-file "$work/ep" \
    --server-key "$keys/collector.key" --allowlist "$keys/allowlist" --pg "dbname=$db" \
    --metrics-listen 127.0.0.1:0 "$@" >"$work/$log" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  for _ in $(seq 300); do [ -s "$work/ep" ] && break; sleep 0.1; done
  [ -s "$work/ep" ] || { cat "$work/$log" >&2; echo "fleet: the collector did not start" >&2; exit 1; }
  cep=$(cat "$work/ep")
  mport=$(sed -n 's/.*metrics: listening addr=[^ ]* port=\([0-9]*\).*/\1/p' "$work/$log" | head -1)
}

agents_start() { # TAG RUN_FOR DRAIN: starts the fleet, sets ${apids[@]}
  apids=()
  for ((a = 0; a < agents; a++)); do
    WW_AGENT_SIM_ARRIVAL_RATE=$rate "$bin/agent/waferwatch-agent" --agent-id "fleet-$a" \
      --node-id "f$a" --phase "${phases[$((a % 3))]}" --sim-nodes "$per" --sim-seed $((a + 1)) --collector "$cep" \
      --server-key "$keys/collector.pub" --agent-key "$keys/fleet-$a.key" \
      --spool-dir "$work/spool-$1-$a" --run-for "$2" --drain-timeout "$3" \
      >"$work/agent-$1-$a.log" 2>&1 &
    apids+=($!)
    pids+=($!)
  done
}

echo "waferwatch fleet bench: $nodes nodes ($agents agents x $per), 1 Hz, $rate requests/s per" \
  "node, latency windows of 10 s; $(nproc) cores shared by all; PostgreSQL durable:" \
  "$(echo "$pg_conf" | paste -sd, -)"

# 1. e2e: a backlog drained at the collector's full rate. Sets $e2e_rate, $e2e_s, $rows,
# $wins and the drain's CPU figures.
drain() { # DB
  local db=$1 a t0 t1
  collector "$db" "collector-$db.log"
  kill -STOP "$cpid"
  agents_start "$db" "${backlog}s" 900s
  sleep $((backlog + 2))
  while grep -L "stopping (run_for" "$work"/agent-"$db"-*.log | grep -q .; do sleep 0.2; done
  [ "$db" = e2e ] || ceiling "before-$db" # just before the drain, on an idle machine
  d_cpu0=$(cpu_of "$cpid"); d_pg0=$(pg_cpu); d_m0=$(busy)
  [ -z "${WW_FLEET_PERF:-}" ] || { perf record -a -g -o "$WW_FLEET_PERF-$db" 2>/dev/null & perf_pid=$!; }
  t0=$(now)
  kill -CONT "$cpid"
  for a in "${apids[@]}"; do wait "$a" || { echo "fleet: an agent did not drain" >&2; exit 1; }; done
  t1=$(now)
  d_m=$(calc "$(busy) - $d_m0")
  [ -z "${WW_FLEET_PERF:-}" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  d_cpu=$(calc "$(cpu_of "$cpid") - $d_cpu0"); d_pg=$(calc "$(pg_cpu) - $d_pg0")
  rows=$(psql -qAtX -d "$db" -c "SELECT count(*) FROM node_samples")
  wins=$(psql -qAtX -d "$db" -c "SELECT count(*) FROM latency_windows")
  # How much of the backlog arrived behind the tier watermark (recorded for a rebuild).
  e2e_late=$(metric "$mport" waferwatch_collector_tier_late_buckets_recorded_total)
  e2e_rebuilt=$(metric "$mport" waferwatch_collector_tier_late_buckets_rebuilt_total)
  kill -TERM "$cpid"; wait "$cpid" || true
  e2e_s=$(calc "$t1 - $t0")
  e2e_rate=$(calc "$rows / $e2e_s")
  [ "$rows" -ge "$((backlog * nodes))" ] || { echo "fleet: $rows rows stored, $((backlog * nodes)) expected" >&2; exit 1; }
}

# 2. ceiling: the same rows (the first drain's, exported once) by psql's binary COPY into
# a fresh database with the same tables and indexes. Sets $ceil_rate.
ceiling() { # DB
  local db=$1 t0 t1
  psql -qX -d postgres -c "CREATE DATABASE \"$db\""
  "$bin/collector/waferwatch-collector" --pg "dbname=$db" --migrate-only >"$work/migrate.log" 2>&1
  t0=$(now)
  psql -qAtX -d "$db" -v ON_ERROR_STOP=1 -c "BEGIN" \
    -c "\\copy node_samples FROM '$work/samples.bin' WITH (FORMAT binary)" \
    -c "\\copy latency_windows FROM '$work/windows.bin' WITH (FORMAT binary)" -c "COMMIT"
  t1=$(now)
  ceil_rate=$(calc "$ceil_rows / ($t1 - $t0)")
  psql -qX -d postgres -c "DROP DATABASE \"$db\""
}

pct() { calc "100 * $1 / $2"; }
# The machine's speed drifts by tens of percent within minutes (a shared host), so one
# drain beside one ceiling minutes later can say 55% or 76% of the same code. The second
# drain is bracketed: a ceiling just before it and one just after, averaged.
drain e2e
ceil_rows=$rows
psql -qAtX -d e2e -c "\\copy (SELECT * FROM node_samples) TO '$work/samples.bin' WITH (FORMAT binary)"
psql -qAtX -d e2e -c "\\copy (SELECT * FROM latency_windows) TO '$work/windows.bin' WITH (FORMAT binary)"
bytes=$(stat -c %s "$work/samples.bin" "$work/windows.bin" | awk '{t += $1} END {printf "%.0f", t}')
ceiling after-e2e
r1=$e2e_rate c1=$ceil_rate
drain e2e2
c2=$ceil_rate
ceiling after-e2e2
c3=$ceil_rate r2=$e2e_rate
ceil_mean=$(calc "($c2 + $c3) / 2")
printf '\n%-58s %14s\n' "figure" "value"
printf '%-58s %14s\n' "drain 1: collector, ceiling after it, node-samples/s" \
  "$(printf '%.0f, %.0f' "$r1" "$c1")"
printf '%-58s %14s\n' "drain 2: ceiling before, collector, ceiling after" \
  "$(printf '%.0f, %.0f, %.0f' "$c2" "$r2" "$c3")"
printf '%-58s %13.0f%%\n' "  drain 1: collector / ceiling" "$(pct "$r1" "$c1")"
printf '%-58s %13.0f%%\n' "  drain 2: collector / mean of the ceilings around it" \
  "$(pct "$r2" "$ceil_mean")"
printf '%-58s %13.0f%%   (target >= 80%%)\n' "collector / ceiling, mean of the two drains" \
  "$(calc "(100 * $r1 / $c1 + 100 * $r2 / $ceil_mean) / 2")"
printf '%-58s %14s\n' "  rows, latency windows, COPY bytes in a drain of ${backlog} s" "$rows, $wins, $bytes"
printf '%-58s %14s\n' "  late buckets recorded / rebuilt during drain 2" "${e2e_late:-0} / ${e2e_rebuilt:-0}"
printf '%-58s %14s\n' "  CPU of drain 2: collector / PostgreSQL / the rest, s" \
  "$(printf '%.1f / %.1f / %.1f' "$d_cpu" "$d_pg" "$(calc "$d_m - $d_cpu - $d_pg")")"
printf '%-58s %13.0f%%\n' "  the machine busy during drain 2, share of $(nproc) cores" \
  "$(pct "$d_m" "($e2e_s * $(nproc))")"
if [ "$seconds" = 0 ]; then
  "$bin/bench/bench_wire" 4075 20 | sed 's/^/wire: /'
  exit 0
fi

# 3. sustained: the live fleet at 1 Hz, the SLO evaluator on (WW_FLEET_SECONDS=0: not run).
slo_args=()
if [ "${WW_FLEET_SLO:-1}" = 1 ]; then
  # The example's phases and SLOs, alerts to PostgreSQL only (no Alertmanager here).
  sed 's|^  url: .*|  url: ""|' deploy/phases.example.yaml >"$work/phases.yaml"
  slo_args=(--slo "$work/phases.yaml")
fi
collector sustained collector-sustained.log "${slo_args[@]}"
c_cpu0=$(cpu_of "$cpid"); pg0=$(pg_cpu)
agents_start live 0 60s
ts=() rs=()
start=$(now)
end=$(calc "$start + $seconds + 30")
while true_that "$(now) < $end"; do
  sleep 5
  ts+=("$(now)")
  rs+=("$(metric "$mport" waferwatch_collector_rows_written_total)")
  if [ ! -s "$work/delay0" ] && true_that "${ts[-1]} - $start >= 30"; then
    delay_buckets "$mport" >"$work/delay0"
    # WAL and storage from here on, beside the rows committed meanwhile (issue 20: what a
    # standby or a WAL archive must carry, per sample).
    wal0=$(psql -qAtX -d sustained -c "SELECT pg_current_wal_insert_lsn()")
    size0=$(psql -qAtX -d sustained -c "SELECT pg_database_size('sustained')")
    wrows0=$(metric "$mport" waferwatch_collector_rows_written_total)
  fi
done
delay_buckets "$mport" >"$work/delay1"
wal1=$(psql -qAtX -d sustained -c "SELECT pg_current_wal_insert_lsn()")
size1=$(psql -qAtX -d sustained -c "SELECT pg_database_size('sustained')")
wrows1=$(metric "$mport" waferwatch_collector_rows_written_total)
wal_bytes=$(psql -qAtX -d postgres -c "SELECT pg_wal_lsn_diff('$wal1', '$wal0')")
w50=$(delay_quantile 0.50 "$work/delay0" "$work/delay1")
w99=$(delay_quantile 0.99 "$work/delay0" "$work/delay1")
a_cpu=0
for a in "${apids[@]}"; do a_cpu=$(calc "$a_cpu + $(cpu_of "$a")"); done
c_cpu=$(calc "$(cpu_of "$cpid") - $c_cpu0"); pg1=$(pg_cpu)
evals=$(metric "$mport" waferwatch_collector_slo_evaluation_duration_seconds_count)
eval_s=$(metric "$mport" waferwatch_collector_slo_evaluation_duration_seconds_sum)
for a in "${apids[@]}"; do kill -TERM "$a"; done
for a in "${apids[@]}"; do wait "$a" || true; done
kill -TERM "$cpid"; wait "$cpid" || true
stop=$(grep "stopping:" "$work/collector-sustained.log" | tail -1)
p50=$(sed -n 's/.*delay_p50_ms=\([0-9.]*\).*/\1/p' <<<"$stop")
p99=$(sed -n 's/.*delay_p99_ms=\([0-9.]*\).*/\1/p' <<<"$stop")
# Committed rows/s over the first and the last whole minute after a 30 s warm-up.
rate_between() { # FROM_S TO_S (seconds after start)
  local i r0= t0= r1= t1=
  for i in "${!ts[@]}"; do
    local el; el=$(calc "${ts[$i]} - $start")
    if [ -z "$r0" ] && true_that "$el >= $1"; then r0=${rs[$i]}; t0=${ts[$i]}; fi
    if true_that "$el <= $2"; then r1=${rs[$i]}; t1=${ts[$i]}; fi
  done
  calc "($r1 - $r0) / ($t1 - $t0)"
}
first=$(rate_between 30 90)
last=$(rate_between $((seconds - 30)) $((seconds + 30)))
live_rows=$(psql -qAtX -d sustained -c "SELECT count(*) FROM node_samples")
wall=$(calc "${ts[-1]} - $start")
lost=$(psql -qAtX -d sustained -c "SELECT coalesce(sum(lost_batches), 0) FROM streams")

printf '%-58s %14.0f\n' "sustained $nodes nodes x 1 Hz: first minute, samples/s" "$first"
printf '%-58s %14.0f\n' "  last minute, samples/s" "$last"
printf '%-58s %13.0f%%   (target ~100%%)\n' "  last / first minute" "$(pct "$last" "$first")"
printf '%-58s %14s\n' "  sample-to-commit p50 / p99 after the 30 s warm-up, ms" "$w50 / $w99   (target p99 < 2000)"
printf '%-58s %14s\n' "  sample-to-commit p50 / p99 of the whole run, ms" "$p50 / $p99"
printf '%-58s %14s\n' "  rows stored; stream holes (lost batches)" "$live_rows; $lost"
printf '%-58s %14s\n' "  CPU over ${wall%.*} s: agents / collector / PostgreSQL, s" \
  "$(printf '%.0f / %.0f / %.0f' "$a_cpu" "$c_cpu" "$(calc "$pg1 - $pg0")")"
printf '%-58s %13.0f%%\n' "  collector + PostgreSQL, share of the $(nproc) cores" \
  "$(pct "($c_cpu + $pg1 - $pg0)" "($wall * $(nproc))")"
wrows=$(calc "${wrows1:-0} - ${wrows0:-0}")
if true_that "$wrows > 0"; then
  wal_ps=$(calc "$wal_bytes / $wrows")
  printf '%-58s %14.0f\n' "  WAL bytes per sample (its windows, rollups, streams too)" "$wal_ps"
  printf '%-58s %14.0f\n' "  database growth per sample, same interval, bytes" \
    "$(calc "($size1 - $size0) / $wrows")"
  printf '%-58s %14s\n' "  WAL of 32,600 nodes x 1 Hz at that rate: MB/s; TB/day" \
    "$(printf '%.2f; %.2f' "$(calc "$wal_ps * 32600 / 1e6")" "$(calc "$wal_ps * 32600 * 86400 / 1e12")")"
fi
if [ "${#slo_args[@]}" -gt 0 ]; then
  printf '%-58s %14s\n' "  SLO evaluations of the 3 phases (every 30 s); mean, s" \
    "${evals:-0}; $(calc "${eval_s:-0} / (${evals:-0} > 0 ? ${evals:-0} : 1)")"
fi
echo
"$bin/bench/bench_wire" 4075 20 | sed 's/^/wire: /'
