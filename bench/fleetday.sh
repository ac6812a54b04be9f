#!/usr/bin/env bash
# fleetday.sh BUILD_DIR [DAYS]: what every dashboard panel costs at full fleet volume (issue
# 18 item 5). One throwaway PostgreSQL (shared_buffers 1GB, as bench/fleet.sh), a database
# migrated by the collector (--migrate-only), filled by set-based SQL with what the panels
# read for the whole fleet (32,600 nodes: 5 sites x 4 halls x 3 phases, 23 kW, 1 s):
#   site_rollup_1h, latency_rollup_1h, node_rollup_1h / latency_node_1h (WW_FD_NODES = 100
#   nodes), capacity_evaluations, slo_evaluations (24 SLOs x 8 windows every 30 s), alerts
#   and alert_transitions over DAYS (default 30) days back from now; latency_rollup_1m over
#   WW_FD_LAT1M_DAYS (default DAYS: its retention is 400 d, and ww_sli reads it for
#   availability); site_rollup_1m and node_rollup_1m over the last 24 h and the current
#   hour's minutes; latency_windows of WW_FD_WINDOW_NODES (10) nodes over 24 h (their hours
#   below compacted_through in window blocks, as compaction leaves them); node_samples
#   of every node for the last WW_FD_SAMPLE_S (600) seconds. Histograms are ww_hist_make
#   log-normals at scale 6 sized as a busy phase's minute/hour (hundreds of buckets);
#   ww_tier_state agrees (hours_done: this hour, minutes_done: this minute; compaction as the
#   default compaction.age leaves it: compacted 3 hours back, days before that one emptied).
# Then every panel target's rawSql and every variable query of dashboards/*.json, expanded
# as Grafana would (bench/fleetday_panels.py: every variable at All, $node at its first node, macros as
# tests/integration/test_dashboards.c expands them, $__interval from the range over 1000
# px) for the last 1 h, 24 h, 7 d and 30 d, run as EXPLAIN (ANALYZE, TIMING OFF): the best
# server execution time of 3, marked '!' over 1000 ms, with the dominant plan node (a timed
# EXPLAIN ANALYZE) of those. Last, one SLO evaluation cycle as the evaluator runs it
# (collector/ww_slo_eval.c): ww_rollup_hours over 3 h, ww_sli for 24 SLOs x 8 windows,
# ww_phase_capacity for the 3 phases, timed as one transaction, best of 3.
# About 35 minutes for 30 days on 2 cores (6 to generate; the rest the slow panels, 3 times).
# WW_FD_KEEP=1 leaves the cluster running (its directory is printed); the plans of the slow
# panels stay in WW_FD_PLANS (/tmp/ww-fleetday-plans).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
ww_bench_args fleetday 25 "$@"
days=${2:-30}
lat1m_days=${WW_FD_LAT1M_DAYS:-$days}
dnodes=${WW_FD_NODES:-100}
wnodes=${WW_FD_WINDOW_NODES:-10}
sample_s=${WW_FD_SAMPLE_S:-600}
for v in "$days" "$lat1m_days" "$dnodes" "$wnodes" "$sample_s"; do
  case "$v" in '' | *[!0-9]*) echo "fleetday: DAYS and the WW_FD_* settings are whole numbers" >&2; exit 2 ;; esac
done
[ "$days" -ge 1 ] || { echo "fleetday: DAYS is at least 1" >&2; exit 2; }
[ "$dnodes" -ge 60 ] || { echo "fleetday: WW_FD_NODES is at least 60 (one per site/hall/phase)" >&2; exit 2; }
collector=$build/collector/waferwatch-collector
ww_bench_need fleetday "$collector"
"$root/pgext/install.sh" "$build" >/dev/null

