/* waferwatch-agent: samples the node(s) it runs beside on a fixed wall-clock schedule and
 * streams Batches to the collector. See ww_agent_conf.c for every setting. */
#define WW_LOG_MODULE "agent"
#include "ww_agent_conf.h"
#include "ww_latency.h"
#include "ww_link.h"
#include "ww_log.h"
#include "ww_lwbuf.h"
#include "ww_metrics.h"
#include "ww_otlp_http.h"
#include "ww_quant.h"
#include "ww_runlog.h"
#include "ww_signal.h"
#include "ww_sources.h"
#include "ww_time.h"
#include "ww_version.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ticks missed (a suspended VM, a stalled disk) are caught up to this many; older ones
 * are skipped, counted and logged, since their readings would all be taken now anyway. */
#define WW_MAX_CATCHUP_TICKS 60

static volatile sig_atomic_t s_stop;

typedef struct {
    const ww_agent_conf_t *conf;
    const ww_source_t *src;
    void **state; /* one per node */
    char **names;
    unsigned n;
    /* one Batch, reused every tick */
    ww_node_sample_t *samples;
    ww_node_sample_t **sample_ptrs;
    ww_request_t *reqbuf;
    /* per-request latency windows, one set per node */
    ww_latency_t *lat;
    ww_lwbuf_t lw;
    unsigned emit_node;      /* node whose windows s_emit is receiving */
    ww_complain_t *sample_c; /* per node: sample() failing */
    ww_complain_t ready_c;   /* the source's ready() failing */
    int64_t close_lag_ns;    /* windows close at the first tick this long after their end */
    /* agent.requests otlp: the first node's requests come from here; the source's own are
     * dropped, counted */
    ww_otlp_http_t *otlp;
    const char **otlp_models;
    uint64_t source_requests_dropped;
    uint64_t otlp_points_dropped; /* taken, then refused by the windows (ww_latency_merge) */
} s_nodes_t;

/* Request completions recorded into the latency windows, all nodes. */
static uint64_t s_requests(const s_nodes_t *nodes)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < nodes->n; i++) {
        n += nodes->lat[i].recorded;
    }
    return n;
}

/* Records that came after their window was closed (kept in the open one), all nodes. */
static uint64_t s_late(const s_nodes_t *nodes)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < nodes->n; i++) {
        n += nodes->lat[i].late;
    }
    return n;
}

/* Requests in windows not yet emitted (what a crash now would lose), all nodes; *emitted
 * receives the running total of those emitted into batches. */
static uint64_t s_open_requests(const s_nodes_t *nodes, uint64_t *emitted)
{
    uint64_t open = 0, done = 0;
    for (unsigned i = 0; i < nodes->n; i++) {
        open += ww_latency_open_requests(&nodes->lat[i]);
        done += nodes->lat[i].emitted;
    }
    *emitted = done;
    return open;
}

static void s_nodes_fini(s_nodes_t *nodes)
{
    for (unsigned i = 0; i < nodes->n; i++) {
        if (nodes->state) {
            nodes->src->close(&nodes->state[i]);
        }
        if (nodes->names) {
            free(nodes->names[i]);
        }
    }
    for (unsigned i = 0; nodes->lat && i < nodes->n; i++) {
        ww_latency_fini(&nodes->lat[i]);
    }
    free(nodes->lat);
    ww_lwbuf_fini(&nodes->lw);
    free(nodes->state);
    free(nodes->names);
    free(nodes->samples);
    free(nodes->sample_ptrs);
    free(nodes->reqbuf);
    free(nodes->sample_c);
    ww_otlp_http_destroy(&nodes->otlp);
    free(nodes->otlp_models);
    memset(nodes, 0, sizeof *nodes);
}

#define WW_REQBUF 256
#define WW_ASYNC_CLOSE_LAG_NS WW_NS_PER_S
/* malloc_trim: first once the first seconds of load have grown the arrays, then once a
 * minute. */
#define WW_TRIM_FIRST_NS (5 * WW_NS_PER_S)
#define WW_TRIM_EVERY_NS (60 * WW_NS_PER_S)

/* A node's closed latency window into the tick's batch (emit_node: the node whose windows
 * are being recorded or closed). */
static void s_emit(void *arg, unsigned model, int64_t start_ns, int64_t duration_ns,
                   const ww_lat_window_t *w)
{
    s_nodes_t *nodes = arg;
    unsigned i = nodes->emit_node;
    const char *name = nodes->src->model_name(nodes->state[i], model);
    if (ww_lwbuf_add(&nodes->lw, nodes->names[i], name ? name : "unknown", start_ns, duration_ns,
                     w) < 0) {
        WW_ERROR("node %s: out of memory: latency window of %s lost", nodes->names[i],
                 name ? name : "?");
    }
}

/* The source's descriptor is readable (the request log: a producer sent records): take
 * what arrived, straight into the latency windows, instead of at the next tick. */
static void s_on_source_ready(void *arg)
{
    s_nodes_t *nodes = arg;
    for (unsigned i = 0; i < nodes->n; i++) {
        nodes->emit_node = i; /* a record of the next window emits this node's open one */
        int rc = nodes->src->ready(nodes->state[i]);
        if (rc < 0) {
            WW_COMPLAIN(&nodes->ready_c, "node %s: reading source %s failed: %s", nodes->names[i],
                        nodes->src->name, strerror(-rc));
        } else {
            WW_RECOVERED(&nodes->ready_c, "node %s: source %s readable again", nodes->names[i],
                         nodes->src->name);
        }
    }
}

/* With agent.requests otlp: the source's own requests are not the node's. */
static void s_drop_request(void *arg, const ww_request_t *r)
{
    (void)r;
    ((s_nodes_t *)arg)->source_requests_dropped++;
}

/* The OTLP receiver queued requests: into the first node's latency windows, now. */
static void s_on_otlp_ready(void *arg)
{
    s_nodes_t *nodes = arg;
    ww_request_t r[WW_REQBUF];
    size_t got;
    nodes->emit_node = 0; /* a record of the next window emits the open one */
    do {
        got = ww_otlp_http_take(nodes->otlp, r, WW_REQBUF);
        for (size_t k = 0; k < got; k++) {
            ww_latency_record(&nodes->lat[0], &r[k]);
        }
    } while (got == WW_REQBUF);
    ww_otlp_agg_t a[64];
    do {
        got = ww_otlp_http_take_points(nodes->otlp, a, 64);
        for (size_t k = 0; k < got; k++) {
            ww_lat_agg_t g = {.model = a[k].model, .at_ns = a[k].time_ns};
            const ww_hist_t *h =
                a[k].kind == WW_OTLP_M_ERRORS || a[k].kind == WW_OTLP_M_TOKENS ? NULL : &a[k].hist;
            g.ttft = a[k].kind == WW_OTLP_M_TTFT ? h : NULL;
            g.tpot = a[k].kind == WW_OTLP_M_TPOT ? h : NULL;
            g.e2e = a[k].kind == WW_OTLP_M_E2E ? h : NULL;
            g.ok = a[k].kind == WW_OTLP_M_E2E ? a[k].count : 0;
            g.error = a[k].kind == WW_OTLP_M_ERRORS ? a[k].count : 0;
            g.prompt_tokens = a[k].prompt_tokens;
            g.output_tokens = a[k].output_tokens;
            int rc = ww_latency_merge(&nodes->lat[0], &g);
            if (rc < 0) {
                nodes->otlp_points_dropped++;
                WW_WARN("otlp: a metric point not merged into the latency windows: %s",
                        rc == -ERANGE ? "past what a window may hold" : strerror(-rc));
            }
            ww_hist_fini(&a[k].hist);
        }
    } while (got == 64);
}

