/* ww_sysfs: power and temperatures of a Linux host, from sysfs, the way the kernel ABI lays
 * them out (issue 19's host sources: the readings without the simulator).
 *
 * Under a root directory ("/" on a host; a fixture tree laid out the same way in tests):
 *  - hwmon (Documentation/hwmon/sysfs-interface.rst): sys/class/hwmon/hwmonN/, with the
 *    attributes in that directory or, for older drivers, in its device/ subdirectory:
 *    `name` (the chip), tempK_input (millidegrees Celsius, signed), powerK_input or else
 *    powerK_average (microwatts), an optional tempK_label / powerK_label, and an optional
 *    tempK_crit (millidegrees) / powerK_crit (microwatts).
 *  - powercap (Documentation/power/powercap/powercap.rst): sys/class/powercap/<zone>/,
 *    each zone with `name` ("package-0", "core", "dram", "psys") and `energy_uj`, a counter
 *    of microjoules that wraps to 0 past max_energy_range_uj. Power is its rate of change
 *    between two reads (ww_sysfs_energy_watts), the wrap accounted for.
 *
 * A sensor is named so that a configuration can say which one it means and still mean it
 * after a reboot renumbers hwmonN:
 *  - "hwmon/<chip>/<label>": the chip's `name`, and the label file's text or, without one,
 *    the attribute's stem ("temp2", "power1"): "hwmon/coretemp/Package id 0";
 *  - "powercap/<name>" for a top-level zone, "powercap/<parent's name>/<name>" for a
 *    subzone (its directory is the parent's name plus ":K"): "powercap/package-0/core".
 * Two sensors can still share a name (two NVMe drives, both "hwmon/nvme/Composite"; a zone
 * exposed by both intel-rapl and intel-rapl-mmio): each also answers to its exact place,
 * "hwmonN/temp1" or "powercap/<zone directory>", and ww_sysfs_find refuses an ambiguous name
 * (-EEXIST) so that a reading is never taken from a sensor nobody chose.
 *
 * Nothing is cached between reads: a sensor file that disappears (a driver unloaded) or
 * cannot be read gives that read a negative errno, and the next read tries again.
 */
#ifndef WW_SYSFS_H
#define WW_SYSFS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WW_SYSFS_TEMP,   /* degrees Celsius */
    WW_SYSFS_POWER,  /* watts */
    WW_SYSFS_ENERGY, /* a microjoule counter: watts through ww_sysfs_energy_watts */
} ww_sysfs_kind_t;

#define WW_SYSFS_NAME_MAX 192
#define WW_SYSFS_PATH_MAX 512

typedef struct {
    char name[WW_SYSFS_NAME_MAX];  /* see above: "hwmon/coretemp/Package id 0" */
    char place[WW_SYSFS_NAME_MAX]; /* its exact place: "hwmon3/temp1", "powercap/intel-rapl:0" */
    char path[WW_SYSFS_PATH_MAX];  /* the file a read takes: .../temp1_input, .../energy_uj */
    ww_sysfs_kind_t kind;
    double crit;       /* TEMP: *_crit in C; POWER: *_crit in W; NAN when there is none */
    uint64_t range_uj; /* ENERGY: max_energy_range_uj (0 when unreadable: a wrap is refused) */
} ww_sysfs_sensor_t;

/* Lists every sensor under root (hwmon temperatures and powers, powercap zones), sorted by
 * name then place, into *out (malloc'd: free() it) and *n. A directory or attribute that
 * cannot be read is left out (a chip without a name is named by its place); a root without
 * either class directory has no sensors (0, *n = 0). Returns 0, -ENOENT when root itself
 * does not exist, -ENOMEM. */
int ww_sysfs_scan(const char *root, ww_sysfs_sensor_t **out, size_t *n);

/* The index in list[0..n) of the sensor that spec names (its name or its place), -ENOENT
 * when none does, -EEXIST when its name is shared (say its place instead). */
int ww_sysfs_find(const ww_sysfs_sensor_t *list, size_t n, const char *spec);

/* Reads a TEMP (C) or POWER (W) sensor now into *value. Returns 0, a negative errno from
 * the file (-ENOENT when it went away, -EIO, ...), -EINVAL when it holds no integer (or for
 * an ENERGY sensor: see ww_sysfs_read_energy). */
int ww_sysfs_read(const ww_sysfs_sensor_t *s, double *value);

/* Reads an ENERGY sensor's counter now into *uj. Returns 0 or a negative errno as above. */
int ww_sysfs_read_energy(const ww_sysfs_sensor_t *s, uint64_t *uj);

/* The power between two reads of one energy counter. A zeroed struct is ready. */
typedef struct {
    uint64_t last_uj;
    int64_t last_ns;
    int primed; /* a first read was taken */
} ww_sysfs_energy_t;

/* Takes the counter uj read at now_ns and sets *watts to the mean power since the previous
 * read: (uj - last) / (now - last), or, when the counter is lower than last, wrapped once
 * at range_uj: (range_uj - last + uj). Returns 0; -EAGAIN for the first read (nothing to
 * compare with yet: no power is made up); -ERANGE when the counter went back without a
 * known range, or past it (a reset, not a wrap: this read starts over); -EINVAL when now_ns
 * is not after the previous read. Each call but -EINVAL keeps (uj, now_ns) as the next
 * previous read. */
int ww_sysfs_energy_watts(ww_sysfs_energy_t *e, uint64_t uj, uint64_t range_uj, int64_t now_ns,
                          double *watts);

#endif
