#!/usr/bin/env bash
# logical.sh BUILD_DIR [NODES] [MINUTES]: how fast PostgreSQL's logical replication
# applies a site's node tier in a fleet database (issue 20, item 4: the next limit of a
# fleet view fed by sites), beside the same rows written locally on the same machine.
#  1. Two throwaway clusters, durable (fsync, synchronous_commit on): a site (wal_level
#     logical) and a fleet; a database in each migrated by the collector (--migrate-only),
#     and a third, the reference, in the fleet's cluster.
#  2. The site publishes node_rollup_1m (publish_via_partition_root: the fleet's own
#     partitions take the rows); the fleet subscribes (copy_data false), then the
#     subscription is disabled: the link is cut, the site's slot keeps what follows.
#  3. The site's tier rows: NODES (default 32,600, the fleet) nodes x MINUTES (default 10)
#     written as the tier builder writes them, a minute of every node a transaction; the
#     WAL they make is read from pg_current_wal_lsn().
#  4. The link is restored (ENABLE): the time until the fleet holds every row is the apply
#     rate of one subscription catching up. The same transactions run into the reference
#     database are its local ceiling.
# Prints rows/s applied, the ceiling, their ratio, WAL per row, and what that means at the
# fleet's size (the node tier: 32,600 rows a minute). Exit 1 when a row is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args logical 18 "$@"
nodes=${2:-32600}
minutes=${3:-10}
for v in "$nodes" "$minutes"; do
  case "$v" in '' | *[!0-9]*) echo "logical: NODES and MINUTES are whole numbers" >&2; exit 2 ;; esac
