/* ww_maint: see ww_maint.h. */
#define WW_LOG_MODULE "store"
#include "ww_maint.h"

#include "ww_log.h"
#include "ww_migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ww_maint_session(PGconn *conn, int migrate, bool *migrated)
{
    PQclear(PQexec(conn, "SET TIME ZONE 'UTC'"));
    if (migrate && !*migrated) {
        int v = ww_migrate(conn);
        if (v < 0) {
            return v;
        }
        WW_INFO("database schema at version %d", v);
        *migrated = true;
    }
    /* The rollup rows merged here and the latency windows pass through per-session
     * staging tables on their way into their upserts. */
    PGresult *tr = PQexec(conn, "CREATE TEMP TABLE IF NOT EXISTS ww_stage_rollup"
                                " (LIKE latency_rollup_1m) ON COMMIT DELETE ROWS;"
                                " CREATE TEMP TABLE IF NOT EXISTS ww_stage_windows"
                                " (LIKE latency_windows INCLUDING DEFAULTS)"
                                " ON COMMIT DELETE ROWS");
    int rc = 0;
    if (PQresultStatus(tr) != PGRES_COMMAND_OK) {
        WW_ERROR("cannot create the staging table (is the schema migrated?): %s",
                 PQerrorMessage(conn));
        rc = -EIO;
    }
    PQclear(tr);
    return rc;
}

/* Drops the raw partitions and deletes the rollups past their retention. */
static void s_retention(PGconn *conn, int raw_days, int rollup_days)
{
    char raw[16], rollup[16];
    snprintf(raw, sizeof raw, "%d", raw_days);
    snprintf(rollup, sizeof rollup, "%d", rollup_days);
    const char *params[] = {raw, rollup};
    PGresult *r =
        PQexecParams(conn, "SELECT ww_drop_old_data($1, $2)", 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int dropped = atoi(PQgetvalue(r, 0, 0));
        if (dropped > 0) {
            WW_INFO("retention: dropped %d daily partitions older than %d days", dropped, raw_days);
        }
    } else {
        /* Not fatal: ingest goes on, the next maintenance tries again. */
        WW_WARN("retention failed (retention.raw_days, retention.rollup_days): %s",
                PQerrorMessage(conn));
    }
    PQclear(r);
}

/* The node tiers' retention of a fleet database (as the tier job's, ww_drop_old_tiers). */
static void s_fleet_tier_retention(PGconn *conn, const int64_t *days)
{
    char d[3][24];
    const char *p[3];
    for (int k = 0; k < 3; k++) {
        snprintf(d[k], sizeof d[k], "%lld", (long long)days[k]);
        p[k] = d[k];
    }
    PGresult *r =
        PQexecParams(conn, "SELECT ww_drop_old_tiers($1::integer, $2::integer, $3::integer)", 3,
                     NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        WW_WARN("retention of the node tiers failed (retention.node_minute_days, "
                "node_hour_days, latency_node_days): %s",
                PQerrorMessage(conn));
    }
    PQclear(r);
}

int ww_maint_run(PGconn *conn, int raw_days, int rollup_days, const int64_t *fleet_tier_days)
{
    /* A week back (late data is accepted up to 7 days) and two days ahead. */
    PGresult *r = PQexec(conn, "SELECT ww_ensure_partitions(current_date - 7, 10)");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    if (rc == 0) {
        int made = atoi(PQgetvalue(r, 0, 0));
        if (made > 0) {
            WW_INFO("created %d partitions (raw data and per-node tiers)", made);
        }
    } else {
        WW_WARN("partition maintenance failed: %s", PQerrorMessage(conn));
    }
    PQclear(r);
    if (fleet_tier_days) {
        /* A fleet database: the hour rows arrive from the sites (one built here would
         * collide with theirs), and no tier job drops the node tiers' partitions. */
        if (rc == 0) {
            s_fleet_tier_retention(conn, fleet_tier_days);
        }
    } else {
        /* Hourly rollups of the last two days that are missing or short of late minutes (the
         * SLO evaluator keeps the last hours current; ww_sli reads the minutes of any hour not
         * rolled up, so this only saves it work). */
        r = PQexec(conn, "SELECT ww_rollup_hours(now() - interval '2 days', now())");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            WW_WARN("hourly latency rollups failed: %s", PQerrorMessage(conn));
        }
        PQclear(r);
    }
    if (rc == 0 && (raw_days > 0 || rollup_days > 0)) {
        s_retention(conn, raw_days, rollup_days);
    }
    return rc;
}
