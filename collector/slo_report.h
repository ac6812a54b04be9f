/* slo_report: `waferwatch slo`, the operator's view of phases, capacity, SLOs and alerts
 * as the SLO evaluator last wrote them (tables of migration 0006). */
#ifndef WW_SLO_REPORT_H
#define WW_SLO_REPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes of ww_slo_report (and of `waferwatch slo`). */
enum { WW_SLO_OK = 0, WW_SLO_PAGING = 1, WW_SLO_ERROR = 2 };

/* Writes the report to out: per phase (ordered by go-live) its go-live and contracted MW,
 * the latest capacity evaluation, every SLO's status with burn rates per window, and the
 * firing alerts. json: one JSON document instead of aligned text. Errors (a failed query,
 * the tables missing) go to err. Returns WW_SLO_OK, WW_SLO_PAGING when any firing alert
 * has severity 'page', or WW_SLO_ERROR. */
int ww_slo_report(PGconn *conn, FILE *out, FILE *err, bool json);

/* `waferwatch slo [--pg CONNINFO] [--json]`: parses the arguments after "slo", connects
 * (conninfo or the PG* environment), reports. Returns the exit code. */
int ww_slo_report_main(int argc, char **argv);

#endif
