/* agent_config: see ww_agent_conf.h.
 *
 * The rows below are the one place where default settings live; the simulated driver's
 * defaults are calibrated as follows
 *
 * Sources and reasoning (numbers marked "estimate" are ours, not a vendor's):
 *  - max_w 23 kW: Cerebras CS-3 system specification, "23 kW" peak power, water-cooled
 *    (cerebras.ai CS-3 product page and datasheet, 2024).
 *  - idle_w 9.2 kW = 40 % of max (estimate): a wafer-scale part keeps its 44 GB of on-wafer
 *    SRAM and fabric powered when idle (leakage), and the system's power supplies, pumps and
 *    fans run regardless; measured accelerator servers idle at roughly 30-50 % of their
 *    system peak, and we take the middle.
 *  - Decode speeds, single user: Llama 3.1 8B ~1,800 tok/s and 70B ~450 tok/s (Cerebras
 *    Inference launch, Aug 2024); Llama 3.1 405B 969 tok/s with 0.24 s time to first token
 *    (Cerebras, Nov 2024).
 *  - Coolant: inlet 25 °C (a warm-water facility loop, ASHRAE W27 class supply) and 40 L/min
 *    (estimate) give a rise of 23 kW / (4.18 kJ/(L K) * 0.667 L/s) = 8.3 °C at full load.
 *  - r_th 1.5 °C/kW (estimate): hotspot at full load on nominal flow is
 *    25 + 8.3 + 23 * 1.5 = 67.8 °C, comfortably under throttle_c 85 °C (a usual junction
 *    limit for logic with margin below the 100-105 °C maximum). With the pump at 0.3x flow
 *    the rise becomes 27.5 °C and the full-load hotspot 87 °C: it throttles.
 *  - tau 20 s (estimate): wafer, cold plate and manifold water have a thermal mass of order
 *    several kJ/K against ~0.7 K/kW, so tens of seconds.
 *  - throttle_slope 0.03/°C, min_throttle 0.3 (estimate): 10 °C over the limit costs 30 %.
 *  - Load: 30 req/s per node gives a mean utilisation of ~0.58 with the default models and
 *    batch_slowdown 0.03 (measured with this simulator, no diurnal swing or bursts); the
 *    diurnal swing of +-30 % takes it from ~0.4 at night to ~0.8 at 15:00 UTC, and a burst
 *    (3x for 60 s, about one per half hour) saturates the node so queues and rejections
 *    show. max_concurrency 64, max_queue 256 and timeout 30 s as in a typical serving
 *    front end; error_prob 0.2 %.
 */
#define WW_LOG_MODULE "config"
#include "ww_agent_conf.h"
#include "ww_hist.h"
#include "ww_sim_defaults.h"
#include "ww_sources.h"
#include "ww_wire.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define A(f) offsetof(ww_agent_conf_t, f)
#define S(f) (offsetof(ww_agent_conf_t, sim) + offsetof(ww_sim_conf_t, f))
#define M(f) offsetof(ww_sim_model_t, f)

static const ww_cfg_opt_t s_model_rows[] = {
    WW_CFG_ROW("name", WW_CFG_STRING, NULL, M(name), 0, 0, NULL,
               "model name as reported (1-47 chars)"),
    WW_CFG_ROW("weight", WW_CFG_DOUBLE, "1", M(weight), 0.000001, 1e6, NULL,
               "relative share of arrivals"),
    WW_CFG_ROW("prefill_tps", WW_CFG_DOUBLE, "10000", M(prefill_tps), 1, 1e8, NULL,
               "prompt tokens per second for one request"),
    WW_CFG_ROW("decode_tps", WW_CFG_DOUBLE, "1000", M(decode_tps), 1, 1e6, NULL,
               "output tokens per second for one request running alone"),
    WW_CFG_ROW("prompt_tokens_median", WW_CFG_DOUBLE, "1000", M(prompt_tokens_median), 1, 1e6, NULL,
               "median prompt length (lognormal)"),
    WW_CFG_ROW("prompt_tokens_sigma", WW_CFG_DOUBLE, "1.0", M(prompt_tokens_sigma), 0, 5, NULL,
               "lognormal sigma of the prompt length"),
    WW_CFG_ROW("output_tokens_median", WW_CFG_DOUBLE, "250", M(output_tokens_median), 1, 1e6, NULL,
               "median output length (lognormal)"),
    WW_CFG_ROW("output_tokens_sigma", WW_CFG_DOUBLE, "0.8", M(output_tokens_sigma), 0, 5, NULL,
               "lognormal sigma of the output length"),
};

/* Default models. Prompt lengths: median 1,000 tokens, sigma 1.0 (chat and RAG prompts, a
 * long right tail); outputs: median 250 tokens, sigma 0.8 (estimates). Prefill: the 405B
 * rate is set so that the median prompt's TTFT is Cerebras' 0.24 s: 1,000 / 4,200 =
 * 0.238 s. The 8B and 70B rates are estimates: prefill is compute-bound and scales with
 * parameters, but less than linearly because a small model does not fill the wafer, so
 * 70B is ~3.5x and 8B ~10x the 405B rate. */
