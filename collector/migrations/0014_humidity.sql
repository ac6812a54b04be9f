-- waferwatch schema, version 14: node_samples.humidity_pct, the relative humidity (%) of the
-- air at the system's intake (issue 16, item 3).
--
-- Nullable, without a default: a sample from an agent that does not measure humidity, or
-- predates the field (NodeSample field 15 unset, request-log READING version 1), stores
-- NULL, never 0. Adding a nullable column without a default rewrites nothing (a catalog
-- change only), so it is instant on a partitioned table of any size; the partitions,
-- including the default one, inherit it. The views and functions are left as they are.
-- The field list of proto/ww_fields.h names this column; tests/unit/test_fields.c checks
-- that the migrations and the list agree.

ALTER TABLE node_samples ADD COLUMN humidity_pct real;
COMMENT ON COLUMN node_samples.humidity_pct IS
    'Relative humidity (%) of the air at the system''s intake, 0..100; NULL: not measured.';
