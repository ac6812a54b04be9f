-- waferwatch schema, version 15: the latency histograms move to the compact ww_hist type of
-- the waferwatch PostgreSQL extension (pgext/, Debian package postgresql-15-waferwatch), in
-- three migrations (issue 17):
--
--   0015 (this one, one transaction)  checks the extension is installed on the server and
--        creates it; renames the composite type ww_hist (version 12) to ww_hist_v1, drops
--        its plpgsql functions and the view that reads the histogram columns; adds to
--        latency_windows, latency_rollup_1m and latency_rollup_1h a column of the new type
--        beside each composite one (queue_x, ttft_x, tpot_x, e2e_x: nullable, no default,
--        a catalog change only; latency_windows.parts moves likewise, to parts_x, so that
--        the columns keep their order) and lets the old columns be NULL; records the blocks
--        of every table (each partition) to convert in ww_hist_convert.
--   0016 (batched: the migrator runs it again and again, each run its own transaction,
--        until it answers 0)  converts the rows of the next few blocks of one table:
--        new columns from the composite ones (ww_hist_make), composite ones set NULL, so
--        the rewritten row no longer carries them. Safe to interrupt at any point: a batch
--        either committed (rows and progress together) or did not; the next start goes on
--        from ww_hist_convert.
--   0017 (one transaction)  converts rows the batches did not see (written meanwhile),
--        drops the composite columns and the type, renames the new columns to the old
--        names, makes them NOT NULL (the scan that proves every row was converted), drops
--        ww_hist_convert.
--
-- Why in place and not into new tables: the partitions, their names, indexes, grants and
-- the retention that drops them stay as they are. Why the composite column is set NULL in
-- the same UPDATE: a dropped column's bytes stay in every row written while it existed, so
-- rows that still carried the composite would keep its ~1 KB after 0017; NULL costs a
-- bit. The old row versions are dead after their batch and are reclaimed by (auto)vacuum
-- as the conversion goes, so the tables grow by at most what vacuum has not yet caught up
-- with; run VACUUM (ANALYZE) on them afterwards to settle the statistics.
--
-- Stop every collector of the previous version before starting this one: rows they write
-- during the conversion carry only the composite (0017 converts them, one more scan).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'waferwatch') THEN
        RAISE EXCEPTION 'the waferwatch PostgreSQL extension is not installed on the database server'
            USING ERRCODE = 'undefined_file',
                  HINT = 'install postgresql-15-waferwatch on the database server (the package '
                         'is built with the collector: apt-get install '
                         './postgresql-15-waferwatch_VERSION_amd64.deb), then start the '
                         'collector again. Managed PostgreSQL services that do not allow '
                         'custom extensions cannot host waferwatch.';
    END IF;
END $$;

-- The view over the histogram columns (40_views.sql re-creates it after the migrations).
DROP VIEW IF EXISTS ww_latency_1m;

