/* Unit tests for slo_config: the example phases file loads and sums to 750 MW, and every
 * validation error names its field (and the line when the parser sees it). */
#include "ww_slo_conf.h"
#include "ww_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_example_file(void **state)
{
    (void)state;
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    int rc = ww_slo_conf_load(WW_DEPLOY_DIR "/phases.example.yaml", &c, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(c.phases.n, 3);
    const ww_phase_t *ph = c.phases.items;
    double sum = 0;
    for (size_t i = 0; i < c.phases.n; i++) {
        sum += ph[i].contracted_mw;
        assert_true(ph[i].slos.n >= 6);
        assert_true(ph[i].power_ceiling_mw >= ph[i].contracted_mw);
    }
    assert_true(fabs(sum - 750.0) < 1e-9);
    /* 2026-06-01T00:00:00Z */
    assert_int_equal(ph[0].go_live_ns, INT64_C(1780272000) * 1000000000);
    assert_true(ph[0].go_live_ns < ph[1].go_live_ns && ph[1].go_live_ns < ph[2].go_live_ns);
    const ww_phase_t *p = ww_slo_phase(&c, "phase-2027a");
    assert_non_null(p);
    assert_null(ww_slo_phase(&c, "nope"));
    const ww_slo_t *l = p->slos.items;
    bool ttft[3] = {false, false, false}, avail = false, tpot = false, e2e = false;
    for (size_t i = 0; i < p->slos.n; i++) {
        assert_true(l[i].objective > 0 && l[i].objective < 1);
        assert_int_equal(l[i].period_ns, INT64_C(30) * 86400 * 1000000000);
        assert_int_equal(l[i].min_requests, 100);
        if (l[i].sli == WW_SLI_TTFT) {
            ttft[0] |= strcmp(l[i].model, "llama3.1-8b") == 0;
            ttft[1] |= strcmp(l[i].model, "llama3.1-70b") == 0;
            ttft[2] |= strcmp(l[i].model, "llama3.1-405b") == 0;
        }
        tpot |= l[i].sli == WW_SLI_TPOT;
        e2e |= l[i].sli == WW_SLI_E2E;
        if (l[i].sli == WW_SLI_AVAILABILITY) {
            /* 0.99: the simulator's default 0.2% errors (up to ~0.6% in a short window)
             * must not file tickets (issue 15) */
            avail = strcmp(l[i].model, "*") == 0 && fabs(l[i].objective - 0.99) < 1e-12;
        }
    }
    assert_true(ttft[0] && ttft[1] && ttft[2] && tpot && e2e && avail);
    assert_int_equal(c.interval_ns, INT64_C(30) * 1000000000);
    assert_string_equal(c.notify_channel, "waferwatch_alerts");
    ww_slo_conf_free(&c);
    ww_slo_conf_free(&c); /* twice is safe */
}

static void test_defaults(void **state)
{
    (void)state;
    static const char text[] = "phases:\n"
                               "  - id: p1\n"
                               "    go_live: '2024-02-29'\n"
                               "    contracted_mw: 10\n"
                               "    slos:\n"
                               "      - {name: a, metric: availability, objective: 0.999}\n"
                               "      - {name: q, model: m, metric: queue, threshold: 1, "
                               "objective: 0.9, period: 7d}\n";
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    int rc = ww_slo_conf_load_buffer(text, sizeof text - 1, "t.yaml", &c, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    const ww_phase_t *p = ww_slo_phase(&c, "p1");
    assert_non_null(p);
    assert_true(p->power_ceiling_mw == 10);
    assert_true(p->capacity_breach_share == 0.95);
    assert_true(p->hotspot_max_c == 95 && p->outlet_max_c == 45);
    assert_int_equal(p->go_live_ns, INT64_C(1709164800) * 1000000000);
    assert_int_equal(((const ww_slo_t *)p->slos.items)[0].min_requests, 100);
    const ww_slo_t *l = p->slos.items;
    assert_string_equal(l[0].model, "*");
    assert_int_equal(l[0].sli, WW_SLI_AVAILABILITY);
    assert_int_equal(l[1].sli, WW_SLI_QUEUE);
    assert_int_equal(l[1].period_ns, INT64_C(7) * 86400 * 1000000000);
    assert_true(c.window_scale == 1);
    assert_int_equal(c.healthy_window_ns, INT64_C(30) * 1000000000);
    assert_int_equal(c.alertmanager_timeout_ns, INT64_C(5) * 1000000000);
    assert_string_equal(c.alertmanager_url, "");
    ww_slo_conf_free(&c);
}

/* Loads text (two good phases with one placeholder line replaced) and expects an error
 * containing every one of the given fragments. */
static void s_expect_error(const char *text, const char *frag1, const char *frag2)
{
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    int rc = ww_slo_conf_load_buffer(text, strlen(text), "p.yaml", &c, &err);
    if (rc == 0) {
        ww_slo_conf_free(&c);
        fail_msg("loaded, expected an error with '%s'", frag1);
    }
    assert_int_equal(rc, -EINVAL);
    if (!strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2))) {
        fail_msg("error '%s' lacks '%s' / '%s'", err.msg, frag1, frag2 ? frag2 : "");
    }
    /* on error there is nothing to free, but freeing must be safe */
    ww_slo_conf_free(&c);
}

