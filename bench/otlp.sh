#!/usr/bin/env bash
# otlp.sh BUILD_DIR [SECONDS]: the agent's OTLP/HTTP intake (agent.requests otlp), one run.
#
# Three parts, on this machine, each agent alone with its sender (no collector: the agents
# spool, as they do before every send, and retry a refused connect now and then):
#   paced      waferwatch-agent taking ~5,000 request spans/s of one node over OTLP/HTTP
#              (bench_otlp: exports of 500 spans every 100 ms, protobuf, one kept-alive
#              connection, as an SDK's batch exporter sends them), readings from the
#              embedded simulator with no requests of its own (sim.arrival_rate 0)
#   reqlog     the same 5,000 requests/s through the request log (agent.source reqlog, fed
#              by waferwatch-sim), the intake the agent had before: the reference
#   flood      bench_otlp flat out (exports of 500 spans back to back) for 20 s against an
#              agent with otlp.max_queue at its default: the spans/s one core of the agent
#              takes (spans accepted per CPU second), its peak RSS (the queue bounds it),
#              exports answered 503
#   mflood     the same with GenAI metrics (POST /v1/metrics): exports of 90 delta
#              exponential-histogram points (TTFT, TPOT, duration; 64 buckets at scale 6 each)
#              back to back for 20 s: points merged per agent CPU second, peak RSS
# for SECONDS (default 60) after 5 s of warm-up, sampling /proc/PID/status (VmRSS, VmHWM)
# every second and utime+stime at the start and the end. Prints one table and the ratios
# paced / reqlog. MB = 2^20 bytes.
#
# Environment: WW_OTLP_KEEP=1 keeps the run directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args otlp 20 "$@"
seconds=${2:-60}
case "$seconds" in *[!0-9]*) echo "otlp: SECONDS is a whole number" >&2; exit 2 ;; esac
agent_bin=$build/agent/waferwatch-agent
sim_bin=$build/agent/waferwatch-sim
load_bin=$build/bench/bench_otlp
ww_bench_need otlp "$agent_bin" "$sim_bin" "$load_bin"

