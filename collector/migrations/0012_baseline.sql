-- waferwatch schema, version 12 (baseline): the types, tables, indexes and comments that
-- migrations 0001-0012 left, in one file, for a fresh database.
--
-- Version 12 is the first released schema. Its twelve migrations also (re)defined every
-- function, aggregate, view and grant, layer upon layer; those now live once, whole, in the
-- repeatable files collector/sql/*.sql, which the migrator applies after this file and
-- 0013.. (ww_migrate.h). What is left here is what a function file cannot re-create: the
-- ww_hist type, the tables with their partitioning, defaults, constraints and indexes, the
-- default partitions, and the comments on them. A database already at 12 never runs this
-- file; one at 1..11 (never released) is refused by the migrator: migrate it first with a
-- collector built from commit c42eac9, the last that carries 0001-0012 one by one. The
-- result is checked by tests/integration/test_schema.c: a fresh database and one migrated
-- by those twelve (tests/integration/fixtures/v12.sql.gz) dump identically once upgraded.
--
-- Per table, the original migration's reasons are kept; the version that added a column or
-- an index is named where it changed the table.

-- ---- ww_hist (0002) -------------------------------------------------------------------
-- The latency histogram. The layout and semantics are those of proto/ww_hist.h (the
-- OpenTelemetry exponential layout); the C and SQL sides must agree, so a change here is a
-- change there. Its functions and the ww_merge aggregate: collector/sql/10_functions_hist.sql.
--
-- Layout. At scale s the base is b = 2^(2^-s) and bucket index i holds values v with
-- b^i < v <= b^(i+1). counts[k] (1-based, dense) is the count of bucket "offset" + k - 1.
-- zero_count holds zero and negative values, underflow (0, 2^-20], overflow values above
-- 2^12, +inf and NaN. count = zero_count + underflow + overflow + sum(counts). sum, min
-- and max are over the finite values (min/max NULL when there are none; a NaN written by
-- C code is read as NULL too). NULL elements inside counts are not allowed (the collector
-- never writes them).
CREATE TYPE ww_hist AS (
    scale      integer,
    count      bigint,
    sum        double precision,
    min        double precision,
    max        double precision,
    zero_count bigint,
    underflow  bigint,
    overflow   bigint,
    "offset"   integer,
    counts     bigint[]
);
COMMENT ON TYPE ww_hist IS
    'Exponential latency histogram (proto/ww_hist.h): bucket i at scale s holds '
    '2^(i/2^s) < v <= 2^((i+1)/2^s); counts[k] is bucket "offset" + k - 1. The collector '
    'writes it with binary COPY: the field order is part of the wire contract.';

-- ---- nodes (0001) ---------------------------------------------------------------------
-- One row per node, upserted from its agent's Hello.
CREATE TABLE nodes (
    node_id       text PRIMARY KEY,
    agent_id      text NOT NULL,
    site          text NOT NULL DEFAULT '',
    hall          text NOT NULL DEFAULT '',
    rack          text NOT NULL DEFAULT '',
    phase         text NOT NULL DEFAULT '',
    system_model  text NOT NULL DEFAULT '',
    rated_kw      double precision NOT NULL DEFAULT 0,
    agent_version text NOT NULL DEFAULT '',
    source        text NOT NULL DEFAULT '',
    interval_ms   integer NOT NULL DEFAULT 0,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_hello    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_phase_idx ON nodes (phase);

-- ---- node_samples (0001) --------------------------------------------------------------
-- One wide row per node per sample. Units are in the column names. Partitioned by day: the
-- daily partitions node_samples_pYYYYMMDD are made by ww_ensure_partitions() (the collector,
-- ahead of time) and dropped by ww_drop_old_data() (retention).
CREATE TABLE node_samples (
    time               timestamptz NOT NULL,
    node_id            text NOT NULL,
    power_w            real NOT NULL,
    inlet_c            real NOT NULL,
    outlet_c           real NOT NULL,
    flow_lpm           real NOT NULL,
    wafer_hotspot_c    real NOT NULL,
    utilization        real NOT NULL,
    tokens_per_s       real NOT NULL,
    requests_queued    integer NOT NULL,
    requests_in_flight integer NOT NULL,
    requests_completed integer NOT NULL,
    throttled          boolean NOT NULL,
    throttle_factor    real NOT NULL
) PARTITION BY RANGE (time);
-- The node drill-down and ww_phase_capacity() (one range scan and one backward probe per
-- node: 0009) go through the btree; time-range scans of the whole fleet through the BRIN.
CREATE INDEX node_samples_node_time_idx ON node_samples (node_id, time);
CREATE INDEX node_samples_time_brin ON node_samples USING brin (time);
-- Catches rows outside the daily partitions (late or early data) so no insert fails.
CREATE TABLE node_samples_default PARTITION OF node_samples DEFAULT;

-- ---- streams (0001, 0004, 0011) -------------------------------------------------------
-- Per-stream progress: everything of (agent_id, epoch) up to last_seq is committed.
-- Updated in the same transaction as the rows, so a replayed batch is recognised.
--
-- 64-bit identifiers (0011). The wire's epoch is a fixed64; PostgreSQL has no unsigned
-- type, so the columns hold the same 64 bits read as a signed bigint (epochs of 2^63 and
-- above are negative here; ww_epoch_hex shows them as the agent logs them). seq is refused
-- on the wire above 2^63 - 1, so it is stored as it is.
--
-- lost_batches (0004): batches the stream skipped, counted by the collector from the holes
-- in the sequence numbers it committed, in the same transaction: the exact number of
-- batches that never reached PostgreSQL (each was dropped by the agent's spool policy).
CREATE TABLE streams (
    agent_id     text NOT NULL,
    epoch        bigint NOT NULL,
    last_seq     bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    lost_batches bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, epoch)
);
COMMENT ON COLUMN streams.epoch IS
    'The wire epoch (fixed64), its 64 bits read as bigint: see ww_epoch_hex().';

-- ---- stream_losses (0004) -------------------------------------------------------------
-- What agents lost on purpose or by damage, per stream (agent run): batches dropped by
-- the spool's drop_oldest policy, spool records cut as corrupt at recovery, ticks not
-- sampled. Cumulative counters reported with every batch after a loss; the collector
-- keeps the highest value seen, in the transaction that writes the batch. A batch that
-- the spool dropped after it had already been sent (in flight, not yet acked) may still
-- have arrived: dropped_batches is what the agent gave up on, streams.lost_batches what
-- PostgreSQL never received.
CREATE TABLE stream_losses (
    agent_id        text NOT NULL,
    epoch           bigint NOT NULL,
    dropped_batches bigint NOT NULL DEFAULT 0,
    corrupt_records bigint NOT NULL DEFAULT 0,
    skipped_ticks   bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch)
);

-- ---- stream_holes (0011) --------------------------------------------------------------
-- Sequence numbers a stream skipped, as ranges. A batch above the stream's progress that
-- skips seqs records the hole (and counts it in streams.lost_batches); a batch that
-- arrives later inside a hole is written, not taken for a replay, and the hole shrinks
-- (lost_batches goes down by one): the loss count stays exact whatever the order.
CREATE TABLE stream_holes (
    agent_id   text NOT NULL,
    epoch      bigint NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch, first_seq),
    CHECK (first_seq >= 1 AND last_seq >= first_seq)
);
COMMENT ON TABLE stream_holes IS
    'Sequence numbers [first_seq, last_seq] of a stream never received (yet): counted in '
    'streams.lost_batches; a batch that arrives inside a hole is written and the hole shrinks.';

-- ---- stream_outages (0011) ------------------------------------------------------------
-- Time an agent was not sampling, reported by its next run: every hole in node_samples is
-- explained by an outage (not running) or a counted loss (stream_losses, lost_batches).
CREATE TABLE stream_outages (
    agent_id      text NOT NULL,
    epoch         bigint NOT NULL,
    from_time     timestamptz,            -- last tick spooled before (NULL: none known)
    to_time       timestamptz NOT NULL,   -- first tick of the new run
    lost_ticks    bigint NOT NULL,
    lost_requests bigint NOT NULL,        -- in latency windows open at a crash, never sent
    cause         text NOT NULL,          -- 'stop' (clean) or 'crash'
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch, to_time)
);
COMMENT ON TABLE stream_outages IS
    'Stretches an agent did not sample (from its last spooled tick to the first tick of its '
    'next run), with the ticks and the requests of open latency windows lost.';

-- ---- ingest_rejects (0001) ------------------------------------------------------------
-- Every message the collector refused (Nack), so that loss is visible in SQL.
CREATE TABLE ingest_rejects (
    time     timestamptz NOT NULL DEFAULT now(),
    agent_id text NOT NULL DEFAULT '',
    epoch    bigint,
    seq      bigint,
    code     text NOT NULL,
    reason   text NOT NULL
);
CREATE INDEX ingest_rejects_time_idx ON ingest_rejects (time);

-- ---- latency_windows (0003, 0011) -----------------------------------------------------
-- Per-request latency: one row per node, model and window, with the four histograms;
-- partitioned by day like node_samples.
--
-- One row per (node, model, window start) (0011). Earlier agents sent their open windows
-- at a clean stop as if complete and the restarted agent sent the same start again; the
-- collector now merges a second part of a window into its row (ON CONFLICT on
-- latency_windows_key), adding the durations, and counts the parts (a whole window is 1
-- part; 4 bytes that fit the row's padding). The key serves the node drill-down's
-- (node_id, time) range scans as well, so no other btree is needed.
CREATE TABLE latency_windows (
    time              timestamptz NOT NULL,  -- window start
    node_id           text NOT NULL,
    model             text NOT NULL,
    duration_s        double precision NOT NULL,
    requests_ok       bigint NOT NULL,
    requests_error    bigint NOT NULL,
    requests_timeout  bigint NOT NULL,
    requests_rejected bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    output_tokens     bigint NOT NULL,
    queue             ww_hist NOT NULL,      -- request_queue_time_seconds
    ttft              ww_hist NOT NULL,      -- time_to_first_token_seconds
    tpot              ww_hist NOT NULL,      -- time_per_output_token_seconds
    e2e               ww_hist NOT NULL,      -- e2e_request_latency_seconds
    parts             integer NOT NULL DEFAULT 1
) PARTITION BY RANGE (time);
COMMENT ON COLUMN latency_windows.parts IS
    'How many parts the window was sent in (> 1: the agent restarted inside it, and the '
    'collector merged the parts; duration_s is then the sum of the parts'' durations).';
CREATE UNIQUE INDEX latency_windows_key ON latency_windows (node_id, time, model);
CREATE INDEX latency_windows_time_brin ON latency_windows USING brin (time);
CREATE TABLE latency_windows_default PARTITION OF latency_windows DEFAULT;

-- ---- latency_rollup_1m (0003), latency_rollup_1h (0010) -------------------------------
-- Windows merged per minute (of their start), capacity phase (from nodes; '' when the
-- node has not said Hello) and model, kept by the collector in the transaction that writes
-- the windows. Exact: histograms merge without loss.
CREATE TABLE latency_rollup_1m (
    time              timestamptz NOT NULL,
    phase             text NOT NULL,
    model             text NOT NULL,
    windows           bigint NOT NULL,
    requests_ok       bigint NOT NULL,
    requests_error    bigint NOT NULL,
    requests_timeout  bigint NOT NULL,
    requests_rejected bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    output_tokens     bigint NOT NULL,
    queue             ww_hist NOT NULL,
    ttft              ww_hist NOT NULL,
    tpot              ww_hist NOT NULL,
    e2e               ww_hist NOT NULL,
    PRIMARY KEY (time, phase, model)
);

-- The same histograms merged per hour, for the long SLO windows: merging one minute row
-- per minute of a 30-day SLO period is 43,200 merges per (phase, model), ~2.5 s per
-- latency SLO (bench/sli_period.sh). ww_rollup_hours() builds the rows of complete hours
-- from the minutes (the SLO evaluator: its longest window on its first cycle, the last
-- hours on every cycle); ww_sli() takes an hour row only while its window count equals its
-- minutes' (late data, an hour not built yet: the minutes are read instead), so its result
-- is the same as merging every minute, only cheaper. Retention deletes hour rows with the
-- minutes. Hours are UTC hours whatever the session's TimeZone.
CREATE TABLE latency_rollup_1h (LIKE latency_rollup_1m INCLUDING ALL);
COMMENT ON TABLE latency_rollup_1h IS
    'latency_rollup_1m merged per hour (time = the hour), built by ww_rollup_hours() from the '
    'minutes; ww_sli() uses a row only while its windows equal its minutes'' sum.';

-- ---- SLO tables (0006, 0012) ----------------------------------------------------------
-- Tables the SLO evaluator writes and the CLI reads. The writer never deletes: retiring a
-- phase or an SLO no longer configured is an UPDATE of retired_at (0012); the rows stay
-- as history, and readers of "current" state skip them.

-- Phases as configured (the evaluator upserts them at start and on change).
CREATE TABLE phases (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    go_live               date NOT NULL,
    contracted_mw         double precision NOT NULL,
    capacity_breach_share double precision NOT NULL,
    power_ceiling_mw      double precision NOT NULL,
    hotspot_max_c         double precision NOT NULL,
    outlet_max_c          double precision NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    retired_at            timestamptz
);
COMMENT ON COLUMN phases.retired_at IS
    'When the evaluator found the phase no longer in its phases file (NULL: configured).';

-- One row per evaluation, phase, SLO and window.
CREATE TABLE slo_evaluations (
    time        timestamptz NOT NULL,
    phase       text NOT NULL,
    slo         text NOT NULL,          -- the SLO's name, unique within the phase
    model       text NOT NULL,          -- model name or '*'
    metric      text NOT NULL,          -- ttft | tpot | e2e | queue | availability
    window_s    double precision NOT NULL, -- window length actually used (after window_scale)
    window_name text NOT NULL,          -- '5m', '30m', '1h', '2h', '6h', '1d', '3d', 'period'
    good        bigint NOT NULL,
    total       bigint NOT NULL,
    burn_rate   double precision NOT NULL  -- (1 - good/total) / (1 - objective); 0 when total = 0
);
CREATE INDEX slo_evaluations_time_idx ON slo_evaluations (time);
CREATE INDEX slo_evaluations_key_idx ON slo_evaluations (phase, slo, time);

-- Latest status per SLO (upserted every evaluation).
CREATE TABLE slo_status (
    phase            text NOT NULL,
    slo              text NOT NULL,
    model            text NOT NULL,
    metric           text NOT NULL,
    objective        double precision NOT NULL,
    threshold_s      double precision,         -- NULL for availability
    time             timestamptz NOT NULL,     -- of the evaluation
    attainment       double precision,         -- good/total over the period (NULL: no data)
    budget_remaining double precision,         -- 1 - (1-attainment)/(1-objective), may be < 0
    burn_rates       jsonb NOT NULL,           -- {"5m": 0.3, "1h": 1.2, ...}
    retired_at       timestamptz,
    PRIMARY KEY (phase, slo)
);
COMMENT ON COLUMN slo_status.retired_at IS
    'When the evaluator found the SLO (or its phase) no longer configured (NULL: configured).';

-- Alerts: one row per alert episode. At most one open (firing) row per (phase, slo, severity).
CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    alertname    text NOT NULL,             -- e.g. 'SLOBurnRate', 'CapacityBreach', 'PowerCeiling', 'ThermalLimit'
    phase        text NOT NULL,
    slo          text NOT NULL,             -- SLO name, or 'capacity' / 'power' / 'thermal'
    model        text NOT NULL,             -- model or '*'
    severity     text NOT NULL,             -- 'page' | 'ticket'
    state        text NOT NULL,             -- 'firing' | 'resolved'
    started_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    last_eval_at timestamptz NOT NULL,
    summary      text NOT NULL,
    details      jsonb NOT NULL             -- burn rates, budget left, capacity figures...
);
CREATE UNIQUE INDEX alerts_open_idx ON alerts (phase, slo, severity) WHERE state = 'firing';

-- Every transition (fired, resolved).
CREATE TABLE alert_transitions (
    time       timestamptz NOT NULL DEFAULT now(),
    alert_id   bigint NOT NULL REFERENCES alerts (id),
    alertname  text NOT NULL,
    phase      text NOT NULL,
    slo        text NOT NULL,
    severity   text NOT NULL,
    to_state   text NOT NULL,
    details    jsonb NOT NULL
);

-- Capacity, power, thermal and energy per phase per evaluation.
CREATE TABLE capacity_evaluations (
    time             timestamptz NOT NULL,
    phase            text NOT NULL,
    live             boolean NOT NULL,          -- past go-live
    reporting_nodes  integer NOT NULL,
    healthy_nodes    integer NOT NULL,
    delivered_mw     double precision NOT NULL, -- healthy nodes x rated kW / 1000
    contracted_mw    double precision NOT NULL,
    delivered_share  double precision,          -- delivered / contracted (NULL if contracted = 0)
    power_mw         double precision NOT NULL, -- sum of the latest power of reporting nodes
    hotspot_max_c    double precision,
    outlet_max_c     double precision,
    throttled_share  double precision,          -- share of samples throttled in the window
    j_per_token      double precision,          -- energy per output token over the window
    breach           boolean NOT NULL           -- live and delivered_share < capacity_breach_share
);
CREATE INDEX capacity_evaluations_time_idx ON capacity_evaluations (phase, time);

-- The evaluator's heartbeat (0012), one row: its last committed evaluation, so that
-- `waferwatch slo` can tell a current state from one left by an evaluator that stopped.
CREATE TABLE slo_evaluator (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    evaluated_at  timestamptz NOT NULL,        -- the evaluation's time (its transaction's now())
    interval_s    double precision NOT NULL,   -- evaluation.interval of that evaluator
    phases        integer NOT NULL,            -- configured phases
    slos          integer NOT NULL,            -- configured SLOs, all phases
    loaded_at     timestamptz NOT NULL,        -- when it loaded (or reloaded) the phases file
    host          text NOT NULL,               -- who evaluates: host name and pid
    pid           integer NOT NULL
);
COMMENT ON TABLE slo_evaluator IS
    'The SLO evaluator''s heartbeat: upserted by every committed evaluation. `waferwatch '
    'slo` reports its age and calls the state stale past max(3 intervals, 30 s).';

-- ---- ww_schema_migrations -------------------------------------------------------------
-- The versions this file stands for, as a database migrated one by one records them, so
-- that readers of the history (a version's name, `SELECT ... WHERE version = 7`) find
-- the same rows; the migrator records version 12 itself, as for every migration.
INSERT INTO ww_schema_migrations (version, name) VALUES
    (1, 'init'), (2, 'histograms'), (3, 'latency_windows'), (4, 'stream_losses'),
    (5, 'roles'), (6, 'slo'), (7, 'views'), (8, 'retention'), (9, 'capacity'),
    (10, 'rollup_1h'), (11, 'hostile_input');
