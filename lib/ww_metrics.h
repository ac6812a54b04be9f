/* ww_metrics: a small Prometheus registry and the HTTP server of /metrics and /healthz,
 * shared by the agent and the collector.
 *
 * A program registers its metric families once, at start, before it starts the server:
 * counters, gauges and histograms (fixed `le` upper bounds given at registration), each
 * optionally with one label that takes a fixed set of values (e.g. reason="malformed",
 * "invalid", "forbidden"): series i of a family is its i-th label value (0 when it has
 * no label). After that any thread may update a series and the HTTP thread reads it:
 * values are C11 atomics (doubles as their uint64 bit patterns), no locks anywhere.
 *
 * The expected main use of a counter is ww_metric_set: publish a monotonically
 * increasing total copied from an existing stats struct (ww_link_stats_t,
 * ww_store_stats_t) after each tick or loop iteration.
 *
 * Exposition is the Prometheus text format 0.0.4 (`# HELP`, `# TYPE`, series lines,
 * histograms as cumulative `_bucket{le="..."}` with `+Inf`, `_sum` and `_count`). Names
 * follow Prometheus conventions: `waferwatch_agent_*` / `waferwatch_collector_*`, base
 * units in the name (`_seconds`, `_bytes`), counters end in `_total`.
 *
 * The server (libmicrohttpd, one internal polling thread; the library is loaded with dlopen
 * by the first ww_metrics_server_new, not linked: see ww_mhd.h) binds host:port, [v6]:port
 * or *:port (port 0: an ephemeral one, ww_metrics_server_port tells which) and answers
 *   GET /metrics  200, Content-Type text/plain; version=0.0.4; charset=utf-8
 *   GET /healthz  200 "ok\n", or 503 with a one-line reason from the health callback
 *   other paths   404; methods other than GET and HEAD: 405.
 */
#ifndef WW_METRICS_H
#define WW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

typedef enum {
    WW_METRIC_COUNTER = 0,
    WW_METRIC_GAUGE,
    WW_METRIC_HISTOGRAM,
} ww_metric_type_t;

typedef struct ww_metrics ww_metrics_t; /* a registry */
typedef struct ww_metric ww_metric_t;   /* one family; owned by its registry */
typedef struct ww_metrics_server ww_metrics_server_t;

/* Most label values of one family, and most `le` bounds of one histogram. */
#define WW_METRICS_MAX_SERIES 64
#define WW_METRICS_MAX_BUCKETS 64

/* Creates an empty registry. Returns NULL when out of memory. */
ww_metrics_t *ww_metrics_new(void);

/* Frees the registry and every family in it; NULLs *self_p; safe on NULL and twice. Stop
 * the server that serves it first. */
void ww_metrics_destroy(ww_metrics_t **self_p);

/* Registers a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry; help: one
 * line (escaped on output). label: NULL for none, else a label name ([a-zA-Z_][a-zA-Z0-9_]*,
 * not "le", not starting with "__") with `values` its fixed values (NULL-terminated, 1 to
 * WW_METRICS_MAX_SERIES, any UTF-8, escaped on output). Histograms: `buckets` are
 * n_buckets (1 to WW_METRICS_MAX_BUCKETS) finite upper bounds in strictly increasing order,
 * +Inf implied; NULL/0 for the other types. The strings are copied. Register everything
 * before starting a server on the registry (registration is not thread-safe).
 * Returns the family (owned by the registry), or NULL on a bad argument or out of memory. */
ww_metric_t *ww_metrics_add(ww_metrics_t *self, ww_metric_type_t type, const char *name,
                            const char *help, const char *label, const char *const *values,
                            const double *buckets, size_t n_buckets);

/* Shorthands of ww_metrics_add for an unlabelled family. */
ww_metric_t *ww_metrics_counter(ww_metrics_t *self, const char *name, const char *help);
ww_metric_t *ww_metrics_gauge(ww_metrics_t *self, const char *name, const char *help);
ww_metric_t *ww_metrics_histogram(ww_metrics_t *self, const char *name, const char *help,
                                  const double *buckets, size_t n_buckets);