#define WW_DEFAULT_MODELS                                                                          \
    "[{name: llama3.1-8b, weight: 0.5, prefill_tps: 40000, decode_tps: 1800},"                     \
    " {name: llama3.1-70b, weight: 0.3, prefill_tps: 12000, decode_tps: 450},"                     \
    " {name: llama3.1-405b, weight: 0.2, prefill_tps: 4200, decode_tps: 969}]"

#define ROW WW_CFG_ROW
#define ENUM WW_CFG_ENUM_ROW

/* An enum row writes an int (ww_config.h): the fields below hold the spool's and the log's
 * own enums, which must be ints for that. */
_Static_assert(sizeof(ww_spool_policy_t) == sizeof(int), "spool.policy is an int");
_Static_assert(sizeof(ww_fsync_t) == sizeof(int), "spool.fsync is an int");
_Static_assert(sizeof(ww_log_level_t) == sizeof(int), "agent.log_level is an int");

const char *const ww_agent_requests_names[] = {[WW_AGENT_REQUESTS_SOURCE] = "source",
                                               [WW_AGENT_REQUESTS_OTLP] = "otlp",
                                               [WW_AGENT_REQUESTS_OTLP + 1] = NULL};
const char *const ww_agent_spool_policy_names[] = {[WW_SPOOL_DROP_OLDEST] = "drop_oldest",
                                                   [WW_SPOOL_REFUSE] = "stop_sampling",
                                                   [WW_SPOOL_REFUSE + 1] = NULL};
const char *const ww_agent_spool_fsync_names[] = {[WW_FSYNC_ALWAYS] = "always",
                                                  [WW_FSYNC_INTERVAL] = "interval",
                                                  [WW_FSYNC_NEVER] = "never",
                                                  [WW_FSYNC_NEVER + 1] = NULL};

