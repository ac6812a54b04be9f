-- waferwatch schema, version 5: least privilege. Three kinds of role:
--
--   owner   the role that runs these migrations (a login user such as waferwatch_owner,
--           deploy/roles.sql). It owns every table, type and function; it needs no
--           superuser, only the ownership of the database (or CREATE on schema public).
--   waferwatch_writer   NOLOGIN group role for the collector: inserts rows, keeps the
--           per-stream progress and the rollups (upserts), creates daily partitions only
--           through ww_ensure_partitions (SECURITY DEFINER); no UPDATE, DELETE or TRUNCATE
--           of the data tables and no DDL.
--   waferwatch_reader   NOLOGIN group role for dashboards and reports: SELECT and the
--           histogram functions, nothing else.
--
-- A DBA grants the group roles to login users (GRANT waferwatch_writer TO
-- waferwatch_collector). Roles are cluster-wide, so the group roles may already exist
-- (made by deploy/roles.sql or by the migration of another database of the cluster):
-- they are created only when missing and only when the migrating role may create roles
-- (CREATEROLE or superuser); otherwise a NOTICE says so and the grants are made to the
-- roles that exist. ww_grant_roles() does all of it and may be called again by the owner
-- at any time (e.g. once a DBA has created roles that were missing): it is idempotent.

-- Daily partitions, now callable by the writer without any DDL right: the function runs
-- as its owner (the schema owner, who owns the partitioned tables), with a fixed
-- search_path so that a caller cannot substitute objects of its own (pg_temp last). The
-- body is 0003's. Only the owner and waferwatch_writer may execute it.
CREATE OR REPLACE FUNCTION ww_ensure_partitions(from_day date, days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
REVOKE EXECUTE ON FUNCTION ww_ensure_partitions(date, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_ensure_partitions(date, integer) IS
    'Creates the daily partitions of node_samples and latency_windows for '
    '[from_day, from_day + days); runs as the schema owner (SECURITY DEFINER) so that '
    'waferwatch_writer needs no DDL right. Returns the number created.';

-- Creates the group roles if missing (and allowed) and grants them what they need on the
-- objects of this schema. Run by the owner of the objects; idempotent. Returns the
-- number of group roles that exist after it.
CREATE OR REPLACE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    can_create boolean;
    owns_schema boolean;
    n integer := 0;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['waferwatch_writer', 'waferwatch_reader'] LOOP
        IF to_regrole(r) IS NULL THEN
            IF can_create THEN
                BEGIN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by a migration of another database
                END;
            ELSE
                RAISE NOTICE 'role % does not exist and % may not create roles: skipped; a DBA '
                             'creates it (deploy/roles.sql), then the owner runs '
                             'SELECT ww_grant_roles()', r, current_user;
            END IF;
        END IF;
    END LOOP;

    -- No one but the owner creates objects in schema public. PostgreSQL 15 no longer grants
    -- CREATE on it to PUBLIC, but a cluster upgraded from an older version still does.
    SELECT pg_has_role(current_user, nspowner, 'USAGE') INTO owns_schema
    FROM pg_namespace WHERE nspname = 'public';
    IF owns_schema THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    ELSE
        RAISE NOTICE '% does not own schema public: CREATE on it not revoked from PUBLIC',
                     current_user;
    END IF;

    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        n := n + 1;
        -- The staging table of the collector is a session TEMP table.
        IF has_database_privilege(current_database(), 'TEMPORARY WITH GRANT OPTION') THEN
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO waferwatch_writer',
                           current_database());
        ELSE
            RAISE NOTICE '% may not grant on database %: CONNECT, TEMPORARY not granted to '
                         'waferwatch_writer (PUBLIC has them by default)',
                         current_user, current_database();
        END IF;
        IF owns_schema THEN
            GRANT USAGE ON SCHEMA public TO waferwatch_writer;
            REVOKE CREATE ON SCHEMA public FROM waferwatch_writer;
        END IF;
        GRANT USAGE ON TYPE ww_hist TO waferwatch_writer;
        -- Append-only data: COPY and INSERT through the partitioned parents (privileges on
        -- the parent cover the rows routed to its partitions). SELECT on latency_windows:
        -- CREATE TEMP TABLE ... (LIKE latency_windows) needs it.
        GRANT SELECT, INSERT ON node_samples, latency_windows TO waferwatch_writer;
        GRANT INSERT ON ingest_rejects TO waferwatch_writer;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON node_samples, latency_windows, ingest_rejects FROM waferwatch_writer;
        -- Upserts (INSERT ... ON CONFLICT DO UPDATE reads the conflicting row) and the
        -- SELECT ... FOR UPDATE of the stream progress; the rollup reads nodes.
        GRANT SELECT, INSERT, UPDATE ON streams, stream_losses, nodes, latency_rollup_1m
            TO waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON streams, stream_losses, nodes, latency_rollup_1m FROM waferwatch_writer;
        -- So that a collector that does not migrate can still check the schema version.
        GRANT SELECT ON ww_schema_migrations TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_ensure_partitions(date, integer) TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION
            ww_hist_lower(integer, integer), ww_hist_upper(integer, integer),
            ww_hist_trim(ww_hist), ww_hist_downscale(ww_hist, integer),
            ww_hist_merge_sfunc(ww_hist, ww_hist), ww_hist_add(ww_hist, ww_hist),
            ww_merge(ww_hist), ww_quantile(ww_hist, double precision),
            ww_hist_count(ww_hist), ww_hist_mean(ww_hist),
            ww_hist_le(ww_hist, double precision[])
            TO waferwatch_writer;
    END IF;

    IF to_regrole('waferwatch_reader') IS NOT NULL THEN
        n := n + 1;
        IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO waferwatch_reader',
                           current_database());
        END IF;
        IF owns_schema THEN
            GRANT USAGE ON SCHEMA public TO waferwatch_reader;
            REVOKE CREATE ON SCHEMA public FROM waferwatch_reader;
        END IF;
        GRANT USAGE ON TYPE ww_hist TO waferwatch_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO waferwatch_reader;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON ALL TABLES IN SCHEMA public FROM waferwatch_reader;
        -- Partitions that ww_ensure_partitions creates later (as the owner) and tables of
        -- later migrations: readable too. Queries through the parents need only the
        -- parents' SELECT; this serves a dashboard that names a partition.
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO waferwatch_reader;
        GRANT EXECUTE ON FUNCTION
            ww_hist_lower(integer, integer), ww_hist_upper(integer, integer),
            ww_hist_trim(ww_hist), ww_hist_downscale(ww_hist, integer),
            ww_hist_merge_sfunc(ww_hist, ww_hist), ww_hist_add(ww_hist, ww_hist),
            ww_merge(ww_hist), ww_quantile(ww_hist, double precision),
            ww_hist_count(ww_hist), ww_hist_mean(ww_hist),
            ww_hist_le(ww_hist, double precision[])
            TO waferwatch_reader;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the NOLOGIN group roles waferwatch_writer and waferwatch_reader when missing '
    '(and the caller may) and grants them their privileges; idempotent, run by the owner. '
    'Returns how many of the two roles exist.';

SELECT ww_grant_roles();