run=$(mktemp -d /tmp/ww-otlp-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${WW_OTLP_KEEP:-0}" = 1 ]; then echo "otlp: run directory kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

tck=$(getconf CLK_TCK)
cpu_ticks() { local s; s=$(cat "/proc/$1/stat") || return 1; s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
port_of() { # log: the OTLP receiver's port once it listens
  local p=
  for _ in $(seq 1 100); do
    p=$(sed -n 's/.*otlp: listening .*port=\([0-9]*\).*/\1/p' "$1" | head -1)
    [ -n "$p" ] && break
    sleep 0.1
  done
  [ -n "$p" ] || { cat "$1" >&2; echo "otlp: the agent's receiver did not start" >&2; exit 2; }
  echo "$p"
}
# An agent with no collector to reach: it spools (WW_AGENT_* set per part by the caller).
agent() { # name extra-args...
  local name=$1
  shift
  "$agent_bin" --insecure --collector tcp://127.0.0.1:9 --agent-id "ww-otlp-$name" \
    --node-id "otlp-$name" --spool-dir "$run/spool-$name" --interval 1s --sim-nodes 1 \
    "$@" 2>"$run/$name.log" &
}
# measure NAME PID SECONDS: CPU seconds and peak RSS of PID over SECONDS into m_cpu / m_rss.
measure() {
  local c0 c1 r rmax=0
  c0=$(cpu_ticks "$2")
  for _ in $(seq 1 "$3"); do
    sleep 1
    kill -0 "$2" 2>/dev/null || { cat "$run/$1.log" >&2; echo "otlp: $1 exited early" >&2; exit 2; }
    r=$(kb "$2" VmRSS); [ "$r" -gt "$rmax" ] && rmax=$r
  done
  c1=$(cpu_ticks "$2")
  r=$(kb "$2" VmHWM); [ "$r" -gt "$rmax" ] && rmax=$r
  m_cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')
  m_rss=$(awk -v r="$rmax" 'BEGIN { printf "%.2f", r / 1024 }')
}

ww_bench_header otlp
echo "otlp: ${seconds} s per part after 5 s of warm-up; 5,000 requests/s offered to paced and reqlog"

# 1. paced: OTLP at 5,000 spans/s.
WW_AGENT_SIM_ARRIVAL_RATE=0 agent paced --requests otlp --otlp-listen 127.0.0.1:0
paced=$!
pids+=("$paced")
port=$(port_of "$run/paced.log")
"$load_bin" "http://127.0.0.1:$port/v1/traces" 5000 $((seconds + 5)) 500 >"$run/load-paced.out" 2>&1 &
load=$!
pids+=("$load")
sleep 5
measure paced "$paced" "$seconds"
p_cpu=$m_cpu p_rss=$m_rss
wait "$load" || { cat "$run/load-paced.out" >&2; echo "otlp: bench_otlp failed" >&2; exit 2; }
kill -TERM "$paced"; wait "$paced" || true

# 2. reqlog: the same rate through the request log (as bench/footprint.sh drives it).
export WW_AGENT_SIM_ARRIVAL_RATE=5000 WW_AGENT_SIM_DIURNAL_AMPLITUDE=0 WW_AGENT_SIM_BURST_PROB=0
export WW_AGENT_SIM_MAX_CONCURRENCY=8192 WW_AGENT_SIM_BATCH_SLOWDOWN=0
agent reqlog --source reqlog --source-socket "$run/reqlog.sock"
reqlog=$!
pids+=("$reqlog")
for _ in $(seq 1 100); do [ -S "$run/reqlog.sock" ] && break; sleep 0.1; done
"$sim_bin" --node-id otlp-reqlog --interval 1s --source-socket "$run/reqlog.sock" 2>"$run/sim.log" &
sim=$!
pids+=("$sim")
sleep 5
measure reqlog "$reqlog" "$seconds"
r_cpu=$m_cpu r_rss=$m_rss
kill -TERM "$sim"; wait "$sim" || true
kill -TERM "$reqlog"; wait "$reqlog" || true
unset WW_AGENT_SIM_ARRIVAL_RATE

# 3. flood: flat out for 20 s.
WW_AGENT_SIM_ARRIVAL_RATE=0 agent flood --requests otlp --otlp-listen 127.0.0.1:0
flood=$!
pids+=("$flood")
port=$(port_of "$run/flood.log")
sleep 2
"$load_bin" "http://127.0.0.1:$port/v1/traces" 0 22 500 >"$run/load-flood.out" 2>&1 &
load=$!
pids+=("$load")
sleep 1
measure flood "$flood" 20
f_cpu=$m_cpu f_rss=$m_rss
wait "$load" || true
kill -TERM "$flood"; wait "$flood" || true

# 4. mflood: metric points flat out for 20 s.
WW_AGENT_SIM_ARRIVAL_RATE=0 agent mflood --requests otlp --otlp-listen 127.0.0.1:0
mflood=$!
pids+=("$mflood")
port=$(port_of "$run/mflood.log")
sleep 2
"$load_bin" "http://127.0.0.1:$port/v1/metrics" 0 22 90 metrics >"$run/load-mflood.out" 2>&1 &
load=$!
pids+=("$load")
sleep 1
measure mflood "$mflood" 20
m_fcpu=$m_cpu m_frss=$m_rss
wait "$load" || true
kill -TERM "$mflood"; wait "$mflood" || true

acc() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1"; }
p_rate=$(acc "$run/load-paced.out" accepted_per_s)
f_rate=$(acc "$run/load-flood.out" accepted_per_s)
f_busy=$(acc "$run/load-flood.out" exports_503)
f_ok=$(acc "$run/load-flood.out" exports_200)
l_cpu=$(acc "$run/load-paced.out" cpu_s)
stat() { grep -o "stats: .*" "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
echo
printf '%-62s %14s\n' "figure" "value"
printf '%-62s %14s\n' "paced: spans/s accepted (bench_otlp, 500 a export)" "$p_rate"
printf '%-62s %14s\n' "paced: agent CPU, % of one core" "$(awk -v c="$p_cpu" -v s="$seconds" 'BEGIN { printf "%.2f", c / s * 100 }')"
printf '%-62s %14s\n' "paced: agent peak RSS, MB" "$p_rss"
printf '%-62s %14s\n' "paced: the exporter's CPU (bench_otlp), % of one core" "$(awk -v c="$l_cpu" -v s="$((seconds + 5))" 'BEGIN { printf "%.2f", c / s * 100 }')"
printf '%-62s %14s\n' "reqlog: agent CPU, % of one core (the same rate, the reference)" "$(awk -v c="$r_cpu" -v s="$seconds" 'BEGIN { printf "%.2f", c / s * 100 }')"
printf '%-62s %14s\n' "reqlog: agent peak RSS, MB" "$r_rss"
printf '%-62s %14s\n' "paced / reqlog: CPU" "$(awk -v a="$p_cpu" -v b="$r_cpu" 'BEGIN { printf "x%.2f", (b > 0 ? a / b : 0) }')"
printf '%-62s %14s\n' "paced / reqlog: peak RSS" "$(awk -v a="$p_rss" -v b="$r_rss" 'BEGIN { printf "x%.2f", (b > 0 ? a / b : 0) }')"
printf '%-62s %14s\n' "flood: spans/s accepted (one connection flat out)" "$f_rate"
printf '%-62s %14s\n' "flood: agent CPU, % of one core" "$(awk -v c="$f_cpu" 'BEGIN { printf "%.1f", c / 20 * 100 }')"
printf '%-62s %14s\n' "flood: spans per agent CPU second (what one core takes)" "$(awk -v r="$f_rate" -v c="$f_cpu" 'BEGIN { printf "%.0f", (c > 0 ? r * 20 / c : 0) }')"
printf '%-62s %14s\n' "flood: agent peak RSS, MB" "$f_rss"
printf '%-62s %14s\n' "flood: exports answered 200 / 503" "$f_ok / $f_busy"
mf_rate=$(acc "$run/load-mflood.out" accepted_per_s)
printf '%-62s %14s\n' "mflood: metric points/s accepted (90 a export, flat out)" "$mf_rate"
printf '%-62s %14s\n' "mflood: agent CPU, % of one core" "$(awk -v c="$m_fcpu" 'BEGIN { printf "%.1f", c / 20 * 100 }')"
printf '%-62s %14s\n' "mflood: points per agent CPU second" "$(awk -v r="$mf_rate" -v c="$m_fcpu" 'BEGIN { printf "%.0f", (c > 0 ? r * 20 / c : 0) }')"
printf '%-62s %14s\n' "mflood: agent peak RSS, MB" "$m_frss"
printf '%-62s %14s\n' "mflood: points merged, refused (the agent's count)" "$(stat "$run/mflood.log" otlp_points_merged), $(stat "$run/mflood.log" otlp_points_refused)"
printf '%-62s %14s\n' "agents' own count: paced otlp_requests, reqlog requests" "$(stat "$run/paced.log" otlp_requests), $(stat "$run/reqlog.log" requests)"
