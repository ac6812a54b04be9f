#!/usr/bin/env bash
# capacity.sh BUILD_DIR [NODES]: what the capacity evaluation of one phase costs since
# schema 24 (issue 20: a site writes its figures per site label for the fleet database),
# beside the version-23 function on the same data, and what the fleet's sum costs.
#
# A throwaway PostgreSQL, the schema by `waferwatch-collector --migrate-only`, then NODES
# (default 10,870: one phase of the full fleet, 250 MW / 23 kW) nodes of phase P in 4 site
# labels with 30 s of 1 Hz samples in node_samples (the evaluator's capacity range), and
# 30 days of site_capacity rows of 5 sites x 3 phases every 30 s (1.3 M rows: what a fleet
# database keeps). Times, best of 3 each, server side:
#   v23          the version-23 ww_phase_capacity (one aggregate over the phase's nodes),
#                created here as the baseline
#   now          ww_phase_capacity (schema 24: per label, then added up)
#   site eval    the site evaluator's statement, ww_site_capacity_write: the per-label
#                rows written to site_capacity and their sum (rolled back after each try)
#   fleet        ww_fleet_capacity over the 1.3 M rows (the fleet evaluator, per phase)
# and checks that v23 and now give the same figures. Prints the times and the ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args capacity 20 "$@"
nodes=${2:-10870}
case "$nodes" in ''|*[!0-9]*) echo "capacity: NODES is a whole number" >&2; exit 2 ;; esac
collector=$build/collector/waferwatch-collector
ww_bench_need capacity "$collector"

run=$(ww_bench_workdir capacity)
pgdir=$run/pg
cleanup() { "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
"$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql -qX -d postgres -c "CREATE DATABASE cap" >/dev/null
"$collector" --pg dbname=cap --migrate-only >"$run/migrate.log" 2>&1 ||
  { cat "$run/migrate.log" >&2; echo "capacity: migration failed" >&2; exit 2; }
q() { psql -qXAt -d cap -v ON_ERROR_STOP=1 "$@"; }

echo "capacity: $nodes nodes of one phase in 4 site labels, 30 s of 1 Hz samples"
q -c "SELECT ww_ensure_partitions(current_date - 1, 3)" >/dev/null
q -c "CREATE TABLE bench_t AS SELECT date_trunc('minute', now()) AS t_end"
q -c "INSERT INTO nodes (node_id, agent_id, site, phase, rated_kw)
      SELECT 'n' || i, 'a' || i, 'dc-' || (i % 4), 'P', 23 FROM generate_series(1, $nodes) i"
q -c "INSERT INTO node_samples (time, node_id, power_w, inlet_c, outlet_c, flow_lpm,
             wafer_hotspot_c, utilization, tokens_per_s, requests_queued, requests_in_flight,
             requests_completed, throttled, throttle_factor)
      SELECT b.t_end - interval '30 seconds' + s * interval '1 second', 'n' || i,
             20000 + (i * 7 + s) % 3000, 25, 40 + (i % 10), 30, 70 + (i * 13 + s) % 30, 0.8,
             1000 + i % 100, 2, 8, 3, (i + s) % 50 = 0, 1
      FROM bench_t b, generate_series(1, $nodes) i, generate_series(0, 29) s"
q -c "INSERT INTO site_capacity
      SELECT now() - k * interval '30 seconds', 'dc-' || s, 'P' || p, 2000, 1990, 45770,
             44000, 95, 48, 600, 60000, 1.2e6, 6e4
      FROM generate_series(0, 30 * 2880 - 1) k, generate_series(1, 5) s, generate_series(1, 3) p"