/* Starts the OTLP receiver of agent.requests otlp (the models: sim.models' names, the
 * latency windows' slots). Returns 0 or a negative errno, logged. */
static int s_otlp_start(s_nodes_t *nodes, const ww_agent_conf_t *c, int64_t since_ns)
{
    nodes->otlp_models = calloc(c->sim.n_models ? c->sim.n_models : 1, sizeof(char *));
    if (!nodes->otlp_models) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->sim.n_models; i++) {
        nodes->otlp_models[i] = c->sim.models[i].name;
    }
    ww_otlp_http_conf_t oc = {
        .listen = c->otlp_listen,
        .max_body = (size_t)c->otlp_max_body,
        .max_queue = (size_t)c->otlp_max_queue,
        .models = nodes->otlp_models,
        .n_models = c->sim.n_models,
        .trace = {c->otlp_span_name, c->otlp_e2e, c->otlp_ttft, c->otlp_queue,
                  c->otlp_output_tokens, c->otlp_prompt_tokens, c->otlp_response_model,
                  c->otlp_request_model},
        .metrics = {c->otlp_metric_ttft, c->otlp_metric_tpot, c->otlp_metric_e2e,
                    c->otlp_metric_tokens, c->otlp_token_type, c->otlp_error_type,
                    c->otlp_response_model, c->otlp_request_model, (int)c->hist_scale,
                    WW_OTLP_METRICS_MAX_STREAMS},
        .since_ns = since_ns,
    };
    char why[400];
    if (!(nodes->otlp = ww_otlp_http_new(&oc, why, sizeof why))) {
        WW_ERROR("otlp.listen: %s; not starting", why);
        return -EINVAL;
    }
    return 0;
}

/* Opens the source of every node, the one agent.source names in the registry (check: only
 * what --check-config can check without taking a resource a running agent holds). */
static int s_nodes_init(s_nodes_t *nodes, const ww_agent_conf_t *c, int64_t start_ns, bool check)
{
    const ww_sources_entry_t *entry = ww_sources_get(c->source);
    if (entry == NULL) {
        return -EINVAL; /* ww_agent_conf_finish refused it */
    }
    const void *src_conf = ww_sources_conf(entry, c);
    unsigned n_models = entry->models(c);
    nodes->conf = c;
    nodes->src = entry->ops;
    nodes->n = (unsigned)c->sim_nodes;
    /* Another process's records arrive a little after they are made (the request log's
     * sender batches them for ~250 ms): a window whose records may still be on the way is
     * closed a second after its end, not at it, so they land in it instead of opening it
     * a second time (two rows for one window). Under load the first record of the next
     * window closes it anyway. */
    nodes->close_lag_ns = nodes->src->fd != NULL ? WW_ASYNC_CLOSE_LAG_NS : 0;
    if (c->requests == WW_AGENT_REQUESTS_OTLP) {
        nodes->close_lag_ns = c->otlp_max_delay_ns;
    }
    if (check && entry->check != NULL) {
        return entry->check(c);
    }
    nodes->sample_c = calloc(nodes->n, sizeof *nodes->sample_c);
    nodes->state = calloc(nodes->n, sizeof *nodes->state);
    nodes->names = calloc(nodes->n, sizeof *nodes->names);
    nodes->samples = calloc(nodes->n, sizeof *nodes->samples);
    nodes->sample_ptrs = calloc(nodes->n, sizeof *nodes->sample_ptrs);
    /* A source with a sink hands its records straight to the latency windows; others are
     * polled through this buffer. */
    if (nodes->src->set_sink == NULL) {
        nodes->reqbuf = calloc(WW_REQBUF, sizeof *nodes->reqbuf);
    }
    nodes->lat = calloc(nodes->n, sizeof *nodes->lat);
    ww_lwbuf_init(&nodes->lw);
    if (!nodes->state || !nodes->names || !nodes->samples || !nodes->sample_ptrs ||
        !nodes->sample_c || (nodes->src->set_sink == NULL && !nodes->reqbuf) || !nodes->lat) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nodes->n; i++) {
        char name[160];
        ww_agent_node_name(c, i, name, sizeof name);
        nodes->names[i] = strdup(name);
        if (!nodes->names[i]) {
            return -ENOMEM;
        }
        int rc = nodes->src->open(src_conf, i, start_ns, &nodes->state[i]);
        if (rc < 0) {
            WW_ERROR("cannot open source %s for node %s: %s", nodes->src->name, name,
                     strerror(-rc));
            return rc;
        }
        nodes->sample_ptrs[i] = &nodes->samples[i];
        if (ww_latency_init(&nodes->lat[i], n_models, c->latency_window_ns, (int)c->hist_scale,
                            s_emit, nodes) < 0) {
            return -ENOMEM;
        }
        if (nodes->src->set_sink != NULL && c->requests == WW_AGENT_REQUESTS_OTLP) {
            nodes->src->set_sink(nodes->state[i], s_drop_request, nodes);
        } else if (nodes->src->set_sink != NULL) {
            nodes->src->set_sink(nodes->state[i], ww_latency_sink, &nodes->lat[i]);
        }
        /* Stagger the windows by whole intervals, by a hash of the node's name: across a
         * fleet, each tick closes the windows of about 1/(window/interval) of the nodes
         * instead of every node's at once at each window boundary. */
        uint64_t slots = (uint64_t)(c->latency_window_ns / c->interval_ns),
                 h = 1469598103934665603u;
        for (const char *p = nodes->names[i]; *p; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211u;
        }
        ww_latency_set_phase(&nodes->lat[i], (int64_t)(h % slots) * c->interval_ns);
        /* This run samples from its first tick: a window begun earlier is only partly ours. */
        ww_latency_set_cover(&nodes->lat[i], start_ns);
    }
    return 0;
}

/* Closes the latency windows that ended by t - close_lag into the batch; with `all` (a
 * stop at the last tick t), every window, each with the part it covered up to t. */
