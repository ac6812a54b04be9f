/* Unit tests of ww_mhd: libmicrohttpd is not linked (this program, like the binaries,
 * does not map it until asked), ww_mhd_get loads it once, and a library that cannot be
 * loaded or lacks a function is refused with a reason naming it, dlerror() and the
 * package to install. Each case runs in its own process (see tests/CMakeLists.txt). */
#include "ww_mhd.h"
#include "ww_test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether this process maps a file whose path contains `name`. */
static bool s_mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        found = strstr(line, name) != NULL;
    }
    fclose(f);
    return found;
}

static void s_expect_contains(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
    }
}

static void test_get_loads_on_first_call(void **state)
{
    if (s_mapped("libmicrohttpd")) {
        fail_msg("libmicrohttpd is mapped before anything asked for it: is it linked again?");
    }
    char why[512] = "";
    const ww_mhd_t *api = ww_mhd_get(why, sizeof why);
    if (!api) {
        fail_msg("ww_mhd_get: %s", why);
    }
    assert_true(s_mapped(WW_MHD_SONAME));
    assert_non_null(api->handle);
    assert_ptr_equal(ww_mhd_get(why, sizeof why), api); /* once */
}

static void test_open_resolves_every_function(void **state)
{
    ww_mhd_t api;
    char why[512] = "";
    if (ww_mhd_open(&api, WW_MHD_SONAME, why, sizeof why) != 0) {
        fail_msg("ww_mhd_open(%s): %s", WW_MHD_SONAME, why);
    }
    assert_non_null(api.handle);
    assert_non_null(api.start_daemon);
    assert_non_null(api.stop_daemon);
    assert_non_null(api.create_response_from_buffer);
    assert_non_null(api.add_response_header);
    assert_non_null(api.queue_response);
    assert_non_null(api.destroy_response);
    ww_mhd_close(&api);
    assert_null(api.handle);
    assert_null(api.start_daemon);
    ww_mhd_close(&api); /* twice: harmless */
}

static void test_missing_library_refused(void **state)
{
    ww_mhd_t api;
    char why[512] = "";
    assert_int_equal(ww_mhd_open(&api, "libww-no-such-library.so.0", why, sizeof why), -ENOENT);
    s_expect_contains(why, "cannot load libww-no-such-library.so.0: ");
    s_expect_contains(why, "cannot open shared object file"); /* dlerror() */
    s_expect_contains(why, "(install " WW_MHD_PACKAGE ")");
    assert_null(api.handle);
    assert_null(api.start_daemon);
    ww_mhd_close(&api);
}

static void test_library_without_the_functions_refused(void **state)
{
    ww_mhd_t api;
    char why[512] = "";
    /* Loads, but is not libmicrohttpd: the first function is missing. */
    assert_int_equal(ww_mhd_open(&api, "libm.so.6", why, sizeof why), -ENOENT);
    s_expect_contains(why, "cannot load libm.so.6: ");
    s_expect_contains(why, "undefined symbol: MHD_start_daemon");
    s_expect_contains(why, "(install " WW_MHD_PACKAGE ")");
    assert_null(api.handle);
    assert_null(api.start_daemon);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_get_loads_on_first_call),
    cmocka_unit_test(test_open_resolves_every_function),
    cmocka_unit_test(test_missing_library_refused),
    cmocka_unit_test(test_library_without_the_functions_refused),
};
WW_TEST_MAIN(tests, NULL, NULL)
