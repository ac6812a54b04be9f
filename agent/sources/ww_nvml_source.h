/* ww_nvml_source: the NVIDIA GPUs of a host, through NVML, as an agent source
 * (agent.source nvml; issue 19: a mixed fleet compared J/token against J/token).
 *
 * libnvidia-ml is loaded with dlopen when the source opens (conf->library, by default
 * libnvidia-ml.so.1, which the NVIDIA driver installs): the agent neither links against it
 * nor needs it anywhere else, and a host without it gets a clear error naming the library
 * and what the loader said. Read at every tick from the devices conf->devices names (their
 * NVML indexes, comma-separated; "" = every device):
 *   power_w          the sum of their power draw (nvmlDeviceGetPowerUsage, mW)
 *   wafer_hotspot_c  the hottest GPU die (nvmlDeviceGetTemperature, NVML_TEMPERATURE_GPU)
 *   utilization      the mean GPU utilisation (nvmlDeviceGetUtilizationRates), 0..1
 *   throttled        a device slowed for power or heat (nvmlDeviceGetCurrentClocksThrottle
 *                    Reasons: software power cap, hardware slowdown, software or hardware
 *                    thermal slowdown, power brake)
 * Everything else (coolant, tokens, the request queue, the throttle factor) NVML does not
 * say: not measured, stored as NULL. A call that fails at a tick leaves its reading out for
 * that tick (logged once per run of failures). Requests come from elsewhere
 * (agent.requests otlp).
 */
#ifndef WW_NVML_SOURCE_H
#define WW_NVML_SOURCE_H

#include "ww_sim.h"
#include "ww_source.h"

#include <stddef.h>

typedef struct {
    const char *library; /* the NVML library to dlopen */
    const char *devices; /* NVML device indexes, comma-separated; "" = all */
    /* The latency windows' model slots (sim.models: their names). */
    const ww_sim_model_t *models;
    size_t n_models;
} ww_nvml_conf_t;

/* The NVML source's function table. One node per agent (node_index 0). */
extern const ww_source_t ww_nvml_source;

#endif