static const ww_cfg_opt_t s_rows[] = {
    ROW("agent.id", WW_CFG_STRING, "", A(agent_id), 0, 0, "agent-id",
        "stream identity of this agent; empty means the host name"),
    ROW("agent.interval", WW_CFG_DURATION, "1s", A(interval_ns), 0.01, 3600, "interval",
        "sampling interval; samples land on wall-clock multiples of it"),
    ROW("agent.run_for", WW_CFG_DURATION, "0", A(run_for_ns), 0, 1e9, "run-for",
        "stop after this long (0 = run until SIGTERM)"),
    ROW("agent.drain_timeout", WW_CFG_DURATION, "5s", A(drain_ns), 0, 3600, "drain-timeout",
        "on shutdown, how long to wait for the collector to ack what was sent"),
    ROW("agent.latency_window", WW_CFG_DURATION, "10s", A(latency_window_ns), 0.01, 3600,
        "latency-window",
        "per-request latencies are aggregated per model over windows this long (a multiple "
        "of agent.interval, aligned to the wall clock)"),
    ROW("agent.hist_scale", WW_CFG_INT, "6", A(hist_scale), 0, WW_HIST_MAX_SCALE, NULL,
        "latency histogram resolution: 2^scale buckets per octave; 6 keeps every quantile "
        "within 0.542%, 5 within 1.1%"),
    ENUM("agent.log_level", ww_log_level_names, "info", A(log_level), "log-level",
         "the least severe messages logged"),
    ENUM("agent.source", ww_sources_names, "sim", A(source), "source",
         "what to measure: sim (the simulated wafer-scale driver, run inside the agent), "
         "reqlog (readings and completion records that the inference server, or "
         "waferwatch-sim, sends to source.socket), host (the host's power and temperatures "
         "from sysfs: host.*) or nvml (NVIDIA GPUs: nvml.*)"),
    ROW("source.socket", WW_CFG_STRING, "/run/waferwatch/reqlog.sock", A(source_socket), 0, 0,
        "source-socket",
        "with agent.source reqlog: the Unix datagram socket the agent binds for the request "
        "log (waferwatch-sim sends to it)"),
    ROW("source.socket_mode", WW_CFG_STRING, "0660", A(source_socket_mode), 0, 0, NULL,
        "permission bits of source.socket (octal): who may send readings and records"),
    ROW("host.root", WW_CFG_STRING, "/", A(host_root), 0, 0, NULL,
        "with agent.source host: where sysfs is (/ on a host; /host in a container with the "
        "host's /sys mounted at /host/sys)"),
    ROW("host.power", WW_CFG_STRING, "", A(host_power), 0, 0, NULL,
        "with agent.source host: the power sensors summed into power_w, comma-separated, as "
        "`waferwatch sensors` names them (e.g. \"powercap/package-0, powercap/dram\"); "
        "required"),
    ROW("host.inlet", WW_CFG_STRING, "", A(host_inlet), 0, 0, NULL,
        "with agent.source host: temperature sensors whose highest is inlet_c; empty = not "
        "measured"),
    ROW("host.outlet", WW_CFG_STRING, "", A(host_outlet), 0, 0, NULL,
        "with agent.source host: temperature sensors whose highest is outlet_c; empty = not "
        "measured"),
    ROW("host.hotspot", WW_CFG_STRING, "", A(host_hotspot), 0, 0, NULL,
        "with agent.source host: temperature sensors whose highest is wafer_hotspot_c (e.g. "
        "\"hwmon/coretemp/Package id 0\"); empty = not measured"),
    ROW("nvml.library", WW_CFG_STRING, "libnvidia-ml.so.1", A(nvml_library), 0, 0, NULL,
        "with agent.source nvml: the NVML library loaded (dlopen) at start; the NVIDIA driver "
        "installs it"),
    ROW("nvml.devices", WW_CFG_STRING, "", A(nvml_devices), 0, 0, NULL,
        "with agent.source nvml: the GPUs read (NVML indexes, comma-separated); empty = all"),
    ROW("source.max_age", WW_CFG_DURATION, "5s", A(source_max_age_ns), 0.01, 3600, NULL,
        "with agent.source reqlog: a reading older than this (and than two agent.interval) at "
        "a tick is missing (no sample row for the tick, logged)"),
    ENUM("agent.requests", ww_agent_requests_names, "source", A(requests), "requests",
         "where the latency windows' requests come from: source (agent.source's own) or otlp "
         "(the spans and GenAI metrics an OpenTelemetry-instrumented inference server POSTs to "
         "otlp.listen; "
         "agent.source then gives the readings only, its own requests are dropped; they are "
         "the first node's, node.id)"),
    ROW("otlp.listen", WW_CFG_STRING, "127.0.0.1:4318", A(otlp_listen), 0, 0, "otlp-listen",
        "with agent.requests otlp: HOST:PORT of the OTLP/HTTP receiver (POST /v1/traces, "
        "and /v1/metrics; protobuf or JSON, gzip or not; port 0 = any free one, logged)"),
    ROW("otlp.max_body", WW_CFG_SIZE, "8 MiB", A(otlp_max_body), 1024, 1073741824, NULL,
        "largest export accepted, compressed and decompressed (413 past it)"),
    ROW("otlp.max_queue", WW_CFG_INT, "100000", A(otlp_max_queue), 1, 100000000, NULL,
        "requests received and not yet in the latency windows (taken every tick and as they "
        "come); an export that would pass it is answered 503 with Retry-After"),
    ROW("otlp.max_delay", WW_CFG_DURATION, "6s", A(otlp_max_delay_ns), 0, 3600, NULL,
        "how long after a request ends its span may still arrive (an exporter batches spans, "
        "the OpenTelemetry SDKs for 5 s): a latency window closes this long after its end; a "
        "later span still counts, in the window open then"),
    ROW("otlp.span_name", WW_CFG_STRING, "llm_request", A(otlp_span_name), 0, 0, NULL,
        "the name of the spans that are requests (vLLM's)"),
    ROW("otlp.attr_e2e", WW_CFG_STRING, "gen_ai.latency.e2e", A(otlp_e2e), 0, 0, NULL,
        "attribute of a request span: seconds from arrival to done"),
    ROW("otlp.attr_ttft", WW_CFG_STRING, "gen_ai.latency.time_to_first_token", A(otlp_ttft), 0, 0,
        NULL, "attribute: seconds from arrival to the first token"),
    ROW("otlp.attr_queue", WW_CFG_STRING, "gen_ai.latency.time_in_queue", A(otlp_queue), 0, 0, NULL,
        "attribute: seconds from arrival to admission"),
    ROW("otlp.attr_output_tokens", WW_CFG_STRING, "gen_ai.usage.completion_tokens",
        A(otlp_output_tokens), 0, 0, NULL, "attribute: tokens generated"),
    ROW("otlp.attr_prompt_tokens", WW_CFG_STRING, "gen_ai.usage.prompt_tokens",
        A(otlp_prompt_tokens), 0, 0, NULL, "attribute: prompt tokens"),
    ROW("otlp.attr_response_model", WW_CFG_STRING, "gen_ai.response.model", A(otlp_response_model),
        0, 0, NULL, "attribute: the model (one of sim.models' names: the agent's model slots)"),
    ROW("otlp.attr_request_model", WW_CFG_STRING, "gen_ai.request.model", A(otlp_request_model), 0,
        0, NULL, "attribute: the model asked for, read when the response's is missing"),
    ROW("otlp.metric_ttft", WW_CFG_STRING, "gen_ai.server.time_to_first_token", A(otlp_metric_ttft),
        0, 0, NULL,
        "OTLP metric (POST /v1/metrics, exponential histogram, s): time to first token"),
    ROW("otlp.metric_tpot", WW_CFG_STRING, "gen_ai.server.time_per_output_token",
        A(otlp_metric_tpot), 0, 0, NULL, "OTLP metric: time per output token"),
    ROW("otlp.metric_e2e", WW_CFG_STRING, "gen_ai.server.request.duration", A(otlp_metric_e2e), 0,
        0, NULL,
        "OTLP metric: request duration (its count: requests; with otlp.attr_error_type: in "
        "error)"),
    ROW("otlp.metric_tokens", WW_CFG_STRING, "gen_ai.client.token.usage", A(otlp_metric_tokens), 0,
        0, NULL, "OTLP metric: tokens (its sum), by otlp.attr_token_type input or output"),
    ROW("otlp.attr_token_type", WW_CFG_STRING, "gen_ai.token.type", A(otlp_token_type), 0, 0, NULL,
        "attribute of a token-usage point: input or output"),
    ROW("otlp.attr_error_type", WW_CFG_STRING, "error.type", A(otlp_error_type), 0, 0, NULL,
        "attribute of a request-duration point that counts requests in error"),
    ROW("metrics.listen", WW_CFG_STRING, "", A(metrics_listen), 0, 0, "metrics-listen",
        "serve Prometheus /metrics and /healthz on HOST:PORT ([V6]:PORT; port 0 = any free "
        "port, logged); empty = off. /healthz is 503 when nothing was acked for "
        "collector.failover_after, or while the collector refuses this agent (forbidden)"),
    ROW("collector.endpoints", WW_CFG_STRLIST, "[tcp://127.0.0.1:7878]", A(collectors), 0, 0,
        "collector",
        "ZeroMQ endpoints of the collectors, in failover order (a flag or variable takes a "
        "comma-separated list)"),
    ROW("collector.ack_timeout", WW_CFG_DURATION, "5s", A(ack_timeout_ns), 0.05, 3600, NULL,
        "resend batches not acked after this long"),
    ROW("collector.failover_after", WW_CFG_DURATION, "15s", A(failover_after_ns), 0.1, 3600, NULL,
        "with several endpoints: move to the next after this long without an ack"),
    ROW("collector.max_in_flight", WW_CFG_INT, "16", A(max_in_flight), 1, 10000, NULL,
        "batches sent and not yet acked"),
    ROW("collector.queue_batches", WW_CFG_INT, "256", A(queue_batches), 1, 10000000, NULL,
        "unacked batches kept in memory; the rest wait in the spool on disk"),
    ROW("spool.dir", WW_CFG_STRING, "", A(spool_dir), 0, 0, "spool-dir",
        "directory of the on-disk spool; empty means /var/lib/waferwatch/spool/<agent.id>"),
    ROW("spool.max_bytes", WW_CFG_SIZE, "1 GiB", A(spool_max_bytes), 4096, 1125899906842624.0, NULL,
        "most bytes the spool may hold (1 GiB: about 4 days of one node at 1 s)"),
    ROW("spool.segment_bytes", WW_CFG_SIZE, "4 MiB", A(spool_segment_bytes), 1024, 1073741824, NULL,
        "spool segment file size; acked segments are deleted whole"),
    ROW("spool.keep_acked", WW_CFG_DURATION, "10m", A(spool_keep_acked_ns), 0, 86400, NULL,
        "how long acked batches stay in the spool, to be sent again should the collector's "
        "database lose them (a failover to an asynchronous standby); 0 deletes them at the ack"),
    ENUM("spool.policy", ww_agent_spool_policy_names, "drop_oldest", A(spool_policy),
         "spool-policy",
         "when the spool is full: drop_oldest (count and report the loss) or stop_sampling "
         "(skip ticks, counted and reported)"),
    ENUM("spool.fsync", ww_agent_spool_fsync_names, "always", A(spool_fsync), NULL,
         "always (each batch on disk before it is sent), interval (at most "
         "spool.fsync_interval apart), or never (page cache)"),
    ROW("spool.fsync_interval", WW_CFG_DURATION, "1s", A(spool_fsync_interval_ns), 0.001, 3600,
        NULL, "with spool.fsync: interval, the longest time between syncs"),
    ROW("security.server_key", WW_CFG_STRING, "", A(server_key_file), 0, 0, "server-key",
        "the collector's CURVE public key file (NAME.pub from waferwatch keygen)"),
    ROW("security.key", WW_CFG_STRING, "", A(key_file), 0, 0, "agent-key",
        "this agent's CURVE key file (NAME.key, mode 0600); its public half goes into the "
        "collector's allowlist"),
    ROW("security.insecure", WW_CFG_BOOL, "false", A(insecure), 0, 0, "insecure",
        "connect without CURVE (only to a collector in insecure mode; tests and labs only)"),
    ROW("node.id", WW_CFG_STRING, "", A(node_id), 0, 0, "node-id",
        "node id; empty means the host name; with sim.nodes > 1 nodes are <id>-<i>"),
    ROW("node.site", WW_CFG_STRING, "site-1", A(site), 0, 0, "site", "site label"),
    ROW("node.hall", WW_CFG_STRING, "hall-1", A(hall), 0, 0, "hall", "data hall label"),
    ROW("node.rack", WW_CFG_STRING, "rack-1", A(rack), 0, 0, "rack", "rack label"),
    ROW("node.phase", WW_CFG_STRING, "phase-1", A(phase), 0, 0, "phase",
        "capacity phase (tranche) this node belongs to"),
    ROW("node.system_model", WW_CFG_STRING, "cs3-sim", A(system_model), 0, 0, NULL,
        "system model label"),
    ROW("node.rated_kw", WW_CFG_DOUBLE, "23", A(rated_kw), 0.1, 1000, NULL,
        "rated IT power of one system in kW (CS-3 class: ~23 kW)"),
    ROW("sim.nodes", WW_CFG_INT, "1", A(sim_nodes), 1, 100000, "sim-nodes",
        "number of simulated nodes this agent drives"),
    ROW("sim.seed", WW_CFG_INT, "1", A(sim_seed), 0, 9e18, "sim-seed",
        "seed of the simulation; the same seed gives the same data"),
    {"sim.models", WW_CFG_TABLE, WW_DEFAULT_MODELS, A(sim_models), 0, 0, NULL,
     "model mix: list of {name, weight, prefill_tps, decode_tps, prompt/output_tokens_median, "
     "prompt/output_tokens_sigma}",
     s_model_rows, sizeof s_model_rows / sizeof s_model_rows[0], sizeof(ww_sim_model_t), 1,
     WW_SIM_MAX_MODELS},
    ROW("sim.arrival_rate", WW_CFG_DOUBLE, "30", S(arrival_rate_rps), 0, 100000, NULL,
        "mean request arrivals per second per node"),
    ROW("sim.diurnal_amplitude", WW_CFG_DOUBLE, "0.3", S(diurnal_amplitude), 0, 1, NULL,
        "arrival rate swing over the day (peak 15:00 UTC)"),
    ROW("sim.burst_prob", WW_CFG_DOUBLE, "0.000556", S(burst_prob_per_s), 0, 1, NULL,
        "chance per second that a request burst starts"),
    ROW("sim.burst_factor", WW_CFG_DOUBLE, "3", S(burst_factor), 1, 100, NULL,
        "arrival rate multiplier during a burst"),
    ROW("sim.burst_duration", WW_CFG_DOUBLE, "60", S(burst_duration_s), 0, 86400, NULL,
        "seconds a burst lasts"),
    ROW("sim.max_concurrency", WW_CFG_INT, "64", S(max_concurrency), 1, 100000, NULL,
        "requests decoding at once (continuous batching)"),
    ROW("sim.max_queue", WW_CFG_INT, "256", S(max_queue), 0, 10000000, NULL,
        "queued requests beyond which arrivals are rejected"),
    ROW("sim.batch_slowdown", WW_CFG_DOUBLE, "0.03", S(batch_slowdown), 0, 10, NULL,
        "per-request decode slowdown per extra running request"),
    ROW("sim.timeout", WW_CFG_DOUBLE, "30", S(timeout_s), 0.001, 86400, NULL,
        "seconds a request may wait in the queue before it times out"),
    ROW("sim.error_prob", WW_CFG_DOUBLE, "0.002", S(error_prob), 0, 1, NULL,
        "chance that a request fails"),
    ROW("sim.idle_w", WW_CFG_DOUBLE, "9200", S(idle_w), 0, 200000, NULL, "power draw when idle, W"),
    ROW("sim.max_w", WW_CFG_DOUBLE, "23000", S(max_w), 1, 200000, NULL,
        "power draw at full load, W (CS-3: ~23 kW)"),
    ROW("sim.inlet_c", WW_CFG_DOUBLE, "25", S(inlet_c), -20, 80, NULL,
        "coolant supply temperature, C"),
    ROW("sim.flow_lpm", WW_CFG_DOUBLE, "40", S(flow_lpm), 0.1, 10000, NULL,
        "nominal coolant flow, L/min"),
    ROW("sim.r_th", WW_CFG_DOUBLE, "1.5", S(r_th_c_per_kw), 0, 100, NULL,
        "wafer hotspot rise above coolant outlet per kW, C/kW"),
    ROW("sim.tau", WW_CFG_DOUBLE, "20", S(tau_s), 0.1, 100000, NULL,
        "thermal time constant of the wafer, s"),
    ROW("sim.throttle_c", WW_CFG_DOUBLE, "85", S(throttle_c), 0, 200, NULL,
        "hotspot temperature where decode throttling starts, C"),
    ROW("sim.throttle_slope", WW_CFG_DOUBLE, "0.03", S(throttle_slope), 0, 10, NULL,
        "decode speed lost per degree above throttle_c"),
    ROW("sim.min_throttle", WW_CFG_DOUBLE, "0.3", S(min_throttle), 0.01, 1, NULL,
        "lowest throttle factor"),
    ROW("sim.pump_fault.enabled", WW_CFG_BOOL, "false", S(pump_fault), 0, 0, "sim-pump-fault",
        "inject a coolant pump degradation"),
    ROW("sim.pump_fault.start", WW_CFG_DOUBLE, "60", S(pump_fault_start_s), 0, 1e9, NULL,
        "seconds after start when the pump degrades"),
    ROW("sim.pump_fault.duration", WW_CFG_DOUBLE, "0", S(pump_fault_duration_s), 0, 1e9, NULL,
        "seconds the fault lasts (0 = until the end)"),
    ROW("sim.pump_fault.flow_factor", WW_CFG_DOUBLE, "0.3", S(pump_fault_flow_factor), 0.01, 1,
        NULL, "coolant flow as a share of nominal while degraded"),
    ROW("sim.pump_fault.every", WW_CFG_INT, "1", S(pump_fault_every), 1, 1000000, NULL,
        "the fault hits nodes whose index is a multiple of this (1 = all)"),
    ROW("sim.not_measured", WW_CFG_STRING, "", A(sim_not_measured), 0, 0, NULL,
        "readings the simulated nodes do not report, comma-separated (e.g. "
        "\"flow_lpm, inlet_c, outlet_c\": a node without coolant sensors): sent as not measured, "
        "stored as NULL"),
};

