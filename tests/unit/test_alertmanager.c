/* Unit tests for the Alertmanager client's request body (the POST itself is exercised
 * against a real Alertmanager by the integration tests). */
#include "ww_am.h"
#include "ww_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_firing_and_resolved(void **state)
{
    (void)state;
    ww_am_alert_t a[2] = {
        {.alertname = "SLOBurnRate",
         .phase = "phase-2026a",
         .model = "llama3.1-8b",
         .slo = "ttft-8b",
         .severity = "page",
         .summary = "TTFT burn 15.2x",
         .description = "budget",
         .extra_annotations_json = " {\"burn_1h\":\"15.2\",\"budget_left\":\"0.42\"} ",
         .starts_ns = INT64_C(1780272000) * 1000000000 + 123456789},
        {.alertname = "CapacityBreach",
         .phase = "p",
         .severity = "ticket",
         .starts_ns = INT64_C(1780272000) * 1000000000,
         .ends_ns = INT64_C(1780275600) * 1000000000},
    };
    char *j = ww_am_json(a, 2);
    assert_non_null(j);
    assert_string_equal(
        j, "[{\"labels\":{\"alertname\":\"SLOBurnRate\",\"phase\":\"phase-2026a\",\"model\":"
           "\"llama3.1-8b\",\"slo\":\"ttft-8b\",\"severity\":\"page\"},\"annotations\":{"
           "\"summary\":\"TTFT burn 15.2x\",\"description\":\"budget\",\"burn_1h\":\"15.2\","
           "\"budget_left\":\"0.42\"},\"startsAt\":\"2026-06-01T00:00:00.123Z\"},"
           "{\"labels\":{\"alertname\":\"CapacityBreach\",\"phase\":\"p\",\"severity\":"
           "\"ticket\"},\"annotations\":{},\"startsAt\":\"2026-06-01T00:00:00.000Z\","
           "\"endsAt\":\"2026-06-01T01:00:00.000Z\"}]");
    free(j);
}

static void test_escaping(void **state)
{
    (void)state;
    ww_am_alert_t a = {.alertname = "A\"B\\C",
                       .summary = "line1\nline2\ttab\r\x01\x1f\x7f end \xc3\xa9",
                       .extra_annotations_json = "{}",
                       .starts_ns = 0};
    char *j = ww_am_json(&a, 1);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"alertname\":\"A\\\"B\\\\C\""));
    assert_non_null(strstr(j, "\"summary\":\"line1\\nline2\\ttab\\r\\u0001\\u001f\\u007f end "
                              "\xc3\xa9\"},"));
    assert_non_null(strstr(j, "\"startsAt\":\"1970-01-01T00:00:00.000Z\""));
    for (const char *p = j; *p; p++) {
        assert_true((unsigned char)*p >= 0x20);
    }
    free(j);
}

static void test_empty_and_long(void **state)
{
    (void)state;
    char *j = ww_am_json(NULL, 0);
    assert_string_equal(j, "[]");
    free(j);
    /* far beyond any initial buffer: the builder grows */
    size_t n = 100000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, '"', n);
    big[n] = '\0';
    ww_am_alert_t a = {.alertname = "x", .description = big, .starts_ns = 1};
    j = ww_am_json(&a, 1);
    assert_non_null(j);
    assert_true(strlen(j) > 2 * n);
    free(j);
    free(big);
}

static void test_post_errors(void **state)
{
    (void)state;
    ww_am_alert_t a = {.alertname = "x", .starts_ns = 1};
    char why[256] = "";
    assert_int_equal(ww_am_post("", &a, 1, 1000000000, why, sizeof why), -EINVAL);
    assert_int_equal(ww_am_post("http://127.0.0.1:9", &a, 0, 1000000000, why, sizeof why), 0);
    /* nothing listens on the discard port: connection refused, said by curl */
    int rc = ww_am_post("http://127.0.0.1:9", &a, 1, 2000000000, why, sizeof why);
    assert_true(rc < 0);
    assert_non_null(strstr(why, "127.0.0.1:9/api/v2/alerts"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_firing_and_resolved),
    cmocka_unit_test(test_escaping),
    cmocka_unit_test(test_empty_and_long),
    cmocka_unit_test(test_post_errors),
};

WW_TEST_MAIN(tests, NULL, NULL)
