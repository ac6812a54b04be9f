/* waferwatch-sim: the simulated wafer-scale inference system (ww_sim) run as its own process,
 * the reference producer of the request log (ww_reqlog.h). It sends the node's readings and
 * one completion record per request to the Unix datagram socket that an agent with
 * `agent.source: reqlog` binds at source.socket, as a real inference server would. The agent
 * then only records, and the simulation's CPU is the (simulated) server's.
 *
 * Configured exactly like the agent (same file, WW_AGENT_* variables and flags); it uses
 * sim.* (sim.nodes must be 1: one node per socket), agent.interval, agent.run_for,
 * agent.log_level, node.id and source.socket.
 *
 * Timing: a step every WW_SIM_STEP_NS on the wall-clock grid and at every reading tick
 * (wall-clock multiples of agent.interval). Each step samples the simulation at the step's
 * scheduled time, so the content depends only on the seed, the start time and the schedule;
 * the records finished by then go out in REQUESTS datagrams, all at the end of the step,
 * back to back. At a tick a READING datagram follows, with the
 * state at the tick and the averages (power, utilisation, outlet temperature, tokens/s) and
 * completion count over the interval since the previous tick, as the agent's embedded
 * simulator reports them.
 *
 * Sending never blocks: MSG_DONTWAIT, and datagrams the agent cannot take now (its queue is
 * full, or nobody is bound to the path yet) wait in a bounded FIFO, sent in order before
 * anything newer; when it is full the oldest is dropped and counted. */
#define WW_LOG_MODULE "sim"
#include "ww_agent_conf.h"
#include "ww_log.h"
#include "ww_reqlog.h"
#include "ww_signal.h"
#include "ww_sim.h"
#include "ww_time.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* How often records go out: a step's datagrams leave together at its end, so the agent wakes
 * about 4 times a second and takes them in one go (a node at 5,000 requests/s fills a
 * datagram of 340 records every ~70 ms: about 4 per step). Measured with the footprint
 * bench's load: the agent's CPU at a 250 ms step was ~0.12% of a core against ~0.20% at
 * 100 ms (a wake-up and its cold caches cost more than the records it brings). Records reach
 * the agent within ~250 ms of finishing; it closes their windows a second late for that. */
#define WW_SIM_STEP_NS (250 * WW_NS_PER_MS)
/* Datagrams held while the agent cannot take them: at most 1024 * 16 KiB = 16 MiB, about
 * 70 s of a node at 5,000 requests/s (much longer at usual rates). */
#define WW_SIM_BACKLOG 1024
/* Behind schedule by more than this (a suspended VM, a clock step): simulate up to now in
 * one step instead of step by step, and skip the readings of the ticks missed. */
#define WW_SIM_MAX_CATCHUP_NS (10 * WW_NS_PER_S)
/* A send error that is a bug (EMSGSIZE, ...) is logged at most this often. */
#define WW_SIM_ERROR_LOG_NS (60 * WW_NS_PER_S)

_Static_assert(WW_SIM_MAX_MODELS <= WW_REQLOG_MAX_MODELS,
               "every model of the simulator must fit a datagram's model table");

static volatile sig_atomic_t s_stop;

/* ---- sending ---- */

/* A datagram the agent could not take yet (a heap copy). */
typedef struct {
    uint8_t *data;
    uint32_t len;
    uint32_t records; /* REQUESTS: its records; READING: 0 */
    bool reading;
} s_held_t;

typedef struct {
    int fd;
    struct sockaddr_un addr;
    const char *path;
    /* the REQUESTS datagram being filled, and its model table (the simulator's names) */
    ww_reqlog_batch_t batch;
    const char *models[WW_REQLOG_MAX_MODELS];
    unsigned n_models;
    /* the backlog: a ring of WW_SIM_BACKLOG, oldest at head */
    s_held_t held[WW_SIM_BACKLOG];
    size_t head, n;
    uint64_t held_records;
    /* counters for the summary */
    uint64_t made; /* records the simulation finished (handed to the sink) */
    uint64_t sent; /* datagrams sent, both types */
    uint64_t sent_records, sent_readings;
    uint64_t dropped, dropped_records, dropped_readings; /* the backlog's oldest, and bugs */
    uint64_t failed;                                     /* of `dropped`: send errors (bugs) */
    uint64_t sent_this_step;
    /* unreachable agent: when it started, and the drop counts then */
    ww_complain_t away_c, full_c, nomem_c;
    int64_t away_since;
    uint64_t away_dropped, away_dropped_records;
    int last_error;
    int64_t last_error_log;
} s_out_t;

