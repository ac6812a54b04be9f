/* slo_eval: the collector's SLO, capacity, power and thermal evaluation of the phased
 * buildout, in its own thread with its own PostgreSQL connection, every
 * evaluation.interval.
 *
 * Per phase and SLO it computes the error-budget burn rate over the SRE workbook's
 * windows (5m, 30m, 1h, 2h, 6h, 1d, 3d, scaled by evaluation.window_scale) from the
 * stored histograms (SQL ww_sli), and fires or resolves, per SLO:
 *   page   when burn > 14.4 over 1h and 5m, or > 6 over 6h and 30m;
 *   ticket when burn > 3 over 1d and 2h, or > 1 over 3d and 6h.
 * The short window of each pair makes an alert resolve soon after the burn stops. Per
 * phase past go-live it compares healthy reporting nodes x rated kW with the contracted
 * MW (CapacityBreach, page), the power draw with the ceiling (PowerCeiling, ticket) and
 * the hottest wafer and coolant outlet with their limits (ThermalLimit, ticket).
 *
 * Everything is written in one transaction per evaluation (slo_evaluations, slo_status,
 * capacity_evaluations and, at a site, site_capacity: the capacity per nodes.site label
 * that a fleet database adds up; alerts, alert_transitions, and the heartbeat slo_evaluator) with a
 * NOTIFY on notify.channel for each transition; alert state lives in the alerts table, so
 * a restarted collector carries on where it left. Firing alerts are (re)sent to
 * Alertmanager's API v2 after each commit, resolved ones with endsAt, again after each
 * commit for 5 minutes (the latest episode of each alert: see s_repush).
 *
 * What is no longer configured is retired, on the first evaluation after start, after
 * each reload and after each reconnection: every firing alert whose (phase, slo) the
 * configuration no longer has (an SLO's name, or capacity / power / thermal of a phase)
 * is resolved like any other (transition, NOTIFY with "reason":"retired", Alertmanager
 * endsAt), and the phases and slo_status rows of removed phases and SLOs get retired_at
 * (kept as history; `waferwatch slo` and the views skip them).
 *
 * Several collectors may run it against one database: only the holder of the lease in
 * slo_leader evaluates (ww_slo_lease.h: takeover, renewal, timing and fencing). Every
 * interval / 4 the thread renews its lease or, following, tries to take it over; a new
 * leader evaluates at once (reconciling with its own phases file, so every collector must
 * carry the same).
 * Each evaluation's transaction renews the lease first and writes its term with every
 * alert write; deposed, it rolls back whole (no NOTIFY), logs it once and follows; it
 * renews again after COMMIT and pushes to Alertmanager only while still the leader. A
 * leader that cannot reach PostgreSQL for longer than its lease follows too.
 */
#ifndef WW_SLO_EVAL_H
#define WW_SLO_EVAL_H

#include "ww_cmetrics.h"
#include "ww_slo_conf.h"

#include <signal.h>
#include <stdint.h>

typedef struct ww_slo_eval ww_slo_eval_t;

/* Starts the evaluation thread with conf, which the caller owns and which must outlive
 * the evaluator. path: the phases file conf was loaded from (copied), or NULL.
 * fleet_stale_ns: 0 at a site; > 0 in a fleet database (collector.role fleet), where the
 * capacity of a phase is the sum of the sites' newest site_capacity rows (a site with none
 * newer than fleet_stale_ns is listed in capacity_evaluations.stale_sites, its last figures
 * counted), SLIs read the rollups only (ww_sli p_tiers_only) and neither site_capacity nor
 * the hour rollups are written (they arrive from the sites). reload:
 * a flag a SIGHUP handler sets (may be NULL): the thread then clears it and re-reads path
 * with ww_slo_conf_load; a file with any error is refused whole with a logged error and
 * the configuration in force stays; a good one replaces it (the evaluator owns and frees
 * it; every setting takes effect, the interval too) and is reconciled at the next
 * evaluation. Each evaluation's result and duration, and the leadership after each poll
 * (ww_cmetrics_slo_leader), go to metrics (NULL: none), which must outlive the
 * evaluator. Returns NULL on failure (logged). */
ww_slo_eval_t *ww_slo_eval_start(const ww_slo_conf_t *conf, const char *path, const char *conninfo,
                                 int64_t fleet_stale_ns, volatile sig_atomic_t *reload,
                                 ww_cmetrics_t *metrics);

/* Stops the thread (finishing an evaluation in progress), hands the lease back when it
 * leads (ww_slo_lease_release: another collector leads at its next poll) and frees;
 * NULLs *self_p. Safe on NULL and twice. */
void ww_slo_eval_stop(ww_slo_eval_t **self_p);

#endif
