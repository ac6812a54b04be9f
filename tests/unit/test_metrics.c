/* Unit tests of ww_metrics: the Prometheus text exposition (escaping, cumulative histogram
 * buckets, +Inf, _sum/_count), registration checks, listen addresses, lock-free updates
 * from several threads, and the HTTP server's status codes over a raw socket. */
#include "ww_metrics.h"
#include "ww_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *s_render(const ww_metrics_t *reg)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(ww_metrics_render(reg, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_counter_and_gauge_exposition(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    assert_non_null(reg);
    ww_metric_t *c = ww_metrics_counter(reg, "ww_things_total", "Things done.");
    ww_metric_t *g = ww_metrics_gauge(reg, "ww_queue_bytes", "Bytes waiting.");
    assert_non_null(c);
    assert_non_null(g);
    ww_metric_set(c, 0, 41);
    ww_metric_add(c, 0, 1);
    ww_metric_set(g, 0, 0.25);
    ww_metric_add(g, 0, -1);
    assert_true(ww_metric_value(c, 0) == 42);
    assert_true(ww_metric_value(g, 0) == -0.75);
    char *out = s_render(reg);
    assert_string_equal(out, "# HELP ww_things_total Things done.\n"
                             "# TYPE ww_things_total counter\n"
                             "ww_things_total 42\n"
                             "# HELP ww_queue_bytes Bytes waiting.\n"
                             "# TYPE ww_queue_bytes gauge\n"
                             "ww_queue_bytes -0.75\n");
    free(out);
    /* Large, tiny and special values read back exactly. */
    ww_metric_set(g, 0, 1e20);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_queue_bytes 1e+20\n"));
    free(out);
    ww_metric_set(g, 0, 0.1);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_queue_bytes 0.1\n"));
    free(out);
    ww_metric_set(g, 0, NAN);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_queue_bytes NaN\n"));
    free(out);
    ww_metric_set(g, 0, -INFINITY);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_queue_bytes -Inf\n"));
    free(out);
    /* A histogram call on a counter and an out-of-range series are ignored; NULL is safe. */
    ww_metric_observe(c, 0, 1);
    ww_metric_set(c, 1, 5);
    ww_metric_set(NULL, 0, 1);
    ww_metric_add(NULL, 0, 1);
    ww_metric_observe(NULL, 0, 1);
    assert_true(ww_metric_value(NULL, 0) == 0);
    assert_true(ww_metric_value(c, 0) == 42);
    ww_metrics_destroy(&reg);
    assert_null(reg);
    ww_metrics_destroy(&reg);
}

static void test_label_values_and_help_escaped(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    const char *const values[] = {"plain", "back\\slash", "say \"hi\"", "two\nlines", "ünï", NULL};
    ww_metric_t *c =
        ww_metrics_add(reg, WW_METRIC_COUNTER, "ww_rejects_total",
                       "Refused: a \\ and a\nnewline \"quoted\".", "reason", values, NULL, 0);
    assert_non_null(c);
    ww_metric_add(c, 1, 2);
    ww_metric_add(c, 3, 1);
    char *out = s_render(reg);
    assert_string_equal(out, "# HELP ww_rejects_total Refused: a \\\\ and a\\nnewline "
                             "\"quoted\".\n"
                             "# TYPE ww_rejects_total counter\n"
                             "ww_rejects_total{reason=\"plain\"} 0\n"
                             "ww_rejects_total{reason=\"back\\\\slash\"} 2\n"
                             "ww_rejects_total{reason=\"say \\\"hi\\\"\"} 0\n"
                             "ww_rejects_total{reason=\"two\\nlines\"} 1\n"
                             "ww_rejects_total{reason=\"ünï\"} 0\n");
    free(out);
    ww_metrics_destroy(&reg);
}

