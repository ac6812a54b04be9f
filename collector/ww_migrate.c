/* migrate: see ww_migrate.h. */
#define WW_LOG_MODULE "migrate"
#include "ww_migrate.h"

#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any constant works as long as every collector uses the same one. */
#define WW_MIGRATE_LOCK "7870001"

/* The last commit whose collector carries the migrations 0001-0011 that the baseline
 * (the first embedded migration, 0012_baseline.sql) replaced: a database between them is
 * migrated to the baseline's version by that collector first. */
#define WW_MIGRATE_PRE_BASELINE_COMMIT "c42eac9"

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

int ww_migrate_version(PGconn *conn)
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

/* 1 when ww_schema_repeatable records exactly the embedded repeatable files (same names,
 * same MD5s), 0 when not (or the table does not exist yet), negative on error. Reads only. */
static int s_repeatables_current(PGconn *conn)
{
    PGresult *r = PQexec(conn, "SELECT to_regclass('ww_schema_repeatable') IS NOT NULL");
    int v = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    if (v == 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        PQclear(r);
        r = PQexec(conn, "SELECT name, md5 FROM ww_schema_repeatable");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            v = -EIO;
        } else if ((size_t)PQntuples(r) == ww_n_repeatables) {
            v = 1;
            for (int i = 0; i < PQntuples(r) && v == 1; i++) {
                v = 0;
                for (size_t k = 0; k < ww_n_repeatables; k++) {
                    if (strcmp(PQgetvalue(r, i, 0), ww_repeatables[k].name) == 0 &&
                        strcmp(PQgetvalue(r, i, 1), ww_repeatables[k].md5) == 0) {
                        v = 1;
                        break;
                    }
                }
            }
        }
    }
    if (v < 0) {
        WW_ERROR("reading the repeatable files applied failed: %s", PQerrorMessage(conn));
    }
    PQclear(r);
    return v;
}

/* Runs every repeatable file in name order and records the set (inside the caller's
 * transaction). Returns 0 or -EIO. */
static int s_apply_repeatables(PGconn *conn)
{
    int rc = s_exec(conn, "DELETE FROM ww_schema_repeatable", "clearing ww_schema_repeatable");
    for (size_t i = 0; i < ww_n_repeatables && rc == 0; i++) {
        const ww_repeatable_t *f = &ww_repeatables[i];
        char what[160];
        snprintf(what, sizeof what, "repeatable file collector/sql/%s", f->name);
        if ((rc = s_exec(conn, f->sql, what)) < 0) {
            break;
        }
        const char *params[2] = {f->name, f->md5};
        PGresult *r = PQexecParams(conn,
                                   "INSERT INTO ww_schema_repeatable (name, md5)"
                                   " VALUES ($1, $2)",
                                   2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            WW_ERROR("%s: recording it failed: %s", what, PQerrorMessage(conn));
            rc = -EIO;
        }
        PQclear(r);
    }
    if (rc == 0) {
        WW_INFO("applied the %zu repeatable files of collector/sql (functions, views, grants)",
                ww_n_repeatables);
    }
    return rc;
}

/* A batched migration (its file starts with this line, see ww_migrate.h). */
#define WW_MIGRATE_BATCHED "-- ww:batched\n"

/* Runs the batched migration m: its statement again and again, each run its own
 * transaction, until it returns 0 (what is left), logging the progress every 10 s.
 * Called outside a transaction, under the session's migration lock. */
static int s_run_batched(PGconn *conn, const ww_migration_t *m, const char *what)
{
    int64_t batches = 0, left = -1;
    int64_t last_log = ww_time_mono_ns();
    for (;;) {
        PGresult *r = PQexec(conn, m->sql); /* one statement: its own transaction */
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1) {
            WW_ERROR("%s failed after %lld batches: %s (the batches done are kept: the next "
                     "start goes on from there)",
                     what, (long long)batches, PQerrorMessage(conn));
            PQclear(r);
            return -EIO;
        }
        left = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        batches++;
        if (left <= 0) {
            break;
        }
        if (ww_time_mono_ns() - last_log >= INT64_C(10000000000)) {
            WW_INFO("%s: %lld batches done, %lld left to do (blocks)", what, (long long)batches,
                    (long long)left);
            last_log = ww_time_mono_ns();
        }
    }
    WW_INFO("%s: done in %lld batches", what, (long long)batches);
    return 0;
}

/* Loads something of the waferwatch extension's library, so that a database whose server
 * lost the package, or has an older one (a restore onto a new server), is named at start,
 * not at the first write or compaction. Only once the schema uses it: the histograms from
 * version 15 on, the sample blocks (extension 1.1: an empty block) from 19 on. */