done
collector=$build/collector/waferwatch-collector
ww_bench_need logical "$collector"
cd "$root"
work=$(ww_bench_workdir logical)
site=$work/site
fleet=$work/fleet
cleanup() {
  tests/pg_throwaway.sh stop "$site" >/dev/null 2>&1 || true
  tests/pg_throwaway.sh stop "$fleet" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
WW_PG_CONF="wal_level = logical
max_wal_size = 8GB" tests/pg_throwaway.sh start-durable "$site" >/dev/null
WW_PG_CONF="max_wal_size = 8GB" tests/pg_throwaway.sh start-durable "$fleet" >/dev/null
q() { # HOST DB SQL...
  local h=$1 d=$2
  shift 2
  local a=()
  for s in "$@"; do a+=(-c "$s"); done
  psql -qAtX -h "$h" -p 5432 -U postgres -d "$d" -v ON_ERROR_STOP=1 "${a[@]}"
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
q "$site" postgres "CREATE DATABASE ww"
q "$fleet" postgres "CREATE DATABASE ww" "CREATE DATABASE ref"
for t in "$site ww" "$fleet ww" "$fleet ref"; do
  set -- $t
  "$collector" --insecure --pg "host=$1 port=5432 user=postgres dbname=$2" --migrate-only \
    >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
done

q "$site" ww "CREATE PUBLICATION ww_bench FOR TABLE node_rollup_1m WITH (publish_via_partition_root = true)"
q "$fleet" ww "CREATE SUBSCRIPTION ww_bench CONNECTION 'host=$site port=5432 user=postgres dbname=ww' PUBLICATION ww_bench WITH (copy_data = false)"
for _ in $(seq 100); do
  [ "$(q "$fleet" ww "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'ww_bench' AND pid IS NOT NULL")" = 1 ] && break
  sleep 0.1
done
q "$fleet" ww "ALTER SUBSCRIPTION ww_bench DISABLE"

# A minute of every node, as the tier builder writes it (the values only fill the row).
minute_sql() { # MINUTE_INDEX
  cat <<SQL
INSERT INTO node_rollup_1m (time, node_id, samples, humidity_samples, last_time, sampled_s,
  energy_j, tokens, throttled_s, requests_completed, power_w_sum, inlet_c_sum, outlet_c_sum,
  flow_lpm_sum, wafer_hotspot_c_sum, utilization_sum, tokens_per_s_sum, power_w_min,
  power_w_max, power_w_last, inlet_c_min, inlet_c_max, inlet_c_last, outlet_c_min,
  outlet_c_max, outlet_c_last, wafer_hotspot_c_min, wafer_hotspot_c_max, wafer_hotspot_c_last)
SELECT t, 'wse-' || lpad(n::text, 10, '0'), 60, 0, t + interval '59 s', 60,
  60 * (21000 + n % 2000), 60 * 1500.0, 0, 60, 60 * (21000 + n % 2000), 60 * 30.1, 60 * 41.7,
  60 * 160.2, 60 * 78.3, 60 * 0.8, 60 * 1500.0, 21000 + n % 2000, 21500 + n % 2000,
  21200 + n % 2000, 30.0, 30.3, 30.1, 41.5, 41.9, 41.7, 78.0, 78.6, 78.3
FROM generate_series(1, $nodes) AS n,
     (SELECT date_trunc('minute', now()) - interval '1 hour' + $1 * interval '1 minute' AS t) AS m;
SQL
}
load() { # HOST DB: MINUTES transactions; prints the seconds taken
  local t0 t1 m
  t0=$(now)
  for ((m = 0; m < minutes; m++)); do
    minute_sql "$m" | psql -qAtX -h "$1" -p 5432 -U postgres -d "$2" -v ON_ERROR_STOP=1 >/dev/null
  done
  t1=$(now)
  calc "$t1 - $t0"
}
rows=$((nodes * minutes))
echo "$(ww_bench_header logical): $nodes nodes x $minutes minutes of node_rollup_1m ($rows rows), a minute a transaction"

lsn0=$(q "$site" ww "SELECT pg_current_wal_lsn()")
site_s=$(load "$site" ww)
lsn1=$(q "$site" ww "SELECT pg_current_wal_lsn()")
wal=$(q "$site" ww "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
ref_s=$(load "$fleet" ref)

# Timed from the first row applied (the apply worker takes a few seconds to start after
# ENABLE: reported apart) to the last.
t0=$(now)
q "$fleet" ww "ALTER SUBSCRIPTION ww_bench ENABLE"
got=0 tf= gotf=0
# (Polled every 0.25 s: a count of the table costs the shared cores ~15 ms.)
for _ in $(seq 14400); do
  got=$(q "$fleet" ww "SELECT count(*) FROM node_rollup_1m")
  if [ -z "$tf" ] && [ "$got" -gt 0 ]; then tf=$(now); gotf=$got; fi
  [ "$got" -ge "$rows" ] && break
  sleep 0.25
done
t1=$(now)
[ "$got" = "$rows" ] || { echo "logical: the fleet holds $got rows of $rows" >&2; exit 1; }
[ "$t1" != "$tf" ] || { echo "logical: too few rows to time the apply (raise NODES or MINUTES)" >&2; exit 1; }
apply=$(calc "($rows - $gotf) / ($t1 - $tf)")
start_s=$(calc "$tf - $t0")
ref=$(calc "$rows / $ref_s")
printf '%-64s %12s\n' "figure" "value"
printf '%-64s %12.0f\n' "written at the site (local), rows/s" "$(calc "$rows / $site_s")"
printf '%-64s %12.0f\n' "written into the reference database (local ceiling), rows/s" "$ref"
printf '%-64s %12.0f\n' "applied by the fleet's subscription catching up, rows/s" "$apply"
printf '%-64s %11.0f%%\n' "  applied / local ceiling" "$(calc "100 * $apply / $ref")"
printf '%-64s %12.1f\n' "  from ENABLE to the first row applied, s" "$start_s"
printf '%-64s %12.0f\n' "WAL at the site per row, bytes" "$(calc "$wal / $rows")"
printf '%-64s %12.1f\n' "node tier of 32,600 nodes (543 rows/s): apply headroom, x" "$(calc "$apply / 543.33")"
printf '%-64s %12.0f\n' "a site cut off 1 h with the whole fleet's node tier: catch-up, s" \
  "$(calc "32600 * 60 / $apply")"