run=$(mktemp -d /tmp/ww-bench-fleetday.XXXXXX)
chmod 755 "$run"
pgdir=$run/pg
cleanup() {
  if [ "${WW_FD_KEEP:-0}" = 1 ]; then echo "fleetday: kept $pgdir (PGHOST=$pgdir)"; return; fi
  "$root/tests/pg_throwaway.sh" stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT
WW_PG_CONF="shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_wal_size = 16GB
checkpoint_timeout = 30min" "$root/tests/pg_throwaway.sh" start "$pgdir" >/dev/null
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres PGDATABASE=fleetday
q() { psql -qXAt -v ON_ERROR_STOP=1 "$@"; }
# step LABEL SQL: runs SQL, prints the seconds it took.
step() {
  local t0
  t0=$(date +%s.%N)
  q -c "$2" >/dev/null
  printf '  %-44s %7.1f s\n' "$1" "$(awk "BEGIN { print $(date +%s.%N) - $t0 }")"
}

ww_bench_header fleetday
psql -qXAt -d postgres -c "CREATE DATABASE fleetday"
"$collector" --insecure --pg dbname=fleetday --migrate-only >"$run/migrate.log" 2>&1 ||
  { cat "$run/migrate.log" >&2; echo "fleetday: migration failed" >&2; exit 2; }

# One clock for the whole fill: h_now = the current hour, m_now = the current minute.
q -c "CREATE SCHEMA fd;
      CREATE TABLE fd.clock AS SELECT date_trunc('hour', now(), 'UTC') AS h_now,
                                      date_trunc('minute', now()) AS m_now, now() AS t_now"
q -c "SELECT ww_ensure_partitions((now() - interval '$days days')::date, $days + 2)" >/dev/null
q -c "UPDATE ww_tier_state SET start = c.h_now - interval '$days days', hours_done = c.h_now,
             minutes_done = c.m_now, watermark = c.m_now,
             compacted_through = greatest(c.h_now - interval '$days days', c.h_now - interval '3 hours'),
             truncated_through = greatest(c.h_now - interval '$days days',
                                          date_trunc('day', c.h_now - interval '3 hours', 'UTC')),
             windows_start = c.h_now - interval '$days days',
             windows_dropped_through = c.h_now - interval '$days days'
      FROM fd.clock c"

echo "== generating: 32,600 nodes, $days days (latency_rollup_1m: $lat1m_days d; $dnodes nodes in the node tiers, $wnodes with latency_windows; ${sample_s} s of node_samples)"
gen_t0=$(date +%s)
# node i: group g = i % 60 (site g/12, hall g/3 % 4, phase g % 3); nodes 0..dnodes-1 are
# the "detailed" ones (their own tiers, and the hottest of their group).
step "nodes, phases, groups" "
INSERT INTO phases (id, name, go_live, contracted_mw, capacity_breach_share, power_ceiling_mw,
                    hotspot_max_c, outlet_max_c)
VALUES ('phase-2026a', 'Phase 1 (2026): halls 1-4', '2026-06-01', 250, 0.95, 262.5, 95, 45),
       ('phase-2027a', 'Phase 2 (2027): halls 5-8', '2027-06-01', 250, 0.95, 262.5, 95, 45),
       ('phase-2028a', 'Phase 3 (2028): halls 9-12', '2028-06-01', 250, 0.95, 262.5, 95, 45);
INSERT INTO nodes (node_id, agent_id, site, hall, rack, phase, system_model, rated_kw,
                   agent_version, source, interval_ms)
SELECT format('wse-%s', lpad(i::text, 5, '0')), 'agent-' || (i / 4075),
       'site-' || (i % 60 / 12 + 1), 'hall-' || (i % 60 / 3 % 4 + 1), 'rack-' || (i / 16),
       (ARRAY['phase-2026a', 'phase-2027a', 'phase-2028a'])[i % 3 + 1], 'CS-3', 23,
       '1.0.0', 'sim', 1000
FROM generate_series(0, 32599) i;
CREATE TABLE fd.groups AS
SELECT g, 'site-' || (g / 12 + 1) AS site, 'hall-' || (g / 3 % 4 + 1) AS hall,
       (ARRAY['phase-2026a', 'phase-2027a', 'phase-2028a'])[g % 3 + 1] AS phase,
       (SELECT count(*) FROM generate_series(0, 32599) i WHERE i % 60 = g)::int AS n
FROM generate_series(0, 59) g;
-- The load of a time: a daily wave between ~0.35 and ~0.85.
CREATE FUNCTION fd.u(t timestamptz, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE AS
'SELECT 0.6 + 0.22 * sin(2 * pi() * extract(epoch FROM t) / 86400 + salt * 0.1)
        + 0.03 * sin(extract(epoch FROM t) / 700 + salt)'"

# Site rows: the sums of n nodes over span seconds (1 s samples).
site_rows() { # TABLE SPAN_S FROM_SQL TO_SQL
  cat <<SQL
INSERT INTO $1 (time, site, hall, phase, samples, humidity_samples, rated_kw, sampled_s,
                energy_j, tokens, throttled_s, requests_completed, inlet_c_sum, outlet_c_sum,
                flow_lpm_sum, wafer_hotspot_c_sum, utilization_sum, humidity_pct_sum, nodes,
                throttled_nodes, power_w_max, inlet_c_max, outlet_c_max, flow_lpm_min,
                wafer_hotspot_c_max, humidity_pct_max, hot_node_ids, hot_node_c,
                inlet_c_samples, outlet_c_samples, flow_lpm_samples, wafer_hotspot_c_samples,
                utilization_samples, energy_j_tokened)
SELECT t, gr.site, gr.hall, gr.phase, s, s / 2, gr.n * 23, s, s * (9200 + 13800 * u),
       s * 2000 * u, s * 0.002, s, s * 25.0, s * (30 + 12 * u), s * 100.0, s * (60 + 25 * u),
       s * u, s / 2 * 42.0, gr.n, (5 * random())::int, 22800, 27.5, 44 + random(), 92,
       90 + 3 * random(), 47,
       ARRAY(SELECT format('wse-%s', lpad((gr.g + 60 * CASE WHEN k < 2 THEN k
                                                        ELSE (k * 37 + b * 11) % (gr.n - 1) END)::text, 5, '0'))
             FROM generate_series(0, 9) k ORDER BY k),
       ARRAY(SELECT (CASE WHEN k = 0 THEN 89 + 3 * random() ELSE 87 - k * 0.5 END)::real
             FROM generate_series(0, 9) k ORDER BY k),
       s, s, s, s, s, s * (9200 + 13800 * u) -- every sample measured every reading
FROM generate_series($3, $4 - interval '$2 seconds', interval '$2 seconds') AS t,
     LATERAL (SELECT extract(epoch FROM t)::bigint / $2 AS b) AS bb,
     fd.groups gr,
     LATERAL (SELECT gr.n::bigint * $2 AS s, fd.u(t, gr.g) AS u) AS x
SQL
}
step "site_rollup_1h ($days d)" "$(site_rows site_rollup_1h 3600 "(SELECT h_now - interval '$days days' FROM fd.clock)" "(SELECT h_now FROM fd.clock)")"
step "site_rollup_1m (24 h + this hour)" "$(site_rows site_rollup_1m 60 "(SELECT least(m_now - interval '24 hours', h_now - interval '1 hour') FROM fd.clock)" "(SELECT m_now FROM fd.clock)")"

# Node rows of the detailed nodes: one node over span seconds.
node_rows() { # TABLE SPAN_S FROM_SQL TO_SQL
  cat <<SQL
INSERT INTO $1 (time, node_id, samples, humidity_samples, last_time, sampled_s, energy_j, tokens,
    throttled_s, requests_completed, power_w_sum, inlet_c_sum, outlet_c_sum, flow_lpm_sum,
    wafer_hotspot_c_sum, utilization_sum, tokens_per_s_sum, throttle_factor_sum,
    requests_queued_sum, requests_in_flight_sum, humidity_pct_sum,
    power_w_min, power_w_max, power_w_last, inlet_c_min, inlet_c_max, inlet_c_last,
    outlet_c_min, outlet_c_max, outlet_c_last, flow_lpm_min, flow_lpm_max, flow_lpm_last,
    wafer_hotspot_c_min, wafer_hotspot_c_max, wafer_hotspot_c_last,
    utilization_min, utilization_max, utilization_last,
    tokens_per_s_min, tokens_per_s_max, tokens_per_s_last,
    throttle_factor_min, throttle_factor_max, throttle_factor_last,
    requests_queued_min, requests_queued_max, requests_queued_last,
    requests_in_flight_min, requests_in_flight_max, requests_in_flight_last,
    humidity_pct_min, humidity_pct_max, humidity_pct_last)
SELECT t, format('wse-%s', lpad(i::text, 5, '0')), $2, CASE WHEN i % 2 = 0 THEN $2 ELSE 0 END,
       t + interval '$2 seconds' - interval '1 second', $2, $2 * p, $2 * 2000 * u, 0, $2,
       $2 * p, $2 * 25.0, $2 * (30 + 12 * u), $2 * 100.0, $2 * (60 + 25 * u), $2 * u,
       $2 * 2000 * u, $2, $2 * 4, $2 * (64 * u)::int,
       CASE WHEN i % 2 = 0 THEN $2 * 42.0 END,
       p - 800, p + 800, p, 24, 26, 25, 29 + 12 * u, 31 + 12 * u, 30 + 12 * u, 95, 105, 100,
       58 + 25 * u, 62 + 25 * u + (CASE WHEN i < 60 THEN 8 ELSE 0 END), 60 + 25 * u,
       u - 0.05, u + 0.05, u, 1900 * u, 2100 * u, 2000 * u, 1, 1, 1, 0, 8, 4,
       (60 * u)::int, (68 * u)::int, (64 * u)::int,
       CASE WHEN i % 2 = 0 THEN 40 END, CASE WHEN i % 2 = 0 THEN 45 END,
       CASE WHEN i % 2 = 0 THEN 42 END
FROM generate_series($3, $4 - interval '$2 seconds', interval '$2 seconds') AS t,
     generate_series(0, $dnodes - 1) AS i,
     LATERAL (SELECT fd.u(t, i % 60) AS u) AS x,
     LATERAL (SELECT 9200 + 13800 * x.u AS p) AS y
SQL
}
step "node_rollup_1h ($dnodes nodes, $days d)" "$(node_rows node_rollup_1h 3600 "(SELECT h_now - interval '$days days' FROM fd.clock)" "(SELECT h_now FROM fd.clock)")"
step "node_rollup_1m ($dnodes nodes, 24 h+)" "$(node_rows node_rollup_1m 60 "(SELECT least(m_now - interval '24 hours', h_now - interval '1 hour') FROM fd.clock)" "(SELECT m_now FROM fd.clock)")"

# Histogram templates: per kind (pm: a phase's minute of a model, ph: its hour, nh: a node's
# hour of a model, nw: a node's 10 s window), model, metric and variant v (0..7), a
# log-normal at scale 6 (64 buckets an octave), sigma 48 buckets, around the model's
# typical value; N requests: a phase of ~10,870 nodes at 1 request/s over 3 models.
step "histogram templates" "
CREATE TABLE fd.models AS
SELECT * FROM (VALUES (1, 'llama3.1-8b', 0.15, 0.0012, 2.0, 0.010),
                      (2, 'llama3.1-70b', 0.6, 0.005, 6.0, 0.020),
                      (3, 'llama3.1-405b', 1.5, 0.009, 15.0, 0.040)) AS m(mi, model, ttft, tpot, e2e, queue);
CREATE TABLE fd.tpl AS
WITH spec AS (
    SELECT k.kind, k.n0, m.mi, m.model, me.metric, v,
           round(log(2, CASE me.metric WHEN 'ttft' THEN m.ttft WHEN 'tpot' THEN m.tpot
                                     WHEN 'e2e' THEN m.e2e ELSE m.queue END) * 64)::int + v * 3 AS mu,
           round(k.n0 * (1 + 0.05 * v))::bigint AS n
    FROM (VALUES ('pm', 217000), ('ph', 13020000), ('nh', 1200), ('nw', 3)) AS k(kind, n0),
         fd.models m, unnest(ARRAY['queue', 'ttft', 'tpot', 'e2e']) AS me(metric),
         generate_series(0, 7) v
), b AS (
    SELECT s.kind, s.mi, s.metric, s.v, s.mu + j AS idx,
           CASE WHEN s.n < 50 THEN (CASE WHEN j = 0 THEN s.n ELSE 0 END)
                ELSE round(s.n * exp(-0.5 * (j / 48.0) ^ 2) / (48 * sqrt(2 * pi())))::bigint END AS c
    FROM spec s, generate_series(-240, 240) j
), nz AS (
    SELECT kind, mi, metric, v, min(idx) AS lo, max(idx) AS hi, sum(c) AS cnt,
           sum(c * 2 ^ ((idx + 0.5) / 64.0)) AS sm
    FROM b WHERE c > 0 GROUP BY 1, 2, 3, 4
)
SELECT nz.kind, nz.mi, nz.metric, nz.v,
       ww_hist_make(6, nz.cnt::bigint, nz.sm::float8, 2 ^ ((nz.lo + 0.5) / 64.0), 2 ^ ((nz.hi + 0.5) / 64.0),
                    0, 0, 0, nz.lo,
                    ARRAY(SELECT b.c FROM b WHERE b.kind = nz.kind AND b.mi = nz.mi
                            AND b.metric = nz.metric AND b.v = nz.v AND b.idx BETWEEN nz.lo AND nz.hi
                          ORDER BY b.idx)) AS h,
       nz.cnt AS n
FROM nz;
CREATE TABLE fd.tpl4 AS
SELECT a.kind, a.mi, a.v, a.n, a.h AS queue, b.h AS ttft, c.h AS tpot, d.h AS e2e
FROM fd.tpl a
JOIN fd.tpl b ON (b.kind, b.mi, b.v, b.metric) = (a.kind, a.mi, a.v, 'ttft')
JOIN fd.tpl c ON (c.kind, c.mi, c.v, c.metric) = (a.kind, a.mi, a.v, 'tpot')
JOIN fd.tpl d ON (d.kind, d.mi, d.v, d.metric) = (a.kind, a.mi, a.v, 'e2e')
WHERE a.metric = 'queue';
CREATE INDEX ON fd.tpl4 (kind, mi, v)"

lat_rows() { # TABLE KIND SPAN_S FROM_SQL TO_SQL WINDOWS_PER_SPAN
  cat <<SQL
INSERT INTO $1 (time, phase, model, windows, requests_ok, requests_error, requests_timeout,
                requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e)
SELECT t, p.phase, m.model, $6, (tp.n * 0.998)::bigint, (tp.n * 0.001)::bigint,
       (tp.n * 0.0005)::bigint, (tp.n * 0.0005)::bigint, tp.n * 800, tp.n * 300,
       tp.queue, tp.ttft, tp.tpot, tp.e2e
FROM generate_series($4, $5 - interval '$3 seconds', interval '$3 seconds') AS t,
     unnest(ARRAY['phase-2026a', 'phase-2027a', 'phase-2028a']) AS p(phase), fd.models m,
     fd.tpl4 tp
WHERE tp.kind = '$2' AND tp.mi = m.mi AND tp.v = (extract(epoch FROM t)::bigint / $3 + m.mi) % 8
SQL
}
# Windows: ~10,867 nodes of a phase, a window each per 10 s and model.
step "latency_rollup_1h ($days d)" "$(lat_rows latency_rollup_1h ph 3600 "(SELECT h_now - interval '$days days' FROM fd.clock)" "(SELECT h_now FROM fd.clock)" 3912120)"
step "latency_rollup_1m ($lat1m_days d + this hour)" "$(lat_rows latency_rollup_1m pm 60 "(SELECT least(m_now - interval '$lat1m_days days', h_now - interval '1 hour') FROM fd.clock)" "(SELECT m_now FROM fd.clock)" 65202)"
step "latency_node_1h ($dnodes nodes x 3 models, $days d)" "
INSERT INTO latency_node_1h (time, node_id, model, duration_s, requests_ok, requests_error,
    requests_timeout, requests_rejected, prompt_tokens, output_tokens, windows, queue, ttft, tpot, e2e)
SELECT t, format('wse-%s', lpad(i::text, 5, '0')), m.model, 3600, (tp.n * 0.998)::bigint,
       (tp.n * 0.001)::bigint, 0, 0, tp.n * 800, tp.n * 300, 360, tp.queue, tp.ttft, tp.tpot, tp.e2e
FROM generate_series((SELECT h_now - interval '$days days' FROM fd.clock),
                     (SELECT h_now - interval '1 hour' FROM fd.clock), interval '1 hour') AS t,
     generate_series(0, $dnodes - 1) i, fd.models m, fd.tpl4 tp
WHERE tp.kind = 'nh' AND tp.mi = m.mi AND tp.v = (extract(epoch FROM t)::bigint / 3600 + i) % 8"
step "latency_windows ($wnodes nodes x 3 models, 24 h+)" "
INSERT INTO latency_windows (time, node_id, model, duration_s, requests_ok, requests_error,
    requests_timeout, requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e)
SELECT t, format('wse-%s', lpad(i::text, 5, '0')), m.model, 10, tp.n, 0, 0, 0, tp.n * 800,
       tp.n * 300, tp.queue, tp.ttft, tp.tpot, tp.e2e
FROM generate_series((SELECT least(m_now - interval '24 hours', h_now - interval '1 hour') FROM fd.clock),
                     (SELECT m_now - interval '10 seconds' FROM fd.clock), interval '10 seconds') AS t,
     generate_series(0, $wnodes - 1) i, fd.models m, fd.tpl4 tp
WHERE tp.kind = 'nw' AND tp.mi = m.mi AND tp.v = (extract(epoch FROM t)::bigint / 10 + i) % 8"
# Their node-hours below compacted_through as compaction leaves them (schema 21): in blocks,
# by the production function; those of days already emptied as blocks only.
step "latency_windows_compact (compacted hours)" "
SELECT ww_compact_window_hours(array_agg(x.h), array_agg(x.n))
FROM (SELECT DISTINCT date_trunc('hour', time, 'UTC') AS h, node_id AS n FROM latency_windows
      WHERE time < (SELECT compacted_through FROM ww_tier_state)) x"

# Every node, every second of the last sample_s seconds (1 s interval, ticks shared).
step "node_samples (32,600 nodes x $sample_s s)" "
INSERT INTO node_samples (time, node_id, power_w, inlet_c, outlet_c, flow_lpm, wafer_hotspot_c,
    utilization, tokens_per_s, requests_queued, requests_in_flight, requests_completed,
    throttled, throttle_factor)
SELECT t, format('wse-%s', lpad(i::text, 5, '0')), round(9200 + 13800 * u), 25, round((30 + 12 * u)::numeric, 1),
       100, round((60 + 25 * u)::numeric, 1), round(u::numeric, 3), round(2000 * u),
       4, (64 * u)::int, 1, i % 997 = 0, CASE WHEN i % 997 = 0 THEN 0.8 ELSE 1 END
FROM generate_series((SELECT date_trunc('second', t_now) - interval '$sample_s seconds' FROM fd.clock),
                     (SELECT date_trunc('second', t_now) - interval '1 second' FROM fd.clock),
                     interval '1 second') AS t,
     generate_series(0, 32599) i,
     LATERAL (SELECT 0.5 + 0.3 * sin(extract(epoch FROM t) / 900.0 + i) AS u) AS x"

# The evaluator's rows, every 30 s over DAYS: capacity per phase; slo_evaluations per SLO
# (8 per phase: deploy/phases.example.yaml) and window; slo_status; an alert episode per
# phase and day (fired and resolved an hour later), one firing now per phase.
step "capacity_evaluations ($days d, 30 s)" "
INSERT INTO capacity_evaluations (time, phase, live, reporting_nodes, healthy_nodes, delivered_mw,
    contracted_mw, delivered_share, power_mw, hotspot_max_c, outlet_max_c, throttled_share,
    j_per_token, breach)
SELECT t, p.id, p.go_live <= t, 10866, 10860, 249.78, 250, 0.99912, 190 + 40 * fd.u(t, 0),
       90 + 3 * random(), 44, 0.002, 5.1, false
FROM generate_series((SELECT t_now - interval '$days days' FROM fd.clock),
                     (SELECT t_now FROM fd.clock), interval '30 seconds') AS t, phases p"
step "slo_evaluations ($days d, 30 s, 24 SLOs x 8 windows)" "
CREATE TABLE fd.slos AS
SELECT p.id AS phase, s.*
FROM phases p,
     (VALUES ('ttft-8b', 'llama3.1-8b', 'ttft', 0.5, 0.99), ('ttft-70b', 'llama3.1-70b', 'ttft', 2.5, 0.99),
             ('ttft-405b', 'llama3.1-405b', 'ttft', 5.0, 0.99), ('tpot-8b', 'llama3.1-8b', 'tpot', 0.002, 0.99),
             ('tpot-70b', 'llama3.1-70b', 'tpot', 0.008, 0.99), ('tpot-405b', 'llama3.1-405b', 'tpot', 0.012, 0.99),
             ('e2e-70b', 'llama3.1-70b', 'e2e', 10, 0.95), ('availability', '*', 'availability', NULL, 0.99))
     AS s(slo, model, metric, threshold_s, objective);
CREATE TABLE fd.windows AS
SELECT * FROM (VALUES ('5m', 300), ('30m', 1800), ('1h', 3600), ('2h', 7200), ('6h', 21600),
                      ('1d', 86400), ('3d', 259200), ('period', 2592000)) AS w(name, s);
INSERT INTO slo_evaluations (time, phase, slo, model, metric, window_s, window_name, good, total, burn_rate)
SELECT t, s.phase, s.slo, s.model, s.metric, w.s, w.name, w.s::bigint * 3600 - w.s * 3, w.s::bigint * 3600, 0.1 + 0.2 * fd.u(t, w.s)
FROM generate_series((SELECT t_now - interval '$days days' FROM fd.clock),
                     (SELECT t_now FROM fd.clock), interval '30 seconds') AS t, fd.slos s, fd.windows w
ORDER BY t"
step "slo_burn_1h ($days d, the production builder's ww_tier_slo_hours)" "
SELECT ww_tier_slo_hours(h_now - interval '$days days' - interval '1 hour', h_now) FROM fd.clock"
step "slo_status, alerts, alert_transitions" "
INSERT INTO slo_status (phase, slo, model, metric, objective, threshold_s, time, attainment,
                        budget_remaining, burn_rates)
SELECT s.phase, s.slo, s.model, s.metric, s.objective, s.threshold_s, c.t_now, 0.999, 0.9,
       '{\"5m\": 0.2, \"30m\": 0.2, \"1h\": 0.2, \"2h\": 0.2, \"6h\": 0.2, \"1d\": 0.2, \"3d\": 0.2}'
FROM fd.slos s, fd.clock c;
INSERT INTO alerts (alertname, phase, slo, model, severity, state, started_at, resolved_at,
                    last_eval_at, summary, details)
SELECT 'SLOBurnRate', p.id, 'ttft-405b', 'llama3.1-405b', 'ticket', 'resolved', t, t + interval '1 hour',
       t + interval '1 hour', 'ttft-405b burning 3.2x over 1d and 2h', '{\"burn_1d\": 3.2}'
FROM generate_series((SELECT h_now - interval '$days days' FROM fd.clock),
                     (SELECT h_now - interval '1 day' FROM fd.clock), interval '1 day') AS t, phases p;
INSERT INTO alerts (alertname, phase, slo, model, severity, state, started_at, last_eval_at, summary, details)
SELECT 'ThermalLimit', p.id, 'thermal', '*', 'ticket', 'firing', c.t_now - interval '20 minutes',
       c.t_now, 'wafer hotspot 96.1 C over 95 C', '{\"hotspot_max_c\": 96.1}'
FROM phases p, fd.clock c;
INSERT INTO alert_transitions (time, alert_id, alertname, phase, slo, severity, to_state, details)
SELECT a.started_at, a.id, a.alertname, a.phase, a.slo, a.severity, 'firing', a.details FROM alerts a
UNION ALL
SELECT a.resolved_at, a.id, a.alertname, a.phase, a.slo, a.severity, 'resolved', a.details
FROM alerts a WHERE a.resolved_at IS NOT NULL;
INSERT INTO slo_evaluator (evaluated_at, interval_s, phases, slos, loaded_at, host, pid)
SELECT t_now, 30, 3, 24, t_now - interval '$days days', 'fleetday', 1 FROM fd.clock"
step "VACUUM ANALYZE" "VACUUM ANALYZE"
echo "generated in $(($(date +%s) - gen_t0)) s"

echo "== rows and sizes (pg_total_relation_size of the partition tree)"
printf '%-22s %12s %10s\n' table rows MB
for t in nodes phases node_samples site_rollup_1m site_rollup_1h node_rollup_1m node_rollup_1h \
  latency_rollup_1m latency_rollup_1h latency_node_1h latency_windows latency_windows_compact capacity_evaluations \
  slo_evaluations slo_burn_1h slo_status alerts alert_transitions; do
  q -F ' ' -c "SELECT count(*), round(coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('$t')),
                                                pg_total_relation_size('$t')) / 1e6, 1) FROM $t" |
    { read -r n mb; printf '%-22s %12s %10s\n' "$t" "$n" "$mb"; }
