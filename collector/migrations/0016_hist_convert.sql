-- ww:batched
-- waferwatch schema, version 16: converts the histograms of every row to the extension's
-- ww_hist, a batch at a time (0015 says how). The first line marks this migration batched
-- (ww_migrate.h): the migrator commits the migrations before it, then runs the statement
-- below again and again, each run in its own transaction, until it returns 0 (the blocks
-- left to convert over every table), logging the progress; then records version 16 and
-- goes on. A batch is about 20,000 rows' worth of blocks of one table; the setting
-- waferwatch.convert_batch changes it (PGOPTIONS='-c waferwatch.convert_batch=N' in the
-- environment of waferwatch-collector --migrate-only, or ALTER DATABASE ... SET as a
-- superuser): each batch is one transaction, and its rows are locked until it commits.
SELECT ww_hist_convert_step(coalesce(nullif(current_setting('waferwatch.convert_batch', true), '')::integer,
                                     20000))
