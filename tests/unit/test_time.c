/* Unit tests of tick arithmetic: samples land on wall-clock multiples of the interval. */
#include "ww_test.h"
#include "ww_time.h"

static void test_next_tick_aligns(void **state)
{
    int64_t s = WW_NS_PER_S;
    assert_true(ww_time_next_tick(0, s) == s);
    assert_true(ww_time_next_tick(1, s) == s);
    assert_true(ww_time_next_tick(s - 1, s) == s);
    assert_true(ww_time_next_tick(s, s) == 2 * s); /* strictly after */
    assert_true(ww_time_next_tick(1795000000 * s + 123456789, s) == 1795000001 * s);
    int64_t ms250 = 250 * WW_NS_PER_MS;
    assert_true(ww_time_next_tick(1795000000 * s + 260 * WW_NS_PER_MS, ms250) ==
                1795000000 * s + 500 * WW_NS_PER_MS);
    assert_true(ww_time_next_tick(-1, s) == 0); /* floor, not truncation */
}

static void test_clocks_move_forward(void **state)
{
    int64_t a = ww_time_mono_ns();
    int64_t w = ww_time_now_ns();
    int64_t b = ww_time_mono_ns();
    assert_true(b >= a);
    assert_true(w > INT64_C(1600000000) * WW_NS_PER_S); /* after 2020 */
    int64_t target = ww_time_now_ns() + 20 * WW_NS_PER_MS;
    assert_int_equal(ww_time_sleep_until(target), 0);
    assert_true(ww_time_now_ns() >= target);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_next_tick_aligns),
    cmocka_unit_test(test_clocks_move_forward),
};
WW_TEST_MAIN(tests, NULL, NULL)