const ww_cfg_schema_t ww_agent_schema = {
    .program = "waferwatch-agent",
    .summary = "samples a wafer-scale inference node and streams it to the collector",
    .env_prefix = "WW_AGENT_",
    .opts = s_rows,
    .n_opts = sizeof s_rows / sizeof s_rows[0],
};

/* Adds one error line; the checks go on, so that every error of a file is reported at
 * once (ww_cfg_err_add). */
static int s_fail(ww_cfg_err_t *err, const char *msg, const char *what)
{
    ww_cfg_err_add(err, "%s: %s", what, msg);
    return -EINVAL;
}

/* A ZeroMQ endpoint the agent can connect to: tcp://HOST:PORT or ipc://PATH. Anything
 * else (http://..., a typo) is refused here: libzmq would refuse it only at start, and the
 * agent would exit 1 in a restart loop. */
static bool s_endpoint_ok(const char *ep, const char **why)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        size_t len = strlen(ep + 6);
        /* the path of a Unix socket: sun_path holds 107 bytes and a NUL */
        *why = "ipc://PATH needs a path of 1 to 107 bytes";
        return len > 0 && len < 108;
    }
    *why = "is not tcp://HOST:PORT or ipc://PATH";
    if (strncmp(ep, "tcp://", 6) != 0) {
        return false;
    }
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host) {
        *why = "tcp:// needs HOST:PORT";
        return false;
    }
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
        *why = "tcp://HOST:PORT needs a port from 1 to 65535";
        return false;
    }
    return true;
}

