/* waferwatch-agent: samples the node(s) it runs beside on a fixed wall-clock schedule and
 * streams Batches to the collector. See agent_config.c for every setting. */
#define WW_LOG_MODULE "agent"
#include "agent_batch.h"
#include "agent_config.h"
#include "agent_latency.h"
#include "agent_link.h"
#include "ww_log.h"
#include "ww_sim.h"
#include "ww_time.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ticks missed (a suspended VM, a stalled disk) are caught up to this many; older ones
 * are skipped, counted and logged, since their readings would all be taken now anyway. */
#define WW_MAX_CATCHUP_TICKS 60

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = sig;
}

static void s_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

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
    unsigned emit_node; /* node whose windows s_emit is receiving */
} s_nodes_t;

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
    memset(nodes, 0, sizeof *nodes);
}

#define WW_REQBUF 256

static int s_nodes_init(s_nodes_t *nodes, const ww_agent_conf_t *c, int64_t start_ns)
{
    nodes->conf = c;
    nodes->src = &ww_sim_source;
    nodes->n = (unsigned)c->sim_nodes;
    nodes->state = calloc(nodes->n, sizeof *nodes->state);
    nodes->names = calloc(nodes->n, sizeof *nodes->names);
    nodes->samples = calloc(nodes->n, sizeof *nodes->samples);
    nodes->sample_ptrs = calloc(nodes->n, sizeof *nodes->sample_ptrs);
    nodes->reqbuf = calloc(WW_REQBUF, sizeof *nodes->reqbuf);
    nodes->lat = calloc(nodes->n, sizeof *nodes->lat);
    ww_lwbuf_init(&nodes->lw);
    if (!nodes->state || !nodes->names || !nodes->samples || !nodes->sample_ptrs ||
        !nodes->reqbuf || !nodes->lat) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nodes->n; i++) {
        char name[160];
        ww_agent_node_name(c, i, name, sizeof name);
        nodes->names[i] = strdup(name);
        if (!nodes->names[i]) {
            return -ENOMEM;
        }
        int rc = nodes->src->open(&c->sim, i, start_ns, &nodes->state[i]);
        if (rc < 0) {
            WW_ERROR("cannot open source %s for node %s: %s", nodes->src->name, name,
                     strerror(-rc));
            return rc;
        }
        nodes->sample_ptrs[i] = &nodes->samples[i];
        if (ww_latency_init(&nodes->lat[i], (unsigned)c->sim.n_models, c->latency_window_ns,
                            (int)c->hist_scale) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

static void s_emit(void *arg, unsigned model, int64_t start_ns, int64_t window_ns,
                   const ww_lat_window_t *w)
{
    s_nodes_t *nodes = arg;
    unsigned i = nodes->emit_node;
    const char *name = nodes->src->model_name(nodes->state[i], model);
    if (ww_lwbuf_add(&nodes->lw, nodes->names[i], name ? name : "unknown", start_ns, window_ns, w) <
        0) {
        WW_ERROR("node %s: out of memory: latency window of %s lost", nodes->names[i],
                 name ? name : "?");
    }
}

/* Closes the latency windows that ended by t (all of them when `all`) into the batch. */
static void s_close_windows(s_nodes_t *nodes, int64_t t, bool all, ww_batch_t *batch)
{
    for (unsigned i = 0; i < nodes->n; i++) {
        nodes->emit_node = i;
        ww_latency_close(&nodes->lat[i], t, all, s_emit, nodes);
    }
    ww_lwbuf_attach(&nodes->lw, batch);
}

/* Samples every node at tick t into the reused batch, records the request completions
 * into the latency windows and adds the windows that closed by t. */
static int s_sample_tick(s_nodes_t *nodes, int64_t t, ww_batch_t *batch)
{
    size_t n = 0;
    for (unsigned i = 0; i < nodes->n; i++) {
        ww_reading_t r;
        memset(&r, 0, sizeof r);
        int rc = nodes->src->sample(nodes->state[i], t, &r);
        if (rc < 0) {
            WW_WARN("node %s: sample failed: %s", nodes->names[i], strerror(-rc));
            continue;
        }
        int got;
        do {
            got = nodes->src->poll_requests(nodes->state[i], nodes->reqbuf, WW_REQBUF);
            for (int k = 0; k < got; k++) {
                ww_latency_record(&nodes->lat[i], &nodes->reqbuf[k]);
            }
        } while (got == WW_REQBUF);
        ww_node_sample_t *s = &nodes->samples[n];
        waferwatch__v1__node_sample__init(s);
        s->node_id = nodes->names[i];
        s->time_ns = t;
        s->power_w = r.power_w;
        s->inlet_c = r.inlet_c;
        s->outlet_c = r.outlet_c;
        s->flow_lpm = r.flow_lpm;
        s->wafer_hotspot_c = r.wafer_hotspot_c;
        s->utilization = r.utilization;
        s->tokens_per_s = r.tokens_per_s;
        s->requests_queued = r.requests_queued;
        s->requests_in_flight = r.requests_in_flight;
        s->requests_completed = r.requests_completed;
        s->throttled = r.throttled;
        s->throttle_factor = r.throttle_factor;
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

    int action = ww_cfg_parse_args(&ww_agent_schema, &conf, argc, argv, &err);
    if (action < 0) {
        fprintf(stderr, "waferwatch-agent: %s\n", err.msg);
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_HELP || action == WW_CFG_VERSION || action == WW_CFG_PRINT) {
        exit_code = 0;
        goto cleanup;
    }
    if (ww_agent_conf_finish(&conf, &err) < 0) {
        fprintf(stderr, "waferwatch-agent: %s\n", err.msg);
        exit_code = 2;
        goto cleanup;
    }
    if (ww_log_set_level_name(conf.log_level) < 0) {
        fprintf(stderr,
                "waferwatch-agent: agent.log_level: \"%s\" is not one of error, warn, "
                "info, debug\n",
                conf.log_level);
        exit_code = 2;
        goto cleanup;
    }
    int64_t interval = conf.interval_ns;
    int64_t first_tick = ww_time_next_tick(ww_time_now_ns(), interval);
    if (s_nodes_init(&nodes, &conf, first_tick) < 0) {
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

    s_install_signals();
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
                .policy = strcmp(conf.spool_policy, "stop_sampling") == 0 ? WW_SPOOL_REFUSE
                                                                          : WW_SPOOL_DROP_OLDEST,
                .fsync = strcmp(conf.spool_fsync, "never") == 0      ? WW_FSYNC_NEVER
                         : strcmp(conf.spool_fsync, "interval") == 0 ? WW_FSYNC_INTERVAL
                                                                     : WW_FSYNC_ALWAYS,
                .fsync_interval_ns = conf.spool_fsync_interval_ns,
            },
    };
    link = hello ? ww_link_new(&lc, hello) : NULL;
    if (!link) {
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
    uint64_t ticks = 0, skipped = 0, samples = 0, windows = 0;
    ww_batch_t batch = WAFERWATCH__V1__BATCH__INIT;
    ww_complain_t spool_full = {0};
    while (!s_stop && next < stop_at) {
        int64_t now = ww_time_now_ns();
        if (now < next) {
            ww_link_poll(link, next - now);
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
            next += skip * interval;
        }
        int n = s_sample_tick(&nodes, next, &batch);
        if (n > 0 || batch.n_latency_windows > 0) {
            int rc = ww_link_submit(link, &batch);
            if (rc == -ENOSPC) {
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
            }
        }
        windows += batch.n_latency_windows;
        ww_lwbuf_reset(&nodes.lw);
        samples += (uint64_t)(n > 0 ? n : 0);
        ticks++;
        next += interval;
        ww_link_poll(link, 0);
    }

    /* The windows still open hold requests already completed: send them, partial. */
    batch.n_samples = 0;
    s_close_windows(&nodes, next, true, &batch);
    if (batch.n_latency_windows > 0 && ww_link_submit(link, &batch) < 0) {
        WW_ERROR("out of memory queueing the last latency windows");
    }
    windows += batch.n_latency_windows;
    ww_lwbuf_reset(&nodes.lw);

    /* Graceful stop: give the collector drain_timeout to ack what was sent. */
    WW_INFO("stopping (%s): %llu batches to drain", s_stop ? strsignal(s_stop) : "run_for reached",
            (unsigned long long)ww_link_pending(link));
    int64_t drain_end = ww_time_mono_ns() + conf.drain_ns;
    s_stop = 0;
    while (ww_link_pending(link) > 0 && !s_stop) {
        int64_t left = drain_end - ww_time_mono_ns();
        if (left <= 0) {
            break;
        }
        ww_link_poll(link, left < 100 * WW_NS_PER_MS ? left : 100 * WW_NS_PER_MS);
    }
    ww_link_stats_t st;
    ww_link_stats(link, &st);
    /* One machine-readable line for scripts and tests. */
    WW_INFO("stats: ticks=%llu samples=%llu latency_windows=%llu skipped_ticks=%llu "
            "batches=%llu spooled=%llu replayed=%llu acked=%llu nacked=%llu dropped=%llu "
            "corrupt=%llu unacked=%llu sent=%llu resent=%llu connects=%llu failovers=%llu",
            (unsigned long long)ticks, (unsigned long long)samples, (unsigned long long)windows,
            (unsigned long long)skipped, (unsigned long long)st.spooled,
            (unsigned long long)st.spooled, (unsigned long long)st.replayed,
            (unsigned long long)st.acked, (unsigned long long)st.nacked,
            (unsigned long long)st.dropped, (unsigned long long)st.corrupt,
            (unsigned long long)ww_link_pending(link), (unsigned long long)st.sent,
            (unsigned long long)st.resent, (unsigned long long)st.connects,
            (unsigned long long)st.failovers);
    exit_code = ww_link_pending(link) == 0 ? 0 : 3;
    if (exit_code != 0) {
        WW_WARN("%llu batches are not acked yet: they stay in the spool %s and are sent at the "
                "next start",
                (unsigned long long)ww_link_pending(link), conf.spool_dir);
    }

cleanup:
    ww_link_destroy(&link);
    s_hello_free(&hello);
    s_nodes_fini(&nodes);
    ww_cfg_free(&ww_agent_schema, &conf);
    return exit_code;
}
