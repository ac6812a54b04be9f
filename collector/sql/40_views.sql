-- Repeatable: the views for the dashboards (dashboards/*.json) and for an SRE with psql,
-- so that both get the same answers from the same SQL:
--
--   ww_node_samples            every sample with its node's labels (site, phase, ...)
--   ww_node_latest             every node's latest sample, labels and age
--   ww_throttled_nodes         the nodes whose latest sample is throttled
--   ww_phase_power             power, tokens/s and J/token per site and phase per sample
--                              tick, with the phase's contracted MW and power ceiling
--   ww_phase_thermal           coolant and wafer temperatures per site and phase per sample
--                              tick, with the phase's limits
--   ww_phase_capacity_latest   the latest capacity evaluation of every phase
--   ww_latency_1m              per minute, phase, model and site: requests, tokens, p50/p90/p99
--                              of TTFT, TPOT, end-to-end and queue time, and the merged
--                              histograms (to merge further with ww_merge)
--   ww_slo_budget              every SLO's latest attainment, budget left, burn rate per
--                              window and firing severities
--   ww_alerts_firing           the alert episodes firing now
--
-- Plain views, nothing materialized: a filter on `time` (and on node_id, phase, model)
-- reaches the base table's own column, so it prunes the daily partitions and uses the
-- indexes. That is why the views over node_samples are per sample tick and not per
-- minute: a view grouped by date_trunc('minute', time) would turn `time > now() - '1h'`
-- into a filter on date_trunc(...) and read every partition. Agents sample on wall-clock
-- multiples of their interval, so the nodes of a phase share tick times; bucket further in
-- the query (see dashboards/README.md). latency_rollup_1m is stored per minute already.
--
-- waferwatch_reader may SELECT every view: ww_grant_roles() (90_grants.sql, applied after
-- this file) grants SELECT ON ALL TABLES, views included, and sets ALTER DEFAULT PRIVILEGES
-- for the role that runs the migrations. A view reads its tables with its owner's rights;
-- the functions it calls (ww_quantile) need the reader's EXECUTE, which 90_grants.sql
-- grants. tests/integration/test_dashboards.c runs every view and panel as the reader.

-- Re-applied by the migrator after the versioned migrations whenever a file of collector/sql
-- changes (ww_migrate.h): edit a view here, in place. CREATE OR REPLACE VIEW keeps the
-- view's grants and may only add columns at the end of its list; a change that removes,
-- renames, retypes or reorders a column needs DROP VIEW IF EXISTS name; before the CREATE
-- (and the views that read it, ww_throttled_nodes of ww_node_latest, re-created after it).
-- The retired phases and SLOs (0012) are history: the "latest" views skip them.

-- Every sample with its node's labels. A plain join, flattened into the query that uses it:
-- filters on time, node_id, site or phase all reach the tables. Samples of a node that has
-- not said Hello have '' labels and rated_kw 0.
CREATE OR REPLACE VIEW ww_node_samples AS
SELECT s.time, s.node_id,
       coalesce(n.site, '') AS site, coalesce(n.hall, '') AS hall,
       coalesce(n.rack, '') AS rack, coalesce(n.phase, '') AS phase,
       coalesce(n.system_model, '') AS system_model, coalesce(n.rated_kw, 0) AS rated_kw,
       s.power_w, s.inlet_c, s.outlet_c, s.flow_lpm, s.wafer_hotspot_c, s.utilization,
       s.tokens_per_s, s.requests_queued, s.requests_in_flight, s.requests_completed,
       s.throttled, s.throttle_factor
FROM node_samples s LEFT JOIN nodes n USING (node_id);
COMMENT ON VIEW ww_node_samples IS
    'node_samples with the labels of nodes (site, hall, rack, phase, system_model, '
    'rated_kw; '''' before the node''s Hello). Filter on time: it prunes partitions. Raw rows '
    'only: the hours not compacted yet (compaction.age); samples of any age: ww_samples().';

-- The latest sample of every known node (one index probe per node and partition), or NULLs
-- for a node that has never sent one. age_s: seconds since that sample. Raw rows only: a
-- node silent since before its day's raw rows were emptied by compaction (0019) shows
-- NULLs (its samples are in ww_samples()). A fallback to the latest block, even gated to
-- such nodes, made the view 3x slower over 32,600 nodes (bench/fleetday.sh). Only the
-- partitions from ww_tier_state.truncated_through on are probed: the days before it were
-- emptied by compaction (what is left there came late, and is in ww_samples() too), and
-- probing their ~35 empty partitions per node was half of the view's 1.2 s.
CREATE OR REPLACE VIEW ww_node_latest AS
SELECT n.node_id, n.site, n.hall, n.rack, n.phase, n.system_model, n.rated_kw, n.agent_id,
       n.agent_version, n.interval_ms, n.last_hello,
       l.time, extract(epoch FROM now() - l.time)::double precision AS age_s,
       l.power_w, l.inlet_c, l.outlet_c, l.flow_lpm, l.wafer_hotspot_c, l.utilization,
       l.tokens_per_s, l.requests_queued, l.requests_in_flight, l.requests_completed,
       l.throttled, l.throttle_factor
FROM nodes n
LEFT JOIN LATERAL (SELECT s.*
                   FROM node_samples s
                   WHERE s.node_id = n.node_id
                     AND s.time >= (SELECT t.truncated_through FROM ww_tier_state t)
                   ORDER BY s.time DESC
                   LIMIT 1) AS l ON true;
COMMENT ON VIEW ww_node_latest IS
    'Every node of nodes with its labels and its latest sample (NULLs if none yet); age_s '
    'is the seconds since that sample.';

-- Nodes whose latest sample says they throttle.
CREATE OR REPLACE VIEW ww_throttled_nodes AS
SELECT node_id, site, hall, rack, phase, time, age_s, wafer_hotspot_c, outlet_c, inlet_c,
       flow_lpm, throttle_factor, power_w, tokens_per_s
FROM ww_node_latest
WHERE throttled;
COMMENT ON VIEW ww_throttled_nodes IS
    'Nodes whose latest sample is throttled (throttle_factor < 1 slows decode), with the '
    'temperatures and coolant flow of that sample and its age.';

-- Power per site and phase per sample tick against the phase's contract (from phases: NULL
-- for a phase the SLO file does not know). power_mw sums the nodes that reported at that
-- tick (nodes). j_per_token: W / (token/s) = J per output token, NULL when no token was
-- produced. A phase spread over sites has one row per site: sum them per tick.
CREATE OR REPLACE VIEW ww_phase_power AS
SELECT s.time, coalesce(n.site, '') AS site, coalesce(n.phase, '') AS phase,
       count(*)::integer AS nodes,
       sum(s.power_w::double precision) / 1e6 AS power_mw,
       sum(s.tokens_per_s::double precision) AS tokens_per_s,
       sum(s.power_w::double precision)
           / nullif(sum(s.tokens_per_s::double precision), 0) AS j_per_token,
       sum(coalesce(n.rated_kw, 0)) / 1e3 AS rated_mw,
       p.contracted_mw, p.power_ceiling_mw
FROM node_samples s
LEFT JOIN nodes n USING (node_id)
LEFT JOIN phases p ON p.id = n.phase
GROUP BY s.time, coalesce(n.site, ''), coalesce(n.phase, ''), p.contracted_mw,
         p.power_ceiling_mw;
COMMENT ON VIEW ww_phase_power IS
    'Per sample tick, site and phase: reporting nodes, power (MW), tokens/s, J/token, rated '
    'MW of the reporting nodes, and the phase''s contracted_mw and power_ceiling_mw. Filter '
    'on time (pushed down to node_samples.time); sum over sites per tick, then avg() per '
    'longer step.';

-- Coolant and wafer temperatures per site and phase per sample tick, with the phase's
-- limits. Averages over several rows: weight them by nodes.
CREATE OR REPLACE VIEW ww_phase_thermal AS
SELECT s.time, coalesce(n.site, '') AS site, coalesce(n.phase, '') AS phase,
       count(*)::integer AS nodes,
       avg(s.inlet_c)::double precision AS inlet_avg_c,
       max(s.inlet_c)::double precision AS inlet_max_c,
       avg(s.outlet_c)::double precision AS outlet_avg_c,
       max(s.outlet_c)::double precision AS outlet_max_c,
       min(s.flow_lpm)::double precision AS flow_min_lpm,
       avg(s.wafer_hotspot_c)::double precision AS hotspot_avg_c,
       max(s.wafer_hotspot_c)::double precision AS hotspot_max_c,
       (count(*) FILTER (WHERE s.throttled))::integer AS throttled_nodes,
       p.hotspot_max_c AS hotspot_limit_c, p.outlet_max_c AS outlet_limit_c
FROM node_samples s
LEFT JOIN nodes n USING (node_id)
LEFT JOIN phases p ON p.id = n.phase
GROUP BY s.time, coalesce(n.site, ''), coalesce(n.phase, ''), p.hotspot_max_c,
         p.outlet_max_c;
COMMENT ON VIEW ww_phase_thermal IS
    'Per sample tick, site and phase: coolant inlet/outlet (avg, max), lowest flow, wafer '
    'hotspot (avg, max), throttled nodes, and the phase''s hotspot/outlet limits. Filter on '
    'time (pushed down to node_samples.time).';

-- The latest capacity evaluation of every configured phase (one index probe each); NULLs
-- for a phase not evaluated yet.
CREATE OR REPLACE VIEW ww_phase_capacity_latest AS
SELECT p.id AS phase, p.name, p.go_live, c.time, c.live, c.reporting_nodes,
       c.healthy_nodes, c.delivered_mw, c.contracted_mw, c.delivered_share,
       p.capacity_breach_share, c.power_mw, p.power_ceiling_mw, c.hotspot_max_c,
       p.hotspot_max_c AS hotspot_limit_c, c.outlet_max_c, p.outlet_max_c AS outlet_limit_c,
       c.throttled_share, c.j_per_token, c.breach
FROM phases p
LEFT JOIN LATERAL (SELECT *
                   FROM capacity_evaluations e
                   WHERE e.phase = p.id
                   ORDER BY e.time DESC
                   LIMIT 1) AS c ON true
WHERE p.retired_at IS NULL;
COMMENT ON VIEW ww_phase_capacity_latest IS
    'Per configured phase: its latest capacity_evaluations row (delivered vs contracted MW, '
    'power, hottest wafer and outlet, throttled share, J/token, breach) beside its limits; '
    'NULLs before its first evaluation.';

-- Per minute, phase, model and site (latency_rollup_1m, one row each): requests and tokens, and
-- the quantiles of each histogram (seconds; NULL when it is empty). Only the columns a query
-- names are computed. Merge several minutes or models with ww_merge(ttft) etc.
CREATE OR REPLACE VIEW ww_latency_1m AS
SELECT r.time, r.phase, r.model, r.windows,
       r.requests_ok + r.requests_error + r.requests_timeout + r.requests_rejected AS requests,
       r.requests_ok, r.requests_error, r.requests_timeout, r.requests_rejected,
       r.prompt_tokens, r.output_tokens,
       ww_quantile(r.ttft, 0.5) AS ttft_p50_s, ww_quantile(r.ttft, 0.9) AS ttft_p90_s,
       ww_quantile(r.ttft, 0.99) AS ttft_p99_s,
       ww_quantile(r.tpot, 0.5) AS tpot_p50_s, ww_quantile(r.tpot, 0.9) AS tpot_p90_s,
       ww_quantile(r.tpot, 0.99) AS tpot_p99_s,
       ww_quantile(r.e2e, 0.5) AS e2e_p50_s, ww_quantile(r.e2e, 0.9) AS e2e_p90_s,
       ww_quantile(r.e2e, 0.99) AS e2e_p99_s,
       ww_quantile(r.queue, 0.5) AS queue_p50_s, ww_quantile(r.queue, 0.9) AS queue_p90_s,
       ww_quantile(r.queue, 0.99) AS queue_p99_s,
       r.ttft, r.tpot, r.e2e, r.queue, r.site
FROM latency_rollup_1m r;
COMMENT ON VIEW ww_latency_1m IS
    'latency_rollup_1m with requests (all statuses), p50/p90/p99 in seconds of ttft, tpot, '
    'e2e and queue per minute, phase, model and site (nodes.site), and the histograms for '
    'ww_merge over longer ranges (quantiles of a merge, not averages of quantiles).';

-- Every SLO's latest status with the burn rate of each alerting window as a column, the
-- phase's name and the severities of its alerts firing now ('' when none).
CREATE OR REPLACE VIEW ww_slo_budget AS
SELECT s.phase, p.name AS phase_name, s.slo, s.model, s.metric, s.objective, s.threshold_s,
       s.time, s.attainment, s.budget_remaining,
       (s.burn_rates ->> '5m')::double precision AS burn_5m,
       (s.burn_rates ->> '30m')::double precision AS burn_30m,
       (s.burn_rates ->> '1h')::double precision AS burn_1h,
       (s.burn_rates ->> '2h')::double precision AS burn_2h,
       (s.burn_rates ->> '6h')::double precision AS burn_6h,
       (s.burn_rates ->> '1d')::double precision AS burn_1d,
       (s.burn_rates ->> '3d')::double precision AS burn_3d,
       coalesce((SELECT string_agg(a.severity, ',' ORDER BY a.severity)
                 FROM alerts a
                 WHERE a.phase = s.phase AND a.slo = s.slo AND a.state = 'firing'), '') AS firing
FROM slo_status s
LEFT JOIN phases p ON p.id = s.phase
WHERE s.retired_at IS NULL;
COMMENT ON VIEW ww_slo_budget IS
    'slo_status per phase and SLO: attainment and budget_remaining over the period, '
    'burn_5m .. burn_3d (the burn_rates JSON as columns), and firing: the severities of '
    'the SLO''s alerts firing now (page, ticket), '''' when none.';

-- The alert episodes firing now.
CREATE OR REPLACE VIEW ww_alerts_firing AS
SELECT a.id, a.alertname, a.severity, a.phase, a.slo, a.model, a.started_at,
       extract(epoch FROM now() - a.started_at)::double precision AS firing_for_s,
       a.last_eval_at, a.summary, a.details
FROM alerts a
WHERE a.state = 'firing';
COMMENT ON VIEW ww_alerts_firing IS
    'Alerts in state firing (one row per episode; the SLO evaluator keeps them): name, '
    'severity, phase, SLO, model, since when, summary and details (burn rates, capacity).';
