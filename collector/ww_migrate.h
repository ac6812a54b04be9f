/* migrate: versioned SQL migrations, embedded in the collector at build time from
 * collector/migrations/NNNN_name.sql and applied in order, each once, at start. */
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

/* Applies every migration newer than the database's version, in one transaction under an
 * advisory lock (several collectors starting at once apply each migration once). A
 * database newer than this collector is refused. Returns the schema version now in the
 * database (>= 1) or a negative errno with the reason logged. */
int ww_migrate(PGconn *conn);

#endif
