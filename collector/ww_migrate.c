/* migrate: see ww_migrate.h. */
#define WW_LOG_MODULE "migrate"
#include "ww_migrate.h"

#include "ww_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any constant works as long as every collector uses the same one. */
#define WW_MIGRATE_LOCK "7870001"

static int s_exec(PGconn *conn, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        WW_ERROR("%s failed: %s%s", what, PQerrorMessage(conn),
                 state && strcmp(state, "42501") == 0
                     ? " (migrations need the schema owner: run them as the owner, and the "
                       "collector as waferwatch_writer with pg.migrate: false)"
                     : "");
    }
    PQclear(r);
    return ok ? 0 : -EIO;
}

/* The schema version without writing anything (0 when never migrated, negative on
 * error): a collector running as the writer role, which may not create tables, can still
 * start with pg.migrate on when the schema is current. */
static int s_version(PGconn *conn)
{
    PGresult *r = PQexec(conn, "SELECT to_regclass('ww_schema_migrations') IS NOT NULL");
    int v = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    if (v == 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        PQclear(r);
        r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM ww_schema_migrations");
        v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -EIO;
    }
    PQclear(r);
    return v;
}

int ww_migrate(PGconn *conn)
{
    int newest_known = ww_n_migrations ? ww_migrations[ww_n_migrations - 1].version : 0;
    int current = s_version(conn);
    if (current == newest_known) {
        return current;
    }
    int have = 0;
    int rc = s_exec(conn, "BEGIN", "BEGIN");
    if (rc < 0) {
        return rc;
    }
    rc = s_exec(conn,
                "SELECT pg_advisory_xact_lock(" WW_MIGRATE_LOCK ");"
                "CREATE TABLE IF NOT EXISTS ww_schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "locking the migration table");
    if (rc < 0) {
        goto rollback;
    }
    PGresult *r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM ww_schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        WW_ERROR("reading the schema version failed: %s", PQerrorMessage(conn));
        PQclear(r);
        rc = -EIO;
        goto rollback;
    }
    have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);

    int newest = ww_n_migrations ? ww_migrations[ww_n_migrations - 1].version : 0;
    if (have > newest) {
        WW_ERROR("the database schema is version %d, newer than this collector's %d: "
                 "upgrade the collector",
                 have, newest);
        rc = -EPROTO;
        goto rollback;
    }
    for (size_t i = 0; i < ww_n_migrations; i++) {
        const ww_migration_t *m = &ww_migrations[i];
        if (m->version <= have) {
            continue;
        }
        char what[128];
        snprintf(what, sizeof what, "migration %04d_%s", m->version, m->name);
        if ((rc = s_exec(conn, m->sql, what)) < 0) {
            goto rollback;
        }
        char ins[256];
        snprintf(ins, sizeof ins,
                 "INSERT INTO ww_schema_migrations (version, name) VALUES (%d, '%s')", m->version,
                 m->name);
        if ((rc = s_exec(conn, ins, what)) < 0) {
            goto rollback;
        }
        WW_INFO("applied %s", what);
        have = m->version;
    }
    if ((rc = s_exec(conn, "COMMIT", "COMMIT of migrations")) < 0) {
        return rc;
    }
    return have;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}
