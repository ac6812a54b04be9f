/* collector_config: see ww_collector_conf.h. */
#include "ww_collector_conf.h"

#include <stddef.h>

/* The enum rows write an int (ww_config.h): the enum must be one. */
_Static_assert(sizeof(ww_log_level_t) == sizeof(int), "collector.log_level is an int");
_Static_assert(sizeof(ww_collector_role_t) == sizeof(int), "collector.role is an int");

const char *const ww_collector_role_names[] = {
    [WW_ROLE_SITE] = "site", [WW_ROLE_FLEET] = "fleet", NULL};

#define C(f) offsetof(ww_collector_conf_t, f)
#define ROW WW_CFG_ROW

static const ww_cfg_opt_t s_rows[] = {
    WW_CFG_ENUM_ROW("collector.role", ww_collector_role_names, "site", C(role), "role",
                    "site: receive agents and write their data (collector.listen); fleet: a "
                    "fleet database subscribed to the sites' publications, evaluated from "
                    "their figures (slo.file required; no listen, keys or tiers)"),
    ROW("fleet.stale_after", WW_CFG_DURATION, "2m", C(fleet_stale_ns), 1, 86400, "stale-after",
        "role fleet: a site whose newest capacity figures are older than this is reported "
        "stale (capacity_evaluations.stale_sites), its last figures still counted"),
    ROW("collector.listen", WW_CFG_STRING, "tcp://*:7878", C(listen), 0, 0, "listen",
        "ZeroMQ endpoint to bind (tcp://HOST:PORT, PORT * = any free port, or ipc://PATH)"),
    ROW("collector.endpoint_file", WW_CFG_STRING, "", C(endpoint_file), 0, 0, "endpoint-file",
        "write the bound endpoint to this file once listening"),
    ROW("metrics.listen", WW_CFG_STRING, "", C(metrics_listen), 0, 0, "metrics-listen",
        "serve Prometheus /metrics and /healthz on HOST:PORT ([V6]:PORT; port 0 = any free "
        "port, logged); empty = off. /healthz is 503 while PostgreSQL is not connected"),
    WW_CFG_ENUM_ROW("collector.log_level", ww_log_level_names, "info", C(log_level), "log-level",
                    "the least severe messages logged"),
    ROW("collector.drain_timeout", WW_CFG_DURATION, "10s", C(drain_ns), 0, 3600, "drain-timeout",
        "on SIGTERM, how long to keep trying to commit what was received"),
    ROW("pg.conninfo", WW_CFG_STRING, "", C(pg_conninfo), 0, 0, "pg",
        "libpq connection string or URI; empty = PGHOST, PGPORT, PGDATABASE, PGUSER, ... "
        "(passwords belong in PGPASSFILE, not here)"),
    ROW("pg.migrate", WW_CFG_BOOL, "true", C(pg_migrate), 0, 0, "migrate",
        "apply the embedded schema migrations at start"),
    ROW("pg.migrate_only", WW_CFG_BOOL, "false", C(migrate_only), 0, 0, "migrate-only",
        "apply the migrations (as the schema owner) and exit: the upgrade step"),
    ROW("pg.retry_max", WW_CFG_DURATION, "10s", C(retry_max_ns), 0.1, 3600, NULL,
        "longest wait between retries while PostgreSQL is unavailable"),
    ROW("ingest.max_group", WW_CFG_INT, "256", C(max_group), 1, 100000, NULL,
        "messages committed together in one transaction"),
    ROW("ingest.writers", WW_CFG_INT, "2", C(writers), 1, 64, NULL,
        "PostgreSQL connections writing groups side by side, each its own transaction (one "
        "backend is one core of the database server); an agent's messages always go "
        "through the same one, in order"),
    ROW("retention.raw_days", WW_CFG_INT, "35", C(retention_raw_days), 0, 36500, NULL,
        "daily partitions of node_samples and latency_windows older than this many days are "
        "dropped on the collector's hourly maintenance (0 = keep everything; at least 8, "
        "since samples up to 7 days old are accepted); compaction and "
        "retention.window_days empty them sooner"),
    ROW("retention.window_days", WW_CFG_INT, "1", C(retention_window_days), 0, 36500, NULL,
        "daily partitions of latency_windows before the UTC midnight this many days ago are "
        "dropped by the tier job once their hours are built into latency_node_1h (1: "
        "yesterday and today are kept, 24 to 48 h); a later window of those days is merged "
        "into its hour (0 = keep until retention.raw_days; needs tiers.enabled)"),
    ROW("retention.rollup_days", WW_CFG_INT, "400", C(retention_rollup_days), 0, 36500, NULL,
        "per-minute latency rollups, SLO and capacity evaluations, alert transitions and "
        "refused-message records older than this many days are deleted (0 = keep)"),
    ROW("retention.node_minute_days", WW_CFG_INT, "35", C(retention_node_minute_days), 0, 36500,
        NULL,
        "partitions of node_rollup_1m (per node per minute) older than this many days are "
        "dropped (0 = keep)"),
    ROW("retention.node_hour_days", WW_CFG_INT, "400", C(retention_node_hour_days), 0, 36500, NULL,
        "partitions of node_rollup_1h (per node per hour, monthly) whose every row is "
        "older than this many days are dropped (0 = keep)"),
    ROW("retention.compact_days", WW_CFG_INT, "14", C(retention_compact_days), 0, 36500, NULL,
        "partitions of node_samples_compact (raw samples after compaction) older than this "
        "many days are dropped (0 = keep)"),
    ROW("retention.latency_node_days", WW_CFG_INT, "35", C(retention_latency_node_days), 0, 36500,
        NULL,
        "partitions of latency_node_1h (latency per node, model and hour) older than this "
        "many days are dropped (0 = keep)"),
    ROW("tiers.enabled", WW_CFG_BOOL, "true", C(tiers_enabled), 0, 0, NULL,
        "build the storage tiers (node, site and latency rollups per minute and hour); "
        "several collectors may: one builds at a time"),
    ROW("tiers.interval", WW_CFG_DURATION, "30s", C(tiers_interval_ns), 1, 3600, NULL,
        "how often the tier builder runs"),
    ROW("tiers.grace", WW_CFG_DURATION, "1m", C(tiers_grace_ns), 0, 86400, NULL,
        "a minute is built this long after its end; samples that arrive later still "
        "count (the buckets they change are rebuilt), this only spares that work"),
    ROW("tiers.max_minutes", WW_CFG_INT, "10", C(tiers_max_minutes), 1, 10080, NULL,
        "minutes built per transaction (bounds a transaction while history is built)"),
    ROW("tiers.max_late", WW_CFG_INT, "100000", C(tiers_max_late), 1, 100000000, NULL,
        "late buckets (node-minutes, node-hours of latency) rebuilt per transaction"),
    ROW("compaction.age", WW_CFG_DURATION, "3h", C(compaction_age_ns), 0, 604800, NULL,
        "raw samples and latency windows of an hour this long after its end (and tiers.grace) "
        "are rewritten as one block per node (node_samples_compact, ~8 bytes a sample; "
        "latency_windows_compact, ~230 bytes a window), and a day's raw partitions are "
        "emptied once all its hours are (0 = never compact; needs tiers.enabled)"),
    ROW("compaction.max_nodes", WW_CFG_INT, "1000", C(compaction_max_nodes), 1, 1000000, NULL,
        "node-hours compacted per transaction"),
    ROW("ingest.max_group_samples", WW_CFG_INT, "65536", C(max_group_samples), 1, 10000000, NULL,
        "a transaction is closed once its batches hold this many node samples (bounds the "
        "sample-to-commit delay when agents send large batches)"),
    ROW("ingest.max_message_bytes", WW_CFG_SIZE, "16 MiB", C(max_message_bytes), 1024, 1073741824,
        NULL, "largest message accepted (ZMQ_MAXMSGSIZE)"),
    ROW("ingest.max_samples", WW_CFG_INT, "65536", C(max_samples), 1, 10000000, NULL,
        "most samples in one batch"),
    ROW("ingest.max_past", WW_CFG_DURATION, "7d", C(max_past_ns), 1, 31536000, NULL,
        "samples older than this are refused"),
    ROW("ingest.max_future", WW_CFG_DURATION, "5m", C(max_future_ns), 1, 86400, NULL,
        "samples further ahead than this (clock skew) are refused"),
    ROW("slo.file", WW_CFG_STRING, "", C(slo_file), 0, 0, "slo",
        "phases and SLOs of the buildout to evaluate (deploy/phases.example.yaml); empty: "
        "no evaluation. Every collector of a group may have it: one leads (slo_leader)."),
    ROW("security.server_key", WW_CFG_STRING, "", C(server_key_file), 0, 0, "server-key",
        "the collector's CURVE key file (waferwatch keygen NAME writes NAME.key and NAME.pub)"),
    ROW("security.allowlist", WW_CFG_STRING, "", C(allowlist), 0, 0, "allowlist",
        "file of enrolled agents: <public key> <agent_id> <node pattern>... per line "
        "(re-read on SIGHUP)"),
    ROW("security.insecure", WW_CFG_BOOL, "false", C(insecure), 0, 0, "insecure",
        "run without CURVE: any peer that reaches the port may write (tests and labs only)"),
};

const ww_cfg_schema_t ww_collector_schema = {
    .program = "waferwatch-collector",
    .summary = "receives agent batches over ZeroMQ and writes them to PostgreSQL",
    .env_prefix = "WW_COLLECTOR_",
    .opts = s_rows,
    .n_opts = sizeof s_rows / sizeof s_rows[0],
};