done
q -c "SELECT 'one ww_hist (latency_rollup_1m ttft): ' || pg_column_size(ttft) || ' B, '
             || array_length(ww_hist_counts(ttft), 1) || ' buckets' FROM latency_rollup_1m LIMIT 1"

echo "== panels (EXPLAIN (ANALYZE, TIMING OFF), best of 3, ms; ! over 1000 ms)"
# The timed plans of the slow ones stay after the run (WW_FD_PLANS, default below).
plans=${WW_FD_PLANS:-/tmp/ww-fleetday-plans}
rm -rf "$plans"
python3 "$root/bench/fleetday_panels.py" "$root/dashboards" "$plans"

echo "== one SLO evaluation cycle (3 phases, 24 SLOs x 8 windows, as collector/ww_slo_eval.c)"
# ww_rollup_hours over the last 3 h (the evaluator's every cycle after its first), then
# ww_sli(phase, model, metric, threshold, now - window, now) for every SLO and window, then
# ww_phase_capacity(phase, now - 30 s, now, hotspot_max_c) per phase; one transaction.
cat >"$run/cycle.sql" <<SQL
BEGIN;
SELECT ww_rollup_hours(now() - make_interval(secs => 3 * 3600 + 1), now());
SELECT count(*) FROM fd.slos s, fd.windows w,
       LATERAL ww_sli(s.phase, s.model, s.metric, s.threshold_s,
                      now() - make_interval(secs => w.s), now()) AS x;
