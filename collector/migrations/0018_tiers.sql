-- waferwatch schema, version 18: the storage tiers of a fleet-day (issue 18, item 1).
--
-- Raw rows answer "what did node X do at 10:04:17"; a dashboard over 24 h of 32,600 nodes
-- cannot read them (2.8 billion samples a day). The tiers hold the same data summarised per
-- node and per site/hall/phase, per minute and per hour, and latency per (node, model) per
-- hour, so that every range an SRE asks for reads a few thousand rows:
--
--   node_rollup_1m / _1h    per node: samples, min/max/sum/last of every reading, energy,
--                           tokens, throttled seconds, completed requests
--   site_rollup_1m / _1h    per site, hall and phase: reporting nodes, their rated kW, energy,
--                           tokens, throttling, sums and extremes of the thermal readings
--   latency_node_1h         per node and model: latency_windows merged per hour
--   (latency_rollup_1m/_1h  per phase and model, kept at ingest as before)
--
-- Who builds them: the collector's tier job (collector/ww_tiers.h) through the functions of
-- collector/sql/25_functions_tiers.sql, never the ingest path: a minute is built once it is
-- closed (older than the watermark), from the raw rows, in one transaction that also
-- records the progress. Exactly what was built is known, so late data is exact too: a
-- write that brings samples older than the watermark (a spool replayed after an outage, a
-- clock-skewed agent) records the (node, minute) it touched in ww_tier_dirty in its own
-- transaction, and the job rebuilds that node-minute and everything above it. A tier row is
-- therefore always its recomputation from the raw rows (tests/integration/test_tiers.c).
--
-- The protocol (TimescaleDB's invalidation threshold is the model):
--   ingest   every write transaction takes the shared advisory lock ww_tier_watermark()
--            and reads the watermark W; its samples older than W go into ww_tier_dirty
--            (latency windows: those that start before W's hour, as (node, hour)).
--   advance  the job takes the same lock exclusively (waiting for the writes in flight,
--            which then are committed and visible) and moves W to now - tiers.grace.
--   build    in its own transaction: the minutes [minutes_done, W) from the raw rows, the
--            dirty node-minutes below minutes_done, the site minutes of all of them, then
--            the complete hours [hours_done, hour of minutes_done) and the dirty hours.
-- A crash between any two steps loses nothing: the progress moves in the transaction that
-- builds, and a dirty entry is deleted in the one that rebuilds it.

-- ---- node_rollup_1m, node_rollup_1h -----------------------------------------------------
-- Columns are in alignment order (8-byte, then 4-byte), which saves ~40 B of padding a row.
-- time: the minute (hour) start, UTC. last_time: the latest sample; *_last are its readings.
-- sampled_s = samples x the node's interval (nodes.interval_ms, 1 s when unknown): the
-- seconds the samples stand for; energy_j = sum(power_w) x that interval, tokens and
-- throttled_s alike (tokens_per_s, throttled): mean power = energy_j / sampled_s, throttled
-- share = throttled_s / sampled_s. The mean of a reading is *_sum / samples; humidity's is humidity_pct_sum / humidity_samples (NULLs when no sample
-- measured it).
CREATE TABLE node_rollup_1m (
    time                   timestamptz NOT NULL,
    node_id                text NOT NULL,
    samples                integer NOT NULL,
    humidity_samples       integer NOT NULL,
    last_time              timestamptz NOT NULL,
    sampled_s              double precision NOT NULL,
    energy_j               double precision NOT NULL,
    tokens                 double precision NOT NULL,
    throttled_s            double precision NOT NULL,
    requests_completed     bigint NOT NULL,
    power_w_sum double precision NOT NULL, inlet_c_sum double precision NOT NULL,
    outlet_c_sum double precision NOT NULL, flow_lpm_sum double precision NOT NULL,
    wafer_hotspot_c_sum double precision NOT NULL, utilization_sum double precision NOT NULL,
    tokens_per_s_sum double precision NOT NULL, throttle_factor_sum double precision NOT NULL,
    requests_queued_sum bigint NOT NULL, requests_in_flight_sum bigint NOT NULL,
    humidity_pct_sum double precision,
    power_w_min real NOT NULL, power_w_max real NOT NULL, power_w_last real NOT NULL,
    inlet_c_min real NOT NULL, inlet_c_max real NOT NULL, inlet_c_last real NOT NULL,
    outlet_c_min real NOT NULL, outlet_c_max real NOT NULL, outlet_c_last real NOT NULL,
    flow_lpm_min real NOT NULL, flow_lpm_max real NOT NULL, flow_lpm_last real NOT NULL,
    wafer_hotspot_c_min real NOT NULL, wafer_hotspot_c_max real NOT NULL,
    wafer_hotspot_c_last real NOT NULL,
    utilization_min real NOT NULL, utilization_max real NOT NULL,
    utilization_last real NOT NULL,
    tokens_per_s_min real NOT NULL, tokens_per_s_max real NOT NULL,
    tokens_per_s_last real NOT NULL,
    throttle_factor_min real NOT NULL, throttle_factor_max real NOT NULL,
    throttle_factor_last real NOT NULL,
    requests_queued_min integer NOT NULL, requests_queued_max integer NOT NULL,
    requests_queued_last integer NOT NULL,
    requests_in_flight_min integer NOT NULL, requests_in_flight_max integer NOT NULL,
    requests_in_flight_last integer NOT NULL,
    humidity_pct_min real, humidity_pct_max real, humidity_pct_last real,
    PRIMARY KEY (node_id, time)
) PARTITION BY RANGE (time);
COMMENT ON TABLE node_rollup_1m IS
    'node_samples per node and minute (UTC): samples, min/max/sum/last of every reading, '
    'energy_j, tokens, throttled_s, requests_completed. Built by the tier job from the raw '
    'rows, rebuilt when late samples arrive: always equal to its recomputation.';
-- Fleet-wide minutes (the site tier's build, retention) scan by time.
CREATE INDEX node_rollup_1m_time_brin ON node_rollup_1m USING brin (time);
CREATE TABLE node_rollup_1m_default PARTITION OF node_rollup_1m DEFAULT;

-- The same per hour, built from the node's minutes (partitioned by month: ~780k rows a day
-- at full fleet, kept a year).
CREATE TABLE node_rollup_1h (LIKE node_rollup_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                             PRIMARY KEY (node_id, time)) PARTITION BY RANGE (time);
COMMENT ON TABLE node_rollup_1h IS
    'node_rollup_1m per node and hour (UTC), built by the tier job from the minutes of '
    'complete hours and rebuilt when a minute changes.';
CREATE INDEX node_rollup_1h_time_brin ON node_rollup_1h USING brin (time);
CREATE TABLE node_rollup_1h_default PARTITION OF node_rollup_1h DEFAULT;

-- ---- site_rollup_1m, site_rollup_1h -----------------------------------------------------
-- The node rows of a minute (hour) summed per site, hall and phase of the nodes (labels as
-- nodes holds them when the row is built; '' before a node's Hello). nodes: reporting
-- nodes; rated_kw: theirs, summed. Power over the bucket in MW = energy_j / seconds / 1e6;
-- J per token = energy_j / tokens; a mean reading = *_sum / samples.
CREATE TABLE site_rollup_1m (
    time                timestamptz NOT NULL,
    site                text NOT NULL,
    hall                text NOT NULL,
    phase               text NOT NULL,
    samples             bigint NOT NULL,
    humidity_samples    bigint NOT NULL,
    rated_kw            double precision NOT NULL,
    sampled_s           double precision NOT NULL,
    energy_j            double precision NOT NULL,
    tokens              double precision NOT NULL,
    throttled_s         double precision NOT NULL,
    requests_completed  bigint NOT NULL,
    inlet_c_sum         double precision NOT NULL,
    outlet_c_sum        double precision NOT NULL,
    flow_lpm_sum        double precision NOT NULL,
    wafer_hotspot_c_sum double precision NOT NULL,
    utilization_sum     double precision NOT NULL,
    humidity_pct_sum    double precision,
    nodes               integer NOT NULL,
    throttled_nodes     integer NOT NULL,  -- nodes throttled at any sample of the bucket
    power_w_max         real NOT NULL,     -- the highest node reading
    inlet_c_max         real NOT NULL,
    outlet_c_max        real NOT NULL,
    flow_lpm_min        real NOT NULL,     -- the lowest node reading
    wafer_hotspot_c_max real NOT NULL,
    humidity_pct_max    real,
    -- The ten nodes with the hottest wafer in the bucket (ties: by node_id), hottest first,
    -- and their highest hotspot_c. The ten hottest nodes of any range and set of sites are
    -- among the union of these (a node among them over the range is among them in the
    -- bucket of its own maximum), so "hottest nodes" reads a few rows per bucket instead of
    -- every node of the fleet (ww_hottest_nodes).
    hot_node_ids        text[] NOT NULL,
    hot_node_c          real[] NOT NULL,
    PRIMARY KEY (time, site, hall, phase)
);
COMMENT ON TABLE site_rollup_1m IS
    'node_rollup_1m per minute, site, hall and phase: reporting nodes and their rated kW, '
    'energy_j (power = energy_j / 60 / 1e6 MW), tokens, throttling, thermal sums and '
    'extremes. Built by the tier job.';
CREATE TABLE site_rollup_1h (LIKE site_rollup_1m INCLUDING ALL);
COMMENT ON TABLE site_rollup_1h IS
    'node_rollup_1h per hour, site, hall and phase (nodes: those that reported in the '
    'hour). Built by the tier job.';

-- ---- latency_node_1h --------------------------------------------------------------------
-- latency_windows per node, model and hour of the window start (windows: rows merged;
-- duration_s: their durations summed). ~2.3 million rows a day at full fleet.
CREATE TABLE latency_node_1h (
    time              timestamptz NOT NULL,
    node_id           text NOT NULL,
    model             text NOT NULL,
    duration_s        double precision NOT NULL,
    requests_ok       bigint NOT NULL,
    requests_error    bigint NOT NULL,
    requests_timeout  bigint NOT NULL,
    requests_rejected bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    output_tokens     bigint NOT NULL,
    windows           integer NOT NULL,
    queue             ww_hist NOT NULL,
    ttft              ww_hist NOT NULL,
    tpot              ww_hist NOT NULL,
    e2e               ww_hist NOT NULL,
    PRIMARY KEY (node_id, time, model)
) PARTITION BY RANGE (time);
COMMENT ON TABLE latency_node_1h IS
    'latency_windows merged per node, model and hour (UTC) of the window start; built by '
    'the tier job from complete hours and rebuilt when a late window arrives.';
CREATE INDEX latency_node_1h_time_brin ON latency_node_1h USING brin (time);
CREATE TABLE latency_node_1h_default PARTITION OF latency_node_1h DEFAULT;

-- ---- the job's state --------------------------------------------------------------------
-- One row. start: the tiers cover the data from this hour on; watermark: samples before it
-- are closed (a write bringing older ones records them in ww_tier_dirty); minutes_done:
-- every minute in [start, minutes_done) is built; hours_done: every hour before it.
-- A new database starts at the current hour; an existing one at the first day of its
-- oldest daily partition of node_samples that holds rows, so the job builds the history it
-- has. Data before start (rows in node_samples_default before that day, a late sample
-- older than a new database) stays out of the tiers: its late entries are dropped, so that
-- an hour is never built from a part of its minutes.
CREATE TABLE ww_tier_state (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    start        timestamptz NOT NULL,
    watermark    timestamptz NOT NULL,
    minutes_done timestamptz NOT NULL,
    hours_done   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (start <= hours_done AND hours_done <= minutes_done AND minutes_done <= watermark)
);
INSERT INTO ww_tier_state (start, watermark, minutes_done, hours_done)
SELECT s, s, s, s
FROM (SELECT date_trunc('hour', coalesce(
                 (SELECT min(to_date(right(c.relname, 8), 'YYYYMMDD'))::timestamptz
                  FROM pg_inherits i
                  JOIN pg_class c ON c.oid = i.inhrelid
                  JOIN pg_class p ON p.oid = i.inhparent
                  WHERE p.relname = 'node_samples' AND c.relname ~ '_p[0-9]{8}$'
                    AND pg_relation_size(c.oid) > 0),
                 now()), 'UTC') AS s) AS start;
COMMENT ON TABLE ww_tier_state IS
    'The tier job''s progress: watermark (older samples are late and recorded in '
    'ww_tier_dirty), minutes_done and hours_done (every minute and hour before is built).';

-- Buckets that late data changed, waiting for the job: tier 's' = a minute of node_samples
-- of node_id, 'l' = an hour of latency_windows of node_id. Written by the ingest transaction
-- that brought the data, deleted by the job's transaction that rebuilds the bucket.
CREATE TABLE ww_tier_dirty (
    tier    "char" NOT NULL CHECK (tier IN ('s', 'l')),
    node_id text NOT NULL,
    time    timestamptz NOT NULL,
    PRIMARY KEY (tier, time, node_id)
);
COMMENT ON TABLE ww_tier_dirty IS
    'Buckets changed by late data since they were built: (''s'', node, minute) of '
    'node_samples, (''l'', node, hour) of latency_windows. The tier job rebuilds and deletes them.';
