/* ww_host_source: a Linux host's own power and temperatures as an agent source
 * (agent.source host; issue 19: the readings without the simulator).
 *
 * Read at every tick from sysfs under conf->root (lib/ww_sysfs.h: hwmon and
 * powercap/RAPL, by the stable names `waferwatch sensors` lists):
 *   power_w          the sum of the host.power sensors, each a power (W) or an energy
 *                    counter (powercap energy_uj: its rate since the previous tick, its
 *                    wrap accounted for; the first tick has no rate yet: no power then)
 *   inlet_c, outlet_c, wafer_hotspot_c
 *                    the highest of the host.inlet / host.outlet / host.hotspot sensors
 * Everything else (coolant flow, utilisation, tokens, the request queue, throttling) a host's
 * sysfs does not say: not measured (ww_reading_t.not_measured), stored as NULL. So is a
 * configured reading whose sensors cannot be read at a tick (a file gone, unreadable, an
 * energy counter that went back without a known range): that tick's value is left out,
 * never made up, and the failures are counted (ww_host_source_errors) and logged once per
 * run of failures. Requests come from elsewhere (agent.requests otlp): this source has
 * none.
 *
 * open() resolves every name once, failing (-ENOENT, -EEXIST for a name two sensors share)
 * with the name and the root in the log: a typo never runs silently without that reading.
 * A wafer-scale system would be read through its own management API or Redfish
 * (PowerSubsystem, ThermalSubsystem): the next source, on the same table.
 */
#ifndef WW_HOST_SOURCE_H
#define WW_HOST_SOURCE_H

#include "ww_sim.h"
#include "ww_source.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *root;    /* "/" on a host; a fixture tree in tests */
    const char *power;   /* sensor names, comma-separated (at least one) */
    const char *inlet;   /* sensor names, comma-separated; "" = not measured */
    const char *outlet;  /* "" = not measured */
    const char *hotspot; /* "" = not measured */
    /* The latency windows' model slots (sim.models: their names): requests come from
     * OTLP. */
    const ww_sim_model_t *models;
    size_t n_models;
} ww_host_conf_t;

/* The host source's function table. One node per agent (node_index 0). */
extern const ww_source_t ww_host_source;

/* Sensor reads that failed since open (state from open()). */
uint64_t ww_host_source_errors(const void *state);

#endif
