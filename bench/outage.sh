#!/usr/bin/env bash
# bench/outage.sh BUILD_DIR [OUTAGE_SECONDS] [AGENTS]: the messages per batch through a
# database outage (issue 14, item 14), measured in one run.
#
# Before the Pending reply each agent resent its whole in-flight window every ack timeout
# while PostgreSQL was down (559 resends per agent, 1,569 messages for 450 batches through
# 3 min). Now the collector answers "received, not committed" (Pending {epoch, seq,
# retry_after_ms}) and the agent backs off (agent/ww_backoff.h). This measures it:
#
#   a throwaway PostgreSQL (Unix socket only), a CURVE collector on tcp://127.0.0.1:*,
#   AGENTS real waferwatch-agent processes (simulated source, WW_OUTAGE_NODES nodes each,
#   default 2, agent.interval and collector.* at their defaults: 1 s, ack_timeout 5 s,
#   max_in_flight 16). 20 s normal, then PostgreSQL crash-stopped (pg_throwaway.sh pause)
#   for OUTAGE_SECONDS (default 180), started again, and the run waits until every agent
#   has had an Ack for every batch spooled up to then (bounded: 150 s), then SIGTERM.
#
# Prints, per agent and in all: batches spooled, batch messages sent and resent, Pending
# replies taken, ack-timeout resend rounds (from the log); the collector's messages
# received (its stopping: line and /metrics); messages per batch overall, during the
# outage and in the recovery after it; and node_samples checked against the agents'
# samples (0 lost, 0 duplicated expected). About 4 minutes with the defaults.
#
#   WW_OUTAGE_AGENT=path, WW_OUTAGE_COLLECTOR=path: other binaries (e.g. an older
#   commit's, for a before / after comparison; keys come from BUILD_DIR's waferwatch).
#   WW_OUTAGE_NODES=2 WW_OUTAGE_NORMAL=20 (seconds before the outage)
#   WW_OUTAGE_KEEP=1 keeps the work directory (logs) and prints its path.
set -euo pipefail
WW_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$WW_ROOT"
. bench/lib.sh
ww_bench_args outage 26 "$@"
outage=${2:-180}
agents=${3:-4}
nodes=${WW_OUTAGE_NODES:-2}
normal=${WW_OUTAGE_NORMAL:-20}
drain_max=150
collector=${WW_OUTAGE_COLLECTOR:-$build/collector/waferwatch-collector}
agent=${WW_OUTAGE_AGENT:-$build/agent/waferwatch-agent}
cli=$build/cli/waferwatch
ww_bench_need outage "$collector" "$agent" "$cli"