-- The composite keeps its columns' data until 0016 has read it; its functions go now, so
-- that the extension's functions of the same names (and the same signatures, for
-- ww_hist_lower/upper) can be created. Their bodies are plpgsql or string SQL: nothing
-- else depends on them.
ALTER TYPE ww_hist RENAME TO ww_hist_v1;
DROP AGGREGATE IF EXISTS ww_merge(ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_add(ww_hist_v1, ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_merge_sfunc(ww_hist_v1, ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_trim(ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_downscale(ww_hist_v1, integer);
DROP FUNCTION IF EXISTS ww_quantile(ww_hist_v1, double precision);
DROP FUNCTION IF EXISTS ww_hist_count(ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_mean(ww_hist_v1);
DROP FUNCTION IF EXISTS ww_hist_le(ww_hist_v1, double precision[]);
DROP FUNCTION IF EXISTS ww_hist_count_above(ww_hist_v1, double precision);
DROP FUNCTION IF EXISTS ww_hist_lower(integer, integer);
DROP FUNCTION IF EXISTS ww_hist_upper(integer, integer);

CREATE EXTENSION IF NOT EXISTS waferwatch;

-- latency_windows.parts moves behind the new columns the same way (parts_x, filled by the
-- same UPDATE), so that the columns keep their order: SELECT * and INSERT ... VALUES
-- written against version 12 still line up.
ALTER TABLE latency_windows
    ALTER COLUMN queue DROP NOT NULL, ALTER COLUMN ttft DROP NOT NULL,
    ALTER COLUMN tpot DROP NOT NULL, ALTER COLUMN e2e DROP NOT NULL,
    ALTER COLUMN parts DROP NOT NULL,
    ADD COLUMN queue_x ww_hist, ADD COLUMN ttft_x ww_hist,
    ADD COLUMN tpot_x ww_hist, ADD COLUMN e2e_x ww_hist, ADD COLUMN parts_x integer;
ALTER TABLE latency_rollup_1m
    ALTER COLUMN queue DROP NOT NULL, ALTER COLUMN ttft DROP NOT NULL,
    ALTER COLUMN tpot DROP NOT NULL, ALTER COLUMN e2e DROP NOT NULL,
    ADD COLUMN queue_x ww_hist, ADD COLUMN ttft_x ww_hist,
    ADD COLUMN tpot_x ww_hist, ADD COLUMN e2e_x ww_hist;
ALTER TABLE latency_rollup_1h
    ALTER COLUMN queue DROP NOT NULL, ALTER COLUMN ttft DROP NOT NULL,
    ALTER COLUMN tpot DROP NOT NULL, ALTER COLUMN e2e DROP NOT NULL,
    ADD COLUMN queue_x ww_hist, ADD COLUMN ttft_x ww_hist,
    ADD COLUMN tpot_x ww_hist, ADD COLUMN e2e_x ww_hist;

-- What is left to convert: per table (each partition of latency_windows), the blocks it had
-- now. Nothing writes these tables during the migration, so rows beyond end_block are the
-- converted versions of rows before it (an UPDATE writes the new version elsewhere when
-- its page is full).
CREATE TABLE ww_hist_convert (
    rel        regclass PRIMARY KEY,
    next_block bigint NOT NULL,
    end_block  bigint NOT NULL,
    per_block  double precision NOT NULL,  -- rows per block, to size a batch
    has_parts  boolean NOT NULL,           -- a latency_windows partition
    rows_done  bigint NOT NULL DEFAULT 0
);
INSERT INTO ww_hist_convert (rel, next_block, end_block, per_block, has_parts)
SELECT c.oid::regclass, 0, pg_relation_size(c.oid) / current_setting('block_size')::bigint,
       CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 40 END,
       c.oid NOT IN ('latency_rollup_1m'::regclass, 'latency_rollup_1h'::regclass)
FROM pg_class c
WHERE c.relkind = 'r'
  AND (c.oid IN ('latency_rollup_1m'::regclass, 'latency_rollup_1h'::regclass)
       OR c.oid IN (SELECT inhrelid FROM pg_inherits
                    WHERE inhparent = 'latency_windows'::regclass));

-- The SET list of the UPDATE that converts a row: the new columns from the composite ones
-- (ww_hist_make, which checks each), the composite ones NULL, and for a latency_windows
-- partition parts moved to parts_x. Used by the batches and by 0017; dropped by 0017.
CREATE FUNCTION ww_hist_convert_set(has_parts boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT string_agg(format('%1$s_x = ww_hist_make((%1$s).scale, (%1$s).count, (%1$s).sum,'
                         ' (%1$s).min, (%1$s).max, (%1$s).zero_count, (%1$s).underflow,'
                         ' (%1$s).overflow, (%1$s)."offset", (%1$s).counts), %1$s = NULL', c),
                  ', ')
       || CASE WHEN has_parts THEN ', parts_x = parts, parts = NULL' ELSE '' END
FROM unnest(ARRAY['queue', 'ttft', 'tpot', 'e2e']) c
$$;

-- One batch: converts the rows of about `target` rows' worth of blocks of the first table
-- not finished (a TID range scan, so a batch costs its own blocks whatever was done
-- before), records the progress in the same transaction, and returns the blocks still to
-- do over every table (0: finished). Dropped by 0017.
CREATE FUNCTION ww_hist_convert_step(target integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    p ww_hist_convert;
    upto bigint;
    n bigint;
BEGIN
    SELECT * INTO p FROM ww_hist_convert WHERE next_block < end_block
    ORDER BY rel::text LIMIT 1 FOR UPDATE;
    IF FOUND THEN
        upto := least(p.end_block,
                      p.next_block + greatest(1, ceil(target / greatest(p.per_block, 1))::bigint));
        -- A row the extension refuses (a histogram written by hand that contradicts
        -- itself) stops the migration, naming where it is; the batches before it stay done.
        BEGIN
        EXECUTE format('UPDATE %s SET %s'
                       ' WHERE ctid >= ''(%s,0)''::tid AND ctid < ''(%s,0)''::tid AND ttft_x IS NULL',
                       p.rel, ww_hist_convert_set(p.has_parts), p.next_block, upto);
        GET DIAGNOSTICS n = ROW_COUNT;
        EXCEPTION WHEN data_exception OR invalid_parameter_value THEN
            RAISE EXCEPTION 'converting the histograms of % (blocks % to %): %', p.rel,
                            p.next_block, upto - 1, SQLERRM
                USING ERRCODE = SQLSTATE,
                      HINT = format('the row is among SELECT ctid, * FROM %s WHERE ctid >= '
                                    '''(%s,0)'' AND ctid < ''(%s,0)''; correct or delete it '
                                    '(as the owner), then start the collector again: it goes '
                                    'on from there', p.rel, p.next_block, upto);
        END;
        UPDATE ww_hist_convert SET next_block = upto, rows_done = rows_done + n
        WHERE rel = p.rel;
    END IF;
    RETURN (SELECT coalesce(sum(end_block - next_block), 0) FROM ww_hist_convert);
END $$;