/* Why a send that is retried later failed, for the log. */
static const char *s_why(int e)
{
    switch (e) {
    case ENOENT:
        return "no socket at that path (agent not started yet?)";
    case ECONNREFUSED:
        return "nobody is bound to it (agent stopped or restarting?)";
    case EAGAIN:
    case ENOBUFS:
        return "its queue is full (the agent is not reading)";
    case EACCES:
    case EPERM:
        return "permission denied (source.socket_mode and this user's groups)";
    default:
        return strerror(e);
    }
}

/* Errors after which the same datagram may go through later: the agent is not there yet,
 * restarting, or not draining; or its socket's permissions are being fixed. */
static bool s_retryable(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == ECONNREFUSED || e == ENOENT ||
           e == EACCES || e == EPERM;
}

/* One sendto. Returns 0 (sent), 1 (retry later; *e says why) or -1 (a bug: drop it). */
static int s_send1(s_out_t *o, const uint8_t *buf, size_t len, int *e)
{
    for (;;) {
        if (sendto(o->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&o->addr,
                   sizeof o->addr) >= 0) {
            return 0; /* a datagram goes whole or not at all */
        }
        if (errno == EINTR) {
            continue;
        }
        *e = errno;
        return s_retryable(errno) ? 1 : -1;
    }
}

static void s_count_sent(s_out_t *o, uint32_t records, bool reading)
{
    o->sent++;
    o->sent_this_step++;
    o->sent_records += records;
    o->sent_readings += reading ? 1 : 0;
    WW_RECOVERED(&o->away_c,
                 "agent at %s is back after %.1f s: %zu held datagrams (%llu records) go out in "
                 "order; %llu datagrams (%llu records) were dropped while it was away",
                 o->path, (double)(ww_time_mono_ns() - o->away_since) / WW_NS_PER_S, o->n,
                 (unsigned long long)o->held_records,
                 (unsigned long long)(o->dropped - o->away_dropped),
                 (unsigned long long)(o->dropped_records - o->away_dropped_records));
}

static void s_count_dropped(s_out_t *o, uint32_t records, bool reading)
{
    o->dropped++;
    o->dropped_records += records;
    o->dropped_readings += reading ? 1 : 0;
}

/* A send failed with an error that no retry fixes: log (rate-limited) and drop. */
static void s_send_failed(s_out_t *o, size_t len, uint32_t records, bool reading, int e)
{
    s_count_dropped(o, records, reading);
    o->failed++;
    int64_t now = ww_time_mono_ns();
    if (e != o->last_error || now - o->last_error_log >= WW_SIM_ERROR_LOG_NS) {
        WW_ERROR("sending a %zu-byte datagram to %s failed: %s; dropped (%llu records); %llu "
                 "datagrams dropped by send errors so far",
                 len, o->path, strerror(e), (unsigned long long)records,
                 (unsigned long long)o->failed);
        o->last_error = e;
        o->last_error_log = now;
    }
}

/* The agent cannot take datagrams now: log it once per outage. Only when nothing at all went
 * out in this step: a queue that fills while the backlog drains is back-pressure. */
static void s_note_away(s_out_t *o, int e)
{
    if (o->sent_this_step > 0) {
        return;
    }
    if (!o->away_c.failing) {
        o->away_since = ww_time_mono_ns();
        o->away_dropped = o->dropped;
        o->away_dropped_records = o->dropped_records;
    }
    WW_COMPLAIN(&o->away_c,
                "cannot send to the agent at %s: %s; holding up to %d datagrams, sent in order "
                "when it is back",
                o->path, s_why(e), WW_SIM_BACKLOG);
}

/* Appends a copy of a datagram to the backlog, dropping the oldest when it is full. */
static void s_hold(s_out_t *o, const uint8_t *buf, size_t len, uint32_t records, bool reading)
{
    uint8_t *reuse = NULL;
    if (o->n == WW_SIM_BACKLOG) {
        s_held_t *old = &o->held[o->head];
        WW_COMPLAIN(&o->full_c,
                    "backlog full (%d datagrams): dropping the oldest (counted in the stop "
                    "summary)",
                    WW_SIM_BACKLOG);
        s_count_dropped(o, old->records, old->reading);
        o->held_records -= old->records;
        reuse = old->data;
        o->head = (o->head + 1) % WW_SIM_BACKLOG;
        o->n--;
    }
    uint8_t *data = realloc(reuse, len);
    if (data == NULL) {
        free(reuse);
        s_count_dropped(o, records, reading);
        WW_COMPLAIN(&o->nomem_c, "out of memory holding a datagram for %s: dropped (counted)",
                    o->path);
        return;
    }
    WW_RECOVERED(&o->nomem_c, "memory for the backlog again");
    memcpy(data, buf, len);
    o->held[(o->head + o->n) % WW_SIM_BACKLOG] =
        (s_held_t){.data = data, .len = (uint32_t)len, .records = records, .reading = reading};
    o->n++;
    o->held_records += records;
}

