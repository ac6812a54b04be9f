#!/usr/bin/env bash
# footprint.sh BUILD_DIR [SECONDS]: the agent's footprint beside two references, one run.
#
# Starts a throwaway PostgreSQL (tests/pg_throwaway.sh) and a CURVE collector, then runs
# side by side for SECONDS (default 120, at least 60) after a warm-up:
#   floor       bench/ww_floor: the agent's libraries, one CURVE DEALER connected, nothing else
#   agent       waferwatch-agent at 1 Hz recording ~5,000 requests/s of one node from the
#               request log (agent.source reqlog: CURVE, spool with the default fsync policy),
#               as on a real node, where the inference server runs the requests
#   server      waferwatch-sim: the simulated wafer-scale system as its own process, sending
#               that node's readings and records to the agent's socket (the inference
#               server's share, not the agent's)
#   embedded    the same agent with the simulator inside it (agent.source sim, the default):
#               agent and simulated server in one process
#   agent-idle  the agent with the embedded simulator and no requests (sim.arrival_rate 0):
#               its fixed cost per tick
#   collectd    collectd -f with the cpu, memory, load and interface plugins at Interval 1 and
#               a csv writer (Debian collectd-core; installed with apt-get when root and missing)
# and samples every second /proc/PID/status (VmHWM, VmRSS) and /proc/PID/smaps_rollup
# (Private_Dirty) of each, with utime+stime from /proc/PID/stat at the start and the end of
# the measured span. Prints one table (peak RSS = VmHWM at the end or the largest VmRSS
# sample; private dirty = its largest sample after the warm-up; CPU seconds per hour and
# % of one core over the span; MB = 2^20 bytes), the targets of issue 8 with PASS/FAIL, the
# request rate the agent actually recorded (read back from PostgreSQL; under 95% of the
# offered rate fails the run) and the bench_hist / bench_wire figures.
#
# Environment: WW_FOOT_WARMUP (seconds, default 10); WW_FOOT_KEEP=1 keeps the run directory
# (logs, spool, collectd csv); WW_AGENT_* variables override the agent's settings below.
# Exit status: 0 when every target passes, 1 when one fails, 2 on a setup error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args footprint 22 "$@"
seconds=${2:-120}
warmup=${WW_FOOT_WARMUP:-10}
case "$seconds$warmup" in *[!0-9]*) echo "footprint: SECONDS and WW_FOOT_WARMUP are whole numbers" >&2; exit 2 ;; esac
[ "$seconds" -ge 60 ] || { echo "footprint: SECONDS must be at least 60" >&2; exit 2; }

agent_bin=$build/agent/waferwatch-agent
sim_bin=$build/agent/waferwatch-sim
collector_bin=$build/collector/waferwatch-collector
cli_bin=$build/cli/waferwatch
floor_bin=$build/bench/ww_floor
for b in "$agent_bin" "$sim_bin" "$collector_bin" "$cli_bin" "$floor_bin" "$build/bench/bench_hist" \
         "$build/bench/bench_wire"; do
  [ -x "$b" ] || { echo "footprint: $b is missing: build $build first" >&2; exit 2; }
done
# The floor must load what the agent loads: compare the shared libraries they need.
needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' '; }
if command -v readelf >/dev/null && [ "$(needed "$agent_bin")" != "$(needed "$floor_bin")" ]; then
  echo "footprint: warning: the floor does not load the agent's libraries:" >&2
  echo "  agent: $(needed "$agent_bin")" >&2
  echo "  floor: $(needed "$floor_bin")" >&2
fi
# A binary linked moments ago sits in dirty page-cache pages until writeback (up to ~30 s),
# and smaps counts a mapped dirty file page as the process's Private_Dirty: flush them first,
# or a fresh build reads ~0.1 MB heavier than it is.
sync "$agent_bin" "$floor_bin" 2>/dev/null || sync
collectd_bin=$(command -v collectd || true)
[ -n "$collectd_bin" ] || { [ -x /usr/sbin/collectd ] && collectd_bin=/usr/sbin/collectd; } || true
if [ -z "$collectd_bin" ] && [ "$(id -u)" = 0 ]; then
  echo "footprint: installing collectd-core (the collectd reference)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q collectd-core >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q collectd-core >/dev/null; }
  collectd_bin=$(command -v collectd || echo /usr/sbin/collectd)
fi
[ -x "${collectd_bin:-/nonexistent}" ] || { echo "footprint: collectd is missing (apt-get install collectd-core)" >&2; exit 2; }

