-- Repeatable: the privileges of the group roles, applied last (after every function and
-- view exists). Re-applied by the migrator after the versioned migrations whenever a file of
-- collector/sql changes (ww_migrate.h); a migration that adds a table adds its grants HERE,
-- to the one ww_grant_roles(), and nowhere else.
--
-- Four kinds of role (migration 0005, deploy/roles.sql; waferwatch_feed 0024):
--
--   owner   the role that runs the migrations (a login user such as waferwatch_owner). It
--           owns every table, type and function; it needs no superuser, only the ownership
--           of the database (or CREATE on schema public).
--   waferwatch_writer   NOLOGIN group role for the collector: inserts rows, keeps the
--           per-stream progress and the rollups (upserts), creates daily partitions and
--           applies retention only through SECURITY DEFINER functions; no UPDATE (but the
--           merged columns of latency_windows), DELETE (but stream_holes) or TRUNCATE of the
--           data tables and no DDL.
--   waferwatch_reader   NOLOGIN group role for dashboards and reports: SELECT and the
--           histogram and SLO functions, nothing else.
--   waferwatch_feed   NOLOGIN group role of the login a fleet database subscribes as:
--           SELECT on the tables of publication waferwatch_site.
--
-- A DBA grants the group roles to login users (GRANT waferwatch_writer TO
-- waferwatch_collector). Roles are cluster-wide, so the group roles may already exist
-- (made by deploy/roles.sql or by the migration of another database of the cluster):
-- they are created only when missing and only when the migrating role may create roles
-- (CREATEROLE or superuser); otherwise a NOTICE says so and the grants are made to the
-- roles that exist. ww_grant_roles() does all of it and may be called again by the owner
-- at any time (e.g. once a DBA has created roles that were missing): it is idempotent.
-- Up to version 12 it grew by renaming the previous version (ww_grant_roles_0006 ...
-- _0011) and calling it; 0013 dropped those and this is the whole of it.
--
-- Order matters where a table-wide REVOKE would undo a column grant: the column grants on
-- latency_windows come after the REVOKE UPDATE on it.

