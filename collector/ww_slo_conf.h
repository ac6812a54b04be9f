/* slo_config: the phases and SLO file (deploy/phases.example.yaml).
 *
 * A phase is one capacity tranche of the site (contracted MW, go-live date, power and
 * thermal limits) with its service level objectives. The evaluator reads this file; the
 * schema is a ww_config table, so `waferwatch-slo`-style --help/--print-config and the
 * "FILE:LINE:COL: key: why" errors come from ww_config. ww_slo_conf_load adds the checks
 * one row cannot express (unique ids, metric names, calendar dates, open ranges).
 */
#ifndef WW_SLO_CONF_H
#define WW_SLO_CONF_H

#include "ww_config.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { WW_SLI_TTFT, WW_SLI_TPOT, WW_SLI_E2E, WW_SLI_QUEUE, WW_SLI_AVAILABILITY } ww_sli_t;

typedef struct {
    char *name;           /* unique within its phase, e.g. "ttft-8b" */
    char *model;          /* model name, or "*" for all models */
    char *metric;         /* ttft | tpot | e2e | queue | availability */
    ww_sli_t sli;         /* derived from metric by ww_slo_conf_load */
    double threshold_s;   /* latency SLOs: a good request is at or under this (> 0); ignored for
                             availability */
    double objective;     /* 0 < objective < 1, e.g. 0.99 */
    int64_t period_ns;    /* error-budget period, default 30d */
    int64_t min_requests; /* default 100: a burn-rate rule fires only when its long window
                             holds at least this many requests (>= 0), so that a handful of
                             slow requests on an idle phase does not page */
} ww_slo_t;

typedef struct {
    char *id; /* matches node.phase of the agents, e.g. "phase-2026a" */
    char *name;
    char *go_live;      /* "YYYY-MM-DD" (UTC) */
    int64_t go_live_ns; /* derived: midnight UTC of go_live */
    double contracted_mw;
    double capacity_breach_share; /* default 0.95 */
    double power_ceiling_mw;      /* default 0 = contracted_mw (set by load) */
    double hotspot_max_c;         /* default 95 */
    double outlet_max_c;          /* default 45 */
    ww_cfg_table_t slos;          /* of ww_slo_t */
} ww_phase_t;

typedef struct {
    int64_t interval_ns;       /* evaluation.interval, default 30s, range 0.1 s..1 h */
    double window_scale;       /* evaluation.window_scale, default 1: every alerting window
                                  (5m..3d) and the period is multiplied by it (tests: 0.001) */
    int64_t healthy_window_ns; /* evaluation.healthy_window, default 30s: a node reporting
                                  within it counts as reporting */
    char *alertmanager_url;    /* alertmanager.url, "" = no push, e.g. http://127.0.0.1:9093 */
    int64_t alertmanager_timeout_ns; /* alertmanager.timeout, default 5s */
    char *notify_channel;            /* notify.channel, default "waferwatch_alerts" */
    ww_cfg_table_t phases;           /* of ww_phase_t, 1..64 */
} ww_slo_conf_t;

extern const ww_cfg_schema_t ww_slo_schema;

/* The longest window of the evaluator's burn-rate rules (3d, ww_slo_eval.c's s_windows): an
 * SLO's period must be at least this long. */
#define WW_SLO_LONGEST_WINDOW_S INT64_C(259200)

/* Loads defaults + the file at path into *out (which need not be zeroed; it is
 * overwritten), then validates: unique phase ids, unique SLO names per phase, metric
 * names, go_live a real calendar date, objective in (0,1), threshold > 0 for latency
 * metrics, model non-empty, period at least WW_SLO_LONGEST_WINDOW_S, power_ceiling_mw not
 * below contracted_mw, alertmanager.url empty or an http(s) URL. Derives sli, go_live_ns
 * and power_ceiling_mw. Every error of the file is reported, the parser's and these
 * checks' together, one per line in err (up to WW_CFG_MAX_ERRORS), each naming the file,
 * line and column of the value ("phases.yaml:14:17: phases[1].slos[0].metric: 'ttf' is
 * not one of ttft, tpot, e2e, queue, availability"); a required key left out names the
 * line of its item. Returns 0, or -EINVAL / -ENOENT / -EACCES / -ENOMEM with err set; on
 * error *out holds nothing to free. */
int ww_slo_conf_load(const char *path, ww_slo_conf_t *out, ww_cfg_err_t *err);

/* The same from a buffer; `name` stands in for the file name in errors. */
int ww_slo_conf_load_buffer(const char *text, size_t len, const char *name, ww_slo_conf_t *out,
                            ww_cfg_err_t *err);

/* Frees everything the config owns and zeroes it; safe on a zeroed config and twice. */
void ww_slo_conf_free(ww_slo_conf_t *c);

/* The phase with this id, or NULL if unknown. */
const ww_phase_t *ww_slo_phase(const ww_slo_conf_t *c, const char *id);

/* "ttft", "tpot", "e2e", "queue" or "availability". */
const char *ww_sli_name(ww_sli_t sli);

#endif