static void s_close_windows(s_nodes_t *nodes, int64_t t, bool all, ww_batch_t *batch)
{
    for (unsigned i = 0; i < nodes->n; i++) {
        nodes->emit_node = i;
        ww_latency_close(&nodes->lat[i], all ? t : t - nodes->close_lag_ns, all);
    }
    ww_lwbuf_attach(&nodes->lw, batch);
}

/* Samples every node at tick t into the reused batch, records the request completions
 * into the latency windows and adds the windows that closed by t. */
/* Node i's request completions from a source without a sink, into its latency windows (or
 * dropped, counted, with agent.requests otlp). */
static void s_take_requests(s_nodes_t *nodes, unsigned i)
{
    while (nodes->reqbuf != NULL) {
        int got = nodes->src->poll_requests(nodes->state[i], nodes->reqbuf, WW_REQBUF);
        for (int k = 0; k < got; k++) {
            if (nodes->conf->requests == WW_AGENT_REQUESTS_OTLP) {
                nodes->source_requests_dropped++;
            } else {
                ww_latency_record(&nodes->lat[i], &nodes->reqbuf[k]);
            }
        }
        if (got < WW_REQBUF) {
            break;
        }
    }
}

/* The agent skips the `skip` ticks from t on (too far behind schedule): a source sampled at
 * its own pace (the simulator: no descriptor) is still taken through each of them, its
 * readings dropped and its requests kept, so that the workload it models goes on as it
 * would have (a real server does not pause for its agent) and what is sampled after the
 * skip is what an agent that never fell behind would have sampled then. A source fed by
 * another process (the request log) goes on by itself. */
static void s_skip_ticks(s_nodes_t *nodes, int64_t t, int64_t skip, int64_t interval)
{
    if (nodes->src->fd != NULL) {
        return;
    }
    for (int64_t k = 0; k < skip; k++) {
        for (unsigned i = 0; i < nodes->n; i++) {
            ww_reading_t r;
            nodes->emit_node = i;
            if (nodes->src->sample(nodes->state[i], t + k * interval, &r) == 0) {
                s_take_requests(nodes, i);
            }
        }
    }
}

static int s_sample_tick(s_nodes_t *nodes, int64_t t, ww_batch_t *batch)
{
    size_t n = 0;
    for (unsigned i = 0; i < nodes->n; i++) {
        ww_reading_t r;
        memset(&r, 0, sizeof r);
        nodes->emit_node = i; /* a record of the next window emits this node's open one */
        int rc = nodes->src->sample(nodes->state[i], t, &r);
        if (rc < 0) {
            /* Once when it starts and once when it ends (a producer that is down fails
             * every tick): the missing rows say the rest. */
            if (rc == -ENODATA) {
                WW_COMPLAIN(&nodes->sample_c[i],
                            "node %s: no reading newer than source.max_age from %s: no "
                            "samples until one arrives (is the inference server sending?)",
                            nodes->names[i], nodes->src->name);
            } else {
                WW_COMPLAIN(&nodes->sample_c[i], "node %s: sample failed: %s", nodes->names[i],
                            strerror(-rc));
            }
            continue;
        }
        WW_RECOVERED(&nodes->sample_c[i], "node %s: sampling again (%lu ticks without a sample)",
                     nodes->names[i], nodes->sample_c[i].repeats + 1);
        s_take_requests(nodes, i);
        ww_node_sample_t *s = &nodes->samples[n];
        waferwatch__v1__node_sample__init(s);
        s->node_id = nodes->names[i];
        s->time_ns = t;
        /* Every field of ww_fields.h, each F32 reading on its sensor's grid (ww_quant.h):
         * the one place every source's readings pass on their way to the wire. */
        ww_quant_sample(s, &r);
        nodes->sample_ptrs[n] = s;
        n++;
    }
    batch->samples = nodes->sample_ptrs;
    batch->n_samples = n;
    s_close_windows(nodes, t, false, batch);
    return (int)n;
}

static ww_hello_t *s_hello_new(const s_nodes_t *nodes)
{
    const ww_agent_conf_t *c = nodes->conf;
    ww_hello_t *h = calloc(1, sizeof *h);
    ww_node_info_t *infos = calloc(nodes->n, sizeof *infos);
    ww_node_info_t **ptrs = calloc(nodes->n, sizeof *ptrs);
    if (!h || !infos || !ptrs) {
        free(h);
        free(infos);
        free(ptrs);
        return NULL;
    }
    waferwatch__v1__hello__init(h);
    for (unsigned i = 0; i < nodes->n; i++) {
        waferwatch__v1__node_info__init(&infos[i]);
        infos[i].node_id = nodes->names[i];
        infos[i].site = c->site;
        infos[i].hall = c->hall;
        infos[i].rack = c->rack;
        infos[i].phase = c->phase;
        infos[i].system_model = c->system_model;
        infos[i].rated_kw = c->rated_kw;
        ptrs[i] = &infos[i];
    }
    h->nodes = ptrs;
    h->n_nodes = nodes->n;
    h->agent_version = (char *)WW_VERSION;
    h->source = (char *)nodes->src->name;
    h->interval_ms = (uint32_t)(c->interval_ns / WW_NS_PER_MS);
    return h;
}

static void s_hello_free(ww_hello_t **h)
{
    if (*h) {
        if ((*h)->n_nodes) {
            free((*h)->nodes[0]);
        }
        free((*h)->nodes);
        free(*h);
        *h = NULL;
    }
}

/* /metrics and /healthz (metrics.listen). The main thread publishes after every tick and
 * poll; the HTTP thread reads the families and the atomics below. */
typedef struct {
    ww_metrics_t *reg;
    ww_metrics_server_t *srv;
    ww_metric_t *ticks, *skipped, *samples, *windows, *requests, *tick_s;
    ww_metric_t *spooled, *sent, *resent, *replayed, *acked, *nacked, *dropped, *refused,
        *disk_full, *corrupt, *connects, *failovers, *pendings, *connect_failures,
        *handshake_failures, *forbidden, *repaired, *repair_gone;
    ww_metric_t *spool_bytes, *spool_kept, *pending, *queued, *in_flight, *held;
    ww_metric_t *otlp_exports, *otlp_spans, *otlp_requests, *otlp_refused, *otlp_bad,
        *otlp_too_large, *otlp_unsupported, *otlp_overloaded, *source_dropped;
    ww_metric_t *otlp_metric_exports, *otlp_points, *otlp_points_taken, *otlp_points_refused;
    int64_t failover_after_ns;
    _Atomic int64_t progress_at; /* monotonic: last reply, or last time nothing was pending */
    _Atomic uint64_t pending_now, connects_now;
    /* The collector's refusal (ww_link_refusal), for /healthz: a string, so under a lock */
    pthread_mutex_t refusal_lock;
    bool refusing;
    uint64_t refused_held;
    char refusal[256];
    uint64_t replies; /* acks, nacks (forbidden too), hello acks, pendings (main thread only) */
} s_metrics_t;