static void test_histogram_cumulative_buckets(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    const double b[] = {0.005, 0.1, 1, 2.5};
    ww_metric_t *h = ww_metrics_histogram(reg, "ww_write_duration_seconds", "Write time.", b, 4);
    assert_non_null(h);
    char *out = s_render(reg);
    /* Empty: every bucket, +Inf, _sum and _count present and zero. */
    assert_string_equal(out, "# HELP ww_write_duration_seconds Write time.\n"
                             "# TYPE ww_write_duration_seconds histogram\n"
                             "ww_write_duration_seconds_bucket{le=\"0.005\"} 0\n"
                             "ww_write_duration_seconds_bucket{le=\"0.1\"} 0\n"
                             "ww_write_duration_seconds_bucket{le=\"1\"} 0\n"
                             "ww_write_duration_seconds_bucket{le=\"2.5\"} 0\n"
                             "ww_write_duration_seconds_bucket{le=\"+Inf\"} 0\n"
                             "ww_write_duration_seconds_sum 0\n"
                             "ww_write_duration_seconds_count 0\n");
    free(out);
    ww_metric_observe(h, 0, 0.001); /* le 0.005 */
    ww_metric_observe(h, 0, 0.1);   /* exactly a bound: le 0.1 (upper bounds are inclusive) */
    ww_metric_observe(h, 0, 0.5);   /* le 1 */
    ww_metric_observe(h, 0, 0.75);  /* le 1 */
    ww_metric_observe(h, 0, 7);     /* only +Inf */
    ww_metric_observe(h, 0, 100);   /* only +Inf */
    assert_true(ww_metric_value(h, 0) == 6);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_write_duration_seconds_bucket{le=\"0.005\"} 1\n"
                                "ww_write_duration_seconds_bucket{le=\"0.1\"} 2\n"
                                "ww_write_duration_seconds_bucket{le=\"1\"} 4\n"
                                "ww_write_duration_seconds_bucket{le=\"2.5\"} 4\n"
                                "ww_write_duration_seconds_bucket{le=\"+Inf\"} 6\n"
                                "ww_write_duration_seconds_sum 108.351\n"
                                "ww_write_duration_seconds_count 6\n"));
    free(out);

    /* A labelled histogram: le comes after the family's label; series are independent. */
    const char *const res[] = {"ok", "error", NULL};
    ww_metric_t *lh =
        ww_metrics_add(reg, WW_METRIC_HISTOGRAM, "ww_eval_seconds", "Eval.", "result", res, b, 1);
    assert_non_null(lh);
    ww_metric_observe(lh, 1, 0.002);
    ww_metric_observe(lh, 1, 3);
    out = s_render(reg);
    assert_non_null(strstr(out, "ww_eval_seconds_bucket{result=\"ok\",le=\"0.005\"} 0\n"
                                "ww_eval_seconds_bucket{result=\"ok\",le=\"+Inf\"} 0\n"
                                "ww_eval_seconds_sum{result=\"ok\"} 0\n"
                                "ww_eval_seconds_count{result=\"ok\"} 0\n"
                                "ww_eval_seconds_bucket{result=\"error\",le=\"0.005\"} 1\n"
                                "ww_eval_seconds_bucket{result=\"error\",le=\"+Inf\"} 2\n"
                                "ww_eval_seconds_sum{result=\"error\"} 3.002\n"
                                "ww_eval_seconds_count{result=\"error\"} 2\n"));
    free(out);
    /* set/add do not apply to histograms. */
    ww_metric_set(h, 0, 1);
    ww_metric_add(h, 0, 1);
    assert_true(ww_metric_value(h, 0) == 6);
    ww_metrics_destroy(&reg);
}

static void test_build_info(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    assert_int_equal(ww_metrics_build_info(reg, "waferwatch", "0.1.0", "agent"), 0);
    char *out = s_render(reg);
    assert_string_equal(out, "# HELP waferwatch_build_info Build information; the value is always "
                             "1.\n"
                             "# TYPE waferwatch_build_info gauge\n"
                             "waferwatch_build_info{version=\"0.1.0\",component=\"agent\"} 1\n");
    free(out);
    assert_int_equal(ww_metrics_build_info(reg, "waferwatch", "0.1.0", "agent"), -EINVAL);
    ww_metrics_destroy(&reg);
}