run=$(ww_bench_workdir footprint)
pgdir=$run/pg
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true
  if [ "${WW_FOOT_KEEP:-0}" = 1 ]; then echo "footprint: run directory kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

"$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE waferwatch" >/dev/null

# CURVE keys: the collector's, the agent's and the floor's, both enrolled.
keys=$run/keys
mkdir -m 700 "$keys"
"$cli_bin" keygen "$keys/collector" >/dev/null
: >"$keys/allowlist"
enrol() { # key agent_id node_pattern
  "$cli_bin" keygen "$keys/$1" >/dev/null
  echo "$(sed -n 's/^public = //p' "$keys/$1.pub") $2 $3" >>"$keys/allowlist"
}
enrol agent ww-foot-agent 'foot-node*'
enrol idle ww-foot-idle 'foot-idle*'
enrol emb ww-foot-emb 'foot-emb*'
enrol floor ww-foot-floor 'foot-floor-none'

"$collector_bin" --listen 'tcp://127.0.0.1:*' --endpoint-file "$run/collector.endpoint" \
  --server-key "$keys/collector.key" --allowlist "$keys/allowlist" --pg dbname=waferwatch \
  2>"$run/collector.log" &
pids+=("$!")
for _ in $(seq 1 300); do [ -s "$run/collector.endpoint" ] && break; sleep 0.1; done
[ -s "$run/collector.endpoint" ] || { cat "$run/collector.log" >&2; echo "footprint: the collector did not start" >&2; exit 2; }
endpoint=$(cat "$run/collector.endpoint")

# The agent: one node at 1 Hz, 5,000 arrivals/s with no diurnal swing and no bursts, and a
# node large enough to serve them (else nearly all would be rejected at admission and
# never reach the latency histograms): 8,192 concurrent requests, no batch contention.
export WW_AGENT_SIM_ARRIVAL_RATE=${WW_AGENT_SIM_ARRIVAL_RATE:-5000}
export WW_AGENT_SIM_DIURNAL_AMPLITUDE=${WW_AGENT_SIM_DIURNAL_AMPLITUDE:-0}
export WW_AGENT_SIM_BURST_PROB=${WW_AGENT_SIM_BURST_PROB:-0}
export WW_AGENT_SIM_MAX_CONCURRENCY=${WW_AGENT_SIM_MAX_CONCURRENCY:-8192}
export WW_AGENT_SIM_BATCH_SLOWDOWN=${WW_AGENT_SIM_BATCH_SLOWDOWN:-0}
"$agent_bin" --collector "$endpoint" --agent-id ww-foot-agent --node-id foot-node \
  --server-key "$keys/collector.pub" --agent-key "$keys/agent.key" --spool-dir "$run/spool" \
  --interval 1s --source reqlog --source-socket "$run/reqlog.sock" 2>"$run/agent.log" &
agent=$!
pids+=("$agent")
for _ in $(seq 1 100); do [ -S "$run/reqlog.sock" ] && break; sleep 0.1; done
"$sim_bin" --node-id foot-node --interval 1s --source-socket "$run/reqlog.sock" \
  2>"$run/server.log" &
server=$!
pids+=("$server")
"$agent_bin" --collector "$endpoint" --agent-id ww-foot-emb --node-id foot-emb \
  --server-key "$keys/collector.pub" --agent-key "$keys/emb.key" --spool-dir "$run/spool-emb" \
  --interval 1s --sim-nodes 1 2>"$run/embedded.log" &
emb=$!
pids+=("$emb")
WW_AGENT_SIM_ARRIVAL_RATE=0 "$agent_bin" --collector "$endpoint" --agent-id ww-foot-idle \
  --node-id foot-idle --server-key "$keys/collector.pub" --agent-key "$keys/idle.key" \
  --spool-dir "$run/spool-idle" --interval 1s --sim-nodes 1 2>"$run/agent-idle.log" &
idle=$!
pids+=("$idle")

"$floor_bin" "$endpoint" "$keys/collector.pub" "$keys/floor.key" 2>"$run/floor.log" &
floor=$!
pids+=("$floor")

mkdir -p "$run/collectd/csv"
cat >"$run/collectd.conf" <<CONF
Hostname "ww-footprint"
FQDNLookup false
BaseDir "$run/collectd"
PIDFile "$run/collectd/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin interface
LoadPlugin csv
<Plugin csv>
  DataDir "$run/collectd/csv"
  StoreRates true