#define C(field, name, help) (m->field = ww_metrics_counter(m->reg, "waferwatch_agent_" name, help))
#define G(field, name, help) (m->field = ww_metrics_gauge(m->reg, "waferwatch_agent_" name, help))

/* Registers the agent's families. Returns 0 or -ENOMEM. */
static int s_metrics_init(s_metrics_t *m, const ww_agent_conf_t *c)
{
    static const double tick_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    m->failover_after_ns = c->failover_after_ns;
    atomic_init(&m->progress_at, ww_time_mono_ns());
    atomic_init(&m->pending_now, 0);
    atomic_init(&m->connects_now, 0);
    if (!(m->reg = ww_metrics_new()) ||
        ww_metrics_build_info(m->reg, "waferwatch", WW_VERSION, "agent") < 0 ||
        !C(ticks, "ticks_total", "Sampling ticks taken.") ||
        !C(skipped, "ticks_skipped_total",
           "Ticks skipped: behind schedule, or the spool full under stop_sampling.") ||
        !C(samples, "samples_total", "Node samples taken (one per node per tick).") ||
        !C(windows, "latency_windows_total", "Latency windows closed into batches.") ||
        !C(requests, "requests_recorded_total",
           "Request completions recorded into the latency histograms.") ||
        !(m->tick_s = ww_metrics_histogram(
              m->reg, "waferwatch_agent_tick_duration_seconds",
              "Time to sample a tick and append its batch to the spool (fsync included).",
              tick_buckets, sizeof tick_buckets / sizeof tick_buckets[0])) ||
        !C(spooled, "batches_spooled_total", "Batches appended to the on-disk spool.") ||
        !C(sent, "batches_sent_total", "Batch messages sent, resends included.") ||
        !C(resent, "batches_resent_total",
           "Batches sent again (ack timeout, reconnect, failover).") ||
        !C(replayed, "batches_replayed_total", "Unacked batches found in the spool at start.") ||
        !C(acked, "batches_acked_total", "Batches released by the collector's Ack.") ||
        !C(nacked, "batches_nacked_total", "Batches refused by a Nack and dropped.") ||
        !C(dropped, "batches_dropped_total",
           "Batches dropped by spool.policy drop_oldest (cumulative for the stream epoch).") ||
        !C(refused, "batches_refused_total",
           "Batches not spooled because the spool was full (spool.policy stop_sampling).") ||
        !C(disk_full, "batches_disk_full_total",
           "Batches not spooled because the spool's filesystem was full (ENOSPC/EDQUOT) and "
           "the policy could not make room.") ||
        !C(corrupt, "spool_corrupt_records_total",
           "Spool records cut as torn or corrupt (cumulative for the stream epoch).") ||
        !C(connects, "connects_total", "Connections to a collector established.") ||
        !C(failovers, "failovers_total", "Switches to another collector endpoint.") ||
        !C(connect_failures, "connect_failures_total",
           "Connects to a collector that failed (refused, unreachable; logged at a growing "
           "interval).") ||
        !C(handshake_failures, "handshake_failures_total",
           "CURVE handshakes with a collector that failed (this agent's key not enrolled, or "
           "the wrong collector key).") ||
        !C(forbidden, "nacks_forbidden_total",
           "Forbidden Nacks: the collector's allowlist does not admit this agent id or a node "
           "of it; the batches are held in the spool and retried, not dropped.") ||
        !C(repaired, "batches_repaired_total",
           "Acked batches sent again because the collector's database lacked them (a failover "
           "to a standby that had not received them).") ||
        !C(repair_gone, "batches_repair_gone_total",
           "Acked batches the collector's database lacked that the spool no longer kept "
           "(spool.keep_acked passed): lost, and counted so by the collector.") ||
        !G(spool_kept, "spool_kept_batches",
           "Acked batches kept in the spool for spool.keep_acked, should the database lose "
           "them.") ||
        !C(pendings, "pendings_total",
           "Pending replies: the collector holds batches it cannot commit yet (resends "
           "back off).") ||
        !G(spool_bytes, "spool_bytes", "Bytes in the spool's segment files.") ||
        !G(pending, "spool_pending_batches", "Batches in the spool not yet acked.") ||
        !G(queued, "unacked_queue_batches",
           "Unacked batches held in memory (the rest wait in the spool).") ||
        !G(in_flight, "in_flight_batches", "Batches sent and awaiting an ack.") ||
        !G(held, "batches_held_refused",
           "Batches the collector refused (forbidden) held in the spool for a retry.") ||
        !C(otlp_exports, "otlp_exports_total",
           "OTLP trace exports taken (agent.requests otlp; HTTP 200).") ||
        !C(otlp_spans, "otlp_spans_total", "Spans in the OTLP exports taken.") ||
        !C(otlp_requests, "otlp_requests_total",
           "Request spans recorded into the latency windows.") ||
        !C(otlp_refused, "otlp_spans_refused_total",
           "Request spans refused (partial success): an attribute missing or out of range, or "
           "a model that is not one of sim.models.") ||
        !C(otlp_bad, "otlp_bad_requests_total",
           "OTLP exports refused as not protobuf or not gzip (HTTP 400).") ||
        !C(otlp_too_large, "otlp_too_large_total",
           "OTLP exports over otlp.max_body, compressed or not (HTTP 413).") ||
        !C(otlp_unsupported, "otlp_unsupported_total",
           "OTLP/HTTP requests of another path, method, content type or encoding (HTTP 404, "
           "405, 415).") ||
        !C(otlp_overloaded, "otlp_overloaded_total",
           "OTLP exports answered 503 Retry-After: otlp.max_queue requests were waiting.") ||
        !C(source_dropped, "source_requests_dropped_total",
           "agent.source's own request completions left out (agent.requests otlp).") ||
        !C(otlp_metric_exports, "otlp_metric_exports_total",
           "OTLP metric exports taken (POST /v1/metrics; HTTP 200).") ||
        !C(otlp_points, "otlp_points_total", "Data points in the OTLP metric exports taken.") ||
        !C(otlp_points_taken, "otlp_points_merged_total",
           "GenAI latency and token points merged into the latency windows.") ||
        !C(otlp_points_refused, "otlp_points_refused_total",
           "GenAI metric points refused (partial success: no model, an explicit-bucket latency "
           "histogram, counts that disagree, ...) or past what a window may hold.")) {
        return -ENOMEM;
    }
    return 0;
}

#undef C
#undef G

