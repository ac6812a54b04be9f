/* alertmanager: a small client of the Prometheus Alertmanager API v2 (POST /api/v2/alerts).
 *
 * The SLO evaluator pushes firing alerts on every evaluation (Alertmanager expects a
 * firing alert to be re-sent more often than its resolve_timeout) and a resolved alert
 * (endsAt set) once when it clears. Routing, grouping, silences and receivers are
 * Alertmanager's job, configured there.
 */
#ifndef WW_AM_H
#define WW_AM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *alertname, *phase, *model, *slo, *severity; /* labels; NULL ones are left out */
    const char *summary, *description;                      /* annotations; NULL: left out */
    const char *extra_annotations_json; /* optional: a JSON object text whose members are
                                           merged into annotations, e.g.
                                           {"burn_1h":"15.2","budget_left":"0.42"}, or NULL */
    int64_t starts_ns;                  /* startsAt, ns since the epoch (UTC) */
    int64_t ends_ns;                    /* 0 = firing (endsAt omitted); else endsAt (resolved) */
} ww_am_alert_t;

/* Builds the request body: a JSON array of n alerts with labels, annotations, startsAt
 * and (when ends_ns != 0) endsAt as RFC 3339 UTC times with milliseconds. Every string is
 * JSON-escaped (quotes, backslashes, control characters). extra_annotations_json must be a
 * JSON object; its members are copied in as they are (it is trusted text built by the
 * caller); anything else there is ignored. Returns a malloc'd NUL-terminated string the
 * caller frees, or NULL when out of memory. */
char *ww_am_json(const ww_am_alert_t *alerts, size_t n);

/* POSTs the alerts to BASE/api/v2/alerts (base_url without the trailing path, e.g.
 * http://127.0.0.1:9093; a trailing '/' is fine) with the given overall timeout. Returns 0
 * on a 2xx answer, else a negative errno with why set: -EIO "HTTP 400: <start of the
 * body>", -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH / -EINVAL (bad URL) / -EIO with curl's
 * error, -ENOMEM. n == 0 sends nothing and returns 0. Blocking; thread-safe once
 * curl_global_init has run (the first call runs it; call it first from main in a threaded
 * program). */
int ww_am_post(const char *base_url, const ww_am_alert_t *alerts, size_t n, int64_t timeout_ns,
               char *why, size_t why_len);

#endif
