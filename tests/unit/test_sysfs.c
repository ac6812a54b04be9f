/* ww_sysfs against fixture trees laid out as the kernel ABI documents hwmon and powercap
 * (built here in a temporary directory), and against this machine's own /sys when it has
 * either class. */
#include "ww_sysfs.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ww_test.h"

static void s_rm(const char *root)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* A host with two CPU packages (coretemp, RAPL with subzones), a board chip of the older
 * layout (attributes in device/), two NVMe drives of one name, a chip without a name, a
 * power meter that only averages, and files that cannot be read as values. */
static void s_fixture(char *root, size_t cap)
{
    snprintf(root, cap, "/tmp/ww-sysfs.XXXXXX");
    assert_non_null(mkdtemp(root));
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_crit", "100000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp2_input", "-5250\n"); /* no label, below 0 */
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp2_max", "80000\n");   /* not a value */
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/device/name", "nct6775\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/device/temp1_input", "31500\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/device/temp1_label", "SYSTIN\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon2/name", "nvme\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon2/temp1_input", "38850\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon2/temp1_label", "Composite\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon3/name", "nvme\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon3/temp1_input", "41000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon3/temp1_label", "Composite\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon4/temp1_input", "20000\n"); /* no name anywhere */
    ww_test_put_file(root, "sys/class/hwmon/hwmon5/name", "acpi_power_meter\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon5/power1_average", "23456789\n"); /* uW */
    ww_test_put_file(root, "sys/class/hwmon/hwmon5/power1_crit", "30000000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon6/name", "amdgpu\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon6/power1_input", "150000000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon6/power1_average",
                     "1\n"); /* power1_input is taken */
    ww_test_put_file(root, "sys/class/hwmon/hwmon6/temp1_input", "not a number\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon6/temp2_input/x",
                     ""); /* a directory: unreadable */
    ww_test_put_file(root, "sys/class/powercap/intel-rapl/enabled", "1\n"); /* a control type */
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0:0/name", "core\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0:0/energy_uj", "500\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0:0/max_energy_range_uj",
                     "262143328850\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:1/name", "package-1\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:1/energy_uj", "7\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:1:0/name", "core\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:1:0/energy_uj", "9\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:1:0/max_energy_range_uj",
                     "-1\n"); /* unreadable */
}

static const ww_sysfs_sensor_t *s_get(const ww_sysfs_sensor_t *v, size_t n, const char *spec)
{
    int i = ww_sysfs_find(v, n, spec);
    if (i < 0) {
        fail_msg("no sensor %s (%d)", spec, i);
    }
    return &v[i];
}

static void test_fixture_tree_is_listed_and_read(void **state)
{
    (void)state;
    char root[64];
    s_fixture(root, sizeof root);
    ww_sysfs_sensor_t *v;
    size_t n;
    assert_int_equal(ww_sysfs_scan(root, &v, &n), 0);
    static const char *const want[][2] = {
        {"hwmon/acpi_power_meter/power1", "hwmon5/power1"},
        {"hwmon/amdgpu/power1", "hwmon6/power1"},
        {"hwmon/amdgpu/temp1", "hwmon6/temp1"},
        {"hwmon/amdgpu/temp2", "hwmon6/temp2"},
        {"hwmon/coretemp/Package id 0", "hwmon0/temp1"},
        {"hwmon/coretemp/temp2", "hwmon0/temp2"},
        {"hwmon/hwmon4/temp1", "hwmon4/temp1"},
        {"hwmon/nct6775/SYSTIN", "hwmon1/temp1"},
        {"hwmon/nvme/Composite", "hwmon2/temp1"},
        {"hwmon/nvme/Composite", "hwmon3/temp1"},
        {"powercap/package-0", "powercap/intel-rapl:0"},
        {"powercap/package-0/core", "powercap/intel-rapl:0:0"},
        {"powercap/package-1", "powercap/intel-rapl:1"},
        {"powercap/package-1/core", "powercap/intel-rapl:1:0"},
    };
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(v[i].name, want[i][0]);
        assert_string_equal(v[i].place, want[i][1]);
    }
    double x;
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/coretemp/Package id 0"), &x), 0);
    assert_true(x == 45.0);
    assert_true(s_get(v, n, "hwmon/coretemp/Package id 0")->crit == 100.0);
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/coretemp/temp2"), &x), 0);
    assert_true(x == -5.25);
    assert_true(isnan(s_get(v, n, "hwmon/coretemp/temp2")->crit));
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/nct6775/SYSTIN"), &x), 0);
    assert_true(x == 31.5);
    const ww_sysfs_sensor_t *meter = s_get(v, n, "hwmon/acpi_power_meter/power1");
    assert_int_equal(meter->kind, WW_SYSFS_POWER);
    assert_int_equal(ww_sysfs_read(meter, &x), 0);
    assert_true(fabs(x - 23.456789) < 1e-9);
    assert_true(meter->crit == 30.0);
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/amdgpu/power1"), &x), 0);
    assert_true(x == 150.0);
    /* One name, two drives: refused by name, each found by its place. */
    assert_int_equal(ww_sysfs_find(v, n, "hwmon/nvme/Composite"), -EEXIST);
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon3/temp1"), &x), 0);
    assert_true(x == 41.0);
    assert_int_equal(ww_sysfs_find(v, n, "hwmon/nvme/Nothing"), -ENOENT);
    /* What cannot be read as a value says so; the reading it would have given is not made up. */
    x = 7;
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/amdgpu/temp1"), &x), -EINVAL);
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon/amdgpu/temp2"), &x), -EISDIR);
    assert_true(x == 7);
    /* Energy counters. */
    const ww_sysfs_sensor_t *pkg = s_get(v, n, "powercap/package-0");
    assert_int_equal(pkg->kind, WW_SYSFS_ENERGY);
    assert_true(pkg->range_uj == UINT64_C(262143328850));
    assert_true(s_get(v, n, "powercap/package-1/core")->range_uj == 0);
    uint64_t uj;
    assert_int_equal(ww_sysfs_read_energy(pkg, &uj), 0);
    assert_true(uj == 1000);
    assert_int_equal(ww_sysfs_read(pkg, &x), -EINVAL);
    assert_int_equal(ww_sysfs_read_energy(meter, &uj), -EINVAL);
    /* A sensor whose file went away (a driver unloaded) fails its read, and reads again once
     * it is back. */
    char path[256];
    snprintf(path, sizeof path, "%s/sys/class/hwmon/hwmon2/temp1_input", root);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon2/temp1"), &x), -ENOENT);
    ww_test_put_file(root, "sys/class/hwmon/hwmon2/temp1_input", "39000\n");
    assert_int_equal(ww_sysfs_read(s_get(v, n, "hwmon2/temp1"), &x), 0);
    assert_true(x == 39.0);
    free(v);
    s_rm(root);
}