static void s_metrics_publish(s_metrics_t *m, const ww_link_t *link, uint64_t ticks,
                              uint64_t skipped, uint64_t samples, uint64_t windows,
                              const s_nodes_t *nodes)
{
    if (!m->srv) {
        return;
    }
    uint64_t requests = s_requests(nodes); /* a pass over the nodes: only when served */
    ww_link_stats_t st;
    ww_link_depth_t d;
    ww_link_stats(link, &st);
    ww_link_depth(link, &d);
    ww_metric_set(m->ticks, 0, (double)ticks);
    ww_metric_set(m->skipped, 0, (double)skipped);
    ww_metric_set(m->samples, 0, (double)samples);
    ww_metric_set(m->windows, 0, (double)windows);
    ww_metric_set(m->requests, 0, (double)requests);
    ww_metric_set(m->spooled, 0, (double)st.spooled);
    ww_metric_set(m->sent, 0, (double)st.sent);
    ww_metric_set(m->resent, 0, (double)st.resent);
    ww_metric_set(m->replayed, 0, (double)st.replayed);
    ww_metric_set(m->acked, 0, (double)st.acked);
    ww_metric_set(m->nacked, 0, (double)st.nacked);
    ww_metric_set(m->dropped, 0, (double)st.dropped);
    ww_metric_set(m->refused, 0, (double)st.refused);
    ww_metric_set(m->disk_full, 0, (double)st.disk_full);
    ww_metric_set(m->corrupt, 0, (double)st.corrupt);
    ww_metric_set(m->connects, 0, (double)st.connects);
    ww_metric_set(m->failovers, 0, (double)st.failovers);
    ww_metric_set(m->pendings, 0, (double)st.pendings);
    ww_metric_set(m->connect_failures, 0, (double)st.connect_failures);
    ww_metric_set(m->handshake_failures, 0, (double)st.handshake_failures);
    ww_metric_set(m->spool_bytes, 0, (double)d.spool_bytes);
    ww_metric_set(m->pending, 0, (double)d.pending);
    ww_metric_set(m->queued, 0, (double)d.queued);
    ww_metric_set(m->in_flight, 0, (double)d.in_flight);
    ww_metric_set(m->forbidden, 0, (double)st.forbidden);
    ww_metric_set(m->repaired, 0, (double)st.repaired);
    ww_metric_set(m->repair_gone, 0, (double)st.repair_gone);
    ww_metric_set(m->spool_kept, 0, (double)d.kept);
    ww_metric_set(m->held, 0, (double)d.held);
    ww_otlp_http_stats_t ot = {0};
    if (nodes->otlp) {
        ww_otlp_http_stats(nodes->otlp, &ot);
    }
    ww_metric_set(m->otlp_exports, 0, (double)ot.exports);
    ww_metric_set(m->otlp_spans, 0, (double)ot.spans);
    ww_metric_set(m->otlp_requests, 0, (double)ot.requests);
    ww_metric_set(m->otlp_refused, 0, (double)ot.refused);
    ww_metric_set(m->otlp_bad, 0, (double)ot.bad_request);
    ww_metric_set(m->otlp_too_large, 0, (double)ot.too_large);
    ww_metric_set(m->otlp_unsupported, 0, (double)ot.unsupported);
    ww_metric_set(m->otlp_overloaded, 0, (double)ot.overloaded);
    ww_metric_set(m->source_dropped, 0, (double)nodes->source_requests_dropped);
    ww_metric_set(m->otlp_metric_exports, 0, (double)ot.metric_exports);
    ww_metric_set(m->otlp_points, 0, (double)ot.points);
    ww_metric_set(m->otlp_points_taken, 0, (double)(ot.points_taken - nodes->otlp_points_dropped));
    ww_metric_set(m->otlp_points_refused, 0,
                  (double)(ot.points_refused + nodes->otlp_points_dropped));
    char why[sizeof m->refusal];
    uint64_t held = 0;
    bool refusing = ww_link_refusal(link, why, sizeof why, &held);
    pthread_mutex_lock(&m->refusal_lock);
    m->refusing = refusing;
    m->refused_held = held;
    if (refusing) {
        memcpy(m->refusal, why, sizeof why);
    }
    pthread_mutex_unlock(&m->refusal_lock);
    /* A Pending is an answer too: the collector is there, its database is not. */
    uint64_t replies = st.acked + st.nacked + st.hellos_acked + st.pendings + st.forbidden;
    if (replies != m->replies || d.pending == 0) {
        m->replies = replies;
        atomic_store(&m->progress_at, ww_time_mono_ns());
    }
    atomic_store(&m->pending_now, d.pending);
    atomic_store(&m->connects_now, st.connects);
}

/* /healthz: unhealthy while the collector refuses this agent (its batches are held, and
 * only the operator can end it by fixing the allowlist), and when batches wait and the
 * collector has not answered for collector.failover_after (since start, when it never
 * connected). */
static int s_metrics_health(void *arg, char *reason, size_t cap)
{
    s_metrics_t *m = arg;
    pthread_mutex_lock(&m->refusal_lock);
    bool refusing = m->refusing;
    if (refusing) {
        snprintf(reason, cap, "the collector refuses this agent: %s; %llu batches held", m->refusal,
                 (unsigned long long)m->refused_held);
    }
    pthread_mutex_unlock(&m->refusal_lock);
    if (refusing) {
        return 1;
    }
    uint64_t pending = atomic_load(&m->pending_now);
    int64_t quiet = ww_time_mono_ns() - atomic_load(&m->progress_at);
    if (pending == 0 || quiet <= m->failover_after_ns) {
        return 0;
    }
    snprintf(reason, cap,
             "%s for %.1f s (collector.failover_after %.1f s); %llu batches waiting for an ack",
             atomic_load(&m->connects_now) == 0 ? "never connected to a collector"
                                                : "no ack from the collector",
             (double)quiet / WW_NS_PER_S, (double)m->failover_after_ns / WW_NS_PER_S,
             (unsigned long long)pending);
    return 1;
}

/* Batches the collector refused (forbidden) that the spool holds for a retry. */
static uint64_t s_held(const ww_link_t *link)
{
    ww_link_depth_t d;
    ww_link_depth(link, &d);
    return d.held;
}

/* Spools the batch of tick t (for the windows sent at a stop: the last tick) through the
 * run log: recorded before the append, so that a crash at any point leaves a next run
 * that knows what was spooled and what was lost; the previous run's outage rides along
 * until one batch carrying it is spooled. Returns ww_link_submit's result. */
static int s_submit(ww_link_t *link, ww_runlog_t *runlog, const s_nodes_t *nodes, ww_batch_t *batch,
                    int64_t t)
{
    uint64_t emitted;
    uint64_t open = s_open_requests(nodes, &emitted);
    ww_runlog_tick(runlog, batch, ww_link_epoch(link), ww_link_next_seq(link), t, open, emitted);
    int rc = ww_link_submit(link, batch);
    ww_runlog_appended(runlog, batch, rc == 0, t, emitted);
    return rc;
}

/* Prints a configuration error of the agent's own checks ("key: why") with where the
 * key's value came from in front, as the config engine's errors have it
 * ("agent.yaml:7:9: node.id: ...", "flag --collector: ..."); a default has no origin. */
/* Prints each line of msg (one error a line) with where its key's value came from
 * (file:line:col, variable or flag), as the config engine names its own errors. */