q -c "VACUUM ANALYZE"
# The version-23 function, as it was (collector/sql/30_functions_slo.sql at d44ba10).
q <<'SQL'
CREATE FUNCTION bench_capacity_v23(p_phase text, p_from timestamptz, p_to timestamptz,
                                   p_hotspot_max double precision)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql STABLE PARALLEL SAFE SET jit = off AS $$
    WITH per AS (
        SELECT n.rated_kw, agg.*, last.power_w,
               NOT coalesce(last.throttled, false)
                   AND (p_hotspot_max IS NULL OR last.wafer_hotspot_c IS NULL
                        OR last.wafer_hotspot_c <= p_hotspot_max) AS h
        FROM nodes n
        CROSS JOIN LATERAL (
            SELECT max(ns.wafer_hotspot_c) AS hotspot_max, max(ns.outlet_c) AS outlet_max,
                   count(*) FILTER (WHERE ns.throttled) AS n_throttled,
                   count(ns.throttled) AS n,
                   sum(ns.power_w::double precision)
                       FILTER (WHERE ns.tokens_per_s IS NOT NULL) AS power_sum,
                   sum(ns.tokens_per_s::double precision)
                       FILTER (WHERE ns.power_w IS NOT NULL) AS tokens_sum
            FROM node_samples ns
            WHERE ns.node_id = n.node_id AND ns.time >= p_from AND ns.time < p_to) AS agg
        CROSS JOIN LATERAL (
            SELECT s.power_w, s.wafer_hotspot_c, s.throttled
            FROM node_samples s
            WHERE s.node_id = n.node_id AND s.time >= p_from AND s.time < p_to
            ORDER BY s.time DESC
            LIMIT 1) AS last
        WHERE n.phase = p_phase
    ), l AS (
        SELECT count(*)::integer AS reporting,
               count(*) FILTER (WHERE h)::integer AS healthy,
               coalesce(sum(rated_kw) FILTER (WHERE h), 0) AS delivered_kw,
               coalesce(sum(power_w::double precision), 0) / 1000 AS power_kw
        FROM per
    ), a AS (
        SELECT max(hotspot_max)::double precision AS hotspot_max_c,
               max(outlet_max)::double precision AS outlet_max_c,
               sum(n_throttled)::double precision / nullif(sum(n), 0) AS throttled_share,
               sum(power_sum) / nullif(sum(tokens_sum), 0) AS j_per_token
        FROM per
    )
    SELECT l.reporting, l.healthy, l.delivered_kw, l.power_kw, a.hotspot_max_c,
           a.outlet_max_c, a.throttled_share, a.j_per_token
    FROM l, a
$$;
SQL

# Seconds a statement takes, the best of N (default 3). A statement that writes (the site
# evaluator's) runs in a transaction rolled back after each try.
best() { # sql [n]
  local sql=$1 t best=""
  for _ in $(seq 1 "${2:-3}"); do
    t=$(q -c "BEGIN" -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN
                EXECUTE \$s\$ $sql \$s\$;
                RAISE NOTICE 'took %', extract(epoch FROM clock_timestamp() - t0);
              END \$\$" -c "ROLLBACK" 2>&1 | sed -n 's/.*took //p')
    best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  echo "$best"
}
range="(SELECT t_end - interval '30 seconds' FROM bench_t), (SELECT t_end FROM bench_t), 90"
cols="reporting_nodes, healthy_nodes, delivered_kw, power_kw, hotspot_max_c, outlet_max_c,
      round(throttled_share::numeric, 12), round(j_per_token::numeric, 12)"
v23=$(q -c "SELECT $cols FROM bench_capacity_v23('P', $range)")
now=$(q -c "SELECT $cols FROM ww_phase_capacity('P', $range)")
t_v23=$(best "SELECT * FROM bench_capacity_v23('P', $range)")
t_now=$(best "SELECT * FROM ww_phase_capacity('P', $range)")
t_site=$(best "SELECT * FROM ww_site_capacity_write('P', $range)")
t_fleet=$(best "SELECT * FROM ww_fleet_capacity('P1', '2 minutes')")
rows=$(q -c "SELECT count(*) FROM site_capacity")

printf '%-62s %10s\n' "measure" "value"
printf '%-62s %10.3f\n' "v23 ww_phase_capacity, $nodes nodes, s (best of 3)" "$t_v23"
printf '%-62s %10.3f\n' "ww_phase_capacity (schema 24, per label then summed), s" "$t_now"
printf '%-62s %10.2f\n' "  now / v23" "$(awk -v a="$t_now" -v b="$t_v23" 'BEGIN { print a / b }')"
printf '%-62s %10.3f\n' "site evaluator: per-label rows written + their sum, s" "$t_site"
printf '%-62s %10.2f\n' "  site eval / v23" "$(awk -v a="$t_site" -v b="$t_v23" 'BEGIN { print a / b }')"
printf '%-62s %10.4f\n' "ww_fleet_capacity over $rows site_capacity rows, s" "$t_fleet"
echo "figures v23: ${v23//|/ }"
echo "figures now: ${now//|/ }"
[ "$v23" = "$now" ] || { echo "capacity: FAIL: the two versions disagree" >&2; exit 1; }
