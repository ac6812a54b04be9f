/* ww_host_source: see ww_host_source.h. */
#define WW_LOG_MODULE "host"
#include "ww_host_source.h"

#include "ww_log.h"
#include "ww_sysfs.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Sensors per reading. */
#define S_MAX_SENSORS 16

/* The readings this source takes from sysfs, by their ww_fields.h number. */
enum { S_POWER, S_INLET, S_OUTLET, S_HOTSPOT, S_READINGS };
static const unsigned s_pb[S_READINGS] = {3, 4, 5, 7};
static const char *const s_key[S_READINGS] = {"host.power", "host.inlet", "host.outlet",
                                              "host.hotspot"};

typedef struct {
    ww_sysfs_sensor_t sensor;
    ww_sysfs_energy_t energy; /* ENERGY sensors: the previous read */
} s_sensor_t;

typedef struct {
    s_sensor_t s[S_MAX_SENSORS];
    size_t n;
    ww_complain_t fail;
} s_reading_t;

typedef struct {
    const ww_host_conf_t *conf;
    s_reading_t r[S_READINGS];
    uint64_t errors;
} s_host_t;

/* Every reading a host does not measure: all ALWAYS fields but the four read here. */
#define S_ALL_BITS (WW_FIELD_NOT_MEASURED_BITS)

/* Resolves the comma-separated names of one reading against the scanned list. */
static int s_resolve(s_reading_t *rd, const char *key, const char *names, const char *root,
                     const ww_sysfs_sensor_t *list, size_t n)
{
    const char *p = names ? names : "";
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 0) {
            break;
        }
        char name[WW_SYSFS_NAME_MAX];
        if (len >= sizeof name || rd->n == S_MAX_SENSORS) {
            WW_ERROR("%s: too many sensors or a name too long (at most %d of %d bytes)", key,
                     S_MAX_SENSORS, WW_SYSFS_NAME_MAX - 1);
            return -EINVAL;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        int i = ww_sysfs_find(list, n, name);
        if (i < 0) {
            WW_ERROR("%s: %s \"%s\" under %s (`waferwatch sensors --root %s` lists them)", key,
                     i == -EEXIST ? "two sensors answer to" : "no sensor named", name, root, root);
            return i;
        }
        memset(&rd->s[rd->n], 0, sizeof rd->s[rd->n]);
        rd->s[rd->n].sensor = list[i];
        rd->n++;
        p += len;
        while (*p == ' ') {
            p++;
        }
    }
    return 0;
}

/* Reads one sensor now: 0 with *v (W or C), or a negative errno (-EAGAIN: an energy
 * counter's first read, which only starts its rate). */
static int s_read(s_sensor_t *s, int64_t now_ns, double *v)
{
    if (s->sensor.kind != WW_SYSFS_ENERGY) {
        return ww_sysfs_read(&s->sensor, v);
    }
    uint64_t uj;
    int rc = ww_sysfs_read_energy(&s->sensor, &uj);
    if (rc == 0) {
        rc = ww_sysfs_energy_watts(&s->energy, uj, s->sensor.range_uj, now_ns, v);
    }
    return rc;
}

