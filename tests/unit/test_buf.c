/* Unit tests of ww_buf, the one growable buffer: growth keeps every byte, printf appends
 * past the small-buffer path, out of memory sticks until reset, free is safe twice. */
#include "ww_test.h"

#include "ww_buf.h"

#include <stdlib.h>
#include <string.h>

static void test_grows_and_keeps_bytes(void **state)
{
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_put(&b, "", 0);
    assert_non_null(b.p);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    for (int i = 0; i < 10000; i++) {
        unsigned char c = (unsigned char)i;
        ww_buf_put(&b, &c, 1);
    }
    assert_false(b.oom);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.p[b.len], '\0'); /* always terminated */
    for (int i = 0; i < 10000; i++) {
        assert_int_equal((unsigned char)b.p[i], (unsigned char)i);
    }
    ww_buf_put(&b, "a\0b", 3); /* binary: NULs kept */
    assert_int_equal(b.len, 10003);
    assert_memory_equal(b.p + 10000, "a\0b", 3);
    size_t cap = b.cap;
    ww_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* memory kept for reuse */
    ww_buf_puts(&b, "again");
    assert_string_equal(b.p, "again");
    ww_buf_free(&b);
}

static void test_printf(void **state)
{
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_printf(&b, "%s=%d", "x", 42);
    ww_buf_printf(&b, ",%lld", -7LL);
    assert_string_equal(b.p, "x=42,-7");
    /* Longer than the 256-byte fast path: formatted straight into the buffer. */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ww_buf_printf(&b, "[%s]", big);
    assert_false(b.oom);
    assert_int_equal(b.len, 7 + 1001);
    assert_int_equal(b.p[7], '[');
    assert_int_equal(b.p[8 + 998], 'z');
    assert_int_equal(b.p[b.len - 1], ']');
    assert_int_equal(b.p[b.len], '\0');
    char *s = ww_buf_take(&b);
    assert_non_null(s);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(strlen(s), 1008);
    free(s);
}

static void test_oom_is_sticky(void **state)
{
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_puts(&b, "kept");
    ww_buf_reserve(&b, SIZE_MAX - 2); /* len + more + 1 overflows */
    assert_true(b.oom);
    ww_buf_reset(&b);
    assert_false(b.oom);
    ww_buf_puts(&b, "kept");
    ww_buf_reserve(&b, SIZE_MAX / 2 + 1); /* doubling would overflow */
    assert_true(b.oom);
    ww_buf_puts(&b, "lost"); /* no-ops from now on */
    ww_buf_printf(&b, "%d", 1);
    assert_true(b.oom);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.p, "kept");
    assert_null(ww_buf_take(&b)); /* incomplete content is never handed on */
    assert_null(b.p);
    assert_false(b.oom);
}

static void test_free_twice(void **state)
{
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_free(&b); /* never used */
    ww_buf_puts(&b, "x");
    ww_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    ww_buf_free(&b);
    ww_buf_free(NULL);
    assert_null(ww_buf_take(&b)); /* nothing appended: NULL */
}

/* PostgreSQL array literal elements: quoted, " and \ escaped, comma-separated. */
static void test_pg_elem_quotes_and_escapes(void **state)
{
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_put(&b, "{", 1);
    ww_buf_pg_elem(&b, "plain", true);
    ww_buf_pg_elem(&b, "a\"b\\c", false);
    ww_buf_pg_elem(&b, "", false);
    ww_buf_put(&b, "}", 1);
    assert_false(b.oom);
    assert_string_equal(b.p, "{\"plain\",\"a\\\"b\\\\c\",\"\"}");
    ww_buf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pg_elem_quotes_and_escapes),
    cmocka_unit_test(test_grows_and_keeps_bytes),
    cmocka_unit_test(test_printf),
    cmocka_unit_test(test_oom_is_sticky),
    cmocka_unit_test(test_free_twice),
};
WW_TEST_MAIN(tests, NULL, NULL)