#define HEAD                                                                                       \
    "phases:\n"                                                                                    \
    "  - id: p1\n"                                                                                 \
    "    go_live: '2026-06-01'\n"                                                                  \
    "    contracted_mw: 250\n"                                                                     \
    "    slos:\n"                                                                                  \
    "      - {name: a, metric: availability, objective: 0.999}\n"

static void test_bad_metric(void **state)
{
    (void)state;
    s_expect_error(HEAD "  - id: p2\n"
                        "    go_live: '2027-06-01'\n"
                        "    contracted_mw: 250\n"
                        "    slos:\n"
                        "      - {name: t, metric: ttf, threshold: 1, objective: 0.99}\n",
                   "p.yaml:11:27: phases[1].slos[0].metric: 'ttf' is not one of ttft, tpot, e2e, "
                   "queue, availability",
                   NULL);
}

static void test_objective_range(void **state)
{
    (void)state;
    /* line 6 of the text, the objective's column */
    s_expect_error("phases:\n"
                   "  - id: p1\n"
                   "    go_live: '2026-06-01'\n"
                   "    contracted_mw: 250\n"
                   "    slos:\n"
                   "      - name: a\n"
                   "        metric: availability\n"
                   "        objective: 1.5\n",
                   "p.yaml:8:", "phases[0].slos[0].objective");
    /* exactly 1 passes the row's range but not the open interval */
    s_expect_error(HEAD "  - id: p2\n"
                        "    go_live: '2027-06-01'\n"
                        "    contracted_mw: 250\n"
                        "    slos:\n"
                        "      - {name: a, metric: availability, objective: 1}\n",
                   "phases[1].slos[0]", "objective: 1 must be strictly between 0 and 1");
}

static void test_duplicate_phase(void **state)
{
    (void)state;
    s_expect_error(HEAD "  - id: p1\n"
                        "    go_live: '2027-06-01'\n"
                        "    contracted_mw: 250\n",
                   "p.yaml:7:9: phases[1].id: 'p1' is already the id of phases[0]", NULL);
}

static void test_duplicate_slo(void **state)
{
    (void)state;
    s_expect_error(HEAD "      - {name: a, model: x, metric: ttft, threshold: 1, objective: 0.9}\n",
                   "phases[0].slos[1]", "name: 'a' is already used by slos[0] of phase p1");
}

static void test_bad_date(void **state)
{
    (void)state;
    s_expect_error(HEAD "  - id: p2\n"
                        "    go_live: '2027-02-30'\n"
                        "    contracted_mw: 250\n",
                   "p.yaml:8:14: phases[1].go_live: '2027-02-30' is not a calendar date", NULL);
    s_expect_error(HEAD "  - id: p2\n"
                        "    go_live: '2027-6-1'\n"
                        "    contracted_mw: 250\n",
                   "phases[1]", "go_live: '2027-6-1'");
    s_expect_error(HEAD "  - id: p2\n"
                        "    go_live: '2100-02-29'\n"
                        "    contracted_mw: 250\n",
                   "phases[1]", "go_live: '2100-02-29'");
}

static void test_missing_threshold(void **state)
{
    (void)state;
    s_expect_error(HEAD "      - {name: t, model: llama3.1-8b, metric: tpot, objective: 0.99}\n",
                   /* left out: the line of its item */
                   "p.yaml:7:9: phases[0].slos[1].threshold: required for a tpot SLO", NULL);
}

