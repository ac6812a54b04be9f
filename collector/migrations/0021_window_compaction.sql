-- waferwatch schema, version 21: compaction of latency windows (issue 17: bytes on disk per
-- window).
--
-- A row of latency_windows costs ~440 bytes (tuple header, node and model as text, six
-- bigints, the unique index, and ~231 bytes of packed histograms); a fleet-day is 845
-- million of them. With the samples of a node-hour (0019), the tier job now also rewrites
-- that node-hour's windows as one window block (lib/ww_wblock.h: ~221 bytes a window, every
-- bit and histogram byte given back) in latency_windows_compact, and empties the day's raw
-- partition with the samples'.
--
-- The progress is the samples' (ww_tier_state: compacted_through, compact_node,
-- truncated_through) from windows_start on: the node-hour (n, h) has its windows in a block
-- when h >= windows_start and the samples' rule says it is compacted. Hours before
-- windows_start (those a database upgraded to this version had compacted already) keep
-- their windows as rows until retention (retention.window_days) drops them; nor are the
-- late windows of a day retention dropped (below windows_dropped_through, 0020), which are
-- merged into latency_node_1h. A raw window counts when its node-hour is not compacted, or
-- when it lies before truncated_through (a late window of an emptied day, not merged yet)
-- or before windows_dropped_through. ww_windows(from, to[, nodes]) reads both
-- sides by that rule; the tiers, the SLO functions and the node drill-down go through it.
-- Late windows stay exact: a late window is below the tier watermark, so its write records
-- its (node, hour) in ww_tier_dirty (0018); the tier job re-compacts that node-hour (from the
-- raw rows while the day is not emptied, by merging its block and the late rows after)
-- before it rebuilds the hour, and the day's emptying re-compacts, under the partition's
-- lock, the node-hours whose late entries still wait.

-- The window blocks are in the waferwatch extension from 1.2 (pgext/waferwatch--1.1--1.2.sql).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extension_versions
                   WHERE name = 'waferwatch' AND version = '1.2') THEN
        RAISE EXCEPTION 'the waferwatch extension 1.2 is not installed on the database server'
            USING HINT = 'install postgresql-15-waferwatch of this collector''s version on '
                         'the database server, then start the collector again';
    END IF;
END $$;
ALTER EXTENSION waferwatch UPDATE TO '1.2';

-- One row per node and hour compacted. time: the hour (UTC); windows, last_time: the
-- block's count and latest window start (kept beside it so that "how many" and "the
-- latest" need no decoding). The block (~240 KB for a node-hour of 3 models) lives in
-- TOAST, stored as it is (EXTERNAL): the codec's output does not compress further. The
-- time index serves the reads of a range over every node (the SLO functions' recent
-- windows, which find no block there).
CREATE TABLE latency_windows_compact (
    time      timestamptz NOT NULL,
    last_time timestamptz NOT NULL,
    windows   integer NOT NULL,
    node_id   text NOT NULL,
    block     bytea NOT NULL,
    PRIMARY KEY (node_id, time),
    CHECK (windows > 0 AND last_time >= time AND last_time < time + interval '1 hour')
) PARTITION BY RANGE (time);
CREATE INDEX latency_windows_compact_time ON latency_windows_compact (time);
ALTER TABLE latency_windows_compact ALTER COLUMN block SET STORAGE EXTERNAL;
CREATE TABLE latency_windows_compact_default PARTITION OF latency_windows_compact DEFAULT;
COMMENT ON TABLE latency_windows_compact IS
    'Compacted latency windows: one window block (ww_wblock_windows(block)) per node and '
    'hour. Read windows of any age with ww_windows(from, to, nodes).';

ALTER TABLE ww_tier_state ADD COLUMN windows_start timestamptz;
UPDATE ww_tier_state
SET windows_start = CASE WHEN compact_node IS NULL THEN compacted_through
                         ELSE compacted_through + interval '1 hour' END;
ALTER TABLE ww_tier_state ALTER COLUMN windows_start SET NOT NULL;
COMMENT ON COLUMN ww_tier_state.windows_start IS
    'Latency windows are compacted with the samples from this hour on (0021); before it '
    'they stay rows until retention drops them.';

-- Its daily partitions come from ww_ensure_partitions (collector/sql), as every table's.