/* Every string the wire carries: at most the wire's max_string bytes of clean UTF-8, as
 * ww_wire_decode checks at the collector (which Nacks a batch that fails, and the batch
 * is dropped: here it is a configuration error instead). */
static int s_check_text(const char *v, const char *key, ww_cfg_err_t *err)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    size_t len = strlen(v);
    if (len > lim.max_string) {
        ww_cfg_err_add(err, "%s: \"%.40s...\" is %zu bytes; the wire allows %zu", key, v, len,
                       lim.max_string);
        return -EINVAL;
    }
    if (!ww_wire_text_ok(v, len)) {
        return s_fail(err, "not valid UTF-8 text (control or malformed bytes)", key);
    }
    return 0;
}

/* node.id by the wire's rule for node ids ([A-Za-z0-9._:-], at most max_string bytes),
 * applied to the longest name the agent sends: <id>-<sim.nodes - 1> with several nodes. */
static int s_check_node_id(const ww_agent_conf_t *c, ww_cfg_err_t *err)
{
    if (!ww_wire_node_id_chars_ok(c->node_id)) {
        ww_cfg_err_add(err,
                       "node.id: \"%.128s\" has a character outside [A-Za-z0-9._:-] (the "
                       "collector would refuse every batch)",
                       c->node_id);
        return -EINVAL;
    }
    char last[512];
    ww_agent_node_name(c, (unsigned)(c->sim_nodes > 0 ? c->sim_nodes - 1 : 0), last, sizeof last);
    return s_check_text(last, "node.id", err);
}

