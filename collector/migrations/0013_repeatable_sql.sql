-- waferwatch schema, version 13: functions and views move to repeatable files.
--
-- Up to version 12 a function grew by renaming its previous version and wrapping it
-- (ww_grant_roles in 0008, 0010, 0011, 0012; ww_sli and ww_drop_old_data in 0010), so the
-- live database kept every layer and the current definition could only be known by
-- replaying the migrations. From now on every function, aggregate and view is defined,
-- whole, in collector/sql/*.sql, which the migrator re-applies after the versioned
-- migrations, in the same transaction, whenever one of those files changed (ww_migrate.h);
-- versioned migrations keep only tables, types and data moves.
--
-- This migration drops the wrapped layers. Between it and the repeatable files (the same
-- transaction) ww_sli, ww_drop_old_data and ww_grant_roles still call them; the repeatable
-- files then replace those three by their whole bodies (30_functions_slo.sql,
-- 20_functions_storage.sql, 90_grants.sql) and re-grant. PL/pgSQL bodies are not
-- dependencies, so the drops need no CASCADE. IF EXISTS: a database restored without them
-- is not an error.
DROP FUNCTION IF EXISTS ww_sli_0008(text, text, text, double precision, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS ww_drop_old_data_0008(integer, integer);
DROP FUNCTION IF EXISTS ww_grant_roles_0011();
DROP FUNCTION IF EXISTS ww_grant_roles_0010();
DROP FUNCTION IF EXISTS ww_grant_roles_0008();
DROP FUNCTION IF EXISTS ww_grant_roles_0006();
