#!/usr/bin/env bash
# The demo command: a small wafer-scale fleet on one machine. Installs what is missing,
# builds, starts a throwaway PostgreSQL, the collector and four agents: three drive 12
# simulated nodes in two capacity phases (one rack with a coolant pump that degrades
# part-way), the fourth records one node as on real hardware, from the request log that
# waferwatch-sim (the simulated inference server as its own process) sends it. Runs for
# --seconds N (default 60), then prints a report read back from
# PostgreSQL. The database stays up for exploring with psql; the report says how to stop it.
#
#   deploy/demo.sh [--seconds N] [--dir DIR] [--stop]
#     --seconds N  run time of the fleet (default 60)
#     --dir DIR    where the database, keys, spools and logs go (default /tmp/ww-demo);
#                  its pg/, keys/ and spools are replaced. As root the database runs as
#                  the user postgres, which must be able to reach DIR.
#     --stop       stop the database at the end instead of leaving it running
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
run=/tmp/ww-demo
stop_db=0
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then echo "demo: $1 needs a value (see --help)" >&2; exit 2; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) need "$@"; seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --dir) need "$@"; run=$2; shift 2 ;;
    --dir=*) run=${1#*=}; shift ;;
    --stop) stop_db=1; shift ;;
    # The comment block above, from its second line to the first line that is not a comment.
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "demo: --seconds wants a whole number" >&2; exit 2 ;; esac
[ "$seconds" -ge 5 ] || { echo "demo: --seconds must be at least 5" >&2; exit 2; }
[ -n "$run" ] || { echo "demo: --dir wants a directory" >&2; exit 2; }
# Relative to where the demo was started, not to the repository it changes into.
case "$run" in /*) ;; *) run=$PWD/$run ;; esac
# PostgreSQL listens on a Unix socket in DIR/pg: its path must fit in sun_path (108 bytes).
[ "${#run}" -le 80 ] || { echo "demo: --dir $run is too long for a Unix socket path (80 characters at most)" >&2; exit 2; }
cd "$WW_ROOT"

. deploy/deps.sh
ww_install_deps
echo "== building"
ww_build build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo
bin=build-demo

# The extension (pgext/: the ww_hist type, its functions and the ww_merge aggregate) into
# the system's PostgreSQL, before the collector's first migration runs CREATE EXTENSION
# waferwatch: the throwaway server below runs the system's binaries, which load extensions
# only from their own directories (pgext/install.sh says how and why).
echo "== installing the PostgreSQL extension"
pgext/install.sh "$bin" | sed 's/^/   /' || { echo "demo: run the demo as root, or install the extension as above" >&2; exit 1; }

pgdir=$run/pg
mkdir -p "$run"
tests/pg_throwaway.sh stop "$pgdir" >/dev/null 2>&1 || true
tests/pg_throwaway.sh start "$pgdir"
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE waferwatch" >/dev/null

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$stop_db" = 1 ]; then tests/pg_throwaway.sh stop "$pgdir"; fi
}
trap cleanup EXIT

# CURVE keys: one for the collector, one per agent, each agent enrolled in the allowlist
# with its id and the nodes it may write.
echo "== generating CURVE keys"
keys=$run/keys
rm -rf "$keys"; mkdir -m 700 "$keys"
"$bin/cli/waferwatch" keygen "$keys/collector" >/dev/null
: >"$keys/allowlist"
enrol() { # agent_id node_pattern
  "$bin/cli/waferwatch" keygen "$keys/$1" >/dev/null
  "$bin/cli/waferwatch" enroll "$keys/$1.pub" "$1" "$2" >>"$keys/allowlist"
}
enrol agent-okc1-r01 'okc1-h1-r01-*'
enrol agent-okc1-r02 'okc1-h1-r02-*'
enrol agent-okc2-r01 'okc2-h1-r01-*'
enrol agent-okc2-r02 'okc2-h1-r02'

echo "== starting the collector"
rm -f "$run/collector.endpoint"
"$bin/collector/waferwatch-collector" --listen 'tcp://127.0.0.1:*' \
  --server-key "$keys/collector.key" --allowlist "$keys/allowlist" \
  --slo "$WW_ROOT/deploy/demo-phases.yaml" \
  --endpoint-file "$run/collector.endpoint" --pg dbname=waferwatch 2>"$run/collector.log" &
collector=$!
pids+=("$collector")
for _ in $(seq 1 300); do [ -s "$run/collector.endpoint" ] && break; sleep 0.1; done
[ -s "$run/collector.endpoint" ] || { cat "$run/collector.log" >&2; echo "demo: the collector did not start" >&2; exit 1; }
endpoint=$(cat "$run/collector.endpoint")
echo "   listening on $endpoint"

# Three racks: two in the 2026 phase (one with a pump that drops to 10% flow after a
# third of the run, on every other node: the wafers throttle, requests queue, the TTFT SLO
# burns and the phase's delivered capacity falls below its contract), one in the 2027
# phase. deploy/demo-phases.yaml holds the phases, with alerting windows compressed.
fault_at=$((seconds / 3))
start_agent() {
  local name=$1; shift
  rm -rf "$run/spool-$name"
  "$bin/agent/waferwatch-agent" --collector "$endpoint" --agent-id "$name" \
    --server-key "$keys/collector.pub" --agent-key "$keys/$name.key" \
    --spool-dir "$run/spool-$name" \
    --run-for "${seconds}s" --sim-nodes 4 "$@" 2>"$run/$name.log" &
  pids+=("$!")
  agent_pids+=("$!")
}
agent_pids=()
echo "== starting 4 agents (12 simulated nodes, 1 node from a request log) for ${seconds}s"
start_agent agent-okc1-r01 --node-id okc1-h1-r01 --site okc1 --hall hall-1 --rack r01 \
  --phase phase-2026a --sim-seed 101
WW_AGENT_SIM_PUMP_FAULT_START=$fault_at WW_AGENT_SIM_PUMP_FAULT_FLOW_FACTOR=0.1 \
WW_AGENT_SIM_PUMP_FAULT_EVERY=2 WW_AGENT_SIM_ARRIVAL_RATE=45 WW_AGENT_SIM_TAU=5 \
WW_AGENT_SIM_MIN_THROTTLE=0.1 WW_AGENT_SIM_THROTTLE_SLOPE=0.1 \
start_agent agent-okc1-r02 --node-id okc1-h1-r02 --site okc1 --hall hall-1 --rack r02 \
  --phase phase-2026a --sim-seed 102 --sim-pump-fault
start_agent agent-okc2-r01 --node-id okc2-h1-r01 --site okc2 --hall hall-1 --rack r01 \
  --phase phase-2027b --sim-seed 201
# The fourth rack as a real node runs: the inference server sends its readings and one
# record per request to the agent's request-log socket (agent.source reqlog); here the
# server is waferwatch-sim, the same simulator in its own process.
sock=$run/okc2-h1-r02.sock
rm -f "$sock"
start_agent agent-okc2-r02 --node-id okc2-h1-r02 --site okc2 --hall hall-1 --rack r02 \
  --phase phase-2027b --sim-nodes 1 --source reqlog --source-socket "$sock"
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
"$bin/agent/waferwatch-sim" --node-id okc2-h1-r02 --sim-seed 202 --run-for "${seconds}s" \
  --source-socket "$sock" 2>"$run/waferwatch-sim.log" &
pids+=("$!")

failed=0
for p in "${agent_pids[@]}"; do wait "$p" || failed=1; done
sleep 3 # one more SLO evaluation over the last data
kill -TERM "$collector"; wait "$collector" || true
pids=()
[ "$failed" = 0 ] || echo "demo: an agent ended with unacked batches; see $run/*.log" >&2

q() { psql -X -d waferwatch -v ON_ERROR_STOP=1 -P footer=off "$@"; }
echo
echo "== waferwatch demo report"
echo
echo "-- rows per node (one per node per second)"
q -c "SELECT n.phase, s.node_id, count(*) AS rows, min(s.time)::time(0) AS first,
             max(s.time)::time(0) AS last
      FROM node_samples s JOIN nodes n USING (node_id)
      GROUP BY n.phase, s.node_id ORDER BY n.phase, s.node_id"
echo "-- power per phase (sum over nodes of each node's mean draw) vs rated"
q -c "WITH per_tick AS (SELECT n.phase, s.time, sum(s.power_w) / 1000 AS kw
                       FROM node_samples s JOIN nodes n USING (node_id) GROUP BY n.phase, s.time),
           rated AS (SELECT phase, count(*) AS nodes, sum(rated_kw) AS kw FROM nodes GROUP BY phase)
      SELECT p.phase, r.nodes, round(avg(p.kw)::numeric, 1) AS mean_kw,
             round(max(p.kw)::numeric, 1) AS peak_kw, round(r.kw::numeric, 1) AS rated_kw,
             round((100 * avg(p.kw) / r.kw)::numeric) AS mean_pct_of_rated
      FROM per_tick p JOIN rated r USING (phase)
      GROUP BY p.phase, r.nodes, r.kw ORDER BY p.phase"
echo "-- hottest nodes (wafer hotspot) and time throttled"
q -c "SELECT s.node_id, n.phase, round(max(s.wafer_hotspot_c)::numeric, 1) AS max_hotspot_c,
             round(min(s.flow_lpm)::numeric, 1) AS min_flow_lpm,
             count(*) FILTER (WHERE s.throttled) AS seconds_throttled,
             round(min(s.throttle_factor)::numeric, 2) AS min_throttle
      FROM node_samples s JOIN nodes n USING (node_id)
      GROUP BY s.node_id, n.phase ORDER BY max(s.wafer_hotspot_c) DESC LIMIT 5"
echo "-- latency per phase and model (merged from the per-minute rollups)"
q -c "SELECT phase, model, sum(requests_ok) AS ok,
             sum(requests_error + requests_timeout + requests_rejected) AS failed,
             round((1000 * ww_quantile(ww_merge(ttft), 0.5))::numeric, 1) AS ttft_p50_ms,
             round((1000 * ww_quantile(ww_merge(ttft), 0.99))::numeric, 1) AS ttft_p99_ms,
             round((1000 * ww_quantile(ww_merge(tpot), 0.5))::numeric, 3) AS tpot_p50_ms,
             round((1000 * ww_quantile(ww_merge(tpot), 0.99))::numeric, 3) AS tpot_p99_ms,
             round((ww_quantile(ww_merge(e2e), 0.99))::numeric, 2) AS e2e_p99_s
      FROM latency_rollup_1m GROUP BY phase, model ORDER BY phase, model"
echo "-- alerts (SLO burn rates, capacity, thermal) raised during the run"
q -c "SELECT phase, alertname, slo, severity, state, started_at::time(0) AS started,
             resolved_at::time(0) AS resolved, left(summary, 110) AS why
      FROM alerts ORDER BY started_at"
echo "-- waferwatch slo (the SLO report an SRE runs; exit 1 while a page fires)"
"$bin/cli/waferwatch" slo --pg dbname=waferwatch || true
echo
echo "-- ingest"
q -c "SELECT (SELECT count(*) FROM node_samples) AS rows,
             (SELECT count(*) FROM latency_windows) AS latency_windows,
             (SELECT count(*) FROM nodes) AS nodes,
             (SELECT count(*) FROM streams) AS streams,
             (SELECT count(*) FROM ingest_rejects) AS rejected_messages"
echo "Logs: $run/*.log"
if [ "$stop_db" = 1 ]; then
  echo "The database was stopped (--stop)."
else
  echo "Explore:  psql -h $pgdir -U postgres waferwatch"
  echo "Stop it:  $WW_ROOT/tests/pg_throwaway.sh stop $pgdir"
fi
exit "$failed"