/* What the wire would refuse, refused as configuration: endpoints, ids and labels. */
static int s_check_wire(const ww_agent_conf_t *c, ww_cfg_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < c->collectors.n; i++) {
        const char *why = NULL;
        const char *ep = c->collectors.v[i] ? c->collectors.v[i] : "";
        if (!s_endpoint_ok(ep, &why)) {
            ww_cfg_err_add(err, "collector.endpoints: \"%.200s\" %s", ep, why);
            rc = -EINVAL;
        }
    }
    if (s_check_node_id(c, err) < 0) {
        rc = -EINVAL;
    }
    const char *keys[] = {"agent.id",  "node.site",  "node.hall",
                          "node.rack", "node.phase", "node.system_model"};
    const char *vals[] = {c->agent_id, c->site, c->hall, c->rack, c->phase, c->system_model};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (s_check_text(vals[i], keys[i], err) < 0) {
            rc = -EINVAL;
        }
    }
    return rc;
}

/* sim.not_measured: reading names (ww_fields.h's ALWAYS fields), comma-separated, into
 * their bits. 0, or -EINVAL with every unknown name added to err. */
static int s_not_measured(const char *text, uint32_t *mask, ww_cfg_err_t *err)
{
    static const ww_field_t fields[] = WW_READING_FIELD_TABLE;
    *mask = 0;
    int rc = 0;
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", ");
        if (n == 0) {
            break;
        }
        size_t k = 0;
        while (k < sizeof fields / sizeof fields[0] &&
               !(strlen(fields[k].name) == n && strncmp(fields[k].name, p, n) == 0 &&
                 !fields[k].optional)) {
            k++;
        }
        if (k == sizeof fields / sizeof fields[0]) {
            ww_cfg_err_add(err,
                           "sim.not_measured: \"%.*s\" is not a reading that may be left "
                           "out (one of power_w, inlet_c, ... throttle_factor)",
                           (int)n, p);
            rc = -EINVAL;
        } else {
            *mask |= WW_FIELD_BIT(fields[k].pb);
        }
        p += n;
    }
    return rc;
}

