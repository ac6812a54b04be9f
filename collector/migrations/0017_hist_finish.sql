-- waferwatch schema, version 17: the end of the conversion of 0015-0016. The composite
-- columns (NULL in every converted row) and the composite type go; the new columns take the
-- old names and NOT NULL.
--
-- Rows written during the conversion by a collector of the previous version (it should
-- have been stopped) carry only the composite: one UPDATE per table converts them first.
-- It reads each table once and normally changes nothing; setting NOT NULL then reads it
-- again and proves every row has its histograms. Both scans only read.
--
-- The columns keep their order (latency_windows.parts moved behind the histograms too).

DO $$
DECLARE
    t text;
    n bigint;
BEGIN
    FOREACH t IN ARRAY ARRAY['latency_windows', 'latency_rollup_1m', 'latency_rollup_1h'] LOOP
        EXECUTE format('UPDATE %I SET %s WHERE ttft_x IS NULL OR queue_x IS NULL'
                       ' OR tpot_x IS NULL OR e2e_x IS NULL',
                       t, ww_hist_convert_set(t = 'latency_windows'));
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RAISE WARNING '% rows of % were written during the conversion (by a collector of the previous version?) and converted now', n, t;
        END IF;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN queue_x SET NOT NULL,'
                       ' ALTER COLUMN ttft_x SET NOT NULL, ALTER COLUMN tpot_x SET NOT NULL,'
                       ' ALTER COLUMN e2e_x SET NOT NULL', t);
    END LOOP;
END $$;

ALTER TABLE latency_windows ALTER COLUMN parts_x SET DEFAULT 1, ALTER COLUMN parts_x SET NOT NULL;
ALTER TABLE latency_windows DROP COLUMN queue, DROP COLUMN ttft, DROP COLUMN tpot,
    DROP COLUMN e2e, DROP COLUMN parts;
ALTER TABLE latency_rollup_1m DROP COLUMN queue, DROP COLUMN ttft, DROP COLUMN tpot,
    DROP COLUMN e2e;
ALTER TABLE latency_rollup_1h DROP COLUMN queue, DROP COLUMN ttft, DROP COLUMN tpot,
    DROP COLUMN e2e;
DROP TYPE ww_hist_v1;
DROP FUNCTION ww_hist_convert_step(integer);
DROP FUNCTION ww_hist_convert_set(boolean);
DROP TABLE ww_hist_convert;

ALTER TABLE latency_windows RENAME COLUMN queue_x TO queue;
ALTER TABLE latency_windows RENAME COLUMN ttft_x TO ttft;
ALTER TABLE latency_windows RENAME COLUMN tpot_x TO tpot;
ALTER TABLE latency_windows RENAME COLUMN e2e_x TO e2e;
ALTER TABLE latency_windows RENAME COLUMN parts_x TO parts;
ALTER TABLE latency_rollup_1m RENAME COLUMN queue_x TO queue;
ALTER TABLE latency_rollup_1m RENAME COLUMN ttft_x TO ttft;
ALTER TABLE latency_rollup_1m RENAME COLUMN tpot_x TO tpot;
ALTER TABLE latency_rollup_1m RENAME COLUMN e2e_x TO e2e;
ALTER TABLE latency_rollup_1h RENAME COLUMN queue_x TO queue;
ALTER TABLE latency_rollup_1h RENAME COLUMN ttft_x TO ttft;
ALTER TABLE latency_rollup_1h RENAME COLUMN tpot_x TO tpot;
ALTER TABLE latency_rollup_1h RENAME COLUMN e2e_x TO e2e;

COMMENT ON COLUMN latency_windows.queue IS 'request_queue_time_seconds (ww_hist of the waferwatch extension)';
COMMENT ON COLUMN latency_windows.ttft IS 'time_to_first_token_seconds (ww_hist)';
COMMENT ON COLUMN latency_windows.tpot IS 'time_per_output_token_seconds (ww_hist)';
COMMENT ON COLUMN latency_windows.e2e IS 'e2e_request_latency_seconds (ww_hist)';
COMMENT ON COLUMN latency_windows.parts IS
    'How many parts the window was sent in (> 1: the agent restarted inside it, and the '
    'collector merged the parts; duration_s is then the sum of the parts'' durations).';
