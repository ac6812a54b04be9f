/* ww_maint: the store's housekeeping on its PostgreSQL connection, apart from the writes:
 * the session set-up after each connect (time zone, migrations, staging tables), the
 * periodic maintenance (daily partitions, hourly latency rollups, retention) and the
 * read-only schema check of --check-config.
 *
 * Every function takes a connected PGconn owned by the caller (ww_store), which alone
 * decides when to connect and disconnect; failures are logged here (module "store", as
 * the rest of the writer) and returned as a negative errno.
 */
#ifndef WW_MAINT_H
#define WW_MAINT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* Sets up a new session: time zone UTC (so that the report's dates do not depend on the
 * server's zone); when `migrate` and not *migrated yet, applies the migrations
 * (ww_migrate) and sets *migrated; creates the per-session staging tables
 * (ww_stage_rollup, ww_stage_windows: ON COMMIT DELETE ROWS). 0, the negative errno of
 * ww_migrate, or -EIO when the staging tables cannot be made (schema not migrated?). On
 * failure the caller drops the connection. */
int ww_maint_session(PGconn *conn, int migrate, bool *migrated);

/* Creates the missing daily partitions from a week back to two days ahead, rolls up the
 * hours of the last two days that are missing or short, and applies the retention when
 * raw_days or rollup_days is > 0 (SQL ww_drop_old_data(); 0: keep). fleet_tier_days: NULL
 * at a site; in a fleet database (collector.role fleet) the retention in days of
 * node_rollup_1m, node_rollup_1h and latency_node_1h (0: keep), applied here since no tier
 * job runs there, and no hour is rolled up (the sites' hour rows arrive by replication).
 * 0, or -EIO when the partitions could not be made; a failed hourly rollup or retention is
 * only logged (the next maintenance tries again), and the retention is skipped when
 * partitions failed. */
int ww_maint_run(PGconn *conn, int raw_days, int rollup_days, const int64_t *fleet_tier_days);

#endif
