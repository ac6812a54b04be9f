/* ww_sensors: see ww_sensors.h. */
#include "ww_sensors.h"

#include "ww_sysfs.h"
#include "ww_time.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Half a second between the two reads of an energy counter: long enough for a counter of
 * microjoules to move by thousands at a few watts, short for a command. */
#define S_ENERGY_GAP_NS (500 * WW_NS_PER_MS)

static const char *const s_kinds[] = {"temp", "power", "energy"};
static const char *const s_units[] = {"C", "W", "W"};

static void s_value(char *out, size_t cap, int rc, double v, const char *unit)
{
    if (rc == 0) {
        snprintf(out, cap, "%.3f %s", v, unit);
    } else if (rc == -EAGAIN) {
        snprintf(out, cap, "(one read)");
    } else {
        snprintf(out, cap, "unreadable: %s", strerror(-rc));
    }
}

int ww_sensors_main(int argc, char **argv)
{
    const char *root = "/";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: waferwatch sensors [--root DIR]\n");
            return 0;
        } else {
            fprintf(stderr,
                    "waferwatch sensors: unknown argument \"%s\" (usage: waferwatch "
                    "sensors [--root DIR])\n",
                    argv[i]);
            return 2;
        }
    }
    ww_sysfs_sensor_t *v;
    size_t n;
    int rc = ww_sysfs_scan(root, &v, &n);
    if (rc == -ENOENT) {
        fprintf(stderr, "waferwatch sensors: %s: no such directory\n", root);
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "waferwatch sensors: %s: %s\n", root, strerror(-rc));
        return 1;
    }
    if (n == 0) {
        printf("no hwmon or powercap sensor under %s (sys/class/hwmon, sys/class/powercap)\n",
               root);
        free(v);
        return 0;
    }
    /* Energy counters: a first read of each, then, after the gap, the second. */
    ww_sysfs_energy_t *e = calloc(n, sizeof *e);
    if (!e) {
        free(v);
        return 1;
    }
    int64_t t0 = ww_time_mono_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t uj;
        double w;
        if (v[i].kind == WW_SYSFS_ENERGY && ww_sysfs_read_energy(&v[i], &uj) == 0) {
            ww_sysfs_energy_watts(&e[i], uj, v[i].range_uj, t0, &w);
        }
    }
    struct timespec gap = {0, S_ENERGY_GAP_NS};
    while (nanosleep(&gap, &gap) != 0 && errno == EINTR) {
    }
    printf("%-40s %-26s %-6s %-24s %s\n", "SENSOR", "PLACE", "KIND", "VALUE", "CRIT");
    for (size_t i = 0; i < n; i++) {
        double x = NAN;
        if (v[i].kind == WW_SYSFS_ENERGY) {
            uint64_t uj;
            rc = ww_sysfs_read_energy(&v[i], &uj);
            rc = rc == 0 ? ww_sysfs_energy_watts(&e[i], uj, v[i].range_uj, ww_time_mono_ns(), &x)
                         : rc;
        } else {
            rc = ww_sysfs_read(&v[i], &x);
        }
        char value[96], crit[32] = "-";
        s_value(value, sizeof value, rc, x, s_units[v[i].kind]);
        if (!isnan(v[i].crit)) {
            snprintf(crit, sizeof crit, "%.3f %s", v[i].crit, s_units[v[i].kind]);
        }
        printf("%-40s %-26s %-6s %-24s %s\n", v[i].name, v[i].place, s_kinds[v[i].kind], value,
               crit);
    }
    free(e);
    free(v);
    return 0;
}
