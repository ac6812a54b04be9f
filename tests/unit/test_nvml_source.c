/* The NVML source (agent/sources/ww_nvml_source.h): a host without the library, or with a
 * library that is not NVML, is refused at open with the reason; on a host with NVIDIA GPUs
 * (the device machine some sessions are lent) every tick reads their power, hottest die,
 * utilisation and throttling, and leaves the rest not measured. Without the library that
 * part is skipped, saying so. */
#include "ww_nvml_source.h"
#include "ww_test.h"
#include "ww_time.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#define T0 (INT64_C(1795000000) * WW_NS_PER_S)

static const ww_sim_model_t s_models[] = {{.name = (char *)"m"}};

static void test_no_nvml_is_a_clear_refusal(void **state)
{
    (void)state;
    void *h = NULL;
    ww_nvml_conf_t c = {"libnvidia-ml-absent.so.9", "", s_models, 1};
    assert_int_equal(ww_nvml_source.open(&c, 0, T0, &h), -ENOENT);
    assert_null(h);
    c.library = "libc.so.6"; /* a library, not NVML */
    assert_int_equal(ww_nvml_source.open(&c, 0, T0, &h), -ENOENT);
    assert_null(h);
    c.library = "libnvidia-ml.so.1";
    assert_int_equal(ww_nvml_source.open(&c, 1, T0, &h), -EINVAL); /* one node per agent */
}

static void test_the_gpus_of_this_host(void **state)
{
    (void)state;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        print_message("SKIPPED: no NVML on this host (%s): the device test runs where a GPU "
                      "machine is lent\n",
                      dlerror());
        skip();
    }
    dlclose(lib);
    void *h = NULL;
    ww_nvml_conf_t c = {"libnvidia-ml.so.1", "", s_models, 1};
    assert_int_equal(ww_nvml_source.open(&c, 0, T0, &h), 0);
    ww_reading_t r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ww_nvml_source.sample(h, T0 + i * WW_NS_PER_S, &r), 0);
        print_message("power %.1f W, hottest %.0f C, utilisation %.2f, throttled %d, not "
                      "measured 0x%x\n",
                      r.power_w, r.wafer_hotspot_c, r.utilization, r.throttled,
                      (unsigned)r.not_measured);
        assert_false(r.not_measured & WW_FIELD_BIT(3)); /* power */
        assert_false(r.not_measured & WW_FIELD_BIT(7)); /* temperature */
        assert_true(r.power_w > 0 && r.power_w < 10000);
        assert_true(r.wafer_hotspot_c > 0 && r.wafer_hotspot_c < 150);
        assert_true(r.not_measured & WW_FIELD_BIT(6)); /* no coolant flow from NVML */
        assert_true(isnan(r.humidity_pct));
    }
    assert_string_equal(ww_nvml_source.model_name(h, 0), "m");
    ww_nvml_source.close(&h);
    ww_nvml_source.close(&h);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_no_nvml_is_a_clear_refusal),
    cmocka_unit_test(test_the_gpus_of_this_host),
};
WW_TEST_MAIN(tests, NULL, NULL)
