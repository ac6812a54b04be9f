/* Retention (collector/sql/20_functions_storage.sql, ww_store_maintain): old daily
 * partitions of raw data are dropped and old rollups and evaluations deleted by the
 * collector's maintenance, through the writer role's EXECUTE on ww_drop_old_data only;
 * recent data stays, and 0 keeps everything. */
#include "harness.h"
#include "ww_store.h"
#include "ww_test.h"

#include <stdio.h>
#include <string.h>

#define EMPTY_HIST "ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}')"

static void s_exec(h_db_t *db, const char *sql)
{
    PQclear(h_query(db, sql));
}

/* A sample and a latency window `days` days ago, and a rollup row as old. */
static void s_rows_at(h_db_t *db, int days)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples VALUES (date_trunc('day', now()) - interval '%d days'"
             " + interval '1 hour', 'n1', 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, false, 1)",
             days);
    s_exec(db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_windows VALUES (date_trunc('day', now()) - interval '%d days'"
             " + interval '1 hour', 'n1', 'm', 10, 0, 0, 0, 0, 0, 0, " EMPTY_HIST ", " EMPTY_HIST
             ", " EMPTY_HIST ", " EMPTY_HIST ")",
             days);
    s_exec(db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_rollup_1m VALUES (date_trunc('day', now()) - interval '%d days'"
             " + interval '1 hour', 'p', 'm', 1, 0, 0, 0, 0, 0, 0, " EMPTY_HIST ", " EMPTY_HIST
             ", " EMPTY_HIST ", " EMPTY_HIST ")",
             days);
    s_exec(db, sql);
}

static void test_maintenance_drops_old_partitions_and_rollups(void **state)
{
    h_db_t db;
    h_db_create(&db, "retention");
    ww_store_t *store = ww_store_new(db.conninfo);
    assert_int_equal(ww_store_ensure(store, 1), 0); /* migrates, makes today's partitions */
    s_exec(&db, "SELECT ww_ensure_partitions(current_date - 60, 3)");
    s_rows_at(&db, 59);
    s_rows_at(&db, 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM pg_class WHERE relname ~"
                                     " '^(node_samples|latency_windows)_p[0-9]{8}$'"
                                     " AND to_date(right(relname, 8), 'YYYYMMDD')"
                                     " < current_date - 35"),
                     6);

    /* 0: keep everything. */
    ww_store_set_retention(store, 0, 0);
    assert_int_equal(ww_store_maintain(store), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 2);

    /* The collector's connection, as the writer: no DROP or DELETE right of its own. */
    ww_store_destroy(&store);
    char conninfo[300];
    snprintf(conninfo, sizeof conninfo, "%s options='-c role=waferwatch_writer'", db.conninfo);
    store = ww_store_new(conninfo);
    assert_int_equal(ww_store_ensure(store, 0), 0);
    ww_store_set_retention(store, 35, 30);
    assert_int_equal(ww_store_maintain(store), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM pg_class WHERE relname ~"
                                     " '^(node_samples|latency_windows)_p[0-9]{8}$'"
                                     " AND to_date(right(relname, 8), 'YYYYMMDD')"
                                     " < current_date - 35"),
                     0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_windows"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1m"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1m"
                                     " WHERE time > now() - interval '2 days'"),
                     1);
    /* The writer still cannot drop or delete by itself. */
    PGconn *w = PQconnectdb(conninfo);
    PGresult *r = PQexec(w, "DELETE FROM latency_rollup_1m");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQfinish(w);
    ww_store_destroy(&store);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_maintenance_drops_old_partitions_and_rollups),
};
WW_TEST_MAIN(tests, NULL, NULL)