/* Sends the backlog in order until the agent stops taking datagrams. */
static void s_flush_backlog(s_out_t *o)
{
    while (o->n > 0) {
        s_held_t *h = &o->held[o->head];
        int e = 0;
        int rc = s_send1(o, h->data, h->len, &e);
        if (rc > 0) {
            s_note_away(o, e);
            return;
        }
        s_held_t done = *h;
        h->data = NULL;
        o->head = (o->head + 1) % WW_SIM_BACKLOG;
        o->n--;
        o->held_records -= done.records;
        if (rc == 0) {
            s_count_sent(o, done.records, done.reading);
        } else {
            s_send_failed(o, done.len, done.records, done.reading, e);
        }
        free(done.data);
    }
    WW_RECOVERED(&o->full_c, "backlog delivered; %llu datagrams (%llu records) dropped in all",
                 (unsigned long long)o->dropped, (unsigned long long)o->dropped_records);
}

/* Sends a datagram now, or holds it behind the ones already waiting. */
static void s_push(s_out_t *o, const uint8_t *buf, size_t len, uint32_t records, bool reading)
{
    if (o->n == 0) {
        int e = 0;
        int rc = s_send1(o, buf, len, &e);
        if (rc == 0) {
            s_count_sent(o, records, reading);
            return;
        }
        if (rc < 0) {
            s_send_failed(o, len, records, reading, e);
            return;
        }
        s_note_away(o, e);
    }
    s_hold(o, buf, len, records, reading);
}

/* Sends the REQUESTS datagram being filled, if it holds records, and begins the next. */
static void s_push_batch(s_out_t *o)
{
    if (o->batch.count == 0) {
        return;
    }
    s_push(o, o->batch.buf, o->batch.len, o->batch.count, false);
    int rc = ww_reqlog_begin(&o->batch, o->models, o->n_models);
    (void)rc; /* the names were checked at start */
}

/* The simulation's sink: each completion record, in completion order. A full datagram
 * waits in the backlog until the end of the step, so that a step's datagrams leave back to
 * back and the agent takes them in one wake-up. */
static void s_sink(void *arg, const ww_request_t *r)
{
    s_out_t *o = arg;
    o->made++;
    if (!ww_reqlog_add(&o->batch, r)) {
        s_hold(o, o->batch.buf, o->batch.len, o->batch.count, false);
        int rc = ww_reqlog_begin(&o->batch, o->models, o->n_models);
        (void)rc;                          /* the names were checked at start */
        (void)ww_reqlog_add(&o->batch, r); /* an empty datagram has room for a record */
    }
}

static void s_out_destroy(s_out_t **o_p)
{
    s_out_t *o = *o_p;
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < o->n; i++) {
        free(o->held[(o->head + i) % WW_SIM_BACKLOG].data);
    }
    if (o->fd >= 0) {
        close(o->fd);
    }
    free(o);
    *o_p = NULL;
}

/* ---- the reading of an interval ---- */

/* What the steps since the previous tick add up to: a step's reading averages power,
 * utilisation, outlet temperature and tokens/s over the step, so the interval's are the
 * time-weighted means of its steps', and its completions the sum. */
typedef struct {
    double span_s, power, util, outlet, tokens;
    uint32_t completed;
} s_acc_t;

static void s_acc_add(s_acc_t *a, const ww_reading_t *r, int64_t span_ns)
{
    double s = (double)span_ns / WW_NS_PER_S;
    a->span_s += s;
    a->power += r->power_w * s;
    a->util += r->utilization * s;
    a->outlet += r->outlet_c * s;
    a->tokens += r->tokens_per_s * s;
    a->completed += r->requests_completed;
}

/* The tick's reading: the state at the tick (last), the interval's averages and count. */
static void s_acc_take(s_acc_t *a, const ww_reading_t *last, ww_reading_t *out)
{
    *out = *last;
    if (a->span_s > 0) {
        out->power_w = (float)(a->power / a->span_s);
        out->utilization = (float)(a->util / a->span_s);
        out->outlet_c = (float)(a->outlet / a->span_s);
        out->tokens_per_s = (float)(a->tokens / a->span_s);
    }
    out->requests_completed = a->completed;
    memset(a, 0, sizeof *a);
}

