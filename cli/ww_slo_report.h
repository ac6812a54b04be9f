/* slo_report: `waferwatch slo`, the operator's view of phases, capacity, SLOs and alerts
 * as the SLO evaluator last wrote them (tables of migration 0006). */
#ifndef WW_SLO_REPORT_H
#define WW_SLO_REPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes of ww_slo_report (and of `waferwatch slo`). */
enum { WW_SLO_OK = 0, WW_SLO_PAGING = 1, WW_SLO_ERROR = 2, WW_SLO_STALE = 3 };

/* Writes the report to out: the time and age of the last evaluation (table slo_evaluator,
 * migration 0012), the evaluator that leads (slo_leader, migration 0023: holder, term, since
 * and when its lease expires), then per configured phase (ordered by go-live; retired phases and
 * SLOs are history and left out) its go-live and contracted MW, the latest capacity evaluation,
 * every SLO's status with burn rates per window, and the firing alerts; last, apart, firing alerts
 * of phases or SLOs no longer configured (until the evaluator retires them), which do not count.
 * json: one JSON document instead of aligned text (with evaluated_at, evaluation_age_s, stale,
 * leader). Errors (a failed query, the tables missing) go to err, and so do the warnings below.
 * Returns, first that applies: WW_SLO_ERROR; WW_SLO_STALE when no evaluation was ever committed
 * (nothing else is printed) or the last one is older than 3 evaluation intervals and at least 30 s
 * (the evaluator is down: a warning, then the stale report); WW_SLO_PAGING when a firing alert of a
 * configured phase and SLO has severity 'page'; WW_SLO_OK. */
int ww_slo_report(PGconn *conn, FILE *out, FILE *err, bool json);

/* `waferwatch slo [--pg CONNINFO] [--json]`: parses the arguments after "slo", connects
 * (conninfo or the PG* environment), reports. Returns the exit code. */
int ww_slo_report_main(int argc, char **argv);

#endif
