/* ww_nvml_source: see ww_nvml_source.h. */
#define WW_LOG_MODULE "nvml"
#include "ww_nvml_source.h"

#include "ww_dl.h"
#include "ww_log.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The few NVML types and constants used (nvml.h's; the header is not needed to build). */
typedef int s_ret_t; /* nvmlReturn_t: 0 = NVML_SUCCESS */
typedef struct s_dev *s_dev_t;
typedef struct {
    unsigned gpu, memory; /* percent */
} s_util_t;
#define S_TEMPERATURE_GPU 0
/* nvmlClocksThrottleReason*: slowed for power or heat. */
#define S_THROTTLE_POWER_OR_HEAT                                                                   \
    (UINT64_C(0x4) /* SwPowerCap */ | UINT64_C(0x8) /* HwSlowdown */ |                             \
     UINT64_C(0x20) /* SwThermalSlowdown */ | UINT64_C(0x40) /* HwThermalSlowdown */ |             \
     UINT64_C(0x80) /* HwPowerBrakeSlowdown */)
#define S_MAX_DEVICES 64

typedef struct {
    void *handle;
    s_ret_t (*init)(void);
    s_ret_t (*shutdown)(void);
    const char *(*error_string)(s_ret_t);
    s_ret_t (*count)(unsigned *);
    s_ret_t (*handle_by_index)(unsigned, s_dev_t *);
    s_ret_t (*power)(s_dev_t, unsigned *);
    s_ret_t (*temperature)(s_dev_t, int, unsigned *);
    s_ret_t (*utilization)(s_dev_t, s_util_t *);
    s_ret_t (*throttle)(s_dev_t, unsigned long long *);
} s_api_t;

#define SYM(name, field)                                                                           \
    {                                                                                              \
#name, offsetof(s_api_t, field)                                                            \
    }
static const ww_dl_sym_t s_syms[] = {
    SYM(nvmlInit_v2, init),
    SYM(nvmlShutdown, shutdown),
    SYM(nvmlErrorString, error_string),
    SYM(nvmlDeviceGetCount_v2, count),
    SYM(nvmlDeviceGetHandleByIndex_v2, handle_by_index),
    SYM(nvmlDeviceGetPowerUsage, power),
    SYM(nvmlDeviceGetTemperature, temperature),
    SYM(nvmlDeviceGetUtilizationRates, utilization),
    SYM(nvmlDeviceGetCurrentClocksThrottleReasons, throttle),
};
#undef SYM

enum { S_POWER, S_TEMP, S_UTIL, S_THROTTLE, S_READINGS };
static const char *const s_what[S_READINGS] = {"power", "temperature", "utilization",
                                               "throttle reasons"};

typedef struct {
    const ww_nvml_conf_t *conf;
    s_api_t api;
    bool inited;
    s_dev_t dev[S_MAX_DEVICES];
    unsigned index[S_MAX_DEVICES];
    size_t n;
    ww_complain_t fail[S_READINGS];
} s_nvml_t;

static void s_close(void **state);

/* The library and its functions: 0, or -ENOENT with the reason logged. */
static int s_load(s_api_t *api, const char *library)
{
    char why[400];
    int rc = ww_dl_open(&api->handle, library, s_syms, sizeof s_syms / sizeof s_syms[0], api, why,
                        sizeof why);
    if (rc < 0) {
        WW_ERROR("nvml.library: %s (the NVIDIA driver installs it; a host without NVIDIA GPUs "
                 "has none: use another agent.source)",
                 why);
    }
    return rc;
}

/* nvml.devices: indexes, comma-separated, into h->index; "" = 0 .. count - 1. */
static int s_devices(s_nvml_t *h, unsigned count)
{
    const char *p = h->conf->devices ? h->conf->devices : "";
    if (strspn(p, " ,") == strlen(p)) {
        for (unsigned i = 0; i < count && h->n < S_MAX_DEVICES; i++) {
            h->index[h->n++] = i;
        }
        return count == 0 ? -ENODEV : 0;
    }
    while (*p) {
        p += strspn(p, " ,");
        if (!*p) {
            break;
        }
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v >= count || h->n == S_MAX_DEVICES) {
            WW_ERROR("nvml.devices: \"%.*s\" is not a device index below %u", (int)strcspn(p, ","),
                     p, count);
            return -EINVAL;
        }
        h->index[h->n++] = (unsigned)v;
        p = end;
    }
    return 0;
}

