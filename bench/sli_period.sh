#!/usr/bin/env bash
# sli_period.sh BUILD_DIR [DAYS]: what one latency SLI over a long window costs the SLO
# evaluator, read from the per-minute rollups alone and with the hourly rollups (migration
# 0010), side by side on the same data.
#
# A throwaway PostgreSQL, the schema by `waferwatch-collector --migrate-only`, then DAYS
# (default 30, the default SLO period) of latency_rollup_1m rows for one phase and one
# model, one per minute, each TTFT histogram a dense span of 300 buckets (what a busy
# phase's minute holds at scale 6; the other metrics tiny). Times, best of 3 each:
#   minutes      ww_sli over the whole period with no hour rows (every minute merged)
#   hours        the same call once ww_rollup_hours() has built the hours (the whole hours
#                from latency_rollup_1h, the edges from the minutes)
#   build        ww_rollup_hours() over the whole history (the evaluator's first cycle, once)
#   cycle        ww_rollup_hours() over the last 3 hours, as the evaluator runs it each cycle
# and checks that both ways give the same good/total. Prints the times and the ratio.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args sli_period 15 "$@"
days=${2:-30}
case "$days" in ''|*[!0-9]*) echo "sli_period: DAYS is a whole number" >&2; exit 2 ;; esac
collector=$build/collector/waferwatch-collector
[ -x "$collector" ] || { echo "sli_period: $collector is missing: build $build first" >&2; exit 2; }

run=$(ww_bench_workdir sli)
pgdir=$run/pg
cleanup() { "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
"$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE sli" >/dev/null
"$collector" --pg dbname=sli --migrate-only >"$run/migrate.log" 2>&1 ||
  { cat "$run/migrate.log" >&2; echo "sli_period: migration failed" >&2; exit 2; }
q() { psql -qXAt -d sli -v ON_ERROR_STOP=1 "$@"; }

echo "sli_period: ${days} days of per-minute rollups (one phase, one model, 300-bucket TTFT)"
q -c "CREATE TABLE bench_t AS SELECT date_trunc('hour', now(), 'UTC') AS t_end,
             date_trunc('hour', now(), 'UTC') - interval '$days days' AS t0"
q -c "INSERT INTO latency_rollup_1m
      SELECT b.t0 + i * interval '1 minute', 'P', 'm', 30, 1000, 1, 0, 0, 1000000, 250000,
             s, h, s, s
      FROM bench_t b, generate_series(0, $days * 1440 - 1) i,
           LATERAL (SELECT ww_hist_make(6, 1000, 300.0, 0.05, 2.0, 0, 0, 0, -300 + (i % 40),
                               array_fill(3::bigint, ARRAY[300]) || ARRAY[100]::bigint[]
                              ) AS h,
                           ww_hist_make(6, 3, 0.3, 0.1, 0.1, 0, 0, 0, -200, '{3}') AS s) x"
q -c "VACUUM ANALYZE latency_rollup_1m"

# Seconds a statement takes, the best of N (default 3; psql prints NOTICEs on stderr).
best() { # sql [n]
  local sql=$1 t best=""
  for _ in $(seq 1 "${2:-3}"); do
    t=$(q -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN
                PERFORM * FROM ($sql) x;
                RAISE NOTICE 'took %', extract(epoch FROM clock_timestamp() - t0);
              END \$\$" 2>&1 | sed -n 's/.*took //p')
    best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  echo "$best"
}
range="(SELECT t_end - interval '$days days' + interval '30 seconds' FROM bench_t),
       (SELECT t_end + interval '30 seconds' FROM bench_t)"
sli="SELECT good, total FROM ww_sli('P', 'm', 'ttft', 1.0, $range)"
before=$(q -c "$sli")
t_min=$(best "$sli")
t_build=$(best "SELECT ww_rollup_hours('-infinity', now())" 1) # once: then nothing is stale
hours=$(q -c "SELECT count(*) FROM latency_rollup_1h")
after=$(q -c "$sli")
t_hour=$(best "$sli")
t_cycle=$(best "SELECT ww_rollup_hours(now() - interval '3 hours', now())")

printf '%-62s %10s\n' "measure" "value"
printf '%-62s %10.3f\n' "ww_sli over ${days} d from the minutes, s (best of 3)" "$t_min"
printf '%-62s %10.3f\n' "ww_sli over ${days} d with the hours (${hours} hour rows), s" "$t_hour"
printf '%-62s %10.1f\n' "  minutes / hours" "$(awk -v a="$t_min" -v b="$t_hour" 'BEGIN { print a / b }')"
printf '%-62s %10.3f\n' "ww_rollup_hours over the history (first cycle, once), s" "$t_build"
printf '%-62s %10.3f\n' "ww_rollup_hours over the last 3 h (each evaluation: a check), s" "$t_cycle"
echo "good/total from the minutes: ${before//|//}; with the hours: ${after//|//}"
[ "$before" = "$after" ] || { echo "sli_period: FAIL: the two ways disagree" >&2; exit 1; }