static int s_check_extension(PGconn *conn, int version)
{
    if (version < 15) {
        return 0;
    }
    PGresult *r = PQexec(conn, version < 19 ? "SELECT ww_hist_count(ww_hist_make(0, 0, 0, NULL, "
                                              "NULL, 0, 0, 0, 0, NULL))"
                                            : "SELECT ww_hist_count(ww_hist_make(0, 0, 0, NULL, "
                                              "NULL, 0, 0, 0, 0, NULL)),"
                                              " ww_sblock_count('\\x010d00'::bytea)");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        WW_ERROR("the database's waferwatch extension does not work: %s(install "
                 "postgresql-15-waferwatch on the database server, of the same version as "
                 "this collector)",
                 PQerrorMessage(conn));
    }
    PQclear(r);
    return ok ? 0 : -EPROTO;
}

/* Takes the session's migration lock, saying so when another collector holds it (a
 * batched migration can hold it for hours: a start that waits must not look hung). */
static int s_lock(PGconn *conn)
{
    PGresult *r = PQexec(conn, "SELECT pg_try_advisory_lock(" WW_MIGRATE_LOCK ")");
    int got = PQresultStatus(r) == PGRES_TUPLES_OK ? strcmp(PQgetvalue(r, 0, 0), "t") == 0 : -1;
    if (got < 0) {
        WW_ERROR("taking the migration lock failed: %s", PQerrorMessage(conn));
    }
    PQclear(r);
    if (got != 0) {
        return got < 0 ? -EIO : 0;
    }
    WW_INFO("another collector is migrating the schema (advisory lock %s): waiting for it",
            WW_MIGRATE_LOCK);
    return s_exec(conn, "SELECT pg_advisory_lock(" WW_MIGRATE_LOCK ")",
                  "taking the migration lock");
}

int ww_migrate(PGconn *conn)
{
    int newest_known = ww_n_migrations ? ww_migrations[ww_n_migrations - 1].version : 0;
    int current = ww_migrate_version(conn);
    if (current == newest_known) {
        int same = s_repeatables_current(conn);
        if (same < 0) {
            return same;
        }
        if (same) {
            return s_check_extension(conn, current) < 0 ? -EPROTO : current;
        }
    }
    /* A session lock, not a transaction's: a batched migration commits between batches
     * and must still keep every other collector out until the whole run is done. */
    int rc = s_lock(conn);
    if (rc < 0) {
        return rc;
    }
    int have = 0;
    int applied = 0;
    if ((rc = s_exec(conn, "BEGIN", "BEGIN")) < 0) {
        goto unlock;
    }
    rc = s_exec(conn,
                "CREATE TABLE IF NOT EXISTS ww_schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now());"
                "CREATE TABLE IF NOT EXISTS ww_schema_repeatable ("
                " name text PRIMARY KEY, md5 text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "creating the migration tables");
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
    /* The first migration is a baseline that stands for every version up to its own: a
     * fresh database (0) applies it, one at its version or later goes on from there, and
     * one in between was made by versions this collector no longer carries. */
    int baseline = ww_n_migrations ? ww_migrations[0].version : 0;
    if (have > 0 && have < baseline) {
        WW_ERROR("the database schema is version %d, which predates this collector's baseline "
                 "(version %d): migrate it first with a collector built from commit "
                 "%s (the last with the migrations before the baseline), then with this one",
                 have, baseline, WW_MIGRATE_PRE_BASELINE_COMMIT);
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
        if (strncmp(m->sql, WW_MIGRATE_BATCHED, strlen(WW_MIGRATE_BATCHED)) == 0) {
            /* What precedes is committed first (a batch must see it, and an interrupted
             * run resumes after it); the version is recorded once every batch is done. */
            if ((rc = s_exec(conn, "COMMIT", "COMMIT before a batched migration")) < 0 ||
                (rc = s_run_batched(conn, m, what)) < 0) {
                goto unlock;
            }
            if ((rc = s_exec(conn, "BEGIN", "BEGIN")) < 0) {
                goto unlock;
            }
        } else if ((rc = s_exec(conn, m->sql, what)) < 0) {
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
        applied++;
    }
    /* The repeatable files after the migrations, in the same transaction: a migration of
     * this run may have dropped what they define (0013) or added what they grant on. */
    int same = applied ? 0 : s_repeatables_current(conn);
    if (same < 0) {
        rc = same;
        goto rollback;
    }
    if (!same && (rc = s_apply_repeatables(conn)) < 0) {
        goto rollback;
    }
    if ((rc = s_exec(conn, "COMMIT", "COMMIT of migrations")) < 0) {
        goto unlock;
    }
    rc = s_check_extension(conn, have) < 0 ? -EPROTO : have;
    goto unlock;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
unlock:
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" WW_MIGRATE_LOCK ")"));
    return rc;
}