static int s_open(const void *conf, unsigned node_index, int64_t start_ns, void **state)
{
    (void)start_ns;
    if (node_index != 0) {
        return -EINVAL;
    }
    s_nvml_t *h = calloc(1, sizeof *h);
    if (!h) {
        return -ENOMEM;
    }
    h->conf = conf;
    void *st = h;
    int rc = s_load(&h->api, h->conf->library);
    if (rc == 0) {
        s_ret_t r = h->api.init();
        h->inited = r == 0;
        if (r != 0) {
            WW_ERROR("nvmlInit: %s", h->api.error_string(r));
            rc = -EIO;
        }
    }
    unsigned count = 0;
    if (rc == 0 && h->api.count(&count) != 0) {
        WW_ERROR("nvmlDeviceGetCount failed");
        rc = -EIO;
    }
    if (rc == 0 && (rc = s_devices(h, count)) == -ENODEV) {
        WW_ERROR("NVML sees no GPU on this host");
    }
    for (size_t i = 0; rc == 0 && i < h->n; i++) {
        s_ret_t r = h->api.handle_by_index(h->index[i], &h->dev[i]);
        if (r != 0) {
            WW_ERROR("nvmlDeviceGetHandleByIndex(%u): %s", h->index[i], h->api.error_string(r));
            rc = -EIO;
        }
    }
    if (rc < 0) {
        s_close(&st);
        return rc;
    }
    WW_INFO("reading %zu of %u NVIDIA GPUs through %s", h->n, count, h->conf->library);
    *state = h;
    return 0;
}

static int s_sample(void *state, int64_t now_ns, ww_reading_t *out)
{
    (void)now_ns;
    s_nvml_t *h = state;
    memset(out, 0, sizeof *out);
    out->not_measured = WW_FIELD_NOT_MEASURED_BITS;
    out->humidity_pct = NAN;
    double power = 0, temp = -INFINITY, util = 0;
    bool throttled = false;
    s_ret_t failed[S_READINGS] = {0};
    for (size_t i = 0; i < h->n; i++) {
        unsigned mw, c;
        s_util_t u;
        unsigned long long reasons;
        s_ret_t r;
        if ((r = h->api.power(h->dev[i], &mw)) == 0) {
            power += mw / 1000.0;
        } else {
            failed[S_POWER] = failed[S_POWER] ? failed[S_POWER] : r;
        }
        if ((r = h->api.temperature(h->dev[i], S_TEMPERATURE_GPU, &c)) == 0) {
            temp = c > temp ? c : temp;
        } else {
            failed[S_TEMP] = failed[S_TEMP] ? failed[S_TEMP] : r;
        }
        if ((r = h->api.utilization(h->dev[i], &u)) == 0) {
            util += u.gpu / 100.0;
        } else {
            failed[S_UTIL] = failed[S_UTIL] ? failed[S_UTIL] : r;
        }
        if ((r = h->api.throttle(h->dev[i], &reasons)) == 0) {
            throttled = throttled || (reasons & S_THROTTLE_POWER_OR_HEAT) != 0;
        } else {
            failed[S_THROTTLE] = failed[S_THROTTLE] ? failed[S_THROTTLE] : r;
        }
    }
    /* A reading of every device, or none: a sum or mean of some of them is made up. */
    for (int k = 0; k < S_READINGS; k++) {
        if (failed[k]) {
            WW_COMPLAIN(&h->fail[k], "nvml: a device's %s: %s; not measured until it reads",
                        s_what[k], h->api.error_string(failed[k]));
        } else {
            WW_RECOVERED(&h->fail[k], "nvml: %s reads again (%lu ticks without)", s_what[k],
                         h->fail[k].repeats + 1);
        }
    }
    if (!failed[S_POWER]) {
        out->power_w = (float)power;
        out->not_measured &= ~WW_FIELD_BIT(3);
    }
    if (!failed[S_TEMP]) {
        out->wafer_hotspot_c = (float)temp;
        out->not_measured &= ~WW_FIELD_BIT(7);
    }
    if (!failed[S_UTIL]) {
        out->utilization = (float)(util / (double)h->n);
        out->not_measured &= ~WW_FIELD_BIT(8);
    }
    if (!failed[S_THROTTLE]) {
        out->throttled = throttled;
        out->not_measured &= ~WW_FIELD_BIT(12);
    }
    return 0;
}

static const char *s_model_name(void *state, unsigned i)
{
    const s_nvml_t *h = state;
    return i < h->conf->n_models ? h->conf->models[i].name : NULL;
}

static void s_close(void **state)
{
    if (!state || !*state) {
        return;
    }
    s_nvml_t *h = *state;
    if (h->inited) {
        h->api.shutdown();
    }
    if (h->api.handle) {
        dlclose(h->api.handle);
    }
    free(h);
    *state = NULL;
}

const ww_source_t ww_nvml_source = {
    .name = "nvml",
    .open = s_open,
    .sample = s_sample,
    .poll_requests = ww_source_no_requests,
    .set_sink = NULL,
    .fd = NULL,
    .ready = NULL,
    .model_name = s_model_name,
    .close = s_close,
};
