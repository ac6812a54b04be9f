-- waferwatch: one-time DBA setup of the roles and the database, run once per cluster as a
-- superuser (or a role with CREATEROLE and CREATEDB):
--
--   psql -X -v ON_ERROR_STOP=1 -v db=waferwatch -d postgres -f deploy/roles.sql
--
-- Variables (psql -v NAME=VALUE; defaults in brackets):
--   db         the database to create or adopt                  [waferwatch]
--   owner      login that owns the schema and runs migrations   [waferwatch_owner]
--   collector  login of the collector (waferwatch_writer)       [waferwatch_collector]
--   grafana    login of dashboards/reports (waferwatch_reader)  [waferwatch_grafana]
--
-- What it makes (idempotent: safe to run again):
--   waferwatch_writer, waferwatch_reader, waferwatch_feed  NOLOGIN group roles (feed: what a
--       fleet database's subscription reads, docs/operations.md); the collector's schema
--       migration (collector/sql/90_grants.sql, re-applied by each migration run) grants them their privileges on
--       the tables. Made here so that the owner needs no CREATEROLE.
--   :owner      LOGIN, owns the database and thereby schema public; the only role that
--               creates or alters tables. Apply the migrations as this user with
--               `waferwatch-collector --migrate-only` (the upgrade step; exits when done),
--               then run collectors as :collector with pg.migrate: false.
--   :collector  LOGIN, member of waferwatch_writer: inserts, no UPDATE/DELETE/TRUNCATE of
--               data, no DDL (daily partitions come from ww_ensure_partitions, which runs
--               as the owner).
--   :grafana    LOGIN, member of waferwatch_reader: SELECT only.
--
-- No password is in this file. Set them afterwards, interactively, so that they never
-- reach a file or the shell history:
--   psql -d postgres -c '\password waferwatch_collector'
-- (scram-sha-256, the PostgreSQL 15 default password_encryption), or use certificate
-- authentication and no password at all. Clients read passwords from a PGPASSFILE
-- (mode 0600), one line per server:
--   db.example.internal:5432:waferwatch:waferwatch_collector:<password>
-- and the collector is started with PGPASSFILE=/etc/waferwatch/pgpass in its
-- environment. Never put a password in the collector YAML (pg.conninfo) or on its
-- command line: both are readable (--print-config, ps). The connection string carries
-- only where and who, and how to check the server:
--   pg.conninfo: "host=db.example.internal dbname=waferwatch user=waferwatch_collector
--                 sslmode=verify-full sslrootcert=/etc/waferwatch/pg-ca.crt"
-- verify-full checks that the server's certificate is signed by that CA and names the
-- host; with certificate auth add sslcert=/etc/waferwatch/collector.crt and
-- sslkey=/etc/waferwatch/collector.key (CN = waferwatch_collector).
--
-- Server side, pg_hba.conf: TLS only, scram or certificates, nothing for the rest
-- (first match wins; put these above any broader line):
--
--   # TYPE   DATABASE    USER                  ADDRESS        METHOD
--   hostssl  waferwatch  waferwatch_owner      10.0.0.0/8     scram-sha-256
--   hostssl  waferwatch  waferwatch_collector  10.0.0.0/8     scram-sha-256
--   # or, with client certificates instead of a password:
--   # hostssl waferwatch waferwatch_collector  10.0.0.0/8     cert
--   hostssl  waferwatch  waferwatch_grafana    10.0.0.0/8     scram-sha-256
--   host     all         all                   0.0.0.0/0      reject
--   host     all         all                   ::/0           reject
--
-- and postgresql.conf: ssl = on, ssl_cert_file / ssl_key_file (a certificate whose
-- subjectAltName is the host name clients use, for verify-full), ssl_ca_file (for cert
-- auth), password_encryption = scram-sha-256. Then SELECT pg_reload_conf().

\if :{?db}
\else
\set db waferwatch
\endif
\if :{?owner}
\else
\set owner waferwatch_owner
\endif
\if :{?collector}
\else
\set collector waferwatch_collector
\endif
\if :{?grafana}
\else
\set grafana waferwatch_grafana
\endif

\set ON_ERROR_STOP 1

-- CREATE ROLE has no IF NOT EXISTS: create what is missing, then set the attributes.
SELECT format('CREATE ROLE %I', r)
FROM unnest(ARRAY['waferwatch_writer', 'waferwatch_reader', 'waferwatch_feed',
                  :'owner', :'collector', :'grafana']) AS r
WHERE to_regrole(r) IS NULL
\gexec

ALTER ROLE waferwatch_writer NOLOGIN;
ALTER ROLE waferwatch_reader NOLOGIN;
ALTER ROLE waferwatch_feed NOLOGIN;
-- The owner needs no CREATEROLE: the group roles exist now.
ALTER ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"collector" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"grafana" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
-- The logins inherit the privileges of their group role.
ALTER ROLE :"collector" INHERIT;
ALTER ROLE :"grafana" INHERIT;
GRANT waferwatch_writer TO :"collector";
GRANT waferwatch_reader TO :"grafana";

-- The database, owned by the owner (which makes it the owner of schema public in
-- PostgreSQL 15: pg_database_owner), or an existing one handed over. An existing
-- database whose tables another role created (e.g. migrated as postgres) needs, once
-- connected to it: REASSIGN OWNED BY postgres TO waferwatch_owner (check first what
-- else that role owns there).
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
ALTER DATABASE :"db" OWNER TO :"owner";

-- Only the three logins connect; nobody else gets temporary tables.
REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"owner", :"collector", :"grafana";
GRANT TEMPORARY ON DATABASE :"db" TO :"owner", waferwatch_writer;

\connect :"db"
-- PostgreSQL 15 already withholds CREATE on schema public from PUBLIC; a cluster
-- upgraded from an older version does not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";

-- Next: set the passwords (\password), then apply the collector's migrations once as the
-- owner:
--   PGPASSFILE=/etc/waferwatch/pgpass-owner waferwatch-collector --migrate-only \
--       --pg "host=... dbname=waferwatch user=waferwatch_owner sslmode=verify-full"
-- It exits 0 once the schema is at the binary's version (2 if PostgreSQL refuses the
-- credentials). Migration 0005 grants
-- waferwatch_writer and waferwatch_reader their privileges; after a DBA creates a group
-- role that was missing at migration time, the owner runs SELECT ww_grant_roles().
