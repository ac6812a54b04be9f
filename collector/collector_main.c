/* waferwatch-collector: receives agent batches over ZeroMQ and writes them to PostgreSQL.
 * See ww_collector_conf.c for every setting. */
#define WW_LOG_MODULE "collector"
#include "ww_allowlist.h"
#include "ww_auth.h"
#include "ww_cmetrics.h"
#include "ww_collector_conf.h"
#include "ww_curve.h"
#include "ww_ingest.h"
#include "ww_log.h"
#include "ww_metrics.h"
#include "ww_migrate.h"
#include "ww_signal.h"
#include "ww_slo_conf.h"
#include "ww_slo_eval.h"
#include "ww_store.h"
#include "ww_tiers.h"
#include "ww_time.h"
#include "ww_version.h"

#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_reload;
static volatile sig_atomic_t s_slo_reload;

/* SIGHUP: re-read the allowlist (ingest) and the phases file (SLO evaluator). */
static void s_on_hup(int sig)
{
    (void)sig;
    s_reload = 1;
    s_slo_reload = 1;
}

/* A configuration error, named as the config engine names its own: where the value came
 * from (file:line:col, environment variable or flag), the key, then why. Returns 2, the
 * exit status of a configuration error (systemd's RestartPreventExitStatus). */
static int s_conf_fail(int argc, char **argv, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_conf_fail(int argc, char **argv, const char *key, const char *fmt, ...)
{
    char where[512], why[4608]; /* err.msg of ww_cfg: up to 20 errors, one a line */
    ww_cfg_origin(&ww_collector_schema, argc, argv, key, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (strcmp(where, "default") == 0) {
        fprintf(stderr, "waferwatch-collector: %s: %s\n", key, why);
    } else {
        fprintf(stderr, "waferwatch-collector: %s: %s: %s\n", where, key, why);
    }
    return 2;
}

/* Loads the server key and the allowlist as the start would, so that --check-config
 * refuses what the start would refuse, and the start refuses it with exit 2 (not 1, which
 * systemd restarts in a loop) before anything is bound. Returns the number of enrolled
 * keys, or -1 with the error printed. */
static int s_check_keys(const ww_collector_conf_t *conf, int argc, char **argv)
{
    char why[1024];
    ww_curve_key_t key;
    if (ww_curve_load(conf->server_key_file, 1, &key, why, sizeof why) < 0) {
        s_conf_fail(argc, argv, "security.server_key", "%s", why);
        return -1;
    }
    memset(&key, 0, sizeof key);
    int n = ww_allowlist_load_check(conf->allowlist, why, sizeof why);
    if (n < 0) {
        s_conf_fail(argc, argv, "security.allowlist", "%s", why);
        return -1;
    }
    return n;
}

/* The forms ZeroMQ binds (zmq_tcp(7), zmq_ipc(7)), checked before the start so that a
 * typo is exit 2 at --check-config, not a failed bind (exit 1, restarted) at the start.
 * Returns NULL when the endpoint has the form, else what is wrong. */
static const char *s_listen_wrong(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        return ep[6] ? NULL : "ipc:// needs a path";
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        return "must be tcp://HOST:PORT (HOST *, an address or an interface; PORT * for any) "
               "or ipc://PATH";
    }
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host) {
        return "tcp:// needs HOST:PORT";
    }
    const char *port = colon + 1;
    if (strcmp(port, "*") == 0) {
        return NULL;
    }
    char *end = NULL;
    long v = *port ? strtol(port, &end, 10) : -1;
    if (!end || *end != '\0' || v < 0 || v > 65535) {
        return "the port must be 0 to 65535 or *";
    }
    return NULL;
}

/* ---- reference (--reference markdown|man) -------------------------------------------- */

/* What the collector's reference says besides its settings; the exit statuses are main's. */
static const ww_cfg_item_t s_ref_exit[] = {
    {"0", "stopped cleanly (SIGTERM or SIGINT, what was received committed); or --help, "
          "--version, --print-config, --reference, a --check-config that reached PostgreSQL, "
          "a --migrate-only that applied the migrations"},
    {"1", "a runtime failure: PostgreSQL not reachable for --check-config or --migrate-only, "
          "the metrics server or the SLO evaluator cannot start, the receive loop failed (the "
          "systemd unit restarts it)"},
    {"2", "a configuration error: a bad file, variable or flag, a bad listen endpoint, key or "
          "allowlist, a password in pg.conninfo, or PostgreSQL refusing the credentials (the "
          "unit does not restart it: RestartPreventExitStatus=2)"},
    {NULL, NULL},
};