int ww_agent_conf_finish(ww_agent_conf_t *c, ww_cfg_err_t *err)
{
    err->msg[0] = '\0';
    char host[256];
    if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    /* A key set to null in YAML (`site:`) leaves its string NULL: make every string
     * empty instead, so that the checks below say what is wrong. */
    char **strs[] = {&c->site,
                     &c->hall,
                     &c->rack,
                     &c->phase,
                     &c->system_model,
                     &c->spool_dir,
                     &c->metrics_listen,
                     &c->source_socket,
                     &c->source_socket_mode,
                     &c->otlp_listen,
                     &c->otlp_span_name,
                     &c->otlp_e2e,
                     &c->otlp_ttft,
                     &c->otlp_queue,
                     &c->otlp_output_tokens,
                     &c->otlp_prompt_tokens,
                     &c->otlp_response_model,
                     &c->otlp_request_model,
                     &c->sim_not_measured,
                     &c->host_root,
                     &c->host_power,
                     &c->host_inlet,
                     &c->host_outlet,
                     &c->host_hotspot,
                     &c->nvml_library,
                     &c->nvml_devices,
                     &c->otlp_metric_ttft,
                     &c->otlp_metric_tpot,
                     &c->otlp_metric_e2e,
                     &c->otlp_metric_tokens,
                     &c->otlp_token_type,
                     &c->otlp_error_type};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (*strs[i] == NULL && (*strs[i] = strdup("")) == NULL) {
            return -ENOMEM;
        }
    }
    char **ids[] = {&c->agent_id, &c->node_id};
    for (size_t i = 0; i < 2; i++) {
        if (*ids[i] == NULL || **ids[i] == '\0') {
            char *dup = strdup(host);
            if (!dup) {
                return -ENOMEM;
            }
            free(*ids[i]);
            *ids[i] = dup;
        }
    }
    /* Every check runs whatever failed before it (each adds its line to err). */
    int rc = 0;
    if (c->collectors.n == 0) {
        rc = s_fail(err, "at least one endpoint is required", "collector.endpoints");
    }
    if (s_check_wire(c, err) < 0) {
        rc = -EINVAL;
    }
    if (c->spool_segment_bytes > c->spool_max_bytes) {
        rc = s_fail(err, "must not exceed spool.max_bytes", "spool.segment_bytes");
    }
    if (c->spool_dir == NULL || *c->spool_dir == '\0') {
        char dir[512];
        snprintf(dir, sizeof dir, "/var/lib/waferwatch/spool/%s", c->agent_id);
        char *dup = strdup(dir);
        if (!dup) {
            return -ENOMEM;
        }
        free(c->spool_dir);
        c->spool_dir = dup;
    }
    if (!c->insecure) {
        char why[400];
        if (!c->server_key_file || !*c->server_key_file || !c->key_file || !*c->key_file) {
            rc = s_fail(err,
                        "CURVE is on by default: set security.server_key (--server-key) and "
                        "security.key (--agent-key), or security.insecure for tests",
                        "security");
        } else {
            if (ww_curve_load(c->server_key_file, 0, &c->server_key, why, sizeof why) < 0) {
                rc = s_fail(err, why, "security.server_key");
            }
            if (ww_curve_load(c->key_file, 1, &c->own_key, why, sizeof why) < 0) {
                rc = s_fail(err, why, "security.key");
            }
        }
    }
    if (c->latency_window_ns < c->interval_ns || c->latency_window_ns % c->interval_ns != 0) {
        rc = s_fail(err, "must be a multiple of agent.interval", "agent.latency_window");
    }
    int sim = ww_agent_conf_finish_sim(c, err);
    return sim == -ENOMEM ? sim : rc < 0 ? rc : sim;
}