static int s_open(const void *conf, unsigned node_index, int64_t start_ns, void **state)
{
    const ww_host_conf_t *c = conf;
    if (node_index != 0) {
        return -EINVAL;
    }
    s_host_t *h = calloc(1, sizeof *h);
    if (!h) {
        return -ENOMEM;
    }
    h->conf = c;
    ww_sysfs_sensor_t *list = NULL;
    size_t n = 0;
    int rc = ww_sysfs_scan(c->root, &list, &n);
    if (rc < 0) {
        WW_ERROR("host.root %s: %s", c->root, strerror(-rc));
    }
    const char *names[S_READINGS] = {c->power, c->inlet, c->outlet, c->hotspot};
    for (int k = 0; k < S_READINGS && rc == 0; k++) {
        rc = s_resolve(&h->r[k], s_key[k], names[k], c->root, list, n);
    }
    if (rc == 0 && h->r[S_POWER].n == 0) {
        WW_ERROR("host.power: name at least one power or energy sensor (`waferwatch sensors "
                 "--root %s` lists them)",
                 c->root);
        rc = -EINVAL;
    }
    free(list);
    if (rc < 0) {
        free(h);
        return rc;
    }
    (void)start_ns; /* an energy counter's rate starts at the first tick (time comes in) */
    WW_INFO("reading %zu power, %zu inlet, %zu outlet and %zu hotspot sensors under %s",
            h->r[S_POWER].n, h->r[S_INLET].n, h->r[S_OUTLET].n, h->r[S_HOTSPOT].n, c->root);
    *state = h;
    return 0;
}

/* One reading at now_ns into *v: the sum (power) or the highest (temperatures) of its
 * sensors. False when it is not measured now (none configured, or a sensor unreadable). */
static bool s_take(s_host_t *h, int k, int64_t now_ns, double *v)
{
    s_reading_t *rd = &h->r[k];
    if (rd->n == 0) {
        return false;
    }
    double acc = k == S_POWER ? 0.0 : -INFINITY;
    int rc = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < rd->n; i++) {
        double x;
        int r = s_read(&rd->s[i], now_ns, &x);
        if (r == -EAGAIN) {
            rc = rc ? rc : r; /* an energy counter's first read: no rate yet, no failure */
            continue;
        }
        if (r < 0) {
            if (rc == 0 || rc == -EAGAIN) { /* a failure outranks a first read */
                rc = r;
                bad = rd->s[i].sensor.name;
            }
            continue;
        }
        acc = k == S_POWER ? acc + x : (x > acc ? x : acc);
    }
    /* A power is the sum of all its sensors or nothing; a temperature the highest of those
     * that could be read, when any could. */
    bool ok = k == S_POWER ? rc == 0 : isfinite(acc);
    if (rc == -EAGAIN) {
        *v = acc;
        return false;
    }
    if (rc < 0) {
        h->errors++;
        WW_COMPLAIN(&rd->fail, "%s: sensor %s: %s; %s", s_key[k], bad, strerror(-rc),
                    ok ? "the others give the reading" : "not measured until it reads again");
    } else {
        WW_RECOVERED(&rd->fail, "%s: every sensor reads again (%lu ticks with a failure)", s_key[k],
                     rd->fail.repeats + 1);
    }
    *v = acc;
    return ok;
}

static int s_sample(void *state, int64_t now_ns, ww_reading_t *out)
{
    s_host_t *h = state;
    memset(out, 0, sizeof *out);
    out->not_measured = S_ALL_BITS;
    out->humidity_pct = NAN;
    float *dst[S_READINGS] = {&out->power_w, &out->inlet_c, &out->outlet_c, &out->wafer_hotspot_c};
    for (int k = 0; k < S_READINGS; k++) {
        double v;
        if (s_take(h, k, now_ns, &v)) {
            *dst[k] = (float)v;
            out->not_measured &= ~WW_FIELD_BIT(s_pb[k]);
        }
    }
    return 0;
}

static const char *s_model_name(void *state, unsigned i)
{
    const s_host_t *h = state;
    return i < h->conf->n_models ? h->conf->models[i].name : NULL;
}

static void s_close(void **state)
{
    if (state && *state) {
        free(*state);
        *state = NULL;
    }
}

uint64_t ww_host_source_errors(const void *state)
{
    return ((const s_host_t *)state)->errors;
}

const ww_source_t ww_host_source = {
    .name = "host",
    .open = s_open,
    .sample = s_sample,
    .poll_requests = ww_source_no_requests,
    .set_sink = NULL,
    .fd = NULL,
    .ready = NULL,
    .model_name = s_model_name,
    .close = s_close,
};