static const ww_cfg_item_t s_ref_env[] = {
    {"PGHOST, PGPORT, PGDATABASE, PGUSER, ...",
     "libpq's variables, used for whatever pg.conninfo leaves out"},
    {"PGPASSFILE", "where libpq reads the password (never in pg.conninfo)"},
    {NULL, NULL},
};

static const ww_cfg_item_t s_ref_files[] = {
    {"/etc/waferwatch/collector.yaml", "the configuration the systemd unit passes with --config"},
    {"/etc/default/waferwatch-collector",
     "WW_COLLECTOR_* and PG* variables for the systemd unit (optional)"},
    {"/etc/waferwatch/keys/collector.key",
     "the collector's CURVE key pair (security.server_key, mode 0600)"},
    {"/etc/waferwatch/allowlist",
     "the enrolled agents (security.allowlist; re-read on SIGHUP; lines from waferwatch enroll)"},
    {"/etc/waferwatch/phases.yaml", "phases and SLOs to evaluate (slo.file; re-read on SIGHUP)"},
    {"/usr/share/waferwatch/sql", "roles.sql and copies of the embedded migrations"},
    {NULL, NULL},
};

static const ww_cfg_page_t s_ref_page = {
    .description =
        "waferwatch-collector receives the agents' batches over CURVE-encrypted ZeroMQ, "
        "admits each agent by its public key against an allowlist, and writes the batches "
        "into PostgreSQL (binary COPY, one transaction per group of messages), acknowledging "
        "each only after its COMMIT: a batch is never lost and never written twice. It applies "
        "its embedded schema migrations at start (pg.migrate), or only those "
        "(pg.migrate_only), and with slo.file evaluates the latency, capacity, power and "
        "thermal SLOs of a phased buildout, pushing alerts to Alertmanager.\n\n"
        "SIGTERM or SIGINT stops it after committing what was received (collector.drain_timeout); "
        "SIGHUP re-reads the allowlist and the phases file. With metrics.listen set it serves "
        "Prometheus /metrics and /healthz.",
    .environment = s_ref_env,
    .exit_status = s_ref_exit,
    .files = s_ref_files,
    .see_also = "waferwatch-agent(1), waferwatch(1), "
                "/usr/share/doc/waferwatch-collector/docs/reference/collector.md",
};

/* Prints the reference in `format` (WW_CFG_REF_*): the settings and, in Markdown, the
 * metrics of the registry ww_cmetrics_new builds, never served. Returns the exit status:
 * 0, or 1 when out of memory or stdout failed. */