int ww_agent_conf_finish_sim(ww_agent_conf_t *c, ww_cfg_err_t *err)
{
    if (c->source_socket == NULL || c->source_socket_mode == NULL) {
        return s_fail(err, "must be set", "source.socket and source.socket_mode");
    }
    int rc = 0;
    /* agent.source is an enum row of the registry's names: always one of its sources
     * (unless the struct was filled by hand). */
    const ww_sources_entry_t *src = ww_sources_get(c->source);
    if (src == NULL) {
        rc = s_fail(err, "not a registered source", "agent.source");
    } else if (src->max_nodes == 1 && c->sim_nodes != 1) {
        ww_cfg_err_add(err, "sim.nodes: must be 1 with agent.source %s (one agent per node)",
                       src->name);
        rc = -EINVAL;
    } else if (src->max_nodes > 1 && c->sim_nodes > (int64_t)src->max_nodes) {
        ww_cfg_err_add(err, "sim.nodes: at most %u with agent.source %s", src->max_nodes,
                       src->name);
        rc = -EINVAL;
    }
    char *end = NULL;
    unsigned long mode = strtoul(c->source_socket_mode, &end, 8);
    if (!*c->source_socket_mode || *end != '\0' || mode > 0777) {
        rc = s_fail(err, "must be octal permission bits, 0 to 0777 (e.g. 0660)",
                    "source.socket_mode");
    }
    if (!*c->source_socket || strlen(c->source_socket) >= 108) {
        rc = s_fail(err, "must be a path of 1 to 107 bytes", "source.socket");
    }
    c->reqlog.path = c->source_socket;
    c->reqlog.mode = (unsigned)mode;
    /* A sender's reading at each of its ticks lands just before or just after the agent's
     * own tick: the newest one may be an interval old, never stale for that. */
    c->reqlog.max_age_ns =
        c->source_max_age_ns > 2 * c->interval_ns ? c->source_max_age_ns : 2 * c->interval_ns;
    ww_sim_model_t *models = c->sim_models.items;
    for (size_t i = 0; i < c->sim_models.n; i++) {
        if (!models[i].name || !*models[i].name || strlen(models[i].name) >= WW_MODEL_NAME_MAX) {
            ww_cfg_err_add(err, "sim.models[%zu].name: required, 1 to %d characters", i,
                           WW_MODEL_NAME_MAX - 1);
            rc = -EINVAL;
        }
    }
    if (c->sim.idle_w >= c->sim.max_w) {
        rc = s_fail(err, "must be below sim.max_w", "sim.idle_w");
    }
    c->sim.models = models;
    c->sim.n_models = c->sim_models.n;
    c->sim.seed = (uint64_t)c->sim_seed;
    if (s_not_measured(c->sim_not_measured, &c->sim.not_measured, err) < 0) {
        rc = -EINVAL;
    }
    c->host = (ww_host_conf_t){c->host_root,    c->host_power, c->host_inlet,  c->host_outlet,
                               c->host_hotspot, c->sim.models, c->sim.n_models};
    c->nvml = (ww_nvml_conf_t){c->nvml_library, c->nvml_devices, c->sim.models, c->sim.n_models};
    return rc;
}

void ww_agent_node_name(const ww_agent_conf_t *c, unsigned i, char *out, size_t cap)
{
    if (c->sim_nodes <= 1) {
        snprintf(out, cap, "%s", c->node_id);
    } else {
        snprintf(out, cap, "%s-%u", c->node_id, i);
    }
}

/* The simulator's defaults, taken from the rows above so the numbers live in one place. */
void ww_sim_conf_set_defaults(ww_sim_conf_t *c)
{
    ww_agent_conf_t a;
    ww_cfg_err_t err;
    memset(&a, 0, sizeof a);
    int rc = ww_cfg_defaults(&ww_agent_schema, &a, &err);
    assert(rc == 0); /* the defaults are ours: a failure is a programming error */
    (void)rc;
    *c = a.sim;
    c->seed = (uint64_t)a.sim_seed;
    c->models = NULL;
    c->n_models = 0;
    ww_cfg_free(&ww_agent_schema, &a);
}

size_t ww_sim_default_models(ww_sim_model_t *out, size_t cap)
{
    if (out == NULL) {
        return 0;
    }
    ww_agent_conf_t a;
    ww_cfg_err_t err;
    memset(&a, 0, sizeof a);
    if (ww_cfg_defaults(&ww_agent_schema, &a, &err) < 0) {
        return 0;
    }
    const ww_sim_model_t *m = a.sim_models.items;
    size_t n = a.sim_models.n < cap ? a.sim_models.n : cap;
    for (size_t i = 0; i < n; i++) {
        out[i] = m[i];
        out[i].name = strdup(m[i].name);
        if (out[i].name == NULL) {
            for (size_t j = 0; j < i; j++) {
                free(out[j].name);
                out[j].name = NULL;
            }
            n = 0;
            break;
        }
    }
    ww_cfg_free(&ww_agent_schema, &a);
    return n;
}
