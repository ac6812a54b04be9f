/* ww_sim: the simulated wafer-scale inference system (see ww_sim.h for the model).
 *
 * How it runs. The simulation is event-driven: between two events (an arrival candidate,
 * a prefill that ends, a request that emits its last token, a queue timeout, a burst that
 * starts or ends, a pump fault boundary, a thermal tick, or the sample time) every rate is
 * constant, so the state is integrated exactly over the gap and the next event is handled.
 * Cost therefore scales with the number of requests, not with the length of the gap: an
 * idle hour is a few thousand arrival candidates, not 360,000 fixed steps.
 *
 * Decode uses a shared virtual clock V (processor sharing, as in fair-queueing schedulers):
 * every decoding request advances at the same relative speed
 *     dV/dt = throttle / (1 + batch_slowdown * (running - 1)),
 * and request i emits tokens at decode_tps(model_i) * dV/dt. A request that must still emit
 * n tokens when it starts decoding at V0 finishes when V = V0 + n / decode_tps, so a change
 * of batch size or throttle costs nothing per request.
 *
 * Running requests live in slots of a slab and have a position in the running order (an
 * array of slots where removal moves the last one into the hole); two monotone priority
 * queues of slots (ww_mpq, radix heaps: a key pushed is never below the last one taken)
 * hold the requests in prefill by prefill end and the decoding ones by V at their end,
 * sharing one entry per slot (a request waits in one of them at a time). The next event
 * and the requests due at it come from the queues' minima, so an event costs O(1)
 * amortised rather than a pass over every running request (a node serving thousands of
 * requests at once would otherwise spend its time scanning).
 * Requests due at the same event are handled in running order, as a pass over the array
 * would, so the records come out in the same order. The sum of decode_tps over decoding
 * requests comes from per-model counts: exactly the sum of a pass whenever the rates are
 * whole tokens per second (an exact double sum), as the defaults are.
 *
 * The throttle factor is re-evaluated on a fixed 50 ms grid of thermal ticks (the wafer's
 * time constant is tens of seconds, so 50 ms is smooth), but only while the hotspot is at or
 * heading over the throttle point; below it the factor is 1 and ticks are skipped, which
 * does not change the result because exponential relaxation toward a target below the
 * threshold can never cross it.
 *
 * Randomness comes from four private xoshiro256** streams per instance (arrivals, request
 * attributes, bursts, sensor noise), seeded with splitmix64 from the seed and the node
 * index, so the arrival process does not shift when, say, the sample cadence changes the
 * noise draws. No global state, no clock reads.
 *
 * Records. Every request that ends yields one ww_request_t, in completion order: OK (all
 * its tokens), ERROR (it fails after a uniformly chosen number of its tokens; with none,
 * part-way through its prefill, and then first_token_ns = done_ns), TIMEOUT (queued for
 * timeout_s; start_ns = first_token_ns = done_ns = the timeout time) or REJECTED (queue full
 * on arrival; all four times are the arrival). A reading's requests_completed counts every
 * record made since the previous sample, whatever its status, so the sum of the readings'
 * counts equals the records delivered. With a sink (set_sink, what the agent uses) each
 * record goes to it the moment it is made and nothing is kept. Without one, records wait,
 * packed as time differences (22 bytes instead of a 48-byte ww_request_t: a node at 5,000
 * requests/s buffers a second of them between samples), in a buffer that grows to hold
 * SIM_REC_MAX; a caller that never drains it loses the oldest (counted in rec_dropped),
 * never memory.
 */
#include "ww_sim.h"
#include "ww_mpq.h"
#include "ww_sim_defaults.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    SIM_PREFILL = 0,
    SIM_DECODE = 1,
};

enum {
    SIM_MAX_PROMPT = 32768,        /* longest prompt we generate (Llama 3.1 serves 128k, but
                                      interactive traffic rarely exceeds 32k) */
    SIM_MAX_OUTPUT = 8192,         /* longest completion we generate */
    SIM_MAX_CONCURRENCY = 1048576, /* sanity bounds on the configured sizes; the arrays */
    SIM_MAX_QUEUE = 100000000,     /* grow on demand, so a large bound costs nothing */
    SIM_RUN_INITIAL = 64,          /* initial sizes of the running array and the queue */
    SIM_QUEUE_INITIAL = 256,
    SIM_REC_INITIAL = 4096, /* bytes of packed records before the first growth */
    SIM_REC_MAX = 131072,   /* ~1 h of records at 36 req/s, ~3 MiB packed */
    SIM_REC_BYTES_MAX = 38, /* longest packed record */
};

/* No slot: the end of the free list, in a request's 21-bit pos. */
#define SIM_NO_SLOT 0x1FFFFFu
_Static_assert(SIM_MAX_CONCURRENCY < SIM_NO_SLOT && WW_SIM_MAX_MODELS <= 256,
               "a request's pos holds any slot or position, and its model field any model");
_Static_assert(SIM_MAX_PROMPT <= UINT16_MAX && SIM_MAX_OUTPUT <= UINT16_MAX &&
                   WW_SIM_MAX_MODELS <= 1024,
               "a packed record holds 16-bit token counts and a 10-bit model index");

/* Thermal tick: how often the throttle factor follows the hotspot. */
static const double s_tick_s = 0.05;
/* A request in prefill keeps this many decode slots' worth of the wafer busy: prefill is
 * compute-bound (about 2 x parameters FLOPs per prompt token, thousands of tokens per
 * second) while decode is bound by memory and fabric bandwidth, one token at a time. */
static const double s_prefill_load = 4.0;
/* Volumetric heat capacity of water, rho * c = 1.0 kg/L * 4.18 kJ/(kg K) = 4180 J/(L K). */
static const double s_rho_c_j_per_l_k = 4180.0;
/* Dynamic power rises slightly faster than linearly at low load (clock and fabric wake up
 * before the cores are full): P = idle + (max - idle) * u^0.9 * throttle. */
static const double s_power_exp = 0.9;
/* Peak-to-peak sensor noise is 2 * this (a 0.1 °C class RTD/thermistor reading). */
static const double s_temp_noise_c = 0.05;
static const double s_two_pi = 6.283185307179586;
/* Intake air humidity (ww_sim.h): the hall's setpoint is drawn from
 * [s_rh_setpoint_lo, s_rh_setpoint_lo + s_rh_setpoint_span] %, it drifts by two slow waves
 * (amplitudes s_rh_drift_a/b %, periods s_rh_drift_a_s/b_s), each node reads a fixed offset
 * of up to +-s_rh_node_offset % (placement in the hall, sensor calibration) plus up to
 * +-s_rh_noise % of noise per sample (a +-2 % RH class sensor resolves ~0.1 %). */