static void test_unknown_key(void **state)
{
    (void)state;
    s_expect_error("phases:\n"
                   "  - id: p1\n"
                   "    go_live: '2026-06-01'\n"
                   "    contracted_mw: 250\n"
                   "    slos:\n"
                   "      - name: a\n"
                   "        metric: availability\n"
                   "        objectiv: 0.99\n",
                   "p.yaml:8:", "objectiv");
    s_expect_error("evaluation:\n  intervall: 5s\n" HEAD, "p.yaml:2:", "intervall");
}

static void test_other_errors(void **state)
{
    (void)state;
    s_expect_error("evaluation:\n  interval: 5s\n", "phases", "at least 1");
    s_expect_error(HEAD "      - {name: b, model: '', metric: availability, objective: 0.9}\n",
                   "phases[0].slos[1]", "model: must not be empty");
    s_expect_error(HEAD "  - id: p2\n    go_live: '2027-06-01'\n", "p.yaml:7:5: phases[1]",
                   "contracted_mw");
    s_expect_error(HEAD "      - {metric: availability, objective: 0.9}\n", "phases[0].slos[1]",
                   "name: required");
    s_expect_error("evaluation:\n  interval: 2h\n" HEAD, "p.yaml:2:", "evaluation.interval");
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    assert_int_equal(ww_slo_conf_load("/nonexistent/phases.yaml", &c, &err), -ENOENT);
    assert_true(strstr(err.msg, "/nonexistent/phases.yaml") != NULL);
}