SELECT count(*) FROM phases p,
       LATERAL ww_phase_capacity(p.id, now() - interval '30 seconds', now(), p.hotspot_max_c) AS c;
COMMIT;
SQL
best=
for _ in 1 2 3; do
  t0=$(date +%s.%N)
  q -f "$run/cycle.sql" >/dev/null
  ms=$(awk "BEGIN { printf \"%.0f\", ($(date +%s.%N) - $t0) * 1000 }")
  if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
echo "one evaluation cycle: best of 3 $best ms (psql wall time, one transaction)"
# Its parts: the period window (30 d) of every SLO, the rest, and the capacity.
for part in "w.name = 'period'" "w.name <> 'period'"; do
  t0=$(date +%s.%N)
  q -c "SELECT count(*) FROM fd.slos s, fd.windows w, LATERAL ww_sli(s.phase, s.model, s.metric,
          s.threshold_s, now() - make_interval(secs => w.s), now()) AS x WHERE $part" >/dev/null
  echo "  ww_sli where $part: $(awk "BEGIN { printf \"%.0f\", ($(date +%s.%N) - $t0) * 1000 }") ms"
done
t0=$(date +%s.%N)
q -c "SELECT count(*) FROM phases p, LATERAL ww_phase_capacity(p.id, now() - interval '30 seconds', now(), p.hotspot_max_c) AS c" >/dev/null
echo "  ww_phase_capacity x 3: $(awk "BEGIN { printf \"%.0f\", ($(date +%s.%N) - $t0) * 1000 }") ms"
