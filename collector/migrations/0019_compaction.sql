-- waferwatch schema, version 19: compaction of raw samples (issue 18, item 2), and an hour
-- tier of SLO burn rates (at the end).
--
-- A raw row of node_samples costs ~150 bytes (heap, indexes); a fleet-day is 2.8 billion of
-- them. Once an hour is older than compaction.age and its tiers are built, the collector's
-- tier job rewrites each node's samples of that hour as one sample block (lib/ww_sblock.h:
-- ~8 bytes a sample at sensor resolution, every bit given back) in node_samples_compact,
-- and once a whole day is compacted it empties that day's raw partition with TRUNCATE: no
-- row is deleted one by one, nothing is left for VACUUM.
--
-- Which copy of a sample counts is said by the progress in ww_tier_state, never by deleting
-- rows: the node-hour (n, h) is compacted when h < compacted_through, or h =
-- compacted_through and n <= compact_node (the job goes through an hour's nodes in order).
-- A compacted node-hour is read from its block; its raw rows (still in their partition
-- until the day is truncated) are not read. Raw rows before truncated_through are only late
-- ones, brought after their day was truncated: they are read, and merged into their block
-- (and deleted, the only deletes) when the job rebuilds their late minutes. Rows before the
-- tiers' start are never compacted. ww_samples(from, to, nodes) reads both sides by that
-- rule: the tiers, the node drill-down and a user's query of any age go through it.
--
-- Late data stays exact: a late sample is below the tier watermark, so its write records
-- its (node, minute) in ww_tier_dirty (0018). The job re-compacts that node-hour before it
-- rebuilds the minute (from the raw rows while the day is not truncated, by merging after),
-- and the day's truncation re-compacts, under the partition's lock, every node-hour of
-- the day with a late entry still waiting. Every step is one transaction: a crash in the
-- middle of a compaction leaves the previous state, whole.

-- The blocks are in the waferwatch extension from 1.1 (pgext/waferwatch--1.0--1.1.sql).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extension_versions
                   WHERE name = 'waferwatch' AND version = '1.1') THEN
        RAISE EXCEPTION 'the waferwatch extension 1.1 is not installed on the database server'
            USING HINT = 'install postgresql-15-waferwatch of this collector''s version on '
                         'the database server, then start the collector again';
    END IF;
END $$;
ALTER EXTENSION waferwatch UPDATE TO '1.1';

-- One row per node and hour compacted. time: the hour (UTC); samples, last_time: the
-- block's count and latest time (from the block; kept beside it so that "how many" and
-- "the latest" need no decoding). The block (~28 KB for a node-hour at 1 Hz) lives in
-- TOAST, stored as it is (EXTERNAL): the codec's output does not compress further, and
-- pglz would only spend CPU to find that out.
CREATE TABLE node_samples_compact (
    time      timestamptz NOT NULL,
    last_time timestamptz NOT NULL,
    samples   integer NOT NULL,
    node_id   text NOT NULL,
    block     bytea NOT NULL,
    PRIMARY KEY (node_id, time),
    CHECK (samples > 0 AND last_time >= time AND last_time < time + interval '1 hour')
) PARTITION BY RANGE (time);
ALTER TABLE node_samples_compact ALTER COLUMN block SET STORAGE EXTERNAL;
CREATE TABLE node_samples_compact_default PARTITION OF node_samples_compact DEFAULT;
COMMENT ON TABLE node_samples_compact IS
    'Compacted raw samples: one sample block (ww_sblock_samples(block)) per node and hour. '
    'Read samples of any age with ww_samples(from, to, nodes).';

ALTER TABLE ww_tier_state
    ADD COLUMN compacted_through timestamptz,
    ADD COLUMN compact_node text,
    ADD COLUMN truncated_through timestamptz;
UPDATE ww_tier_state SET compacted_through = start, truncated_through = start;
ALTER TABLE ww_tier_state
    ALTER COLUMN compacted_through SET NOT NULL,
    ALTER COLUMN truncated_through SET NOT NULL,
    ADD CHECK (start <= truncated_through AND truncated_through <= compacted_through
               AND compacted_through <= hours_done);
COMMENT ON COLUMN ww_tier_state.compacted_through IS
    'Every node-hour before it is compacted; of its own hour, the nodes up to compact_node.';
COMMENT ON COLUMN ww_tier_state.truncated_through IS
    'Raw rows from start to here were emptied out after compaction: the ones left are late.';

-- Its daily partitions come from ww_ensure_partitions (collector/sql), as every table's.

-- ---- slo_burn_1h ------------------------------------------------------------------------
-- The burn-rate panel plots max(burn_rate) per step of slo_evaluations: 16.6 million rows a
-- month at the evaluator's 30 s (3 phases x 8 SLOs x 8 windows), 10 s to read for 30 days.
-- Per UTC hour, SLO and window: the evaluations and their highest burn rate, built by the
-- tier builder (ww_tier_slo_hours) with the other hour tiers, and read by ww_burn_series
-- for the ranges that read hour tiers.
CREATE TABLE slo_burn_1h (
    time        timestamptz NOT NULL,
    burn_max    double precision NOT NULL,
    evaluations integer NOT NULL,
    phase       text NOT NULL,
    slo         text NOT NULL,
    window_name text NOT NULL,
    model       text NOT NULL,
    PRIMARY KEY (time, phase, slo, window_name)
);
COMMENT ON TABLE slo_burn_1h IS
    'Per UTC hour, SLO and window: the evaluations of slo_evaluations and their highest '
    'burn rate (the burn-rate panel over days; ww_burn_series).';
-- The history, for the hours the tiers have already built (the builder does the rest).
INSERT INTO slo_burn_1h (time, burn_max, evaluations, phase, slo, window_name, model)
SELECT date_trunc('hour', e.time, 'UTC'), max(e.burn_rate), count(*), e.phase, e.slo,
       e.window_name, max(e.model)
FROM slo_evaluations e
WHERE e.time < (SELECT date_trunc('hour', hours_done, 'UTC') FROM ww_tier_state)
GROUP BY 1, e.phase, e.slo, e.window_name;
