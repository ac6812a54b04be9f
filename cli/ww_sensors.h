/* ww_sensors: `waferwatch sensors [--root DIR]`, the host's power and temperature sensors
 * as the agent's host sources will name them (lib/ww_sysfs.h): each sensor's name, its
 * exact place, its kind, its value now and its critical limit, so that an SRE can write
 * which sensor is the inlet, the outlet, the hotspot and the power of a node. Energy
 * counters (powercap/RAPL) are read twice, half a second apart, and shown as watts.
 *
 * Prints to stdout; returns the exit status: 0 (also with no sensor: a line says so),
 * 2 on a bad argument or a root that does not exist, 1 when out of memory. */
#ifndef WW_SENSORS_H
#define WW_SENSORS_H

int ww_sensors_main(int argc, char **argv);

#endif
