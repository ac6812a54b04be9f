-- waferwatch schema, version 20: latency windows kept for days, not weeks (issue 18, item 3).
--
-- A latency window costs ~445 bytes on disk and the full fleet writes 845 million a day:
-- kept as long as the raw samples (retention.raw_days, 35 days), they were 13 of the 15 TB
-- projected. What reads them is short-range (the node drill-down up to 24 h); everything
-- longer reads latency_node_1h (per node, model and hour) and the phase rollups. But the
-- windows could not go sooner than 8 days: a late window (a spool replayed after an
-- outage, accepted up to 7 days old) rebuilt its node-hour from the windows of that hour.
--
-- So the tier job now drops a day of windows once that day's hours are built
-- (retention.window_days, ww_drop_old_windows), and records how far it dropped here:
-- windows_dropped_through. Below it the raw windows are gone (but for late ones arriving
-- after), and a late window's node-hour is no longer recomputed from the windows but merged:
-- its hour row and its late windows, merged, replace the hour row, and the late windows are
-- deleted (ww_tier_latency_merge). The merge of histograms and sums is exact, so the hour
-- row is still exactly all the windows it ever received. '-infinity': none dropped yet.
ALTER TABLE ww_tier_state
    ADD COLUMN windows_dropped_through timestamptz NOT NULL DEFAULT '-infinity',
    ADD CHECK (windows_dropped_through <= hours_done);
COMMENT ON COLUMN ww_tier_state.windows_dropped_through IS
    'latency_windows before it were dropped by retention once their hours were built; a late '
    'window below it is merged into its latency_node_1h row and deleted.';
