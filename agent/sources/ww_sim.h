/* ww_sim: the simulated wafer-scale inference system, a ww_source.
 *
 * Per node it models:
 *  - request arrivals: a Poisson process whose rate swings over the day (diurnal
 *    sinusoid) with occasional bursts, a weighted mix of models, lognormal prompt and
 *    output lengths;
 *  - continuous batching: at most `max_concurrency` requests run at once, the rest queue
 *    (up to `max_queue`, beyond which arrivals are rejected); each running request first
 *    prefills its prompt at the model's prefill rate, then decodes at the model's decode
 *    rate, slowed by batch contention and by thermal throttling;
 *  - power as a function of utilisation, idle_w to max_w (~23 kW for a CS-3-class system);
 *  - a first-order thermal RC model: wafer hotspot temperature relaxes toward
 *    outlet + power * r_th with time constant tau_s; coolant outlet = inlet + P / (rho c Q);
 *  - throttling: above throttle_c the decode rate is scaled down, more the hotter it is;
 *  - faults: pump degradation (flow drops to a share of nominal from a start time for a
 *    duration), which raises temperatures and so throttles decode;
 *  - intake air humidity (humidity_pct, %), a hall-level model: the nodes of one agent sit
 *    in one hall (node.hall), whose air handlers hold a setpoint drawn from the seed in
 *    40..45 %; it drifts by +-1.5 % over a 6 h wave and +-0.5 % over a 47 min one, both
 *    functions of the absolute time with phases from the seed (so every node of the hall,
 *    and every restart, sees the same drift); each node reads a fixed offset of up to
 *    +-0.8 % (from the seed and its index) plus +-0.15 % of noise per sample (from the seed,
 *    its index and the sample time). Clamped to 0..100. It draws from none of the node's
 *    random streams, so the other readings are what they were without it. The constants
 *    are s_rh_* in ww_sim.c.
 *
 * Deterministic: the same seed, node index, start time and sequence of sample() times give
 * the same readings and request records (its own PRNG, no global state, no clock reads).
 */
#ifndef WW_SIM_H
#define WW_SIM_H

#include "ww_source.h"

#include <stdint.h>

#define WW_SIM_MAX_MODELS 8

typedef struct {
    char *name;         /* e.g. "llama3.1-8b" (owned by the config) */
    double weight;      /* share of arrivals, relative to the other models */
    double prefill_tps; /* prompt tokens per second for one request */
    double decode_tps;  /* output tokens per second for one request running alone */
    double prompt_tokens_median;
    double prompt_tokens_sigma; /* lognormal sigma of prompt length */
    double output_tokens_median;
    double output_tokens_sigma;
} ww_sim_model_t;

typedef struct {
    uint64_t seed;
    /* models */
    ww_sim_model_t *models; /* n_models entries (a ww_cfg_table_t's items) */
    size_t n_models;
    /* load */
    double arrival_rate_rps;  /* mean arrivals per second per node */
    double diurnal_amplitude; /* 0..1: rate swings +-amplitude over 24 h, peak at 15:00 UTC */
    double burst_prob_per_s;  /* chance per second that a burst starts */
    double burst_factor;      /* rate multiplier during a burst */
    double burst_duration_s;
    int64_t max_concurrency; /* requests decoding at once (continuous batching) */
    int64_t max_queue;       /* queued requests beyond which arrivals are rejected */
    double batch_slowdown;   /* per-request decode rate = decode_tps / (1 +
                                batch_slowdown*(running-1)) */
    double timeout_s;        /* a request queued longer than this times out */
    double error_prob;       /* chance that a request ends in an error */
    /* power */
    double idle_w;
    double max_w;
    /* cooling and thermal model */
    double inlet_c;        /* coolant supply temperature */
    double flow_lpm;       /* nominal coolant flow */
    double r_th_c_per_kw;  /* wafer hotspot above outlet per kW */
    double tau_s;          /* thermal time constant of the wafer */
    double throttle_c;     /* hotspot temperature where throttling starts */
    double throttle_slope; /* decode speed lost per degree above throttle_c (share/°C) */
    double min_throttle;   /* lowest throttle factor */
    /* pump degradation fault */
    bool pump_fault;
    double pump_fault_start_s;     /* seconds after the source's start_ns */
    double pump_fault_duration_s;  /* 0 = until the end */
    double pump_fault_flow_factor; /* flow as a share of nominal while the fault is active */
    /* which nodes the fault hits: index % pump_fault_every == 0 (1 = all) */
    int64_t pump_fault_every;
    /* Readings the simulated node does not report (bits of ww_reading_t.not_measured): a
     * node without coolant sensors, say, as a host source is. */
    uint32_t not_measured;
} ww_sim_conf_t;

/* The simulated source's function table. */
extern const ww_source_t ww_sim_source;

#endif