static void s_conf_error(int argc, char **argv, const char *msg)
{
    for (const char *line = msg; *line;) {
        size_t len = strcspn(line, "\n");
        char key[128], where[512];
        size_t n = strcspn(line, ":[ ,\n");
        bool placed = false;
        if (n > 0 && n < sizeof key) {
            memcpy(key, line, n);
            key[n] = '\0';
            placed = ww_cfg_origin(&ww_agent_schema, argc, argv, key, where, sizeof where) == 0 &&
                     strcmp(where, "default") != 0;
        }
        if (placed) {
            fprintf(stderr, "waferwatch-agent: %s: %.*s\n", where, (int)len, line);
        } else {
            fprintf(stderr, "waferwatch-agent: %.*s\n", (int)len, line);
        }
        line += len + (line[len] == '\n');
    }
}

/* ---- reference (--reference markdown|man) -------------------------------------------- */

/* What the agent's reference says besides its settings; the exit statuses are main's. */
static const ww_cfg_item_t s_ref_exit[] = {
    {"0", "stopped cleanly with every batch acked; or --help, --version, --print-config, a "
          "passing --check-config, --reference"},
    {"1", "a runtime failure: the metrics server or the spool's run log cannot start, out of "
          "memory (the systemd unit restarts it)"},
    {"2", "a configuration error: a bad file, variable or flag, a check of --check-config, or "
          "another agent holding spool.dir (the unit does not restart it: "
          "RestartPreventExitStatus=2)"},
    {"3", "stopped (SIGTERM or SIGINT, or agent.run_for elapsed) with batches left unacked "
          "after agent.drain_timeout: they stay in the spool and are sent at the next start"},
    {NULL, NULL},
};

static const ww_cfg_item_t s_ref_files[] = {
    {"/etc/waferwatch/agent.yaml", "the configuration the systemd unit passes with --config"},
    {"/etc/default/waferwatch-agent", "WW_AGENT_* variables for the systemd unit (optional)"},
    {"/etc/waferwatch/keys/agent.key", "this agent's CURVE key pair (security.key, mode 0600)"},
    {"/etc/waferwatch/keys/collector.pub", "the collector's public key (security.server_key)"},
    {"/var/lib/waferwatch/spool/AGENT_ID", "the default spool.dir: segment files, the lock "
                                           "file (the pid of the agent holding it), the run log"},
    {"/run/waferwatch/reqlog.sock", "the request log socket with agent.source reqlog"},
    {NULL, NULL},
};

static const ww_cfg_page_t s_ref_page = {
    .description =
        "waferwatch-agent samples the node or nodes it runs beside on a fixed wall-clock "
        "schedule (agent.interval): power, coolant and wafer temperatures, throttling, load, "
        "and per-request latency histograms per model, from the simulated wafer-scale driver "
        "or from the request log an inference server sends (agent.source). Every batch is "
        "appended to an on-disk spool (spool.dir) before it is sent over CURVE-encrypted "
        "ZeroMQ to a collector, and forgotten only once the collector acknowledges it; "
        "unacked batches are sent again after a restart.\n\n"
        "SIGTERM or SIGINT stops it cleanly: it waits up to agent.drain_timeout for the acks "
        "of what was sent. One agent per spool: it locks spool.dir. With metrics.listen set it "
        "serves Prometheus /metrics and /healthz.",
    .exit_status = s_ref_exit,
    .files = s_ref_files,
    .see_also = "waferwatch-collector(1), waferwatch(1), "
                "/usr/share/doc/waferwatch-agent/docs/reference/agent.md",
};

/* Prints the reference in `format` (WW_CFG_REF_*): the settings and, in Markdown, the
 * metrics of a registry built as the start builds it, never served. Returns the exit
 * status: 0, or 1 when out of memory or stdout failed. */
