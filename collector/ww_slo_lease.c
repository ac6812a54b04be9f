/* slo_lease: see ww_slo_lease.h. */
#include "ww_slo_lease.h"

#include "ww_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t ww_slo_lease_ns(int64_t interval_ns)
{
    /* Below ~200 ms a scheduling hiccup of a healthy leader would cost it the lease. */
    return interval_ns < 200 * WW_NS_PER_MS ? 200 * WW_NS_PER_MS : interval_ns;
}

int64_t ww_slo_lease_poll_ns(int64_t interval_ns)
{
    return ww_slo_lease_ns(interval_ns) / 4;
}

/* One statement; returns its result when it succeeded (caller PQclear), else NULL. */
static PGresult *s_run(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

static void s_ms(int64_t ns, char *out, size_t cap)
{
    snprintf(out, cap, "%lld", (long long)(ns / WW_NS_PER_MS));
}

int ww_slo_lease_session(PGconn *conn, int64_t interval_ns)
{
    char ms[32];
    s_ms(ww_slo_lease_ns(interval_ns), ms, sizeof ms);
    const char *p[] = {ms};
    PGresult *r =
        s_run(conn, "SELECT set_config('idle_in_transaction_session_timeout', $1, false)", 1, p);
    if (!r) {
        return -EIO;
    }
    PQclear(r);
    return 0;
}

int ww_slo_lease_take(PGconn *conn, const char *holder, int64_t interval_ns, int64_t *term,
                      char *prev, size_t cap)
{
    char lease[32], poll[32];
    s_ms(ww_slo_lease_ns(interval_ns), lease, sizeof lease);
    s_ms(ww_slo_lease_poll_ns(interval_ns), poll, sizeof poll);
    PGresult *r = s_run(conn, "BEGIN", 0, NULL);
    if (!r) {
        return -EIO;
    }
    PQclear(r);
    const char *tp[] = {poll};
    r = s_run(conn, "SELECT set_config('lock_timeout', $1, true)", 1, tp);
    if (!r) {
        goto fail;
    }
    PQclear(r);
    /* The previous holder, read in the same statement as the row it updates (a subquery
     * sees the row before the update). */
    const char *p[] = {holder, lease};
    r = PQexecParams(conn,
                     "UPDATE slo_leader AS l SET term = l.term + 1, holder = $1,"
                     " since = clock_timestamp(), renewed_at = clock_timestamp(),"
                     " expires_at = clock_timestamp() + make_interval(secs => $2::bigint /"
                     " 1000.0) FROM (SELECT holder FROM slo_leader WHERE id) AS o"
                     " WHERE l.id AND l.expires_at < clock_timestamp() RETURNING l.term, o.holder",
                     2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* lock_timeout (55P03: a leader evaluating holds the row) is no failure: the
         * caller polls again. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int rc = state && strcmp(state, "55P03") == 0 ? 0 : -EIO;
        PQclear(r);
        PQclear(PQexec(conn, "ROLLBACK"));
        return rc;
    }
    int taken = PQntuples(r) == 1;
    if (taken) {
        *term = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(prev, cap, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    r = s_run(conn, "COMMIT", 0, NULL);
    if (!r) {
        return -EIO; /* not committed: not taken */
    }
    PQclear(r);
    return taken;

fail:
    PQclear(PQexec(conn, "ROLLBACK"));
    return -EIO;
}

int ww_slo_lease_renew(PGconn *conn, int64_t term, int64_t interval_ns)
{
    char t[32], lease[32];
    snprintf(t, sizeof t, "%lld", (long long)term);
    s_ms(ww_slo_lease_ns(interval_ns), lease, sizeof lease);
    const char *p[] = {t, lease};
    PGresult *r = s_run(conn,
                        "UPDATE slo_leader SET renewed_at = clock_timestamp(),"
                        " expires_at = clock_timestamp() + make_interval(secs => $2::bigint /"
                        " 1000.0) WHERE id AND term = $1::bigint",
                        2, p);
    if (!r) {
        return -EIO;
    }
    int renewed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return renewed;
}

int ww_slo_lease_release(PGconn *conn, int64_t term)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)term);
    const char *p[] = {t};
    PGresult *r = s_run(conn,
                        "UPDATE slo_leader SET expires_at = clock_timestamp() WHERE id AND term ="
                        " $1::bigint",
                        1, p);
    if (!r) {
        return -EIO;
    }
    int released = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return released;
}

int ww_slo_lease_read(PGconn *conn, int64_t *term, char *holder, size_t cap)
{
    PGresult *r = s_run(conn, "SELECT term, holder FROM slo_leader WHERE id", 0, NULL);
    if (!r) {
        return -EIO;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return -EIO;
    }
    *term = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(holder, cap, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}