static void test_bad_registrations_refused(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    const double b[] = {1, 2};
    const double unsorted[] = {2, 1};
    const double inf[] = {1, INFINITY};
    const char *const vals[] = {"a", NULL};
    const char *const none[] = {NULL};
    assert_null(ww_metrics_counter(reg, "", "x"));
    assert_null(ww_metrics_counter(reg, "9lives_total", "x"));
    assert_null(ww_metrics_counter(reg, "has-dash_total", "x"));
    assert_null(ww_metrics_counter(reg, "ok_total", NULL));
    assert_non_null(ww_metrics_counter(reg, "ns:ok_total", "colons are allowed in names"));
    assert_non_null(ww_metrics_counter(reg, "ok_total", "x"));
    assert_null(ww_metrics_counter(reg, "ok_total", "registered twice"));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l1_total", "x", "le", vals, NULL, 0));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l2_total", "x", "__x", vals, NULL, 0));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l3_total", "x", "a:b", vals, NULL, 0));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l4_total", "x", "r", none, NULL, 0));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l5_total", "x", "r", NULL, NULL, 0));
    assert_null(ww_metrics_add(reg, WW_METRIC_COUNTER, "l6_total", "x", NULL, NULL, b, 2));
    assert_null(ww_metrics_histogram(reg, "h1_seconds", "x", NULL, 0));
    assert_null(ww_metrics_histogram(reg, "h2_seconds", "x", unsorted, 2));
    assert_null(ww_metrics_histogram(reg, "h3_seconds", "x", inf, 2));
    assert_null(ww_metrics_add(reg, (ww_metric_type_t)7, "t_total", "x", NULL, NULL, NULL, 0));
    assert_null(ww_metrics_counter(NULL, "n_total", "x"));
    ww_metrics_destroy(&reg);
}

static void test_parse_listen(void **state)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char why[256];
    assert_int_equal(ww_metrics_parse_listen("127.0.0.1:9477", &sa, &len, why, sizeof why), 0);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 9477);
    assert_int_equal(ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(ww_metrics_parse_listen("0.0.0.0:0", &sa, &len, why, sizeof why), 0);
    assert_int_equal(ww_metrics_parse_listen("*:9478", &sa, &len, why, sizeof why), 0);
    assert_int_equal(ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr), INADDR_ANY);
    assert_int_equal(ww_metrics_parse_listen(":9478", &sa, &len, why, sizeof why), 0);
    assert_int_equal(ww_metrics_parse_listen("[::1]:9478", &sa, &len, why, sizeof why), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 9478);
    assert_int_equal(ww_metrics_parse_listen("[::]:0", &sa, &len, why, sizeof why), 0);
    assert_int_equal(ww_metrics_parse_listen("localhost:9477", &sa, &len, why, sizeof why), 0);

    const char *bad[] = {"",           "9477",     "127.0.0.1", "127.0.0.1:",  "127.0.0.1:65536",
                         "1.2.3.4:x1", "::1:9477", "[::1]9477", "[nope]:9477", "[::1:9477",
                         "h:-1",       "h:+1",     "h:1234567"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (ww_metrics_parse_listen(bad[i], &sa, &len, why, sizeof why) != -EINVAL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_true(why[0] != '\0');
    }
    assert_non_null(strstr(why, "h:1234567"));
}

#define N_THREADS 4
#define N_ADDS 20000

static void *s_adder(void *arg)
{
    ww_metric_t **m = arg;
    for (int i = 0; i < N_ADDS; i++) {
        ww_metric_add(m[0], 0, 0.5);
        ww_metric_observe(m[1], 0, (i % 2) ? 0.5 : 5);
    }
    return NULL;
}

static void test_updates_from_many_threads(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    const double b[] = {1};
    ww_metric_t *m[2] = {ww_metrics_gauge(reg, "ww_g", "g"),
                         ww_metrics_histogram(reg, "ww_h_seconds", "h", b, 1)};
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, s_adder, m), 0);
    }
    for (int i = 0; i < 20; i++) { /* render while they update */
        char *out = s_render(reg);
        free(out);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(ww_metric_value(m[0], 0) == N_THREADS * N_ADDS * 0.5);
    assert_true(ww_metric_value(m[1], 0) == N_THREADS * N_ADDS);
    char *out = s_render(reg);
    char want[256];
    snprintf(want, sizeof want,
             "ww_h_seconds_bucket{le=\"1\"} %d\nww_h_seconds_bucket{le=\"+Inf\"} %d\n"
             "ww_h_seconds_sum %d\nww_h_seconds_count %d\n",
             N_THREADS * N_ADDS / 2, N_THREADS * N_ADDS, N_THREADS * N_ADDS / 2 * 11 / 2,
             N_THREADS * N_ADDS);
    assert_non_null(strstr(out, want));
    free(out);
    ww_metrics_destroy(&reg);
}

