/* migrate: see migrate.h. */
#define WW_LOG_MODULE "migrate"
#include "migrate.h"

#include "ww_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Any constant works as long as every collector uses the same one. */
#define WW_MIGRATE_LOCK "7870001"

static int s_exec(PGconn *conn, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        WW_ERROR("%s failed: %s", what, PQerrorMessage(conn));
    }
    PQclear(r);
    return ok ? 0 : -EIO;
}

int ww_migrate(PGconn *conn)
{
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