/* Issue 15 item 6: how many requests a burn-rate alert needs, per SLO. */
static void test_min_requests(void **state)
{
    (void)state;
    static const char text[] =
        "phases:\n"
        "  - {id: p1, go_live: '2026-06-01', contracted_mw: 1, slos: [\n"
        "      {name: a, metric: availability, objective: 0.99, min_requests: 5000},\n"
        "      {name: b, metric: availability, objective: 0.99, min_requests: 0}]}\n";
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    if (ww_slo_conf_load_buffer(text, sizeof text - 1, "m.yaml", &c, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    const ww_slo_t *l = ((const ww_phase_t *)c.phases.items)[0].slos.items;
    assert_int_equal(l[0].min_requests, 5000);
    assert_int_equal(l[1].min_requests, 0);
    ww_slo_conf_free(&c);
    s_expect_error(HEAD
                   "      - {name: b, metric: availability, objective: 0.9, min_requests: -1}\n",
                   "p.yaml:", "min_requests");
}

/* Issue 15 item 10: one mistake does not hide the next. The parser's errors and the
 * checks' come together, one per line, each with the line and column of its value. */
static void test_every_error_at_once(void **state)
{
    (void)state;
    static const char text[] = "alertmanager:\n"
                               "  url: notaurl\n"
                               "phases:\n"
                               "  - id: p1\n"
                               "    go_live: '2026-13-01'\n"
                               "    contracted_mw: 250\n"
                               "    power_ceiling_mw: 200\n"
                               "    slos:\n"
                               "      - {name: a, metric: ttf, threshold: 1, objective: 0.99}\n"
                               "      - {name: a, metric: availability, objective: 0.99,\n"
                               "         period: 1d}\n"
                               "  - id: p1\n"
                               "    go_live: '2027-06-01'\n"
                               "    contracted_mw: 250\n"
                               "evaluation:\n"
                               "  intervall: 5s\n";
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    assert_int_equal(ww_slo_conf_load_buffer(text, sizeof text - 1, "p.yaml", &c, &err), -EINVAL);
    assert_string_equal(
        err.msg,
        "p.yaml:16:3: evaluation.intervall: unknown key\n"
        "p.yaml:2:8: alertmanager.url: 'notaurl' is not an http(s) URL (e.g. "
        "http://127.0.0.1:9093; empty = no push)\n"
        "p.yaml:5:14: phases[0].go_live: '2026-13-01' is not a calendar date YYYY-MM-DD\n"
        "p.yaml:7:23: phases[0].power_ceiling_mw: 200 is below contracted_mw 250 (the ceiling is "
        "at least the contracted MW; 0 = contracted_mw)\n"
        "p.yaml:9:27: phases[0].slos[0].metric: 'ttf' is not one of ttft, tpot, e2e, queue, "
        "availability\n"
        "p.yaml:11:18: phases[0].slos[1].period: 1d is shorter than 3d, the longest window "
        "of the burn-rate rules (at least 3d; the default is 30d)\n"
        "p.yaml:10:16: phases[0].slos[1].name: 'a' is already used by slos[0] of phase p1\n"
        "p.yaml:12:9: phases[1].id: 'p1' is already the id of phases[0]");
    ww_slo_conf_free(&c);
}

/* Issue 15 item 10: checks that were missing. */
static void test_period_url_and_power_ceiling(void **state)
{
    (void)state;
    s_expect_error(HEAD "      - {name: b, metric: availability, objective: 0.9, period: 2d}\n",
                   "p.yaml:7:65: phases[0].slos[1].period: 2d is shorter than 3d", NULL);
    s_expect_error("alertmanager: {url: 'ftp://am:9093'}\n" HEAD,
                   "p.yaml:1:21: alertmanager.url: 'ftp://am:9093' is not an http(s) URL", NULL);
    s_expect_error("alertmanager: {url: 'http://'}\n" HEAD, "p.yaml:1:21: alertmanager.url", NULL);
    s_expect_error("alertmanager: {url: 'http://a b'}\n" HEAD, "p.yaml:1:21: alertmanager.url",
                   NULL);
    s_expect_error(HEAD "    power_ceiling_mw: 249.5\n",
                   "p.yaml:7:23: phases[0].power_ceiling_mw: 249.5 is below contracted_mw 250",
                   NULL);
    static const char ok[] =
        "alertmanager: {url: 'https://am.example:9093/'}\n"
        "phases:\n"
        "  - {id: p1, go_live: '2026-06-01', contracted_mw: 250,\n"
        "     power_ceiling_mw: 250, slos: [\n"
        "      {name: a, metric: availability, objective: 0.99, period: 3d}]}\n";
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    if (ww_slo_conf_load_buffer(ok, sizeof ok - 1, "ok.yaml", &c, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    ww_slo_conf_free(&c);
}

/* A file of many bad SLOs lists the first WW_CFG_MAX_ERRORS and says it stopped. */
static void test_many_errors_are_capped(void **state)
{
    (void)state;
    char text[16384];
    size_t n = (size_t)snprintf(text, sizeof text, HEAD);
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "      - {name: s%d, metric: availability, objective: 1}\n", i);
    }
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    assert_int_equal(ww_slo_conf_load_buffer(text, n, "p.yaml", &c, &err), -EINVAL);
    assert_int_equal(ww_cfg_err_count(&err), WW_CFG_MAX_ERRORS + 1);
    assert_non_null(strstr(err.msg, "\n(stopped after 20 errors)"));
}

/* The file name and lines also come from a real file. */
static void test_file_errors_name_file_line(void **state)
{
    (void)state;
    char path[] = "/tmp/ww_slo_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = HEAD "  - id: p2\n"
                                    "    go_live: 2027-06-01\n"
                                    "    contracted_mw: 250\n"
                                    "    slos: [{name: x, metric: queue, objective: 0.9}]\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    ww_slo_conf_t c;
    ww_cfg_err_t err = {{0}};
    assert_int_equal(ww_slo_conf_load(path, &c, &err), -EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:10:12: phases[1].slos[0].threshold: required for a queue SLO",
             path);
    if (strncmp(err.msg, want, strlen(want)) != 0) {
        fail_msg("'%s' does not start with '%s'", err.msg, want);
    }
    unlink(path);
}

static void test_sli_names(void **state)
{
    (void)state;
    assert_string_equal(ww_sli_name(WW_SLI_TTFT), "ttft");
    assert_string_equal(ww_sli_name(WW_SLI_AVAILABILITY), "availability");
}

/* one case per line: tests/CMakeLists.txt registers each as a ctest test */
/* clang-format off */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_example_file),
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_bad_metric),
    cmocka_unit_test(test_objective_range),
    cmocka_unit_test(test_duplicate_phase),
    cmocka_unit_test(test_duplicate_slo),
    cmocka_unit_test(test_bad_date),
    cmocka_unit_test(test_missing_threshold),
    cmocka_unit_test(test_unknown_key),
    cmocka_unit_test(test_other_errors),
    cmocka_unit_test(test_min_requests),
    cmocka_unit_test(test_sli_names),
    cmocka_unit_test(test_every_error_at_once),
    cmocka_unit_test(test_period_url_and_power_ceiling),
    cmocka_unit_test(test_file_errors_name_file_line),
    cmocka_unit_test(test_many_errors_are_capped),
};
/* clang-format on */

WW_TEST_MAIN(tests, NULL, NULL)