static const double s_rh_setpoint_lo = 40.0;
static const double s_rh_setpoint_span = 5.0;
static const double s_rh_drift_a = 1.5;
static const double s_rh_drift_a_s = 6.0 * 3600.0;
static const double s_rh_drift_b = 0.5;
static const double s_rh_drift_b_s = 47.0 * 60.0;
static const double s_rh_node_offset = 0.8;
static const double s_rh_noise = 0.15;

typedef struct {
    uint64_t s[4];
} sim_rng_t;

/* A request from arrival until it ends (32 bytes: thousands may be running at once). */
typedef struct {
    double arrival_t; /* seconds since the source's start_ns */
    double start_t;
    union {
        double fail_frac; /* until it starts: where in the prefill an in-prefill failure
                             happens (0..1) */
        double first_t;   /* once decoding: its first token */
    } u;
    uint16_t prompt; /* <= SIM_MAX_PROMPT */
    uint16_t n_out;  /* tokens it emits before it ends (fewer than planned if it fails) */
    /* running: its position in the running order; free: the next free slot (SIM_NO_SLOT
     * ends the list) */
    uint32_t pos : 21;
    uint32_t model : 8;
    uint32_t phase : 1;
    uint32_t fails : 1;
} sim_req_t;

/* What the event loop needs of the physics for a busy level, throttle and flow. */
typedef struct {
    double busy, throttle, flow; /* the inputs (busy -1: an empty cache entry) */
    double u;                    /* utilisation */
    double p;                    /* power, W */
    double rise;                 /* coolant outlet - inlet, C */
    double target;               /* hotspot the wafer relaxes toward, C */
} sim_phys_t;

typedef struct {
    ww_sim_conf_t conf; /* private copy; conf.models points at models[] */
    ww_sim_model_t models[WW_SIM_MAX_MODELS];
    double cum_weight[WW_SIM_MAX_MODELS];
    unsigned node;
    int64_t start_ns;
    int64_t last_ns;     /* last sampled time */
    double day_offset_h; /* UTC hour of day at start_ns */

    sim_rng_t rng_arr, rng_req, rng_burst, rng_noise;

    double t; /* simulated time, seconds since start_ns */
    double v; /* virtual decode clock */

    /* arrivals: thinning of a Poisson process at the peak rate (Lewis and Shedler) */
    double lambda_max;
    double lambda_floor; /* no lower than s_lambda() can return in this burst state */
    double next_cand;
    bool burst;
    double burst_toggle; /* next burst start, or end of the current burst */
    double burst_rate;   /* bursts started per second, Poisson */

    /* pump fault window for this node */
    bool fault_hit;
    double fault_t0, fault_t1;

    /* thermal state */
    double hot_c;
    double throttle;

    /* intake humidity: the hall's setpoint and drift phases (from the seed alone), this
     * node's offset (from the seed and the node) */
    double rh_setpoint, rh_phase_a, rh_phase_b, rh_node_offset;

    /* running requests; every array below has run_cap entries, grown up to max_concurrency */
    sim_req_t *slab;     /* the requests, by slot */
    uint32_t *order;     /* slot at each position of the running order, n_run of them */
    uint32_t free_slot;  /* a freed slot (the list runs through their pos), or SIM_NO_SLOT */
    uint32_t fresh_slot; /* slots from here on were never used */
    size_t run_cap;
    size_t n_run;
    size_t n_prefill;
    ww_mpq_t pf_q;        /* requests in prefill, by prefill end */
    ww_mpq_t dec_q;       /* decoding requests, by V at their end */
    ww_mpq_node_t *qnode; /* both queues' entries, one per slot */
    uint32_t *due;        /* positions due at the current event */
    /* decoding requests per model; with whole_rates (every decode_tps a whole number below
     * 2^31) also the sum of their decode_tps */
    uint32_t n_dec_model[WW_SIM_MAX_MODELS];
    bool whole_rates;
    double sum_dtps;

    sim_req_t *queue; /* FIFO ring of q_cap entries, grown up to max_queue */
    size_t q_cap, q_head, q_len;

    /* finished requests waiting for poll_requests: rec_len records encoded in bytes
     * [rec_rd, rec_wr) of rec; done_ns is a delta from the record before, so the reader and
     * the writer each keep the done_ns they saw last */
    uint8_t *rec;
    size_t rec_cap, rec_rd, rec_wr, rec_len;
    int64_t rec_rd_done, rec_wr_done;
    uint64_t rec_dropped; /* oldest records dropped because nobody drained them */
    ww_req_sink_fn sink;  /* set: records go straight to it, the buffer stays empty */
    void *sink_arg;
    /* power and coolant figures for recent (busy level, throttle, flow): see s_phys */
    sim_phys_t phys[64];

    /* accumulators over the current sample interval */
    double acc_t0;
    double acc_energy_j;
    double acc_util_s;
    double acc_tokens;
    double acc_rise_cs; /* integral of (outlet - inlet) dt */
    uint32_t acc_done;
} sim_t;

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw (Blackman and Vigna) ---- */

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void s_rng_seed(sim_rng_t *r, uint64_t seed, unsigned node, uint64_t stream)
{
    uint64_t x = seed;
    /* Mix node and stream through splitmix so that neighbouring seeds, nodes and streams
     * give unrelated sequences. */
    x ^= s_splitmix64(&(uint64_t){(uint64_t)node * 0x100000001b3ULL + 1});
    x ^= s_splitmix64(&(uint64_t){stream * 0xd6e8feb86659fd93ULL + 7});
    for (int i = 0; i < 4; i++) {
        r->s[i] = s_splitmix64(&x);
    }
}

/* A number in [0, 1) that depends only on (seed, a, b): the humidity model draws from it
 * instead of the node's streams, so that the other readings stay what they were. */