/* Registers the gauge `<prefix>_build_info{version="...",component="..."} 1`. Returns 0,
 * -EINVAL or -ENOMEM. */
int ww_metrics_build_info(ww_metrics_t *self, const char *prefix, const char *version,
                          const char *component);

/* Updates series `series` (0 for an unlabelled family; out of range: ignored). All are
 * no-ops on a NULL family, so a caller may keep NULL families when metrics are off.
 * set: counters (publish a total) and gauges. add: counters (v >= 0) and gauges.
 * observe: histograms. */
void ww_metric_set(ww_metric_t *m, size_t series, double v);
void ww_metric_add(ww_metric_t *m, size_t series, double v);
void ww_metric_observe(ww_metric_t *m, size_t series, double v);

/* The current value of a counter or gauge series, or a histogram series' count (0 for a
 * NULL family or a bad series). */
double ww_metric_value(const ww_metric_t *m, size_t series);

/* Renders every family in registration order in the text format 0.0.4 into a malloc'd,
 * NUL-terminated buffer (*out, the caller frees; *len its length without the NUL).
 * Returns 0 or -ENOMEM. Safe while other threads update values. */
int ww_metrics_render(const ww_metrics_t *self, char **out, size_t *len);

/* Lists every family in registration order as one Markdown table (metric, type, labels,
 * help): a labelled family's label and its fixed values, build_info's two labels without
 * their values (the version changes), a histogram's `le` bounds. Reads no values: it
 * documents a registry a program built without serving it (the --reference pages). */
void ww_metrics_markdown(const ww_metrics_t *self, FILE *out);

/* Health: returns 0 when healthy; otherwise writes a one-line reason (NUL-terminated,
 * at most cap bytes) and returns non-zero. Called from the HTTP thread: read only what
 * is safe to read there (atomics). */
typedef int (*ww_metrics_health_fn)(void *arg, char *reason, size_t cap);

/* Parses a listen address: "HOST:PORT" (IPv4 address or host name), "[IPV6]:PORT", or
 * "*:PORT" / ":PORT" (every IPv4 address); PORT 0..65535, 0 = ephemeral. On success fills
 * *addr and *addrlen and returns 0; else returns -EINVAL with a reason in why. */
int ww_metrics_parse_listen(const char *address, struct sockaddr_storage *addr, socklen_t *addrlen,
                            char *why, size_t why_cap);

/* What a binary checks of metrics.listen before it starts (and with --check-config): the
 * address parses, and libmicrohttpd loads (ww_mhd_get), so that a missing library is a
 * configuration error found up front rather than a failed start. 0, or -EINVAL with the
 * reason in why. */
int ww_metrics_check_listen(const char *address, char *why, size_t why_cap);

/* Loads libmicrohttpd if no server has yet (ww_mhd_get), binds `address` (as
 * ww_metrics_parse_listen) and serves reg on its own thread. health may be NULL (always
 * healthy). reg and arg must outlive the server. Returns NULL with a reason in why
 * ("127.0.0.1:9477: cannot bind: Address already in use", "cannot load libmicrohttpd.so.12:
 * ... (install libmicrohttpd12)") when the address is bad, the library cannot be loaded, the
 * address cannot be bound, or the server cannot start. Logs "metrics: listening addr=A
 * port=P" on success. */
ww_metrics_server_t *ww_metrics_server_new(ww_metrics_t *reg, const char *address,
                                           ww_metrics_health_fn health, void *arg, char *why,
                                           size_t why_cap);

/* The bound port (the actual one when 0 was asked for). */
unsigned ww_metrics_server_port(const ww_metrics_server_t *self);

/* Stops the thread, closes the socket, frees; NULLs *self_p; safe on NULL and twice. */
void ww_metrics_server_destroy(ww_metrics_server_t **self_p);

#endif
