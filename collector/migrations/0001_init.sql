-- waferwatch schema, version 1: nodes, wide node samples partitioned by day, stream
-- progress (replay protection) and the record of rejected messages.

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

-- One wide row per node per sample. Units are in the column names.
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
CREATE INDEX node_samples_node_time_idx ON node_samples (node_id, time);
CREATE INDEX node_samples_time_brin ON node_samples USING brin (time);

-- Catches rows outside the daily partitions (late or early data) so no insert fails.
CREATE TABLE node_samples_default PARTITION OF node_samples DEFAULT;

-- Daily partitions node_samples_pYYYYMMDD for [from_day, from_day + days). A day whose
-- rows already sit in the default partition is left there (reported as a NOTICE).
CREATE FUNCTION ww_ensure_partitions(from_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    name text;
    made integer := 0;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        name := format('node_samples_p%s', to_char(d, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF node_samples FOR VALUES FROM (%L) TO (%L)',
                               name, d::timestamptz, (d + 1)::timestamptz);
                made := made + 1;
            EXCEPTION WHEN check_violation THEN
                RAISE NOTICE 'partition % not created: its rows are in node_samples_default', name;
            END;
        END IF;
    END LOOP;
    RETURN made;
END $$;

-- Per-stream progress: everything of (agent_id, epoch) up to last_seq is committed.
-- Updated in the same transaction as the rows, so a replayed batch is recognised.
CREATE TABLE streams (
    agent_id   text NOT NULL,
    epoch      bigint NOT NULL,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch)
);

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
