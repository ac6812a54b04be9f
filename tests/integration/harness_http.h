/* harness_http: HTTP requests for integration tests (libcurl), for the tests that talk to
 * the binaries' /metrics and /healthz or to a real Alertmanager. Each call is one request
 * with a 5 s timeout; the caller may call curl_global_init first (libcurl otherwise does
 * it on the first request). */
#ifndef WW_HARNESS_HTTP_H
#define WW_HARNESS_HTTP_H

#include <stddef.h>
#include <sys/types.h>

/* One request to url. method: "GET", "POST", ... sent as given, or NULL for a plain GET;
 * post_fields: a request body sent as form fields, or NULL for none. Sets *status to the
 * HTTP status (0 when there was no answer) and, when ctype is given, copies the response's
 * Content-Type into it (left as it was when there was no answer). Returns the body,
 * malloc'd (the caller frees it), never NULL: "" when there was none. */
char *h_http_request(const char *method, const char *url, const char *post_fields, long *status,
                     char *ctype, size_t ctype_cap);

/* GET http://127.0.0.1:port/metrics and the value of one series (h_metrics_value); fails
 * the test unless the answer is 200. */
double h_metrics_get(int port, const char *series);

/* GET url: h_http_request(NULL, url, NULL, status, NULL, 0). */
char *h_http_get(const char *url, long *status);

/* POSTs body[0..len) to url with the given header lines ("Name: value", NULL-terminated;
 * may be NULL). Sets *status (0: no answer), *out_len to the response body's length and,
 * when retry_after is given, copies the Retry-After header into it ("" when none). Returns
 * the response body, malloc'd and NUL-terminated past out_len, never NULL. */
char *h_http_post(const char *url, const void *body, size_t len, const char *const *headers,
                  long *status, size_t *out_len, char *retry_after, size_t retry_after_cap);

/* A TCP port on 127.0.0.1 free a moment ago (bound to port 0 and released). */
int h_free_port(void);

/* Starts a real Alertmanager (/usr/bin/prometheus-alertmanager, clustering off) on
 * 127.0.0.1:port with a null receiver (group_wait 1s), its files in dir, its output in
 * dir/alertmanager.log; waits until /-/ready answers 200 (fails the test after 15 s,
 * showing the log). Fills url ("http://127.0.0.1:PORT"); returns its pid. */
pid_t h_alertmanager_start(const char *dir, int port, char *url, size_t cap);

#endif
