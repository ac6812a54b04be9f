/* The host source (agent/sources/ww_host_source.h) against a fixture sysfs tree laid out as
 * the kernel ABI documents hwmon and powercap: power summed from a power meter and a RAPL
 * energy counter (its rate, its wrap), temperatures the highest of their sensors, a sensor
 * gone or garbled leaving its reading out for that tick, every other reading not measured,
 * and names that match nothing refused at open. */
#include "ww_host_source.h"
#include "ww_test.h"
#include "ww_time.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 (INT64_C(1795000000) * WW_NS_PER_S)

static void s_rm(const char *root)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* A host: coretemp (two packages), an ACPI power meter (W), RAPL package-0 (energy). */
static void s_fixture(char *root, size_t cap)
{
    snprintf(root, cap, "/tmp/ww-host.XXXXXX");
    assert_non_null(mkdtemp(root));
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp2_input", "52500\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp2_label", "Package id 1\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/name", "acpi_power_meter\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/power1_average", "200000000\n"); /* 200 W */
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
}

static ww_host_conf_t s_conf(const char *root)
{
    static const ww_sim_model_t models[] = {{.name = (char *)"m"}};
    ww_host_conf_t c = {root, "hwmon/acpi_power_meter/power1, powercap/package-0",        "",
                        "",   "hwmon/coretemp/Package id 0, hwmon/coretemp/Package id 1", models,
                        1};
    return c;
}

#define POWER WW_FIELD_BIT(3)
#define HOTSPOT WW_FIELD_BIT(7)

static void test_readings_from_a_fixture_host(void **state)
{
    (void)state;
    char root[64];
    s_fixture(root, sizeof root);
    ww_host_conf_t c = s_conf(root);
    void *h = NULL;
    assert_int_equal(ww_host_source.open(&c, 0, T0, &h), 0);
    assert_string_equal(ww_host_source.model_name(h, 0), "m");
    assert_null(ww_host_source.model_name(h, 1));
    ww_reading_t r;

    /* Tick 1: the energy counter's first read has no rate: power not measured yet; the
     * hotspot is the hotter package. Everything else is never measured here. */
    assert_int_equal(ww_host_source.sample(h, T0, &r), 0);
    assert_int_equal(r.not_measured, WW_FIELD_NOT_MEASURED_BITS & ~HOTSPOT);
    assert_true(r.wafer_hotspot_c == 52.5f);
    assert_true(isnan(r.humidity_pct));
    ww_request_t req[4];
    assert_int_equal(ww_host_source.poll_requests(h, req, 4), 0);

    /* Tick 2, 1 s later, 150 J more: 200 W + 150 W. */
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "151000000\n");
    assert_int_equal(ww_host_source.sample(h, T0 + WW_NS_PER_S, &r), 0);
    assert_int_equal(r.not_measured, WW_FIELD_NOT_MEASURED_BITS & ~(HOTSPOT | POWER));
    assert_true(fabsf(r.power_w - 350.0f) < 1e-3f);

    /* Tick 3, 2 s later: the counter wrapped at its range (262143.32885 J) and went on to
     * 99 J: 262143328850 - 151000000 + 99000000 uJ over 2 s. */
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "99000000\n");
    assert_int_equal(ww_host_source.sample(h, T0 + 3 * WW_NS_PER_S, &r), 0);
    double want = 200 + (262143328850.0 - 151000000 + 99000000) / 1e6 / 2;
    assert_true(fabs(r.power_w - want) < 1e-2 * want / 1000);
    assert_int_equal(ww_host_source_errors(h), 0);

    /* A package's sensor gone: the other gives the hotspot. The power meter gone: no power
     * (a sum of some of its sensors would be a made-up total), counted. */
    char path[128];
    snprintf(path, sizeof path, "%s/sys/class/hwmon/hwmon0/temp2_input", root);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/sys/class/hwmon/hwmon1/power1_average", root);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ww_host_source.sample(h, T0 + 4 * WW_NS_PER_S, &r), 0);
    assert_true(r.wafer_hotspot_c == 45.0f);
    assert_true(r.not_measured & POWER);
    assert_false(r.not_measured & HOTSPOT);
    assert_int_equal(ww_host_source_errors(h), 2);
    /* Garbled: a value that is not a number is no reading either. */
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "n/a\n");
    assert_int_equal(ww_host_source.sample(h, T0 + 5 * WW_NS_PER_S, &r), 0);
    assert_true(r.not_measured & HOTSPOT);
    /* Back: read again at the next tick. */
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "47000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/power1_average", "100000000\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "109000000\n");
    assert_int_equal(ww_host_source.sample(h, T0 + 6 * WW_NS_PER_S, &r), 0);
    assert_true(r.wafer_hotspot_c == 47.0f);
    /* The counter was read at every tick, the meter's failures aside: 10 J over 1 s. */
    assert_true(fabsf(r.power_w - 110.0f) < 1e-3f);
    ww_host_source.close(&h);
    ww_host_source.close(&h);
    s_rm(root);
}

static void test_names_that_match_nothing_are_refused(void **state)
{
    (void)state;
    char root[64];
    s_fixture(root, sizeof root);
    void *h = NULL;
    ww_host_conf_t c = s_conf(root);
    c.hotspot = "hwmon/coretemp/Package id 7";
    assert_int_equal(ww_host_source.open(&c, 0, T0, &h), -ENOENT);
    assert_null(h);
    c = s_conf(root);
    c.power = "";
    assert_int_equal(ww_host_source.open(&c, 0, T0, &h), -EINVAL);
    c = s_conf(root);
    assert_int_equal(ww_host_source.open(&c, 1, T0, &h), -EINVAL); /* one node per agent */
    c.root = "/nonexistent/ww-host";
    assert_int_equal(ww_host_source.open(&c, 0, T0, &h), -ENOENT);
    s_rm(root);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_readings_from_a_fixture_host),
    cmocka_unit_test(test_names_that_match_nothing_are_refused),
};
WW_TEST_MAIN(tests, NULL, NULL)
