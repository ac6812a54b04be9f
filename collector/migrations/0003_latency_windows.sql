-- Per-request latency: one row per node, model and window, with the four histograms, and
-- per-minute rollups per (phase, model) kept by the collector in the same transaction.

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
    e2e               ww_hist NOT NULL       -- e2e_request_latency_seconds
) PARTITION BY RANGE (time);
CREATE INDEX latency_windows_node_time_idx ON latency_windows (node_id, time);
CREATE INDEX latency_windows_time_brin ON latency_windows USING brin (time);
CREATE TABLE latency_windows_default PARTITION OF latency_windows DEFAULT;

-- Windows merged per minute (of their start), capacity phase (from nodes; '' when the
-- node has not said hello) and model. Exact: histograms merge without loss.
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

-- Daily partitions for every time-partitioned table.
CREATE OR REPLACE FUNCTION ww_ensure_partitions(from_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    t text;
    name text;
    made integer := 0;
BEGIN
    FOREACH t IN ARRAY ARRAY['node_samples', 'latency_windows'] LOOP
        FOR i IN 0 .. days - 1 LOOP
            d := from_day + i;
            name := format('%s_p%s', t, to_char(d, 'YYYYMMDD'));
            IF to_regclass(name) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   name, t, d::timestamptz, (d + 1)::timestamptz);
                    made := made + 1;
                EXCEPTION WHEN check_violation THEN
                    RAISE NOTICE 'partition % not created: its rows are in %_default', name, t;
                END;
            END IF;
        END LOOP;
    END LOOP;
    RETURN made;
END $$;
