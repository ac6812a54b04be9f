/* migrate: the schema of the collector's database, embedded in the collector at build time:
 *
 *   versioned migrations   collector/migrations/NNNN_name.sql: tables, types, data moves.
 *                          Applied in order, each once, recorded in ww_schema_migrations.
 *                          Never edited once released (databases have applied them).
 *                          The first, 0012_baseline.sql, is the squash of versions 1-12
 *                          (the first release): a fresh database applies it, one at 12 or
 *                          later never does, and one at 1..11 is refused (migrate it first
 *                          with the collector of commit c42eac9, which carries 0001-0012).
 *   repeatable files       collector/sql/NN_name.sql, in name order: the CURRENT definition of
 *                          every function, aggregate and view and the grants of the group
 *                          roles (90_grants.sql). Idempotent (CREATE OR REPLACE ...). Fixing
 *                          a function is one edit of one of these files.
 *   batched migrations     a migration file whose first line is "-- ww:batched" is one
 *                          statement that moves a batch of data and returns one number, what
 *                          is left to do (0: done). The migrator commits the migrations before
 *                          it, runs the statement again and again, each run its own
 *                          transaction, logging progress, then records the version and goes
 *                          on in a new transaction: a data move over a table of any size is
 *                          safe to interrupt and resumes where it stopped (the statement
 *                          keeps its own progress, e.g. 0015-0017's ww_hist_convert).
 *
 * A migration run applies the pending migrations, then every repeatable file, in one
 * transaction (but for batched migrations) under an advisory lock held by the session for
 * the whole run. It runs when a migration is pending or when the set of
 * repeatable files (name and MD5 of each, recorded in ww_schema_repeatable) differs from the
 * one this collector carries; otherwise the migrator only reads, so that a collector running
 * as waferwatch_writer (which may not create or replace anything) can start with pg.migrate
 * on against a current schema. To re-apply the repeatable files by hand, as the owner:
 * DELETE FROM ww_schema_repeatable, then waferwatch-collector --migrate-only.
 *
 * Ordering rules that follow: a migration sees the functions of the previous version (a
 * data move may call ww_merge, not a function new in this version's repeatable files), but
 * on a fresh database the migrations after the baseline run before any function exists
 * (the baseline holds none), so a data move that calls one runs only when there is data to
 * move (e.g. EXECUTE inside a DO block that first checks the table has rows); a
 * migration that drops or retypes a column a view reads drops the view first (the
 * repeatable file re-creates it); collector/schema.sql is what all of it yields
 * (tests/integration/test_schema.c). */
#ifndef WW_MIGRATE_H
#define WW_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct {
    int version;
    const char *name;
    const char *sql;
} ww_migration_t;

extern const ww_migration_t ww_migrations[];
extern const size_t ww_n_migrations;

typedef struct {
    const char *name; /* file name, e.g. "90_grants.sql" */
    const char *md5;  /* hex MD5 of its bytes, computed at build time */
    const char *sql;
} ww_repeatable_t;

/* In name order; ww_n_repeatables entries (the array holds one NULL entry when empty). */
extern const ww_repeatable_t ww_repeatables[];
extern const size_t ww_n_repeatables;

/* Applies every migration newer than the database's version, then every repeatable file
 * when a migration was applied or the recorded files differ from the embedded ones, in one
 * transaction under an advisory lock (several collectors starting at once apply each
 * migration once; a failure rolls all of it back, but for the migrations committed before
 * a batched one and the batches done). Then, from version 15 on, checks that the waferwatch
 * extension's library loads on the server (-EPROTO, logged, when it does not). Writes nothing when
 * the schema is current. A database newer than this collector is refused. Returns the schema
 * version now in the database (>= 1, the highest applied) or a negative errno with the reason
 * logged. A database older than the baseline (version 1 to the first migration's - 1) is refused
 * (-EPROTO) and left unchanged. */
int ww_migrate(PGconn *conn);

/* The schema version of the database (0 when never migrated, -EIO on error, not logged),
 * read without writing anything: a collector running as the writer role, which may not
 * create tables, can still start with pg.migrate on when the schema is current, and
 * --check-config reports it. */
int ww_migrate_version(PGconn *conn);

#endif
