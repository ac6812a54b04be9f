/* agent_config: the agent's configuration struct and its declarative schema (one table
 * drives agent.yaml, WW_AGENT_* environment variables, flags, --help and --print-config). */
#ifndef WW_AGENT_CONF_H
#define WW_AGENT_CONF_H

#include "ww_config.h"
#include "ww_curve.h"
#include "ww_host_source.h"
#include "ww_log.h"
#include "ww_nvml_source.h"
#include "ww_reqlog_source.h"
#include "ww_sim.h"
#include "ww_spool.h"

#include <stdint.h>

typedef struct {
    /* agent */
    char *agent_id;            /* stream identity; empty = the host name */
    int64_t interval_ns;       /* sampling interval; ticks are wall-clock multiples of it */
    int64_t run_for_ns;        /* stop after this long (0 = until SIGTERM) */
    int64_t drain_ns;          /* on shutdown, wait this long for outstanding acks */
    int64_t latency_window_ns; /* per-request latencies are aggregated per window */
    int64_t hist_scale;        /* histogram resolution: 2^scale buckets per octave */
    ww_log_level_t log_level;  /* enum row of ww_log_level_names */
    int source;                /* enum row of ww_sources_names: ww_sources_get(source) */
    char *metrics_listen;      /* /metrics and /healthz on HOST:PORT; "" = off */
    int requests;              /* enum row of ww_agent_requests_names */
    /* OTLP/HTTP receiver (agent.requests otlp; ww_otlp_http.h) */
    char *otlp_listen;
    int64_t otlp_max_body;
    int64_t otlp_max_queue;
    int64_t otlp_max_delay_ns;
    char *otlp_span_name, *otlp_e2e, *otlp_ttft, *otlp_queue, *otlp_output_tokens;
    char *otlp_prompt_tokens, *otlp_response_model, *otlp_request_model;
    char *otlp_metric_ttft, *otlp_metric_tpot, *otlp_metric_e2e, *otlp_metric_tokens;
    char *otlp_token_type, *otlp_error_type;
    /* request log (agent.source reqlog; also where waferwatch-sim sends) */
    char *source_socket;
    char *source_socket_mode; /* octal permission bits */
    int64_t source_max_age_ns;
    ww_reqlog_conf_t reqlog; /* filled by ww_agent_conf_finish */
    /* the host's own sensors (agent.source host) */
    char *host_root, *host_power, *host_inlet, *host_outlet, *host_hotspot;
    ww_host_conf_t host; /* filled by ww_agent_conf_finish */
    /* NVIDIA GPUs through NVML (agent.source nvml) */
    char *nvml_library, *nvml_devices;
    ww_nvml_conf_t nvml; /* filled by ww_agent_conf_finish */
    /* collector link */
    ww_cfg_strlist_t collectors; /* ZeroMQ endpoints, in failover order */
    int64_t ack_timeout_ns;      /* resend what is not acked after this long */
    int64_t failover_after_ns;   /* move to the next endpoint after this long without acks */
    int64_t max_in_flight;       /* batches sent and not yet acked */
    int64_t queue_batches;       /* unacked batches kept in memory (the rest stay on disk) */
    /* spool */
    char *spool_dir; /* empty: /var/lib/waferwatch/spool/<agent.id> */
    int64_t spool_max_bytes;
    int64_t spool_segment_bytes;
    ww_spool_policy_t spool_policy; /* enum row of ww_agent_spool_policy_names */
    ww_fsync_t spool_fsync;         /* enum row of ww_agent_spool_fsync_names */
    int64_t spool_fsync_interval_ns;
    int64_t spool_keep_acked_ns; /* acked batches kept for a resend (ww_spool.h) */
    /* security */
    bool insecure;                      /* no CURVE (tests and labs only) */
    char *server_key_file;              /* the collector's public key (NAME.pub) */
    char *key_file;                     /* this agent's key pair (NAME.key, mode 0600) */
    ww_curve_key_t server_key, own_key; /* loaded by ww_agent_conf_finish */
    /* node labels (the simulated nodes are <node.id>-<i> when sim.nodes > 1) */
    char *node_id;
    char *site;
    char *hall;
    char *rack;
    char *phase;
    char *system_model;
    double rated_kw;
    /* simulated driver */
    int64_t sim_nodes;
    ww_cfg_table_t sim_models; /* of ww_sim_model_t, copied into sim.models */
    ww_sim_conf_t sim;
    int64_t sim_seed;       /* copied into sim.seed */
    char *sim_not_measured; /* names, comma-separated: into sim.not_measured */
} ww_agent_conf_t;

extern const ww_cfg_schema_t ww_agent_schema;

/* The names of spool.policy (drop_oldest, stop_sampling) and spool.fsync (always,
 * interval, never), indexed by the spool's own enums, NULL-terminated: the configuration's
 * value is the ww_spool_policy_t and ww_fsync_t the spool takes. */
extern const char *const ww_agent_spool_policy_names[];
/* The names of agent.requests, indexed by ww_agent_requests_t, NULL-terminated. */
typedef enum { WW_AGENT_REQUESTS_SOURCE, WW_AGENT_REQUESTS_OTLP } ww_agent_requests_t;
extern const char *const ww_agent_requests_names[];
extern const char *const ww_agent_spool_fsync_names[];

/* Fills derived fields after loading (host name for empty ids, sim models and seed) and
 * checks what the schema cannot (endpoints, ids by the wire's rules, keys). Every
 * check runs: err (emptied first) holds one line per error, as ww_cfg_err_add writes
 * them. Returns 0, -EINVAL with err set, or -ENOMEM. */
int ww_agent_conf_finish(ww_agent_conf_t *c, ww_cfg_err_t *err);

/* The checks and derived fields of the simulated driver's and the request log's settings
 * alone (ww_agent_conf_finish runs them too): for waferwatch-sim, which runs the simulator
 * and sends to source.socket without a collector link. err must be empty or hold earlier
 * lines, which are kept; each error adds its line. Returns 0 or -EINVAL with err set. */
int ww_agent_conf_finish_sim(ww_agent_conf_t *c, ww_cfg_err_t *err);

/* The id of simulated node i: node_id itself when there is one node, else node_id-i. */
void ww_agent_node_name(const ww_agent_conf_t *c, unsigned i, char *out, size_t cap);

#endif