</Plugin>
CONF
"$collectd_bin" -C "$run/collectd.conf" -f >"$run/collectd.log" 2>&1 &
collectd=$!
pids+=("$collectd")

names=(floor agent server embedded agent-idle collectd)
procs=("$floor" "$agent" "$server" "$emb" "$idle" "$collectd")
np=${#procs[@]}
tck=$(getconf CLK_TCK)

cpu_ticks() { # pid: utime + stime (fields 14 and 15; the name in field 2 may hold spaces)
  local s
  s=$(cat "/proc/$1/stat") || return 1
  s=${s##*) }
  set -- $s
  echo $(( ${12} + ${13} ))
}
status_kb() { # pid field
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
dirty_kb() { # pid
  awk '$1 == "Private_Dirty:" { print $2 }' "/proc/$1/smaps_rollup"
}
alive() {
  for ((i = 0; i < np; i++)); do
    kill -0 "${procs[$i]}" 2>/dev/null || { echo "footprint: ${names[$i]} exited early; see its log:" >&2; cat "$run/${names[$i]}.log" >&2 || true; exit 2; }
  done
}

echo "footprint: warm-up ${warmup}s, then ${seconds}s measured (agent, floor and collectd side by side)"
sleep "$warmup"
alive
declare -a cpu0 cpu1 dirty rss_max
for ((i = 0; i < np; i++)); do cpu0[$i]=$(cpu_ticks "${procs[$i]}"); dirty[$i]=0; rss_max[$i]=0; done
t0=$(date +%s.%N)
pg_t0=$(date -u +'%Y-%m-%d %H:%M:%S')
for _ in $(seq 1 "$seconds"); do
  sleep 1
  alive
  for ((i = 0; i < np; i++)); do
    d=$(dirty_kb "${procs[$i]}"); r=$(status_kb "${procs[$i]}" VmRSS)
    [ "$d" -gt "${dirty[$i]}" ] && dirty[$i]=$d
    [ "$r" -gt "${rss_max[$i]}" ] && rss_max[$i]=$r
  done
done
for ((i = 0; i < np; i++)); do cpu1[$i]=$(cpu_ticks "${procs[$i]}"); hwm[$i]=$(status_kb "${procs[$i]}" VmHWM); done
t1=$(date +%s.%N)
pg_t1=$(date -u +'%Y-%m-%d %H:%M:%S')

# Stop the agents first, so that their last windows are committed and their stats printed.
kill -TERM "$server"
wait "$server" || echo "footprint: waferwatch-sim exited with $?" >&2
kill -TERM "$agent" "$emb" "$idle"
wait "$agent" || echo "footprint: the agent exited with $? (unacked batches at exit)" >&2
wait "$emb" || echo "footprint: the embedded agent exited with $? (unacked batches at exit)" >&2
wait "$idle" || true
kill -TERM "$floor" "$collectd" 2>/dev/null || true
wait "$floor" 2>/dev/null || true
wait "$collectd" 2>/dev/null || true

echo
awk -v t0="$t0" -v t1="$t1" -v tck="$tck" \
    -v names="${names[*]}" -v hwm="${hwm[*]}" -v rss="${rss_max[*]}" -v dirty="${dirty[*]}" \
    -v c0="${cpu0[*]}" -v c1="${cpu1[*]}" -v seconds="$seconds" -v warmup="$warmup" '
BEGIN {
  el = t1 - t0
  split(names, n, " "); split(hwm, h, " "); split(rss, r, " "); split(dirty, d, " ");
  split(c0, a, " "); split(c1, b, " ");
  printf "agent footprint: %d s measured after %d s warm-up, agents at 1 Hz, 1 node each, %s req/s offered\n", seconds, warmup, ENVIRON["WW_AGENT_SIM_ARRIVAL_RATE"]
  printf "%-10s | %11s | %16s | %8s | %7s\n", "process", "peak RSS MB", "private dirty MB", "CPU s/h", "% core"
  printf "%-10s-+-%11s-+-%16s-+-%8s-+-%7s\n", "----------", "-----------", "----------------", "--------", "-------"
  np = split(names, n, " ")
  for (i = 1; i <= np; i++) {
    cpu[i] = (b[i] - a[i]) / tck; sph[i] = cpu[i] / el * 3600; pct[i] = cpu[i] / el * 100
    mb[i] = (h[i] > r[i] ? h[i] : r[i]) / 1024; dmb[i] = d[i] / 1024
    printf "%-10s | %11.2f | %16.2f | %8.1f | %7.3f\n", n[i], mb[i], dmb[i], sph[i], pct[i]
  }
  printf "(peak RSS = VmHWM at the end or the largest VmRSS sample, whichever is larger (the kernel updates VmHWM lazily); private dirty = largest Private_Dirty sample)\n"
  print ""
  fail = 0
  v = mb[2] - mb[1]; ok = v <= 1.5; fail += !ok
  printf "agent peak RSS - floor peak RSS  %6.2f MB   target <= 1.5 MB   %s\n", v, ok ? "PASS" : "FAIL"
  v = dmb[2]; ok = v <= 1.0; fail += !ok
  printf "agent private dirty              %6.2f MB   target <= 1 MB     %s\n", v, ok ? "PASS" : "FAIL"
  v = pct[2]; ok = v < 0.2; fail += !ok
  printf "agent CPU                        %6.3f %%    target < 0.2 %%     %s\n", v, ok ? "PASS" : "FAIL"
  printf "(agent - floor: peak RSS %.2f MB, private dirty %.2f MB; agent CPU %.2f ms per s, of which %.2f ms fixed (agent-idle); agent / collectd: peak RSS x%.2f, private dirty x%.2f, CPU x%.1f)\n", mb[2] - mb[1], dmb[2] - dmb[1], cpu[2] / el * 1000, cpu[5] / el * 1000, mb[2] / mb[6], dmb[2] / dmb[6], (cpu[6] > 0 ? cpu[2] / cpu[6] : 0)
  printf "(the simulated server (server) is the inference system'"'"'s share; embedded: agent and simulated server in one process, %.3f %% of a core, against agent + server %.3f %%)\n", pct[4], pct[2] + pct[3]
  exit fail ? 1 : 0
}' && verdict=0 || verdict=1

# What each agent recorded: every completion record of its node per second (all statuses,
# from the samples' requests_completed) over the measured span, and the share of requests
# that reached the latency histograms (ok or error) from the windows.
recorded() { # label node_id
  echo
  psql -qXAt -d waferwatch -F ' ' -c "
    SELECT round((sum(requests_completed)::numeric / greatest(count(*), 1)), 1), count(*)
    FROM node_samples
    WHERE node_id = '$2' AND time >= '$pg_t0+00' AND time < '$pg_t1+00'" |
    { read -r rate rows; echo "$1 recorded ${rate} requests/s (node_samples, ${rows} ticks in the measured span)"
      # A bench whose agent did not record the offered load measures nothing.
      if ! awk -v r="${rate:-0}" -v o="$WW_AGENT_SIM_ARRIVAL_RATE" 'BEGIN { exit !(r >= 0.95 * o) }'; then
        echo "footprint: FAIL: $1 recorded fewer than 95% of the ${WW_AGENT_SIM_ARRIVAL_RATE} requests/s offered"
        exit 1
      fi; } || return 1
  psql -qXAt -d waferwatch -F ' ' -c "
    SELECT sum(requests_ok), sum(requests_error), sum(requests_timeout), sum(requests_rejected),
           round((sum(requests_ok + requests_error + requests_timeout + requests_rejected)::numeric
                  / greatest(sum(duration_s), 1)::numeric), 1)
    FROM (SELECT time, sum(requests_ok) AS requests_ok, sum(requests_error) AS requests_error,
                 sum(requests_timeout) AS requests_timeout, sum(requests_rejected) AS requests_rejected,
                 max(duration_s) AS duration_s
          FROM latency_windows WHERE node_id = '$2' AND time >= '$pg_t0+00'
            AND time + make_interval(secs => duration_s) <= '$pg_t1+00'
          GROUP BY time) w" |
    { read -r ok err to rej rate; echo "$1 latency windows in the span: ${rate} requests/s; ok ${ok}, error ${err}, timeout ${to}, rejected ${rej}"; }
}
recorded agent foot-node || verdict=1
recorded embedded foot-emb || verdict=1
grep -o 'stats: .*' "$run/agent.log" | sed 's/^/agent /' || echo "footprint: no stats line in the agent log" >&2
grep -o 'stats: .*' "$run/embedded.log" | sed 's/^/embedded /' || true
grep -o 'stats: .*' "$run/agent-idle.log" | sed 's/^/agent-idle /' || true
grep 'request log .*datagrams' "$run/agent.log" | sed 's/^.*request log/agent: request log/' || true
tail -n 1 "$run/server.log" | sed 's/^/server: /' || true

echo
"$build/bench/bench_hist"
echo
"$build/bench/bench_wire"
exit "$verdict"