/* One HTTP/1.0 request over a raw socket; returns the status and copies the response. */
static int s_http(unsigned port, const char *request, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd, resp + len, cap - 1 - len)) > 0) {
        len += (size_t)n;
    }
    resp[len] = '\0';
    close(fd);
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    return status;
}

static int s_health(void *arg, char *reason, size_t cap)
{
    const int *sick = arg;
    if (*sick) {
        snprintf(reason, cap, "PostgreSQL not connected\nsecond line dropped");
        return 1;
    }
    return 0;
}

static void test_server_status_codes(void **state)
{
    ww_metrics_t *reg = ww_metrics_new();
    ww_metric_t *c = ww_metrics_counter(reg, "ww_served_total", "Served.");
    ww_metric_set(c, 0, 7);
    int sick = 0;
    char why[256];
    ww_metrics_server_t *srv =
        ww_metrics_server_new(reg, "127.0.0.1:0", s_health, &sick, why, sizeof why);
    if (!srv) {
        fail_msg("%s", why);
    }
    unsigned port = ww_metrics_server_port(srv);
    assert_true(port > 0);
    static char resp[65536];
    assert_int_equal(s_http(port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(resp, "\r\n\r\n# HELP ww_served_total Served.\n"));
    assert_non_null(strstr(resp, "\nww_served_total 7\n"));
    assert_int_equal(s_http(port, "GET /healthz HTTP/1.0\r\n\r\n", resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "\r\n\r\nok\n"));
    sick = 1;
    assert_int_equal(s_http(port, "GET /healthz HTTP/1.0\r\n\r\n", resp, sizeof resp), 503);
    assert_non_null(strstr(resp, "\r\n\r\nPostgreSQL not connected\n"));
    assert_null(strstr(resp, "second line"));
    assert_int_equal(s_http(port, "GET /other HTTP/1.0\r\n\r\n", resp, sizeof resp), 404);
    assert_int_equal(s_http(port, "GET /metrics/x HTTP/1.0\r\n\r\n", resp, sizeof resp), 404);
    assert_int_equal(
        s_http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", resp, sizeof resp),
        405);
    assert_non_null(strstr(resp, "Allow: GET, HEAD\r\n"));
    assert_int_equal(s_http(port, "DELETE /healthz HTTP/1.0\r\n\r\n", resp, sizeof resp), 405);
    assert_int_equal(s_http(port, "HEAD /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp), 200);

    /* The same port again: refused with the reason, not silently. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    assert_null(ww_metrics_server_new(reg, addr, NULL, NULL, why, sizeof why));
    assert_non_null(strstr(why, addr));
    assert_non_null(strstr(why, "Address already in use"));
    assert_null(ww_metrics_server_new(reg, "nonsense", NULL, NULL, why, sizeof why));
    assert_non_null(strstr(why, "nonsense"));

    ww_metrics_server_destroy(&srv);
    assert_null(srv);
    ww_metrics_server_destroy(&srv);
    /* The port is free again once the server is gone. */
    srv = ww_metrics_server_new(reg, addr, NULL, NULL, why, sizeof why);
    if (!srv) {
        fail_msg("rebinding %s after stop: %s", addr, why);
    }
    assert_int_equal(s_http(port, "GET /healthz HTTP/1.0\r\n\r\n", resp, sizeof resp), 200);
    ww_metrics_server_destroy(&srv);
    ww_metrics_destroy(&reg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_counter_and_gauge_exposition),
    cmocka_unit_test(test_label_values_and_help_escaped),
    cmocka_unit_test(test_histogram_cumulative_buckets),
    cmocka_unit_test(test_build_info),
    cmocka_unit_test(test_bad_registrations_refused),
    cmocka_unit_test(test_parse_listen),
    cmocka_unit_test(test_updates_from_many_threads),
    cmocka_unit_test(test_server_status_codes),
};
WW_TEST_MAIN(tests, NULL, NULL)