static void test_energy_counter_gives_watts_across_a_wrap(void **state)
{
    (void)state;
    const uint64_t range = UINT64_C(262143328850);
    const int64_t s = INT64_C(1000000000);
    ww_sysfs_energy_t e = {0};
    double w = -1;
    /* The first read has nothing to compare with: no power is made up. */
    assert_int_equal(ww_sysfs_energy_watts(&e, 1000, range, 10 * s, &w), -EAGAIN);
    assert_true(w == -1);
    assert_int_equal(ww_sysfs_energy_watts(&e, 1000 + 23000000, range, 11 * s, &w), 0);
    assert_true(w == 23.0);
    /* Half a second, 250 W. */
    assert_int_equal(
        ww_sysfs_energy_watts(&e, 1000 + 23000000 + 125000000, range, 11 * s + s / 2, &w), 0);
    assert_true(w == 250.0);
    /* The counter wraps at its range: 3 J in a second across it. */
    ww_sysfs_energy_t z = {0};
    assert_int_equal(ww_sysfs_energy_watts(&z, range - 1000000, range, s, &w), -EAGAIN);
    assert_int_equal(ww_sysfs_energy_watts(&z, 2000000, range, 2 * s, &w), 0);
    assert_true(w == 3.0);
    /* Back without a known range, or past the range: a reset, that read starts over. */
    ww_sysfs_energy_t r = {0};
    assert_int_equal(ww_sysfs_energy_watts(&r, 5000, 0, s, &w), -EAGAIN);
    assert_int_equal(ww_sysfs_energy_watts(&r, 4000, 0, 2 * s, &w), -ERANGE);
    assert_int_equal(ww_sysfs_energy_watts(&r, 6000, 0, 3 * s, &w), 0);
    assert_true(w == 0.002);
    assert_int_equal(ww_sysfs_energy_watts(&r, 1000, 1500, 4 * s, &w), -ERANGE);
    /* Time must move forward; the previous read stays the reference. */
    assert_int_equal(ww_sysfs_energy_watts(&r, 2000, 0, 4 * s, &w), -EINVAL);
    assert_int_equal(ww_sysfs_energy_watts(&r, 3000, 0, 5 * s, &w), 0);
    assert_true(w == 0.002);
}

static void test_roots_without_sensors(void **state)
{
    (void)state;
    ww_sysfs_sensor_t *v = (void *)1;
    size_t n = 9;
    assert_int_equal(ww_sysfs_scan("/nonexistent/ww-sysfs", &v, &n), -ENOENT);
    assert_null(v);
    assert_int_equal(n, 0);
    char root[] = "/tmp/ww-sysfs-empty.XXXXXX";
    assert_non_null(mkdtemp(root));
    assert_int_equal(ww_sysfs_scan(root, &v, &n), 0);
    assert_int_equal(n, 0);
    free(v);
    s_rm(root);
}

/* This machine's own /sys, when it has hwmon or powercap: every sensor listed reads, or
 * says why not; temperatures and powers are in their plausible ranges. */
static void test_this_machine(void **state)
{
    (void)state;
    if (access("/sys/class/hwmon", F_OK) != 0 && access("/sys/class/powercap", F_OK) != 0) {
        printf("skipped: this machine has neither /sys/class/hwmon nor /sys/class/powercap\n");
        skip();
    }
    ww_sysfs_sensor_t *v;
    size_t n;
    assert_int_equal(ww_sysfs_scan("/", &v, &n), 0);
    for (size_t i = 0; i < n; i++) {
        double x = NAN;
        uint64_t uj = 0;
        int rc = v[i].kind == WW_SYSFS_ENERGY ? ww_sysfs_read_energy(&v[i], &uj)
                                              : ww_sysfs_read(&v[i], &x);
        printf("%-48s %-28s rc=%d value=%g uj=%llu\n", v[i].name, v[i].place, rc, x,
               (unsigned long long)uj);
        if (rc == 0 && v[i].kind == WW_SYSFS_TEMP) {
            assert_true(x > -60 && x < 250);
        } else if (rc == 0 && v[i].kind == WW_SYSFS_POWER) {
            assert_true(x >= 0 && x < 1e6);
        }
    }
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_tree_is_listed_and_read),
        cmocka_unit_test(test_energy_counter_gives_watts_across_a_wrap),
        cmocka_unit_test(test_roots_without_sensors),
        cmocka_unit_test(test_this_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