static double s_hash01(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed ^ 0x68756d6964697479ULL; /* "humidity" */
    x ^= s_splitmix64(&(uint64_t){a * 0x100000001b3ULL + 3});
    x ^= s_splitmix64(&(uint64_t){b * 0xd6e8feb86659fd93ULL + 5});
    return (double)(s_splitmix64(&x) >> 11) * 0x1.0p-53;
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_rng_next(sim_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double s_uniform(sim_rng_t *r)
{
    return (double)(s_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Exponential with the given rate (> 0): inverse CDF, -ln(1 - U) / rate. */
static double s_exponential(sim_rng_t *r, double rate)
{
    return -log1p(-s_uniform(r)) / rate;
}

/* Two independent standard normals, Marsaglia's polar method: a point drawn uniformly in
 * the unit disc (about 1.27 tries) gives both with one log and one sqrt, no cos or sin. */
static void s_normal_pair(sim_rng_t *r, double *z1, double *z2)
{
    double x, y, s;
    do {
        x = 2.0 * s_uniform(r) - 1.0;
        y = 2.0 * s_uniform(r) - 1.0;
        s = x * x + y * y;
    } while (!(s < 1.0 && s > 0.0));
    double f = sqrt(-2.0 * log(s) / s);
    *z1 = x * f;
    *z2 = y * f;
}

/* llround(x), without the call for |x| < 2^62 (every time and length here): rounds half
 * away from zero. x - trunc(x) is exact, so is the comparison with one half. */
static int64_t s_llround(double x)
{
    if (!(x > -0x1p62 && x < 0x1p62)) {
        return (int64_t)llround(x);
    }
    int64_t i = (int64_t)x;
    double f = x - (double)i;
    if (f >= 0.5) {
        i++;
    } else if (f <= -0.5) {
        i--;
    }
    return i;
}

/* Lognormal length with the given median and sigma (z a standard normal), clamped to
 * [1, max]. */
static uint32_t s_length(double z, double median, double sigma, uint32_t max)
{
    double x = median * exp(sigma * z);
    if (!(x >= 1.0)) {
        return 1;
    }
    if (x >= (double)max) {
        return max;
    }
    return (uint32_t)s_llround(x);
}

/* ---- configuration ---- */

static bool s_finite_ge(double x, double lo)
{
    return isfinite(x) && x >= lo;
}

static bool s_finite_gt(double x, double lo)
{
    return isfinite(x) && x > lo;
}

static int s_validate(const ww_sim_conf_t *c)
{
    if (c->n_models < 1 || c->n_models > WW_SIM_MAX_MODELS || c->models == NULL) {
        return -EINVAL;
    }
    double wsum = 0.0;
    for (size_t i = 0; i < c->n_models; i++) {
        const ww_sim_model_t *m = &c->models[i];
        if (m->name == NULL || m->name[0] == '\0' || !s_finite_ge(m->weight, 0.0) ||
            !s_finite_gt(m->prefill_tps, 0.0) || !s_finite_gt(m->decode_tps, 0.0) ||
            !s_finite_gt(m->prompt_tokens_median, 0.0) ||
            !s_finite_ge(m->prompt_tokens_sigma, 0.0) ||
            !s_finite_gt(m->output_tokens_median, 0.0) ||
            !s_finite_ge(m->output_tokens_sigma, 0.0)) {
            return -EINVAL;
        }
        wsum += m->weight;
    }
    if (!(wsum > 0.0) || !isfinite(wsum)) {
        return -EINVAL;
    }
    /* A zero arrival rate is allowed: an idle node (and the idle half of a test). */
    if (!s_finite_ge(c->arrival_rate_rps, 0.0) || !s_finite_ge(c->diurnal_amplitude, 0.0) ||
        c->diurnal_amplitude > 1.0 || !s_finite_ge(c->burst_prob_per_s, 0.0) ||
        c->burst_prob_per_s > 1.0 || !s_finite_gt(c->burst_factor, 0.0) ||
        !s_finite_ge(c->burst_duration_s, 0.0)) {
        return -EINVAL;
    }
    if (c->max_concurrency < 1 || c->max_concurrency > SIM_MAX_CONCURRENCY || c->max_queue < 0 ||
        c->max_queue > SIM_MAX_QUEUE || !s_finite_ge(c->batch_slowdown, 0.0) ||
        !s_finite_gt(c->timeout_s, 0.0) || !s_finite_ge(c->error_prob, 0.0) ||
        c->error_prob > 1.0) {
        return -EINVAL;
    }
    if (!s_finite_ge(c->idle_w, 0.0) || !isfinite(c->max_w) || !(c->max_w > c->idle_w)) {
        return -EINVAL;
    }
    if (!isfinite(c->inlet_c) || !s_finite_gt(c->flow_lpm, 0.0) ||
        !s_finite_ge(c->r_th_c_per_kw, 0.0) || !s_finite_gt(c->tau_s, 0.0) ||
        !isfinite(c->throttle_c) || !s_finite_ge(c->throttle_slope, 0.0) ||
        !s_finite_gt(c->min_throttle, 0.0) || c->min_throttle > 1.0) {
        return -EINVAL;
    }
    if (c->pump_fault) {
        if (!s_finite_ge(c->pump_fault_start_s, 0.0) ||
            !s_finite_ge(c->pump_fault_duration_s, 0.0) ||
            !s_finite_gt(c->pump_fault_flow_factor, 0.0) || c->pump_fault_every < 1) {
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- physics ---- */

/* Decode slots' worth of busy compute: a whole number (exact in a double). */
static double s_busy(const sim_t *st)
{
    double n_dec = (double)(st->n_run - st->n_prefill);
    return n_dec + s_prefill_load * (double)st->n_prefill;
}

/* Share of the wafer's compute that is busy, in [0, 1]. */
static double s_util(const sim_t *st)
{
    double busy = s_busy(st) / (double)st->conf.max_concurrency;
    return busy < 1.0 ? busy : 1.0;
}

/* Electrical power for utilisation u: idle power is drawn regardless (SRAM leakage, power
 * conversion, pumps and fans); the dynamic part follows the work done, so throttling, which
 * slows the clock, removes its share of the dynamic power. */
static double s_power(const sim_t *st, double u)
{
    const ww_sim_conf_t *c = &st->conf;
    return c->idle_w + (c->max_w - c->idle_w) * pow(u, s_power_exp) * st->throttle;
}

static bool s_fault_active(const sim_t *st, double t)
{
    return st->fault_hit && t >= st->fault_t0 && t < st->fault_t1;
}

/* Coolant flow in L/min at time t. */
static double s_flow_lpm(const sim_t *st, double t)
{
    double f = st->conf.flow_lpm;
    return s_fault_active(st, t) ? f * st->conf.pump_fault_flow_factor : f;
}

/* Coolant temperature rise across the system: energy balance P = rho c Q dT, Q in L/s. */
static double s_rise_c(double power_w, double flow_lpm)
{
    return power_w / (s_rho_c_j_per_l_k * (flow_lpm / 60.0));
}

/* Steady-state hotspot for power P: the outlet water temperature plus the conduction and
 * convection drop from the hottest point of the wafer to the water, P * R_th. */
static double s_hot_target_of(const sim_t *st, double power_w, double rise_c)
{
    return st->conf.inlet_c + rise_c + power_w / 1000.0 * st->conf.r_th_c_per_kw;
}

static double s_hot_target(const sim_t *st, double power_w, double flow_lpm)
{
    return s_hot_target_of(st, power_w, s_rise_c(power_w, flow_lpm));
}

/* Utilisation, power, coolant rise and hotspot target at st->t, remembered for recent busy
 * levels: every event needs them, the level moves by a few slots at a time, and throttle
 * and flow change rarely. They are pure functions of the three inputs, so remembering them
 * changes no result. */
static const sim_phys_t *s_phys(sim_t *st)
{
    double busy = s_busy(st);
    double flow = s_flow_lpm(st, st->t);
    sim_phys_t *ph = &st->phys[(uint64_t)busy & 63u];
    if (ph->busy != busy || ph->throttle != st->throttle || ph->flow != flow) {
        ph->busy = busy;
        ph->throttle = st->throttle;
        ph->flow = flow;
        ph->u = s_util(st);
        ph->p = s_power(st, ph->u);
        ph->rise = s_rise_c(ph->p, flow);
        ph->target = s_hot_target_of(st, ph->p, ph->rise);
    }
    return ph;
}

static double s_throttle_at(const sim_t *st, double hot_c)
{
    const ww_sim_conf_t *c = &st->conf;
    if (!(hot_c > c->throttle_c)) {
        return 1.0;
    }
    double f = 1.0 - c->throttle_slope * (hot_c - c->throttle_c);
    return f > c->min_throttle ? f : c->min_throttle;
}

/* Arrival rate at time t: mean rate, diurnal sinusoid peaking at 15:00 UTC, burst factor. */
static double s_lambda(const sim_t *st, double t)
{
    const ww_sim_conf_t *c = &st->conf;
    double h = fmod(st->day_offset_h + t / 3600.0, 24.0);
    double lambda =
        c->arrival_rate_rps * (1.0 + c->diurnal_amplitude * cos(s_two_pi * (h - 15.0) / 24.0));
    if (st->burst) {
        lambda *= c->burst_factor;
    }
    return lambda > 0.0 ? lambda : 0.0;
}

/* ---- request bookkeeping ---- */

static int64_t s_to_ns(const sim_t *st, double t, int64_t cap_ns)
{
    int64_t ns = st->start_ns + s_llround(t * 1e9);
    return ns < cap_ns ? ns : cap_ns;
}

/* ---- completion records, packed ----
 *
 * One record: u16 head = model << 6 | status << 4 | wide (bit k: field k below takes 8
 * bytes, not 4), u16 prompt tokens, u16 output tokens, then four time differences in ns,
 * modulo 2^64 so any values round-trip: done - the previous record's done, done - first
 * token, first token - start, start - arrival; each 4 bytes when below 2^32 (nearly
 * always), else 8. Token counts above 65535 (never made: SIM_MAX_PROMPT) would not fit. */

/* Writes hi - lo as field k. */
static size_t s_put_diff(uint8_t *p, int64_t hi, int64_t lo, unsigned k, uint16_t *head)
{
    uint64_t d = (uint64_t)hi - (uint64_t)lo;
    if (d <= UINT32_MAX) {
        uint32_t d32 = (uint32_t)d;
        memcpy(p, &d32, 4);
        return 4;
    }
    memcpy(p, &d, 8);
    *head |= (uint16_t)(1u << k);
    return 8;
}

/* Reads field k, a difference d, and returns base + sign * d. */
static int64_t s_get_diff(const uint8_t **p, int64_t base, int sign, unsigned k, uint16_t head)
{
    uint64_t d;
    if (head & (1u << k)) {
        memcpy(&d, *p, 8);
        *p += 8;
    } else {
        uint32_t d32;
        memcpy(&d32, *p, 4);
        *p += 4;
        d = d32;
    }
    return (int64_t)(sign > 0 ? (uint64_t)base + d : (uint64_t)base - d);
}

/* Decodes the record at rec_rd into *o (when o is not NULL) and consumes it. */
static void s_rec_take(sim_t *st, ww_request_t *o)
{
    const uint8_t *p = st->rec + st->rec_rd;
    uint16_t head, prompt, out;
    memcpy(&head, p, 2);
    memcpy(&prompt, p + 2, 2);
    memcpy(&out, p + 4, 2);
    p += 6;
    int64_t done = s_get_diff(&p, st->rec_rd_done, 1, 0, head);
    int64_t first = s_get_diff(&p, done, -1, 1, head);
    int64_t start = s_get_diff(&p, first, -1, 2, head);
    int64_t arrival = s_get_diff(&p, start, -1, 3, head);
    if (o != NULL) {
        memset(o, 0, sizeof(*o));
        o->model = (uint16_t)(head >> 6);
        o->status = (ww_req_status_t)((head >> 4) & 3u);
        o->arrival_ns = arrival;
        o->start_ns = start;
        o->first_token_ns = first;
        o->done_ns = done;
        o->prompt_tokens = prompt;
        o->output_tokens = out;
    }
    st->rec_rd_done = done;
    st->rec_rd = (size_t)(p - st->rec);
    if (--st->rec_len == 0) {
        st->rec_rd = st->rec_wr = 0; /* drained: reuse the start of the buffer */
    }
}

/* Makes room for one more encoded record at rec_wr. The buffer holds at most SIM_REC_MAX
 * records and grows (doubling) to fit them; past that (an agent that stopped draining), or
 * if it cannot grow, the oldest records are dropped and counted in rec_dropped, so memory
 * stays bounded and the newest history survives. */
static void s_rec_room(sim_t *st)
{
    if (st->rec_len == SIM_REC_MAX) {
        s_rec_take(st, NULL);
        st->rec_dropped++;
    }
    while (st->rec_cap - st->rec_wr < SIM_REC_BYTES_MAX) {
        if (st->rec_rd > 0) {
            memmove(st->rec, st->rec + st->rec_rd, st->rec_wr - st->rec_rd);
            st->rec_wr -= st->rec_rd;
            st->rec_rd = 0;
            continue;
        }
        size_t ncap = st->rec_cap > 0 ? st->rec_cap * 2 : SIM_REC_INITIAL;
        uint8_t *n = realloc(st->rec, ncap);
        if (n != NULL) {
            st->rec = n;
            st->rec_cap = ncap;
            continue;
        }
        s_rec_take(st, NULL); /* out of memory: drop the oldest instead */
        st->rec_dropped++;
    }
}

/* Appends a finished request to the records waiting for poll_requests. */
static void s_emit(sim_t *st, const sim_req_t *r, ww_req_status_t status, double first_t,
                   double done_t, uint32_t out_tokens, int64_t cap_ns)
{
    int64_t arrival = s_to_ns(st, r->arrival_t, cap_ns);
    int64_t start = s_to_ns(st, r->start_t, cap_ns);
    int64_t first = s_to_ns(st, first_t, cap_ns);
    int64_t done = s_to_ns(st, done_t, cap_ns);
    st->acc_done++;
    if (st->sink != NULL) {
        ww_request_t o = {
            .model = r->model,
            .status = status,
            .arrival_ns = arrival,
            .start_ns = start,
            .first_token_ns = first,
            .done_ns = done,
            .prompt_tokens = r->prompt,
            .output_tokens = out_tokens,
        };
        st->sink(st->sink_arg, &o);
        return;
    }
    s_rec_room(st);
    uint8_t *p = st->rec + st->rec_wr;
    uint16_t head = (uint16_t)((unsigned)r->model << 6 | (unsigned)status << 4);
    uint16_t prompt = (uint16_t)r->prompt, out = (uint16_t)out_tokens;
    size_t n = 6;
    n += s_put_diff(p + n, done, st->rec_wr_done, 0, &head);
    n += s_put_diff(p + n, done, first, 1, &head);
    n += s_put_diff(p + n, first, start, 2, &head);
    n += s_put_diff(p + n, start, arrival, 3, &head);
    memcpy(p, &head, 2);
    memcpy(p + 2, &prompt, 2);
    memcpy(p + 4, &out, 2);
    st->rec_wr += n;
    st->rec_wr_done = done;
    st->rec_len++;
}

/* ---- the running set: a slab, the running order and two event queues ---- */

/* Grows the slab, the running order, the queues' slot array and the due list to ncap
 * entries. New queue entries are set when their slot is first used (s_start), so slots
 * never reached cost no memory. */
static bool s_run_grow(sim_t *st, size_t ncap)
{
    /* Each array that grows is kept: one merely larger than run_cap does no harm. */
    uint32_t *order = realloc(st->order, ncap * sizeof(*order));
    if (order == NULL) {
        return false;
    }
    st->order = order;
    /* The due list holds nothing between events: a fresh array, not a copy (realloc would
     * touch, so make resident, what a few entries per event never do). */
    uint32_t *due = malloc(ncap * sizeof(*due));
    if (due == NULL) {
        return false;
    }
    free(st->due);
    st->due = due;
    ww_mpq_node_t *qnode = realloc(st->qnode, ncap * sizeof(*qnode));
    if (qnode == NULL) {
        return false;
    }
    st->qnode = qnode;
    ww_mpq_use(&st->pf_q, qnode, ncap);
    ww_mpq_use(&st->dec_q, qnode, ncap);
    sim_req_t *slab = realloc(st->slab, ncap * sizeof(*slab));
    if (slab == NULL) {
        return false;
    }
    st->slab = slab;
    st->run_cap = ncap;
    return true;
}

/* Admits r into the running batch at time st->t and starts its prefill. The caller has
 * checked n_run < max_concurrency. Returns false only if the running set could not grow
 * (out of memory): the caller then keeps the request queued or rejects it. */
static bool s_start(sim_t *st, sim_req_t r)
{
    if (st->n_run == st->run_cap) {
        size_t ncap = st->run_cap * 2;
        if (ncap > (size_t)st->conf.max_concurrency) {
            ncap = (size_t)st->conf.max_concurrency;
        }
        if (!s_run_grow(st, ncap)) {
            return false;
        }
    }
    const ww_sim_model_t *m = &st->models[r.model];
    r.start_t = st->t;
    r.phase = SIM_PREFILL;
    double pf = (double)r.prompt / m->prefill_tps;
    if (r.fails && r.n_out == 0) {
        pf *= r.u.fail_frac;
    }
    /* A freed slot first (most recently used, likely cached), else a fresh one. */
    uint32_t slot = st->free_slot;
    if (slot != SIM_NO_SLOT) {
        st->free_slot = st->slab[slot].pos;
    } else {
        slot = st->fresh_slot++;
        st->qnode[slot] = (ww_mpq_node_t){WW_MPQ_FREE, WW_MPQ_NONE};
    }
    r.pos = (uint32_t)st->n_run;
    st->slab[slot] = r;
    st->order[st->n_run++] = slot;
    st->n_prefill++;
    ww_mpq_push(&st->pf_q, st->t + pf, slot);
    return true;
}

/* Makes room for one more queued request if max_queue allows it; false when the queue is
 * at max_queue (or, never fatally, when memory runs out: the arrival is then rejected). */
static bool s_queue_room(sim_t *st)
{
    if (st->q_len < st->q_cap) {
        return true;
    }
    if (st->q_cap >= (size_t)st->conf.max_queue) {
        return false;
    }
    size_t ncap = st->q_cap * 2;
    if (ncap > (size_t)st->conf.max_queue) {
        ncap = (size_t)st->conf.max_queue;
    }
    sim_req_t *n = malloc(ncap * sizeof(*n));
    if (n == NULL) {
        return false;
    }
    for (size_t i = 0; i < st->q_len; i++) {
        n[i] = st->queue[(st->q_head + i) % st->q_cap];
    }
    free(st->queue);
    st->queue = n;
    st->q_cap = ncap;
    st->q_head = 0;
    return true;
}

/* Removes the request at position i (already out of the queues) and frees its slot: the
 * last one in the running order moves into its place. Returns the position the moved
 * request came from (i when none moved). */
static size_t s_remove_running(sim_t *st, size_t i)
{
    uint32_t slot = st->order[i];
    const sim_req_t *r = &st->slab[slot];
    if (r->phase == SIM_PREFILL) {
        st->n_prefill--;
    } else {
        st->n_dec_model[r->model]--;
        st->sum_dtps -= st->models[r->model].decode_tps;
    }
    size_t last = --st->n_run;
    if (i != last) {
        st->order[i] = st->order[last];
        st->slab[st->order[i]].pos = (uint32_t)i;
    }
    st->slab[slot].pos = st->free_slot;
    st->free_slot = slot;
    return last;
}

static int s_pos_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Ends prefills and decodes that are due at st->t: in running order, and a request moved
 * into a hole is looked at next, exactly as one pass over the running order would. */
static void s_finish_running(sim_t *st, int64_t cap_ns)
{
    size_t nd = 0;
    while (ww_mpq_min(&st->pf_q) <= st->t) {
        st->due[nd++] = st->slab[ww_mpq_pop(&st->pf_q)].pos;
    }
    while (ww_mpq_min(&st->dec_q) <= st->v) {
        st->due[nd++] = st->slab[ww_mpq_pop(&st->dec_q)].pos;
    }
    if (nd > 1) {
        qsort(st->due, nd, sizeof(*st->due), s_pos_cmp);
    }
    size_t f = 0, b = nd;
    while (f < b) {
        size_t i = st->due[f];
        uint32_t slot = st->order[i];
        sim_req_t *r = &st->slab[slot];
        if (r->phase == SIM_PREFILL) {
            if (r->n_out == 0) {
                /* Failed before its first token. */
                s_emit(st, r, WW_REQ_ERROR, st->t, st->t, 0, cap_ns);
            } else {
                /* Prefill produces the first token. */
                r->u.first_t = st->t;
                st->acc_tokens += 1.0;
                r->phase = SIM_DECODE;
                st->n_prefill--;
                st->n_dec_model[r->model]++;
                st->sum_dtps += st->models[r->model].decode_tps;
                double v_end = st->v + (double)(r->n_out - 1) / st->models[r->model].decode_tps;
                if (!(v_end <= st->v)) {
                    ww_mpq_push(&st->dec_q, v_end, slot);
                    f++;
                    continue;
                }
                s_emit(st, r, r->fails ? WW_REQ_ERROR : WW_REQ_OK, r->u.first_t, st->t, r->n_out,
                       cap_ns);
            }
        } else {
            s_emit(st, r, r->fails ? WW_REQ_ERROR : WW_REQ_OK, r->u.first_t, st->t, r->n_out,
                   cap_ns);
        }
        size_t moved_from = s_remove_running(st, i);
        if (moved_from != i && b > f + 1 && st->due[b - 1] == moved_from) {
            b--; /* the request now at i is due too: it is next */
        } else {
            f++;
        }
    }
}

/* Times out queued requests that have waited timeout_s. The queue is FIFO by arrival, so
 * the head always has the earliest deadline. */
static void s_expire_queue(sim_t *st, int64_t cap_ns)
{
    while (st->q_len > 0) {
        sim_req_t *r = &st->queue[st->q_head];
        if (r->arrival_t + st->conf.timeout_s > st->t) {
            break;
        }
        r->start_t = st->t;
        s_emit(st, r, WW_REQ_TIMEOUT, st->t, st->t, 0, cap_ns);
        st->q_head = (st->q_head + 1) % st->q_cap;
        st->q_len--;
    }
}

static void s_admit_queued(sim_t *st)
{
    while (st->q_len > 0 && st->n_run < (size_t)st->conf.max_concurrency) {
        if (!s_start(st, st->queue[st->q_head])) {
            break; /* out of memory: it stays queued and may time out */
        }
        st->q_head = (st->q_head + 1) % st->q_cap;
        st->q_len--;
    }
}

/* A new request arrives at st->t: draw its attributes, then run, queue or reject it. */
static void s_arrive(sim_t *st, int64_t cap_ns)
{
    const ww_sim_conf_t *c = &st->conf;
    sim_rng_t *g = &st->rng_req;
    sim_req_t r;
    memset(&r, 0, sizeof(r));
    r.arrival_t = st->t;

    double pick = s_uniform(g) * st->cum_weight[c->n_models - 1];
    size_t mi = 0;
    while (mi + 1 < c->n_models && pick >= st->cum_weight[mi]) {
        mi++;
    }
    const ww_sim_model_t *m = &st->models[mi];
    r.model = (uint16_t)mi;
    double z_prompt, z_out;
    s_normal_pair(g, &z_prompt, &z_out);
    r.prompt = (uint16_t)s_length(z_prompt, m->prompt_tokens_median, m->prompt_tokens_sigma,
                                  SIM_MAX_PROMPT);
    r.n_out =
        (uint16_t)s_length(z_out, m->output_tokens_median, m->output_tokens_sigma, SIM_MAX_OUTPUT);
    /* Always draw the failure variates, so one request's fate never shifts the stream. */
    double fail_u = s_uniform(g);
    double fail_k = s_uniform(g);
    r.u.fail_frac = s_uniform(g);
    if (fail_u < c->error_prob) {
        /* It fails after emitting k of its tokens, k uniform in [0, n_out); k = 0 means it
         * fails during prefill, at fail_frac of the way through. */
        r.fails = 1;
        uint32_t k = (uint32_t)(fail_k * (double)r.n_out);
        r.n_out = (uint16_t)(k < r.n_out ? k : r.n_out - 1u);
    }

    if (st->q_len == 0 && st->n_run < (size_t)c->max_concurrency && s_start(st, r)) {
        return;
    }
    if (s_queue_room(st)) {
        st->queue[(st->q_head + st->q_len) % st->q_cap] = r;
        st->q_len++;
    } else {
        r.start_t = st->t;
        s_emit(st, &r, WW_REQ_REJECTED, st->t, st->t, 0, cap_ns);
    }
}

/* Peak arrival rate in the current burst state, the envelope for thinning. */
static double s_lambda_max(const sim_t *st)
{
    const ww_sim_conf_t *c = &st->conf;
    return c->arrival_rate_rps * (1.0 + c->diurnal_amplitude) * (st->burst ? c->burst_factor : 1.0);
}

/* (Re)draws the next arrival candidate from st->t. Exponential gaps are memoryless, so
 * redrawing when the envelope changes keeps the process exact. */
static void s_draw_candidate(sim_t *st)
{
    const ww_sim_conf_t *c = &st->conf;
    st->lambda_max = s_lambda_max(st);
    /* s_lambda computes rate * (1 + amplitude * cos(x)) (times burst_factor); cos(x) >= -1
     * and rounding is monotonic, so it never returns less than this, computed alike. */
    st->lambda_floor =
        c->arrival_rate_rps * (1.0 - c->diurnal_amplitude) * (st->burst ? c->burst_factor : 1.0);
    st->next_cand =
        st->lambda_max > 0.0 ? st->t + s_exponential(&st->rng_arr, st->lambda_max) : INFINITY;
}

static void s_toggle_burst(sim_t *st)
{
    if (st->burst) {
        st->burst = false;
        st->burst_toggle =
            st->burst_rate > 0.0 ? st->t + s_exponential(&st->rng_burst, st->burst_rate) : INFINITY;
    } else {
        st->burst = true;
        st->burst_toggle = st->t + st->conf.burst_duration_s;
    }
    s_draw_candidate(st);
}

/* Whether the throttle factor can change before the next event: it is below 1 (it may
 * recover), or the hotspot is at or relaxing toward a point above the threshold. */
static bool s_tick_needed(const sim_t *st, double target_c)
{
    return st->throttle < 1.0 || st->hot_c >= st->conf.throttle_c ||
           target_c >= st->conf.throttle_c;
}

static double s_next_tick(double t)
{
    double k = floor(t / s_tick_s) + 1.0;
    double tt = k * s_tick_s;
    return tt > t ? tt : tt + s_tick_s;
}

static double s_next_fault_edge(const sim_t *st)
{
    if (!st->fault_hit) {
        return INFINITY;
    }
    if (st->t < st->fault_t0) {
        return st->fault_t0;
    }
    if (st->t < st->fault_t1) {
        return st->fault_t1;
    }
    return INFINITY;
}

/* exp(-x) for x >= 0. Events are microseconds apart against a time constant of seconds,
 * so x is nearly always tiny: there four terms of the series are exact to double precision
 * (the next term, x^5/120, is below 2^-60 for x < 2^-9), at a fraction of the cost of exp(),
 * which the thermal update would otherwise call for every event. */
static double s_decay(double x)
{
    if (x < 0x1p-9) {
        return 1.0 - x * (1.0 - x * 0.5 * (1.0 - x * (1.0 / 3.0) * (1.0 - x * 0.25)));
    }
    return exp(-x);
}

static double s_min(double a, double b)
{
    return a < b ? a : b;
}

/* Sum of decode_tps over the decoding requests. With whole rates the running sum kept as
 * requests come and go is exact, so it equals any other way of adding them up. */
static double s_sum_dtps(const sim_t *st)
{
    if (st->whole_rates) {
        return st->sum_dtps;
    }
    double sum = 0.0;
    for (size_t m = 0; m < st->conf.n_models; m++) {
        sum += (double)st->n_dec_model[m] * st->models[m].decode_tps;
    }
    return sum;
}

/* Runs the simulation from st->t to t_end; records are stamped no later than cap_ns. */
static void s_advance(sim_t *st, double t_end, int64_t cap_ns)
{
    const ww_sim_conf_t *c = &st->conf;
    for (;;) {
        const double next_pf = ww_mpq_min(&st->pf_q);
        const double v_min = ww_mpq_min(&st->dec_q);
        const size_t n_dec = ww_mpq_len(&st->dec_q);
        const double sum_dtps = n_dec > 0 ? s_sum_dtps(st) : 0.0;
        double rate = 0.0;
        if (st->n_run > 0) {
            rate = st->throttle / (1.0 + c->batch_slowdown * (double)(st->n_run - 1));
        }
        double next_dec = INFINITY;
        if (n_dec > 0 && rate > 0.0) {
            double dv = v_min - st->v;
            next_dec = st->t + (dv > 0.0 ? dv / rate : 0.0);
        }
        double next_to = INFINITY;
        if (st->q_len > 0) {
            next_to = st->queue[st->q_head].arrival_t + c->timeout_s;
        }
        const sim_phys_t *ph = s_phys(st);
        const double u = ph->u, p = ph->p, rise = ph->rise, target = ph->target;
        double next_tick = s_tick_needed(st, target) ? s_next_tick(st->t) : INFINITY;

        double tn = s_min(t_end, st->next_cand);
        tn = s_min(tn, next_pf);
        tn = s_min(tn, next_dec);
        tn = s_min(tn, next_to);
        tn = s_min(tn, next_tick);
        tn = s_min(tn, s_next_fault_edge(st));
        tn = s_min(tn, st->burst_toggle);
        if (tn < st->t) {
            tn = st->t;
        }

        /* Integrate over [t, tn] with everything constant. */
        double dt = tn - st->t;
        if (dt > 0.0) {
            /* First-order RC: exact solution of dT/dt = (target - T) / tau. */
            st->hot_c = target + (st->hot_c - target) * s_decay(dt / c->tau_s);
            st->v += rate * dt;
            st->acc_energy_j += p * dt;
            st->acc_util_s += u * dt;
            st->acc_tokens += rate * dt * sum_dtps;
            st->acc_rise_cs += rise * dt;
        }
        st->t = tn;
        if (tn == next_dec && v_min > st->v) {
            st->v = v_min; /* the due request finishes despite rounding in v += rate dt */
        }

        /* Handle everything due at tn, in a fixed order. */
        s_finish_running(st, cap_ns);
        s_expire_queue(st, cap_ns);
        s_admit_queued(st);
        if (st->burst_toggle <= st->t) {
            s_toggle_burst(st);
        }
        if (st->next_cand <= st->t) {
            /* Thinning: a candidate at the peak rate is a real arrival with probability
             * lambda(t) / lambda_max, which yields a Poisson process of rate lambda(t). */
            double x = s_uniform(&st->rng_arr) * st->lambda_max;
            if (x < st->lambda_floor || x < s_lambda(st, st->t)) {
                s_arrive(st, cap_ns);
            }
            s_draw_candidate(st);
        }
        if (tn == next_tick) {
            st->throttle = s_throttle_at(st, st->hot_c);
        }
        if (st->t >= t_end) {
            break;
        }
    }
}

/* ---- the source table ---- */

static void s_close(void **state);

static int s_open(const void *conf, unsigned node_index, int64_t start_ns, void **state)
{
    if (state == NULL) {
        return -EINVAL;
    }
    *state = NULL;
    if (conf == NULL) {
        return -EINVAL;
    }
    const ww_sim_conf_t *c = conf;
    int rc = s_validate(c);
    if (rc != 0) {
        return rc;
    }
    sim_t *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -ENOMEM;
    }
    st->conf = *c;
    st->conf.models = st->models;
    st->free_slot = SIM_NO_SLOT;
    ww_mpq_init(&st->pf_q);
    ww_mpq_init(&st->dec_q);
    double wsum = 0.0;
    st->whole_rates = true;
    for (size_t i = 0; i < c->n_models; i++) {
        double tps = c->models[i].decode_tps;
        st->whole_rates = st->whole_rates && tps < 0x1p31 && tps == floor(tps);
        st->models[i] = c->models[i];
        st->models[i].name = NULL;
        wsum += c->models[i].weight;
        st->cum_weight[i] = wsum;
    }
    rc = -ENOMEM;
    for (size_t i = 0; i < c->n_models; i++) {
        st->models[i].name = strdup(c->models[i].name);
        if (st->models[i].name == NULL) {
            goto cleanup;
        }
    }
    size_t run_cap =
        (size_t)c->max_concurrency < SIM_RUN_INITIAL ? (size_t)c->max_concurrency : SIM_RUN_INITIAL;
    st->q_cap = (size_t)c->max_queue < SIM_QUEUE_INITIAL ? (size_t)c->max_queue : SIM_QUEUE_INITIAL;
    st->queue = malloc((st->q_cap > 0 ? st->q_cap : 1) * sizeof(*st->queue));
    if (!s_run_grow(st, run_cap) || st->queue == NULL) {
        goto cleanup;
    }
    for (size_t k = 0; k < sizeof(st->phys) / sizeof(st->phys[0]); k++) {
        st->phys[k].busy = -1.0;
    }

    st->node = node_index;
    st->start_ns = start_ns;
    st->last_ns = start_ns;
    const int64_t day_ns = 86400LL * 1000000000LL;
    int64_t tod = ((start_ns % day_ns) + day_ns) % day_ns;
    st->day_offset_h = (double)tod / 3.6e12;

    s_rng_seed(&st->rng_arr, c->seed, node_index, 1);
    s_rng_seed(&st->rng_req, c->seed, node_index, 2);
    s_rng_seed(&st->rng_burst, c->seed, node_index, 3);
    s_rng_seed(&st->rng_noise, c->seed, node_index, 4);

    s_draw_candidate(st);
    st->burst_toggle = INFINITY;
    if (c->burst_prob_per_s > 0.0 && c->burst_duration_s > 0.0) {
        /* "Probability p per second" as a Poisson rate: P(no start in 1 s) = 1 - p. */
        st->burst_rate = c->burst_prob_per_s < 1.0 ? -log1p(-c->burst_prob_per_s) : 1e9;
        st->burst_toggle = s_exponential(&st->rng_burst, st->burst_rate);
    }

    /* The agent's nodes share a hall (node.hall): its humidity depends on the seed only. */
    st->rh_setpoint = s_rh_setpoint_lo + s_rh_setpoint_span * s_hash01(c->seed, 0, 1);
    st->rh_phase_a = s_two_pi * s_hash01(c->seed, 0, 2);
    st->rh_phase_b = s_two_pi * s_hash01(c->seed, 0, 3);
    st->rh_node_offset = s_rh_node_offset * (2.0 * s_hash01(c->seed, node_index + 1ULL, 4) - 1.0);

    st->fault_hit = c->pump_fault && node_index % (uint64_t)c->pump_fault_every == 0;
    st->fault_t0 = c->pump_fault_start_s;
    st->fault_t1 = c->pump_fault_duration_s > 0.0 ? c->pump_fault_start_s + c->pump_fault_duration_s
                                                  : INFINITY;

    /* The node has been idling before we start watching: wafer at its idle steady state. */
    st->throttle = 1.0;
    st->hot_c = s_hot_target(st, c->idle_w, s_flow_lpm(st, 0.0));
    st->throttle = s_throttle_at(st, st->hot_c);

    *state = st;
    return 0;

cleanup:;
    void *half = st; /* st->conf is set: s_close frees what was made */
    s_close(&half);
    return rc;
}

/* Relative humidity (%) at the node's air intake at now_ns (ww_sim.h): the hall's setpoint
 * and drift at that absolute time, the node's offset, and noise drawn from (seed, node,
 * time), clamped to 0..100. */
static double s_humidity_pct(const sim_t *st, int64_t now_ns)
{
    double t = (double)now_ns / 1e9;
    double rh =
        st->rh_setpoint + st->rh_node_offset +
        s_rh_drift_a * sin(s_two_pi * t / s_rh_drift_a_s + st->rh_phase_a) +
        s_rh_drift_b * sin(s_two_pi * t / s_rh_drift_b_s + st->rh_phase_b) +
        s_rh_noise * (2.0 * s_hash01(st->conf.seed, st->node + 1ULL, (uint64_t)now_ns) - 1.0);
    return rh < 0.0 ? 0.0 : (rh > 100.0 ? 100.0 : rh);
}

static int s_sample(void *state, int64_t now_ns, ww_reading_t *out)
{
    sim_t *st = state;
    if (st == NULL || out == NULL || now_ns < st->last_ns) {
        return -EINVAL;
    }
    const ww_sim_conf_t *c = &st->conf;
    double t_now = (double)(now_ns - st->start_ns) / 1e9;
    s_advance(st, t_now, now_ns);
    st->last_ns = now_ns;

    double span = t_now - st->acc_t0;
    double u = s_util(st);
    double p = s_power(st, u);
    double flow = s_flow_lpm(st, t_now);
    double rise = s_rise_c(p, flow);
    double tps = 0.0;
    if (span > 0.0) {
        /* Power, utilisation and outlet are averages over the interval (what an energy
         * meter and a mixed coolant stream report); tokens/s is a rate over it. */
        p = st->acc_energy_j / span;
        u = st->acc_util_s / span;
        rise = st->acc_rise_cs / span;
        tps = st->acc_tokens / span;
    }
    if (p < c->idle_w) {
        p = c->idle_w;
    }
    if (p > c->max_w) {
        p = c->max_w;
    }
    u = u < 0.0 ? 0.0 : (u > 1.0 ? 1.0 : u);

    double n_in = (2.0 * s_uniform(&st->rng_noise) - 1.0) * s_temp_noise_c;
    double n_out = (2.0 * s_uniform(&st->rng_noise) - 1.0) * s_temp_noise_c;
    double n_hot = (2.0 * s_uniform(&st->rng_noise) - 1.0) * s_temp_noise_c;

    memset(out, 0, sizeof(*out));
    out->not_measured = c->not_measured; /* what this node has no sensor for */
    out->power_w = (float)p;
    out->inlet_c = (float)(c->inlet_c + n_in);
    out->outlet_c = (float)(c->inlet_c + rise + n_out);
    out->flow_lpm = (float)flow;
    out->wafer_hotspot_c = (float)(st->hot_c + n_hot);
    out->utilization = (float)u;
    out->tokens_per_s = (float)tps;
    out->requests_queued = (uint32_t)st->q_len;
    out->requests_in_flight = (uint32_t)st->n_run;
    out->requests_completed = st->acc_done;
    out->throttle_factor = (float)st->throttle;
    out->throttled = st->throttle < 1.0;
    out->humidity_pct = (float)s_humidity_pct(st, now_ns);

    st->acc_t0 = t_now;
    st->acc_energy_j = 0.0;
    st->acc_util_s = 0.0;
    st->acc_tokens = 0.0;
    st->acc_rise_cs = 0.0;
    st->acc_done = 0;
    return 0;
}

static int s_poll_requests(void *state, ww_request_t *out, size_t cap)
{
    sim_t *st = state;
    if (st == NULL || (out == NULL && cap > 0)) {
        return -EINVAL;
    }
    size_t n = st->rec_len < cap ? st->rec_len : cap;
    if (n > (size_t)INT32_MAX) {
        n = (size_t)INT32_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        s_rec_take(st, &out[i]);
    }
    return (int)n;
}

static void s_set_sink(void *state, ww_req_sink_fn fn, void *arg)
{
    sim_t *st = state;
    if (st == NULL) {
        return;
    }
    while (fn != NULL && st->rec_len > 0) {
        ww_request_t o;
        s_rec_take(st, &o);
        fn(arg, &o);
    }
    st->sink = fn;
    st->sink_arg = arg;
}

static const char *s_model_name(void *state, unsigned i)
{
    const sim_t *st = state;
    if (st == NULL || i >= st->conf.n_models) {
        return NULL;
    }
    return st->models[i].name;
}

static void s_close(void **state)
{
    if (state == NULL || *state == NULL) {
        return;
    }
    sim_t *st = *state;
    for (size_t i = 0; i < st->conf.n_models; i++) {
        free(st->models[i].name);
    }
    free(st->slab);
    free(st->order);
    free(st->qnode);
    free(st->due);
    free(st->queue);
    free(st->rec);
    free(st);
    *state = NULL;
}

const ww_source_t ww_sim_source = {
    .name = "sim",
    .open = s_open,
    .sample = s_sample,
    .poll_requests = s_poll_requests,
    .set_sink = s_set_sink,
    .model_name = s_model_name,
    .close = s_close,
};