CREATE OR REPLACE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    can_create boolean;
    owns_schema boolean;
    n integer := 0;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['waferwatch_writer', 'waferwatch_reader', 'waferwatch_feed'] LOOP
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
        -- So that a collector that does not migrate can still check the schema version
        -- (and the checksums of the repeatable files, ww_migrate.h).
        GRANT SELECT ON ww_schema_migrations, ww_schema_repeatable TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_ensure_partitions(date, integer) TO waferwatch_writer;
        -- The SLO evaluator (0006): configuration, latest status and alert episodes are
        -- upserted; evaluations, transitions and capacity figures are append-only.
        GRANT SELECT, INSERT, UPDATE ON phases, slo_status, alerts TO waferwatch_writer;
        GRANT USAGE ON SEQUENCE alerts_id_seq TO waferwatch_writer;
        GRANT SELECT, INSERT ON slo_evaluations, alert_transitions, capacity_evaluations,
            site_capacity TO waferwatch_writer;
        REVOKE UPDATE ON slo_evaluations, alert_transitions, capacity_evaluations, site_capacity
            FROM waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON phases, slo_status, alerts, slo_evaluations, alert_transitions,
               capacity_evaluations, site_capacity FROM waferwatch_writer;
        -- A site's capacity figures for the fleet (0024): written as the evaluator.
        GRANT EXECUTE ON FUNCTION
            ww_site_capacity_write(text, timestamptz, timestamptz, double precision)
            TO waferwatch_writer;
        -- Retention (0008), as the owner through the SECURITY DEFINER function.
        GRANT EXECUTE ON FUNCTION ww_drop_old_data(integer, integer) TO waferwatch_writer;
        -- Hourly rollups (0010): ww_sli() runs as its caller and reads the hour rows; the
        -- evaluator builds them through ww_rollup_hours() (as the owner).
        GRANT SELECT ON latency_rollup_1h TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_rollup_hours(timestamptz, timestamptz) TO waferwatch_writer;
        -- A second part of a window (after an agent restart, 0011) is merged into its row:
        -- the measured columns only; the key (node_id, time, model) stays as written. After
        -- the table-wide REVOKE UPDATE above, which would revoke these column grants too.
        GRANT UPDATE (duration_s, requests_ok, requests_error, requests_timeout,
                      requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e,
                      parts) ON latency_windows TO waferwatch_writer;
        -- A batch arriving inside a hole shrinks it: the range is deleted and re-inserted.
        GRANT SELECT, INSERT, DELETE ON stream_holes TO waferwatch_writer;
        GRANT SELECT, INSERT ON stream_outages TO waferwatch_writer;
        REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON stream_holes FROM waferwatch_writer;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON stream_outages
            FROM waferwatch_writer;
        -- The storage tiers (0018): a write records its late buckets (INSERT ... ON CONFLICT
        -- DO UPDATE, ww_late.h) after ww_tier_watermark(); the tier job builds, and retention
        -- drops, through SECURITY DEFINER functions. The tiers themselves are read-only to it.
        GRANT SELECT, INSERT ON ww_tier_dirty TO waferwatch_writer;
        GRANT SELECT ON ww_tier_state, node_rollup_1m, node_rollup_1h, site_rollup_1m,
            site_rollup_1h, latency_node_1h TO waferwatch_writer;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON ww_tier_dirty, ww_tier_state, node_rollup_1m, node_rollup_1h, site_rollup_1m,
               site_rollup_1h, latency_node_1h FROM waferwatch_writer;
        -- The update of an entry already recorded (it locks it: ww_late.h); after the
        -- table-wide REVOKE, which would revoke it too.
        GRANT UPDATE (node_id) ON ww_tier_dirty TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_tier_watermark(), ww_tier_advance(interval),
            ww_tier_build(integer, integer), ww_drop_old_tiers(integer, integer, integer)
            TO waferwatch_writer;
        -- Compaction (0019): the tier job compacts, empties raw days and drops old blocks
        -- through SECURITY DEFINER functions; the blocks are read-only to it.
        GRANT EXECUTE ON FUNCTION ww_compact(interval, integer), ww_compact_clear(),
            ww_drop_old_compact(integer) TO waferwatch_writer;
        -- Retention of the latency windows (0020), by the tier job.
        GRANT EXECUTE ON FUNCTION ww_drop_old_windows(integer) TO waferwatch_writer;
        GRANT SELECT ON node_samples_compact, latency_windows_compact TO waferwatch_writer;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON node_samples_compact, latency_windows_compact FROM waferwatch_writer;
        -- The SLO evaluator's heartbeat (0012) is upserted (ON CONFLICT reads the row), never
        -- deleted.
        GRANT SELECT, INSERT, UPDATE ON slo_evaluator TO waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON slo_evaluator FROM waferwatch_writer;
        -- The evaluators' lease (0023): taken over and renewed by UPDATE (ww_slo_fence() reads
        -- it FOR SHARE, which needs UPDATE too); the one row is never inserted or deleted.
        GRANT SELECT, UPDATE ON slo_leader TO waferwatch_writer;
        REVOKE INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER ON slo_leader FROM waferwatch_writer;
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
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO waferwatch_reader;  -- views included
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON ALL TABLES IN SCHEMA public FROM waferwatch_reader;
        -- Partitions that ww_ensure_partitions creates later (as the owner) and tables of
        -- later migrations: readable too. Queries through the parents need only the
        -- parents' SELECT; this serves a dashboard that names a partition.
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO waferwatch_reader;
        -- Tables of later migrations are covered by SELECT ON ALL TABLES above; these are
        -- named as the migrations that made them granted them (0011, 0012).
        GRANT SELECT ON stream_holes, stream_outages, slo_evaluator, slo_leader
            TO waferwatch_reader;
    END IF;

    -- What a fleet database's subscription reads (0024): the tables of publication
    -- waferwatch_site, for its initial copy. The login it connects as also needs the
    -- REPLICATION attribute, which group membership does not give (docs/operations.md).
    IF to_regrole('waferwatch_feed') IS NOT NULL THEN
        n := n + 1;
        IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO waferwatch_feed',
                           current_database());
        END IF;
        IF owns_schema THEN
            GRANT USAGE ON SCHEMA public TO waferwatch_feed;
        END IF;
        FOR r IN SELECT format('%I', t.tablename) FROM pg_publication_tables t
                 WHERE t.pubname = 'waferwatch_site' AND t.schemaname = 'public' LOOP
            EXECUTE 'GRANT SELECT ON ' || r || ' TO waferwatch_feed';
        END LOOP;
    END IF;

    -- Both group roles run the SLO functions (dashboards and the evaluator call the same
    -- ones). The histogram type and functions are the waferwatch extension's (pgext/):
    -- its objects belong to the superuser that installed it, with USAGE and EXECUTE for
    -- PUBLIC, as every extension's; the owner could not grant on them.
    FOREACH r IN ARRAY ARRAY['waferwatch_writer', 'waferwatch_reader'] LOOP
        IF to_regrole(r) IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION'
                ' ww_sli(text, text, text, double precision, timestamptz, timestamptz,'
                '        boolean),'
                ' ww_phase_capacity(text, timestamptz, timestamptz, double precision),'
                ' ww_phase_capacity_sites(text, timestamptz, timestamptz, double precision),'
                ' ww_capacity_total(site_capacity[]),'
                ' ww_fleet_capacity(text, interval),'
                ' ww_epoch_hex(bigint) TO %I', r);
        END IF;
    END LOOP;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the group roles if missing (and allowed) and grants them what they need on '
    'every object of the schema (collector/sql/90_grants.sql). Idempotent; run by the '
    'owner. Returns the number of group roles that exist.';

SELECT ww_grant_roles();