work=$(ww_bench_workdir outage)
pgdir=$work/pg
cpid=
apids=()
cleanup() {
  local p
  for p in "${apids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${apids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$cpid" ] && { kill -TERM "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true; }
  tests/pg_throwaway.sh stop "$pgdir" >/dev/null 2>&1 || true
  if [ "${WW_OUTAGE_KEEP:-0}" = 1 ]; then echo "outage: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

ww_bench_header outage
echo "command: bench/outage.sh $* (collector: $collector; agent: $agent)"
echo "$agents agents x $nodes simulated nodes, interval 1 s, ack_timeout 5 s, max_in_flight 16;" \
  "${normal} s normal, PostgreSQL down ${outage} s (crash stop), then until drained (<= ${drain_max} s)"
tests/pg_throwaway.sh start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE outage"

keys=$work/keys
ww_bench_keys "$cli" "$keys"
for ((a = 0; a < agents; a++)); do
  ww_bench_enrol "$cli" "$keys" "out-$a" "o$a-*"
done

# The port a process logged as "metrics: listening addr=... port=N", waiting up to 10 s.
metrics_port() { # LOG
  local p='' _
  for _ in $(seq 100); do
    p=$(sed -n 's/.*metrics: listening addr=[^ ]* port=\([0-9]*\).*/\1/p' "$1" | head -1)
    [ -n "$p" ] && break
    sleep 0.1
  done
  echo "$p"
}
# Every "name value" line of a /metrics page (no labels kept apart: the families read here
# have none), into FILE; empty when it cannot be read.
scrape() { # PORT FILE
  : >"$2"
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 0
  printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
  awk '/^[a-z_]+ [0-9.e+-]+$/ {print $1, $2}' <&3 >"$2" || true
  exec 3<&- 3>&-
}
val() { # FILE NAME: the value, 0 when absent
  awk -v n="$2" '$1 == n {v = $2} END {printf "%.0f", v + 0}' "$1"
}

"$collector" --listen 'tcp://127.0.0.1:*' --endpoint-file "$work/ep" \
  --server-key "$keys/collector.key" --allowlist "$keys/allowlist" --pg "dbname=outage" \
  --metrics-listen 127.0.0.1:0 >"$work/collector.log" 2>&1 &
cpid=$!
for _ in $(seq 300); do [ -s "$work/ep" ] && break; sleep 0.1; done
[ -s "$work/ep" ] || { cat "$work/collector.log" >&2; echo "outage: the collector did not start" >&2; exit 1; }
cport=$(metrics_port "$work/collector.log")

aports=()
for ((a = 0; a < agents; a++)); do
  "$agent" --agent-id "out-$a" --node-id "o$a" --sim-nodes "$nodes" --sim-seed $((a + 1)) \
    --collector "$(cat "$work/ep")" --server-key "$keys/collector.pub" \
    --agent-key "$keys/out-$a.key" --spool-dir "$work/spool-$a" \
    --metrics-listen 127.0.0.1:0 --drain-timeout 30s >"$work/agent-$a.log" 2>&1 &
  apids+=($!)
done
for ((a = 0; a < agents; a++)); do
  aports+=("$(metrics_port "$work/agent-$a.log")")
  [ -n "${aports[$a]}" ] || { cat "$work/agent-$a.log" >&2; echo "outage: agent $a has no /metrics" >&2; exit 1; }
done

snap() { # TAG: the collector's and every agent's metrics into $work/TAG-*
  local a
  scrape "$cport" "$work/$1-collector"
  for ((a = 0; a < agents; a++)); do scrape "${aports[$a]}" "$work/$1-agent-$a"; done
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

sleep "$normal"
snap pause
t_pause=$(now)
tests/pg_throwaway.sh pause "$pgdir"
echo "$(date -u +%T) PostgreSQL stopped for $outage s"
sleep "$outage"
snap resume
tests/pg_throwaway.sh resume "$pgdir"
t_resume=$(now)
echo "$(date -u +%T) PostgreSQL started again; waiting for every agent's spool to drain"

# Drained: every batch spooled up to the end of the outage acked, and at most the tick in
# progress left in the spool.
drained=0
deadline=$(calc "$t_resume + $drain_max")
while awk "BEGIN { exit !($(now) < $deadline) }"; do
  snap poll
  ok=1
  for ((a = 0; a < agents; a++)); do
    acked=$(val "$work/poll-agent-$a" waferwatch_agent_batches_acked_total)
    want=$(val "$work/resume-agent-$a" waferwatch_agent_batches_spooled_total)
    left=$(val "$work/poll-agent-$a" waferwatch_agent_spool_pending_batches)
    if [ "$acked" -lt "$want" ] || [ "$left" -gt 1 ]; then ok=0; break; fi
  done
  [ "$ok" = 1 ] && { drained=1; break; }
  sleep 0.5
done
t_drained=$(now)
snap drained
echo "$(date -u +%T) $([ "$drained" = 1 ] && echo drained || echo "NOT drained") $(calc "$t_drained - $t_resume" 1) s after PostgreSQL came back"

for p in "${apids[@]}"; do kill -TERM "$p"; done
arc=0
for p in "${apids[@]}"; do wait "$p" || arc=$?; done
apids=()
kill -TERM "$cpid"
wait "$cpid" || true
cpid=

# The agents' stats: lines, one field of agent a.
astat() { # A FIELD
  grep "stats: " "$work/agent-$1.log" | tail -1 | sed -n "s/.* $2=\([0-9]*\).*/\1/p" | grep . || echo 0
}
stop=$(grep "stopping:" "$work/collector.log" | tail -1)
c_received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$stop")
c_dups=$(sed -n 's/.* duplicates=\([0-9]*\).*/\1/p' <<<"$stop")
c_gaps=$(sed -n 's/.* gaps=\([0-9]*\).*/\1/p' <<<"$stop")
c_retries=$(sed -n 's/.* retries=\([0-9]*\).*/\1/p' <<<"$stop")
c_pend=$(val "$work/drained-collector" waferwatch_collector_pending_replies_total)
rx_pause=$(val "$work/pause-collector" waferwatch_collector_messages_received_total)
rx_resume=$(val "$work/resume-collector" waferwatch_collector_messages_received_total)
rx_drained=$(val "$work/drained-collector" waferwatch_collector_messages_received_total)

printf '\n%-8s %8s %8s %8s %8s %8s %8s %8s %8s   %s\n' agent spooled sent resent pendings \
  timeouts samples acked unacked "outage: spooled / sent / resent   recovery: spooled / sent"
# Growth of an agent metric between two snapshots.
d() { # NAME TO FROM (uses $a)
  echo $(($(val "$work/$2-agent-$a" "waferwatch_agent_$1") - $(val "$work/$3-agent-$a" "waferwatch_agent_$1")))
}
t_sp=0 t_sent=0 t_res=0 t_pn=0 t_to=0 t_samples=0 t_unacked=0
o_sp=0 o_sent=0 r_sp=0 r_sent=0
for ((a = 0; a < agents; a++)); do
  sp=$(astat "$a" spooled); se=$(astat "$a" sent); re=$(astat "$a" resent); pn=$(astat "$a" pendings)
  sa=$(astat "$a" samples); ac=$(astat "$a" acked); un=$(astat "$a" unacked)
  # Ack-timeout rounds: each resent the whole window (the storm of the issue).
  to=$(grep -c "no ack for seq" "$work/agent-$a.log" || true)
  osp=$(d batches_spooled_total resume pause); ose=$(d batches_sent_total resume pause)
  ore=$(d batches_resent_total resume pause)
  rsp=$(d batches_spooled_total drained resume); rse=$(d batches_sent_total drained resume)
  printf '%-8s %8d %8d %8d %8d %8d %8d %8d %8d   %d / %d / %d   %d / %d\n' "out-$a" "$sp" "$se" \
    "$re" "$pn" "$to" "$sa" "$ac" "$un" "$osp" "$ose" "$ore" "$rsp" "$rse"
  t_sp=$((t_sp + sp)) t_sent=$((t_sent + se)) t_res=$((t_res + re)) t_pn=$((t_pn + pn))
  t_to=$((t_to + to)) t_samples=$((t_samples + sa)) t_unacked=$((t_unacked + un))
  o_sp=$((o_sp + osp)) o_sent=$((o_sent + ose)) r_sp=$((r_sp + rsp)) r_sent=$((r_sent + rse))
done
printf '%-8s %8d %8d %8d %8d %8d %8d %8s %8d   %d / %d   %d / %d\n' all "$t_sp" "$t_sent" \
  "$t_res" "$t_pn" "$t_to" "$t_samples" "" "$t_unacked" "$o_sp" "$o_sent" "$r_sp" "$r_sent"

rows=$(psql -qAtX -d outage -c "SELECT count(*) FROM node_samples")
keys_n=$(psql -qAtX -d outage -c "SELECT count(*) FROM (SELECT DISTINCT node_id, time FROM node_samples) k")
lost_b=$(psql -qAtX -d outage -c "SELECT coalesce(sum(lost_batches), 0) FROM streams")
per() { [ "$2" -gt 0 ] && calc "$1 / $2" || echo nan; }

printf '\n%-62s %s\n' "figure" "value"
printf '%-62s %s\n' "batches spooled, all agents (whole run)" "$t_sp"
printf '%-62s %s\n' "collector messages received (stopping: received=)" "${c_received:-?}"
printf '%-62s %s\n' "  messages per batch overall (received / spooled; 1.00 ideal)" "$(per "${c_received:-0}" "$t_sp")"
printf '%-62s %s\n' "  agents' batch messages sent per batch (sent / spooled)" "$(per "$t_sent" "$t_sp")"
printf '%-62s %s\n' "outage $(calc "$t_resume - $t_pause" 0) s: batches spooled / agent messages sent" "$o_sp / $o_sent"
printf '%-62s %s\n' "  collector messages received in it (/metrics)" "$((rx_resume - rx_pause))"
printf '%-62s %s\n' "  messages per batch during the outage (sent / spooled)" "$(per "$o_sent" "$o_sp")"
printf '%-62s %s\n' "recovery $(calc "$t_drained - $t_resume" 0) s: batches spooled / agent messages sent" "$r_sp / $r_sent"
printf '%-62s %s\n' "  collector messages received in it (/metrics)" "$((rx_drained - rx_resume))"
printf '%-62s %s\n' "  outage + recovery: messages per batch (sent / spooled)" \
  "$(per "$((o_sent + r_sent))" "$((o_sp + r_sp))")"
printf '%-62s %s\n' "resends per agent (mean), Pending replies taken per agent" \
  "$(calc "$t_res / $agents" 1), $(calc "$t_pn / $agents" 1)"
printf '%-62s %s\n' "ack-timeout resend rounds (all agents), collector Pendings sent" "$t_to, $c_pend"
printf '%-62s %s\n' "collector: duplicates, write retries, stream gaps" "${c_dups:-?}, ${c_retries:-?}, ${c_gaps:-?}"
printf '%-62s %s\n' "node_samples rows / agents' samples (ticks x nodes)" "$rows / $t_samples"
printf '%-62s %s\n' "  lost (samples - distinct (node, time)), duplicated (rows - distinct)" \
  "$((t_samples - keys_n)), $((rows - keys_n))"
printf '%-62s %s\n' "  streams.lost_batches, batches unacked at exit" "$lost_b, $t_unacked"
ok=1
[ "$drained" = 1 ] && [ "$rows" = "$t_samples" ] && [ "$keys_n" = "$rows" ] && [ "$t_unacked" = 0 ] || ok=0
echo "result: $([ "$ok" = 1 ] && echo "every sample stored once" || echo "FAILED: see above")"
[ "$ok" = 1 ] && [ "$arc" = 0 ]
