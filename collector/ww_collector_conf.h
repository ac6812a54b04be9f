/* collector_config: the collector's configuration struct and its declarative schema
 * (collector.yaml, WW_COLLECTOR_* environment variables, flags, --help, --print-config). */
#ifndef WW_COLLECTOR_CONF_H
#define WW_COLLECTOR_CONF_H

#include "ww_config.h"
#include "ww_log.h"

#include <stdint.h>

/* collector.role: a site's collector receives agents; a fleet database's (docs/operations.md,
 * "Sites and a fleet database") only evaluates, from what the sites publish to it. */
typedef enum { WW_ROLE_SITE, WW_ROLE_FLEET } ww_collector_role_t;
extern const char *const ww_collector_role_names[]; /* "site", "fleet", NULL */

typedef struct {
    ww_collector_role_t role;  /* an enum row of ww_collector_role_names */
    int64_t fleet_stale_ns;    /* fleet: a site silent this long is stale */
    char *listen;              /* ZeroMQ endpoint to bind */
    char *endpoint_file;       /* write the bound endpoint here (tests, service managers) */
    ww_log_level_t log_level;  /* an enum row of ww_log_level_names */
    char *pg_conninfo;         /* libpq conninfo; "" = PG* environment variables */
    bool pg_migrate;           /* apply migrations at start */
    bool migrate_only;         /* apply migrations and exit */
    int64_t drain_ns;          /* on SIGTERM, time to commit what was received */
    int64_t retry_max_ns;      /* cap of the backoff between PostgreSQL retries */
    int64_t max_group;         /* messages written per transaction */
    int64_t max_group_samples; /* ... and node samples */
    int64_t writers;           /* PostgreSQL connections writing groups side by side */
    int64_t retention_raw_days, retention_rollup_days; /* 0 = keep */
    /* the storage tiers (ww_tiers.h); retention in days, 0 = keep */
    bool tiers_enabled;
    int64_t tiers_interval_ns, tiers_grace_ns, tiers_max_minutes, tiers_max_late;
    int64_t retention_node_minute_days, retention_node_hour_days, retention_latency_node_days;
    int64_t compaction_age_ns, compaction_max_nodes, retention_compact_days;
    int64_t retention_window_days; /* latency_windows (migration 0020) */
    int64_t max_message_bytes;
    int64_t max_samples;
    int64_t max_past_ns;
    int64_t max_future_ns;
    char *slo_file; /* phases and SLOs to evaluate (empty: none) */
    /* /metrics and /healthz on HOST:PORT; "" = off */
    char *metrics_listen;
    /* security */
    bool insecure;         /* no CURVE: anyone who can reach the port may write */
    char *server_key_file; /* the collector's CURVE key pair (NAME.key) */
    char *allowlist;       /* enrolled agent keys, agent ids and node patterns */
} ww_collector_conf_t;

extern const ww_cfg_schema_t ww_collector_schema;

#endif