int main(int argc, char **argv)
{
    ww_cfg_schema_t schema = ww_agent_schema; /* the agent's table, under this program's name */
    schema.program = "waferwatch-sim";
    schema.summary = "the simulated wafer-scale inference system as its own process: sends its "
                     "readings and request records to the agent's request log (source.socket); "
                     "configured like waferwatch-agent (same file and WW_AGENT_* variables), it "
                     "uses sim.*, agent.interval, agent.run_for, agent.log_level, node.id and "
                     "source.socket";
    ww_agent_conf_t conf;
    memset(&conf, 0, sizeof conf);
    ww_cfg_err_t err = {{0}};
    int exit_code = 1;
    void *sim = NULL;
    s_out_t *out = NULL;
    const ww_source_t *src = &ww_sim_source;

    int action = ww_cfg_parse_args(&schema, &conf, argc, argv, &err);
    if (action < 0) {
        ww_cfg_err_print(&err, "waferwatch-sim", stderr);
        exit_code = 2;
        goto cleanup;
    }
    if (action == WW_CFG_HELP || action == WW_CFG_VERSION || action == WW_CFG_PRINT) {
        exit_code = 0;
        goto cleanup;
    }
    exit_code = 2; /* configuration errors from here to the check */
    if (ww_agent_conf_finish_sim(&conf, &err) < 0) {
        ww_cfg_err_print(&err, "waferwatch-sim", stderr);
        goto cleanup;
    }
    ww_log_level = conf.log_level; /* an enum row: one of ww_log_level_names */
    if (conf.sim_nodes != 1) {
        fprintf(stderr,
                "waferwatch-sim: sim.nodes: must be 1 (one simulated node per process and "
                "socket; run one waferwatch-sim per node), not %lld\n",
                (long long)conf.sim_nodes);
        goto cleanup;
    }
    char node[256];
    if (conf.node_id && *conf.node_id) {
        snprintf(node, sizeof node, "%s", conf.node_id);
    } else if (gethostname(node, sizeof node) != 0) {
        snprintf(node, sizeof node, "localhost");
    }
    node[sizeof node - 1] = '\0';

    int64_t interval = conf.interval_ns;
    int64_t first_tick = ww_time_next_tick(ww_time_now_ns(), interval);
    int rc = src->open(&conf.sim, 0, first_tick, &sim);
    if (rc < 0) {
        fprintf(stderr, "waferwatch-sim: sim: the simulator refused its settings: %s\n",
                strerror(-rc));
        goto cleanup;
    }
    out = calloc(1, sizeof *out);
    if (out == NULL) {
        fprintf(stderr, "waferwatch-sim: out of memory\n");
        exit_code = 1;
        goto cleanup;
    }
    out->fd = -1;
    out->path = conf.source_socket;
    while (out->n_models < WW_REQLOG_MAX_MODELS &&
           (out->models[out->n_models] = src->model_name(sim, out->n_models)) != NULL) {
        /* Each name alone first, so that the error names the one at fault. */
        if (ww_reqlog_begin(&out->batch, &out->models[out->n_models], 1) < 0) {
            fprintf(stderr,
                    "waferwatch-sim: sim.models[%u].name: \"%s\" cannot go on the request log: "
                    "1 to 47 printable ASCII characters without spaces\n",
                    out->n_models, out->models[out->n_models]);
            goto cleanup;
        }
        out->n_models++;
    }
    if (ww_reqlog_begin(&out->batch, out->models, out->n_models) < 0) {
        fprintf(stderr, "waferwatch-sim: sim.models: 1 to %d models with valid names\n",
                WW_REQLOG_MAX_MODELS);
        goto cleanup;
    }
    if (action == WW_CFG_CHECK) {
        printf("configuration ok: node %s, %u model(s), %g requests/s, reading every %lld ms, "
               "sending to %s\n",
               node, out->n_models, conf.sim.arrival_rate_rps, (long long)(interval / WW_NS_PER_MS),
               conf.source_socket);
        exit_code = 0;
        goto cleanup;
    }
    exit_code = 1;

    out->addr.sun_family = AF_UNIX;
    snprintf(out->addr.sun_path, sizeof out->addr.sun_path, "%s", conf.source_socket);
    out->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (out->fd < 0) {
        WW_ERROR("cannot create a Unix datagram socket: %s", strerror(errno));
        goto cleanup;
    }
    ww_signal_on_stop(&s_stop);
    src->set_sink(sim, s_sink, out);
    WW_INFO("node %s: simulating %u model(s) at %g requests/s (seed %llu), a reading every %lld "
            "ms and records every %lld ms to %s, first_tick=%lld",
            node, out->n_models, conf.sim.arrival_rate_rps, (unsigned long long)conf.sim.seed,
            (long long)(interval / WW_NS_PER_MS), (long long)(WW_SIM_STEP_NS / WW_NS_PER_MS),
            conf.source_socket, (long long)first_tick);

    int64_t stop_at = conf.run_for_ns > 0 ? first_tick + conf.run_for_ns : INT64_MAX;
    int64_t t = first_tick, next_tick = first_tick, last = first_tick;
    uint64_t steps = 0, skipped = 0;
    s_acc_t acc;
    memset(&acc, 0, sizeof acc);
    while (!s_stop && t < stop_at) {
        int64_t now = ww_time_now_ns();
        if (now < t) {
            ww_time_sleep_until(t); /* returns early on a signal: the loop checks s_stop */
            continue;
        }
        if (now - t > WW_SIM_MAX_CATCHUP_NS) {
            int64_t to = now - now % WW_SIM_STEP_NS;
            int64_t tick = ww_time_next_tick(to - 1, interval); /* first tick at or after `to` */
            uint64_t skip = (uint64_t)((tick - next_tick) / interval);
            WW_WARN("%.1f s behind schedule (suspended, or the clock jumped): simulating up to now "
                    "in one step; %llu reading(s) skipped",
                    (double)(now - t) / WW_NS_PER_S, (unsigned long long)skip);
            skipped += skip;
            next_tick = tick;
            t = to;
            if (t >= stop_at) {
                break;
            }
        }
        out->sent_this_step = 0;
        s_flush_backlog(out); /* what waits goes before anything newer */
        ww_reading_t r;
        rc = src->sample(sim, t, &r); /* records finished by t go to s_sink */
        if (rc < 0) {
            WW_ERROR("sampling the simulation at %lld failed: %s", (long long)t, strerror(-rc));
            goto cleanup;
        }
        s_acc_add(&acc, &r, t - last);
        last = t;
        s_flush_backlog(out); /* the step's full datagrams, then the rest */
        s_push_batch(out);
        if (t == next_tick) {
            ww_reading_t rd;
            s_acc_take(&acc, &r, &rd);
            uint8_t buf[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES];
            size_t len = ww_reqlog_reading(buf, t, &rd);
            s_push(out, buf, len, 0, true);
            WW_DEBUG("reading at %lld: %.0f W, utilisation %.2f, %u completed", (long long)t,
                     (double)rd.power_w, (double)rd.utilization, rd.requests_completed);
            next_tick += interval;
        }
        steps++;
        int64_t next_step = ww_time_next_tick(t, WW_SIM_STEP_NS);
        t = next_step < next_tick ? next_step : next_tick;
    }

    WW_INFO("stopping (%s): sending what is pending once",
            s_stop ? strsignal(s_stop) : "run_for reached");
    out->sent_this_step = 0;
    s_flush_backlog(out);
    s_push_batch(out);
    /* One machine-readable line for scripts and tests. Every record made is sent, dropped,
     * or left in the backlog: records = records_sent + dropped_records + backlog_records. */
    WW_INFO("stats: steps=%llu records=%llu datagrams_sent=%llu records_sent=%llu "
            "readings_sent=%llu skipped_readings=%llu dropped_datagrams=%llu "
            "dropped_records=%llu dropped_readings=%llu send_errors=%llu backlog=%zu "
            "backlog_records=%llu",
            (unsigned long long)steps, (unsigned long long)out->made, (unsigned long long)out->sent,
            (unsigned long long)out->sent_records, (unsigned long long)out->sent_readings,
            (unsigned long long)skipped, (unsigned long long)out->dropped,
            (unsigned long long)out->dropped_records, (unsigned long long)out->dropped_readings,
            (unsigned long long)out->failed, out->n, (unsigned long long)out->held_records);
    if (out->n > 0) {
        WW_WARN("%zu datagrams (%llu records) the agent did not take are lost", out->n,
                (unsigned long long)out->held_records);
    }
    exit_code = 0;

cleanup:
    s_out_destroy(&out);
    src->close(&sim);
    ww_cfg_free(&schema, &conf);
    return exit_code;
}