static int s_reference(int format)
{
    if (format == WW_CFG_REF_MAN) {
        ww_cfg_man(&ww_collector_schema, &s_ref_page, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    }
    ww_cmetrics_t *m = ww_cmetrics_new();
    if (m) {
        ww_cfg_markdown(&ww_collector_schema, &s_ref_page, stdout);
        fputs("## Metrics\n\nServed on `/metrics` when `metrics.listen` is set (Prometheus text "
              "format 0.0.4).\n\n",
              stdout);
        ww_metrics_markdown(ww_cmetrics_registry(m), stdout);
    }
    int ok = m && fflush(stdout) == 0 && !ferror(stdout);
    ww_cmetrics_destroy(&m);
    return ok ? 0 : 1;
}

/* collector.role fleet: no agents. Migrates the fleet database (pg.migrate), then keeps its
 * daily partitions and retention once an hour (ww_store_set_fleet: no hour rolled up, the
 * node tiers' retention too) until SIGTERM, while the evaluator (started by the caller)
 * evaluates from what the sites publish. 0, or -EACCES when PostgreSQL refuses the
 * credentials. */
static int s_fleet_run(const ww_collector_conf_t *conf, ww_cmetrics_t *metrics)
{
    ww_store_t *store = ww_store_new(conf->pg_conninfo);
    if (!store) {
        return -ENOMEM;
    }
    const int64_t tier_days[3] = {conf->retention_node_minute_days, conf->retention_node_hour_days,
                                  conf->retention_latency_node_days};
    ww_store_set_fleet(store, tier_days);
    ww_store_set_retention(store, (int)conf->retention_raw_days, (int)conf->retention_rollup_days);
    WW_INFO("fleet database: evaluating what the sites publish; no agents are received");
    int rc = 0;
    int64_t next = 0, next_maint = 0;
    while (!s_stop) {
        int64_t now = ww_time_mono_ns();
        if (now >= next) {
            /* Every 30 s, so that pg_up and /healthz follow the database; the partitions
             * and the retention once an hour. A failure is logged once by the store. */
            rc = ww_store_ensure(store, conf->pg_migrate);
            if (rc == 0 && ww_store_ping(store) < 0) {
                rc = ww_store_ensure(store, conf->pg_migrate);
            }
            ww_cmetrics_pg_up(metrics, rc == 0); /* /healthz and pg_up, as a site's */
            if (rc == -EACCES) {
                break;
            }
            next = now + (rc == 0 ? 30 : 5) * WW_NS_PER_S;
            if (rc == 0 && now >= next_maint && ww_store_maintain(store) == 0) {
                next_maint = now + 3600 * WW_NS_PER_S;
            }
            rc = 0;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ww_store_destroy(&store);
    return rc;
}

int main(int argc, char **argv)
{
    ww_collector_conf_t conf;
    memset(&conf, 0, sizeof conf);
    ww_slo_conf_t slo;
    memset(&slo, 0, sizeof slo);
    bool have_slo = false;
    ww_slo_eval_t *eval = NULL;
    ww_tiers_t *tiers = NULL;
    ww_cmetrics_t *metrics = NULL;
    ww_cfg_err_t err = {{0}};
    int exit_code = 1;

    int ref = ww_cfg_reference_arg(argc, argv, &err);
    if (ref != 0) {
        if (ref < 0) {
            ww_cfg_err_print(&err, "waferwatch-collector", stderr);
        }
        return ref < 0 ? 2 : s_reference(ref);
    }
    int action = ww_cfg_parse_args(&ww_collector_schema, &conf, argc, argv, &err);
    if (action < 0) {
        ww_cfg_err_print(&err, "waferwatch-collector", stderr);
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_HELP || action == WW_CFG_VERSION || action == WW_CFG_PRINT) {
        exit_code = 0;
        goto cleanup;
    }
    if (conf.pg_conninfo && *conf.pg_conninfo) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(conf.pg_conninfo, &perr);
        bool has_password = false;
        for (PQconninfoOption *o = opts; o && o->keyword; o++) {
            if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
                has_password = true;
            }
        }
        PQconninfoFree(opts);
        if (!opts) {
            size_t n = perr ? strcspn(perr, "\n") : 0;
            exit_code =
                s_conf_fail(argc, argv, "pg.conninfo", "%.*s", (int)n, perr ? perr : "invalid");
            PQfreemem(perr);
            goto cleanup;
        }
        if (has_password) {
            exit_code = s_conf_fail(argc, argv, "pg.conninfo",
                                    "passwords belong in PGPASSFILE (or client certificates), "
                                    "not in the configuration");
            goto cleanup;
        }
    }
    bool fleet = conf.role == WW_ROLE_FLEET;
    if (fleet && (!conf.slo_file || !*conf.slo_file)) {
        exit_code = s_conf_fail(argc, argv, "slo.file",
                                "required with collector.role fleet: a fleet database's "
                                "collector receives no agents, it only evaluates");
        goto cleanup;
    }
    if (fleet) {
        /* No endpoint, keys or allowlist: nothing listens. */
    } else if (!conf.listen || !*conf.listen) {
        exit_code = s_conf_fail(argc, argv, "collector.listen",
                                "required, an endpoint such as tcp://*:7878");
        goto cleanup;
    }
    const char *listen_wrong = fleet ? NULL : s_listen_wrong(conf.listen);
    if (listen_wrong) {
        exit_code =
            s_conf_fail(argc, argv, "collector.listen", "\"%s\": %s", conf.listen, listen_wrong);
        goto cleanup;
    }
    if (conf.metrics_listen && *conf.metrics_listen &&
        ww_metrics_check_listen(conf.metrics_listen, err.msg, sizeof err.msg) < 0) {
        exit_code = s_conf_fail(argc, argv, "metrics.listen", "%s", err.msg);
        goto cleanup;
    }
    /* Late data up to 7 days old rebuilds its buckets from the raw rows (raw_days) and its
     * node hours from the node minutes (node_minute_days): both must still be there. */
    const struct {
        const char *name;
        int64_t days;
    } keep[] = {{"retention.raw_days", conf.retention_raw_days},
                {"retention.node_minute_days", conf.retention_node_minute_days}};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        if (keep[i].days > 0 && keep[i].days < 8) {
            exit_code = s_conf_fail(argc, argv, keep[i].name,
                                    "%lld is too short: samples up to 7 days old are accepted "
                                    "(ingest.max_past), so keep at least 8 days, or 0 to keep "
                                    "everything",
                                    (long long)keep[i].days);
            goto cleanup;
        }
    }
    ww_log_level = conf.log_level; /* checked by the engine: one of ww_log_level_names */
    if (conf.slo_file && *conf.slo_file) {
        if (ww_slo_conf_load(conf.slo_file, &slo, &err) < 0) {
            exit_code = s_conf_fail(argc, argv, "slo.file", "%s", err.msg);
            goto cleanup;
        }
        have_slo = true;
    }
    if (conf.migrate_only) {
        ww_store_t *store = ww_store_new(conf.pg_conninfo);
        int rc = store ? ww_store_ensure(store, 1) : -ENOMEM;
        ww_store_destroy(&store);
        exit_code = rc == -EACCES ? 2 : rc < 0 ? 1 : 0; /* credentials: configuration */
        goto cleanup;
    }
    if (!fleet && !conf.insecure &&
        (!conf.server_key_file || !*conf.server_key_file || !conf.allowlist || !*conf.allowlist)) {
        fprintf(stderr, "waferwatch-collector: CURVE is on by default: set security.server_key "
                        "(--server-key, a file from `waferwatch keygen`) and security.allowlist "
                        "(--allowlist), or, for tests only, security.insecure (--insecure)\n");
        exit_code = 2;
        goto cleanup;
    }
    int n_keys = 0;
    if (!fleet && !conf.insecure && (n_keys = s_check_keys(&conf, argc, argv)) < 0) {
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_CHECK) {
        if (!fleet && !conf.insecure) {
            printf("server key %s ok; allowlist %s: %d enrolled agent key(s)%s\n",
                   conf.server_key_file, conf.allowlist, n_keys,
                   n_keys == 0 ? " (no agent can connect yet: see waferwatch enroll)" : "");
        }
        /* Also prove the database is reachable: the most common deployment mistake. */
        ww_store_t *store = ww_store_new(conf.pg_conninfo);
        int v = store ? ww_store_check(store) : -ENOMEM;
        ww_store_destroy(&store);
        if (v == -EACCES) {
            fprintf(stderr, "waferwatch-collector: pg.conninfo: PostgreSQL refused the "
                            "credentials (see the log above)\n");
            exit_code = 2;
        } else if (v < 0) {
            fprintf(stderr, "waferwatch-collector: configuration ok, but PostgreSQL is not "
                            "reachable (see the log above)\n");
            exit_code = 1;
        } else {
            printf("configuration ok; PostgreSQL reachable, schema version %d (this collector "
                   "brings %d)\n",
                   v, ww_migrations[ww_n_migrations - 1].version);
            exit_code = 0;
        }
        goto cleanup;
    }

    ww_signal_on_stop(&s_stop);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);

    WW_INFO("waferwatch-collector %s starting", WW_VERSION);
    if (conf.metrics_listen && *conf.metrics_listen) {
        char why[300];
        if (!(metrics = ww_cmetrics_new()) ||
            ww_cmetrics_serve(metrics, conf.metrics_listen, why, sizeof why) < 0) {
            /* Asked for metrics: running without them would hide the collector. */
            WW_ERROR("metrics.listen: %s; not starting", metrics ? why : "out of memory");
            exit_code = 1;
            goto cleanup;
        }
    }
    if (have_slo &&
        !(eval = ww_slo_eval_start(&slo, conf.slo_file, conf.pg_conninfo,
                                   fleet ? conf.fleet_stale_ns : 0, &s_slo_reload, metrics))) {
        exit_code = 1;
        goto cleanup;
    }
    /* A fleet database's tiers arrive from the sites: built here from its (absent) raw rows
     * they would be emptied, and the sites' rows would collide with them. */
    if (conf.tiers_enabled && !fleet) {
        const ww_tiers_conf_t tc = {.interval_ns = conf.tiers_interval_ns,
                                    .grace_ns = conf.tiers_grace_ns,
                                    .max_minutes = conf.tiers_max_minutes,
                                    .max_late = conf.tiers_max_late,
                                    .node_minute_days = conf.retention_node_minute_days,
                                    .node_hour_days = conf.retention_node_hour_days,
                                    .latency_node_days = conf.retention_latency_node_days,
                                    .compact_age_ns = conf.compaction_age_ns,
                                    .compact_max_nodes = conf.compaction_max_nodes,
                                    .compact_days = conf.retention_compact_days,
                                    .window_days = conf.retention_window_days};
        if (!(tiers = ww_tiers_start(&tc, conf.pg_conninfo, metrics))) {
            exit_code = 1;
            goto cleanup;
        }
    }
    int run =
        fleet ? s_fleet_run(&conf, metrics) : ww_ingest_run(&conf, metrics, &s_stop, &s_reload);
    exit_code = run == 0 ? 0 : run == -EACCES ? 2 : 1; /* credentials: configuration */
    ww_slo_eval_stop(&eval);
    ww_tiers_stop(&tiers);

cleanup:
    ww_slo_eval_stop(&eval);
    ww_tiers_stop(&tiers);
    ww_cmetrics_destroy(&metrics);
    if (have_slo) {
        ww_slo_conf_free(&slo);
    }
    ww_cfg_free(&ww_collector_schema, &conf);
    return exit_code;
}