static int s_reference(int format)
{
    if (format == WW_CFG_REF_MAN) {
        ww_cfg_man(&ww_agent_schema, &s_ref_page, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    }
    ww_agent_conf_t conf;
    memset(&conf, 0, sizeof conf);
    s_metrics_t mx;
    memset(&mx, 0, sizeof mx);
    int rc = s_metrics_init(&mx, &conf);
    if (rc == 0) {
        ww_cfg_markdown(&ww_agent_schema, &s_ref_page, stdout);
        fputs("## Metrics\n\nServed on `/metrics` when `metrics.listen` is set (Prometheus text "
              "format 0.0.4).\n\n",
              stdout);
        ww_metrics_markdown(mx.reg, stdout);
    }
    ww_metrics_destroy(&mx.reg);
    return rc == 0 && fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

int main(int argc, char **argv)
{
    ww_agent_conf_t conf;
    memset(&conf, 0, sizeof conf);
    ww_cfg_err_t err = {{0}};
    int exit_code = 1;
    s_nodes_t nodes;
    memset(&nodes, 0, sizeof nodes);
    ww_hello_t *hello = NULL;
    ww_link_t *link = NULL;
    ww_runlog_t *runlog = NULL;
    s_metrics_t mx;
    memset(&mx, 0, sizeof mx);
    mx.refusal_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;

    int ref = ww_cfg_reference_arg(argc, argv, &err);
    if (ref != 0) {
        if (ref < 0) {
            ww_cfg_err_print(&err, "waferwatch-agent", stderr);
        }
        return ref < 0 ? 2 : s_reference(ref);
    }
    int action = ww_cfg_parse_args(&ww_agent_schema, &conf, argc, argv, &err);
    if (action < 0) {
        ww_cfg_err_print(&err, "waferwatch-agent", stderr);
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_HELP || action == WW_CFG_VERSION || action == WW_CFG_PRINT) {
        exit_code = 0;
        goto cleanup;
    }
    /* Every configuration error at once, each with its origin; exit 2 (systemd's
     * RestartPreventExitStatus), found by --check-config as by the start. */
    int finished = ww_agent_conf_finish(&conf, &err);
    if (finished == -ENOMEM) {
        fprintf(stderr, "waferwatch-agent: out of memory\n");
        goto cleanup;
    }
    ww_log_level = conf.log_level; /* an enum row: one of ww_log_level_names */
    char cwhy[400];
    if (conf.metrics_listen && *conf.metrics_listen &&
        ww_metrics_check_listen(conf.metrics_listen, cwhy, sizeof cwhy) < 0) {
        ww_cfg_err_add(&err, "metrics.listen: %s", cwhy);
    }
    if (conf.requests == WW_AGENT_REQUESTS_OTLP && conf.otlp_listen &&
        ww_metrics_check_listen(conf.otlp_listen, cwhy, sizeof cwhy) < 0) {
        ww_cfg_err_add(&err, "otlp.listen: %s", cwhy);
    }
    /* A spool directory that cannot be created or written is a configuration error too.
     * The lock is not tried here: a running agent holds it while its config is checked. */
    if (conf.spool_dir && ww_spool_probe(conf.spool_dir, cwhy, sizeof cwhy) < 0) {
        ww_cfg_err_add(&err, "spool.dir: %s", cwhy);
    }
    if (ww_cfg_err_count(&err) > 0) {
        s_conf_error(argc, argv, err.msg);
        exit_code = 2;
        goto cleanup;
    }
    int64_t interval = conf.interval_ns;
    int64_t first_tick = ww_time_next_tick(ww_time_now_ns(), interval);
    if (s_nodes_init(&nodes, &conf, first_tick, action == WW_CFG_CHECK) < 0) {
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_CHECK) {
        printf("configuration ok: %u node(s), source %s, collector %s%s, spool %s\n", nodes.n,
               nodes.src->name, conf.collectors.v[0], conf.collectors.n > 1 ? " (+ failover)" : "",
               conf.spool_dir);
        exit_code = 0;
        goto cleanup;
    }

    ww_signal_on_stop(&s_stop);
    if (*conf.metrics_listen) {
        char why[300] = "out of memory";
        if (s_metrics_init(&mx, &conf) == 0) {
            mx.srv = ww_metrics_server_new(mx.reg, conf.metrics_listen, s_metrics_health, &mx, why,
                                           sizeof why);
        }
        if (!mx.srv) {
            /* Asked for metrics: running without them would hide this agent from monitoring. */
            WW_ERROR("metrics.listen: %s; not starting", why);
            goto cleanup;
        }
    }
    hello = s_hello_new(&nodes);
    ww_link_conf_t lc = {
        .endpoints = conf.collectors.v,
        .n_endpoints = conf.collectors.n,
        .agent_id = conf.agent_id,
        .server_public_z85 = conf.insecure ? NULL : conf.server_key.public_z85,
        .public_z85 = conf.insecure ? NULL : conf.own_key.public_z85,
        .secret_z85 = conf.insecure ? NULL : conf.own_key.secret_z85,
        .ack_timeout_ns = conf.ack_timeout_ns,
        .failover_after_ns = conf.failover_after_ns,
        .max_in_flight = (size_t)conf.max_in_flight,
        .queue_batches = (size_t)conf.queue_batches,
        .spool =
            {
                .dir = conf.spool_dir,
                .max_bytes = (uint64_t)conf.spool_max_bytes,
                .segment_bytes = (uint64_t)conf.spool_segment_bytes,
                .policy = conf.spool_policy, /* enum rows: the spool's own enums */
                .fsync = conf.spool_fsync,
                .fsync_interval_ns = conf.spool_fsync_interval_ns,
                .keep_acked_ns = conf.spool_keep_acked_ns,
            },
    };
    int link_err = -ENOMEM;
    link = hello ? ww_link_open(&lc, hello, &link_err) : NULL;
    if (!link) {
        /* Another agent on this spool (logged with its pid) is an operator's mistake that a
         * restart cannot fix: exit 2, which the systemd unit does not restart. */
        exit_code = link_err == -EBUSY ? 2 : 1;
        goto cleanup;
    }
    int rl_err = 0;
    runlog = ww_runlog_open(&lc.spool, &rl_err);
    if (!runlog) {
        WW_ERROR("cannot open the run log in %s: %s", conf.spool_dir, strerror(-rl_err));
        goto cleanup;
    }
    /* Before anything is appended: the spool's next seq tells whether the previous run's
     * last recorded tick reached it. */
    ww_runlog_begin(runlog, ww_link_epoch(link), ww_link_next_seq(link), first_tick, interval,
                    NULL);
    /* A source with a descriptor (one node: the request log) is read as data arrives. */
    if (nodes.src->fd != NULL && nodes.src->ready != NULL &&
        ww_link_watch(link, nodes.src->fd(nodes.state[0]), s_on_source_ready, &nodes) < 0) {
        goto cleanup;
    }
    /* The requests of an OpenTelemetry-instrumented server, as its exports arrive. */
    if (conf.requests == WW_AGENT_REQUESTS_OTLP &&
        (s_otlp_start(&nodes, &conf, ww_time_now_ns()) < 0 ||
         ww_link_watch(link, ww_otlp_http_fd(nodes.otlp), s_on_otlp_ready, &nodes) < 0)) {
        goto cleanup;
    }
    if (conf.insecure) {
        WW_WARN("INSECURE MODE (security.insecure): no CURVE; the link to the collector is "
                "neither encrypted nor authenticated");
    }
    WW_INFO("agent %s: %u node(s) (%s .. %s), phase %s, interval %lld ms, first_tick=%lld",
            conf.agent_id, nodes.n, nodes.names[0], nodes.names[nodes.n - 1], conf.phase,
            (long long)(interval / WW_NS_PER_MS), (long long)first_tick);

    int64_t stop_at = conf.run_for_ns > 0 ? first_tick + conf.run_for_ns : INT64_MAX;
    int64_t next = first_tick;
    int64_t last_tick = first_tick - interval; /* the last tick sampled */
    uint64_t ticks = 0, skipped = 0, samples = 0, windows = 0;
    int64_t next_trim = ww_time_mono_ns() + WW_TRIM_FIRST_NS;
    ww_batch_t batch = WAFERWATCH__V1__BATCH__INIT;
    ww_complain_t spool_full = {0}, disk_full = {0};
    while (!s_stop && next < stop_at) {
        int64_t now = ww_time_now_ns();
        if (now < next) {
            /* With /healthz served, wake at least every second to keep it current. */
            ww_link_poll(link, mx.srv && next - now > WW_NS_PER_S ? WW_NS_PER_S : next - now);
            s_metrics_publish(&mx, link, ticks, skipped, samples, windows, &nodes);
            continue;
        }
        /* Behind schedule by more than the catch-up window: skip to stay aligned. */
        int64_t behind = (now - next) / interval;
        if (behind > WW_MAX_CATCHUP_TICKS) {
            int64_t skip = behind - WW_MAX_CATCHUP_TICKS;
            WW_WARN("%lld ticks behind schedule: skipping %lld", (long long)behind,
                    (long long)skip);
            skipped += (uint64_t)skip;
            ww_link_count_skipped(link, (uint64_t)skip);
            s_skip_ticks(&nodes, next, skip, interval);
            next += skip * interval;
        }
        int64_t tick_start = ww_time_mono_ns();
        int n = s_sample_tick(&nodes, next, &batch);
        if (n > 0 || batch.n_latency_windows > 0) {
            int rc = s_submit(link, runlog, &nodes, &batch, next);
            if (rc == -ENOSPC && ww_link_disk_full(link)) {
                /* The filesystem, not the spool's bound: the spool said where and how much
                 * is free, and what its policy could do. This tick is lost, counted. */
                WW_COMPLAIN(&disk_full,
                            "the filesystem of the spool %s is full: not sampling "
                            "until there is room (policy %s)",
                            conf.spool_dir, ww_agent_spool_policy_names[conf.spool_policy]);
                skipped++;
                ww_link_count_skipped(link, 1);
            } else if (rc == -ENOSPC) {
                /* stop_sampling: the spool is full; this tick is lost, counted, reported. */
                WW_COMPLAIN(&spool_full, "spool full: not sampling until the collector "
                                         "acks (policy stop_sampling)");
                skipped++;
                ww_link_count_skipped(link, 1);
            } else if (rc < 0) {
                WW_ERROR("tick %lld could not be spooled: %s", (long long)next, strerror(-rc));
                skipped++;
                ww_link_count_skipped(link, 1);
            } else {
                WW_RECOVERED(&spool_full, "spool has room again: sampling resumed");
                WW_RECOVERED(&disk_full, "the spool's filesystem has room again: sampling "
                                         "resumed");
            }
        }
        windows += batch.n_latency_windows;
        ww_lwbuf_reset(&nodes.lw);
        samples += (uint64_t)(n > 0 ? n : 0);
        ticks++;
        ww_metric_observe(mx.tick_s, 0, (double)(ww_time_mono_ns() - tick_start) / WW_NS_PER_S);
        if (tick_start >= next_trim) {
            /* Hand back the heap pages that growth left free (arrays outgrown while the
             * load warmed up, a burst's buffers): untouched, they would stay the agent's
             * private dirty memory for good. A pass over the free lists, once a minute. */
            malloc_trim(0);
            next_trim = tick_start + WW_TRIM_EVERY_NS;
        }
        last_tick = next;
        next += interval;
        ww_link_poll(link, 0);
        s_metrics_publish(&mx, link, ticks, skipped, samples, windows, &nodes);
    }

    /* The windows still open hold requests already completed: send them with the part
     * of the window they cover, up to the last tick (a restarted agent sends the rest of
     * the window, from its first tick; the collector merges the two). */
    batch.n_samples = 0;
    if (nodes.otlp) {
        /* No export is taken from now on; what was (and got its 200) goes in. */
        ww_otlp_http_stop(nodes.otlp);
        s_on_otlp_ready(&nodes);
    }
    s_close_windows(&nodes, last_tick, true, &batch);
    if (batch.n_latency_windows > 0) {
        int rc = s_submit(link, runlog, &nodes, &batch, last_tick);
        if (rc < 0) {
            WW_ERROR("the last latency windows could not be spooled: %s (their requests are "
                     "counted lost)",
                     strerror(-rc));
        }
    }
    windows += batch.n_latency_windows;
    ww_lwbuf_reset(&nodes.lw);

    /* Graceful stop: give the collector drain_timeout to ack what was sent. */
    WW_INFO("stopping (%s): %llu batches to drain", s_stop ? strsignal(s_stop) : "run_for reached",
            (unsigned long long)ww_link_pending(link));
    int64_t drain_end = ww_time_mono_ns() + conf.drain_ns;
    s_stop = 0;
    while ((ww_link_pending(link) > 0 || ww_link_repairing(link) > 0) && !s_stop) {
        int64_t left = drain_end - ww_time_mono_ns();
        if (left <= 0) {
            break;
        }
        ww_link_poll(link, left < 100 * WW_NS_PER_MS ? left : 100 * WW_NS_PER_MS);
        s_metrics_publish(&mx, link, ticks, skipped, samples, windows, &nodes);
    }
    s_metrics_publish(&mx, link, ticks, skipped, samples, windows, &nodes);
    ww_link_stats_t st;
    ww_link_stats(link, &st);
    ww_otlp_http_stats_t ot = {0};
    if (nodes.otlp) {
        ww_otlp_http_stats(nodes.otlp, &ot);
    }
    /* One machine-readable line for scripts and tests. */
    WW_INFO("stats: ticks=%llu samples=%llu latency_windows=%llu skipped_ticks=%llu "
            "batches=%llu spooled=%llu replayed=%llu acked=%llu nacked=%llu dropped=%llu "
            "corrupt=%llu unacked=%llu sent=%llu resent=%llu connects=%llu failovers=%llu "
            "pendings=%llu disk_full=%llu requests=%llu late_requests=%llu "
            "connect_failures=%llu handshake_failures=%llu forbidden=%llu held=%llu "
            "repaired=%llu repair_gone=%llu otlp_exports=%llu otlp_spans=%llu otlp_requests=%llu "
            "otlp_refused=%llu "
            "otlp_errors=%llu source_requests_dropped=%llu otlp_metric_exports=%llu "
            "otlp_points=%llu otlp_points_merged=%llu otlp_points_refused=%llu",
            (unsigned long long)ticks, (unsigned long long)samples, (unsigned long long)windows,
            (unsigned long long)skipped, (unsigned long long)st.spooled,
            (unsigned long long)st.spooled, (unsigned long long)st.replayed,
            (unsigned long long)st.acked, (unsigned long long)st.nacked,
            (unsigned long long)st.dropped, (unsigned long long)st.corrupt,
            (unsigned long long)ww_link_pending(link), (unsigned long long)st.sent,
            (unsigned long long)st.resent, (unsigned long long)st.connects,
            (unsigned long long)st.failovers, (unsigned long long)st.pendings,
            (unsigned long long)st.disk_full, (unsigned long long)s_requests(&nodes),
            (unsigned long long)s_late(&nodes), (unsigned long long)st.connect_failures,
            (unsigned long long)st.handshake_failures, (unsigned long long)st.forbidden,
            (unsigned long long)s_held(link), (unsigned long long)st.repaired,
            (unsigned long long)st.repair_gone, (unsigned long long)ot.exports,
            (unsigned long long)ot.spans, (unsigned long long)ot.requests,
            (unsigned long long)ot.refused,
            (unsigned long long)(ot.bad_request + ot.too_large + ot.unsupported + ot.overloaded),
            (unsigned long long)nodes.source_requests_dropped,
            (unsigned long long)ot.metric_exports, (unsigned long long)ot.points,
            (unsigned long long)(ot.points_taken - nodes.otlp_points_dropped),
            (unsigned long long)(ot.points_refused + nodes.otlp_points_dropped));
    /* A clean stop: the next run reports an outage of cause "stop" from the last tick. */
    uint64_t emitted_total;
    uint64_t open_left = s_open_requests(&nodes, &emitted_total);
    ww_runlog_stop(runlog, open_left, emitted_total);
    exit_code = ww_link_pending(link) == 0 ? 0 : 3;
    if (exit_code != 0) {
        WW_WARN("%llu batches are not acked yet: they stay in the spool %s and are sent at the "
                "next start",
                (unsigned long long)ww_link_pending(link), conf.spool_dir);
    }

cleanup:
    ww_metrics_server_destroy(&mx.srv); /* first: its thread reads mx */
    ww_metrics_destroy(&mx.reg);
    ww_runlog_destroy(&runlog);
    ww_link_destroy(&link);
    s_hello_free(&hello);
    s_nodes_fini(&nodes);
    ww_cfg_free(&ww_agent_schema, &conf);
    return exit_code;
}
