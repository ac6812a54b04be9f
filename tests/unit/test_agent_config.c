/* The agent's configuration schema and its finishing checks (agent/ww_agent_conf.c). */
#include "ww_agent_conf.h"
#include "ww_host_source.h"
#include "ww_nvml_source.h"
#include "ww_sources.h"
#include "ww_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_load(ww_agent_conf_t *c, const char *yaml, ww_cfg_err_t *err)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(ww_cfg_defaults(&ww_agent_schema, c, err), 0);
    int rc = ww_cfg_load_buffer(&ww_agent_schema, c, yaml, strlen(yaml), "t.yaml", err);
    if (rc == 0) {
        /* Keys are another test's business (test_auth, test_security). */
        rc = ww_cfg_set(&ww_agent_schema, c, "security.insecure", "true", "test", err);
    }
    if (rc == 0) {
        rc = ww_agent_conf_finish(c, err);
    }
    return rc;
}

/* Found by fuzz_config: a string key set to null (`source:`) crashed the checks. */
static void test_null_strings_are_errors_not_crashes(void **state)
{
    static const char *const cases[][2] = {
        {"agent:\n  source:\n", "agent.source"},
        {"spool:\n  policy:\n", "spool.policy"},
        {"spool:\n  fsync:\n", "spool.fsync"},
        {"source:\n  socket_mode:\n", "source.socket_mode"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ww_agent_conf_t c;
        ww_cfg_err_t err;
        assert_int_equal(s_load(&c, cases[i][0], &err), -EINVAL);
        if (!strstr(err.msg, cases[i][1])) {
            fail_msg("case %zu: '%s' does not name %s", i, err.msg, cases[i][1]);
        }
        ww_cfg_free(&ww_agent_schema, &c);
    }
}

static void test_defaults_finish_and_derive(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, "agent:\n  id: a1\n", &err), 0);
    assert_string_equal(c.spool_dir, "/var/lib/waferwatch/spool/a1");
    assert_int_equal(c.sim.n_models, 3);
    assert_int_equal(c.collectors.n, 1);
    ww_cfg_free(&ww_agent_schema, &c);
}

static void test_window_must_be_a_multiple_of_the_interval(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, "agent:\n  interval: 3s\n  latency_window: 10s\n", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "agent.latency_window"));
    ww_cfg_free(&ww_agent_schema, &c);
    assert_int_equal(s_load(&c, "agent:\n  interval: 2s\n  latency_window: 10s\n", &err), 0);
    ww_cfg_free(&ww_agent_schema, &c);
}

static void test_curve_keys_required_by_default(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_defaults(&ww_agent_schema, &c, &err), 0);
    assert_int_equal(ww_agent_conf_finish(&c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "security"));
    ww_cfg_free(&ww_agent_schema, &c);
}

static void test_idle_power_below_max(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, "sim:\n  idle_w: 23000\n  max_w: 20000\n", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "sim.idle_w"));
    ww_cfg_free(&ww_agent_schema, &c);
}

/* The request log's settings: the source's name, one node, the socket's mode and path. */
static void test_reqlog_settings_checked(void **state)
{
    static const char *const bad[][2] = {
        {"agent:\n  source: ipmi\n", "agent.source"},
        {"agent:\n  source: reqlog\nsim:\n  nodes: 2\n", "sim.nodes"},
        {"source:\n  socket_mode: '0999'\n", "source.socket_mode"},
        {"source:\n  socket_mode: '01777'\n", "source.socket_mode"},
        {"source:\n  socket_mode: ''\n", "source.socket_mode"},
        {"source:\n  socket: ''\n", "source.socket"},
        {"source:\n  socket:\n", "source.socket"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ww_agent_conf_t c;
        ww_cfg_err_t err;
        assert_int_equal(s_load(&c, bad[i][0], &err), -EINVAL);
        if (!strstr(err.msg, bad[i][1])) {
            fail_msg("case %zu: '%s' does not name %s", i, err.msg, bad[i][1]);
        }
        ww_cfg_free(&ww_agent_schema, &c);
    }
    char yaml[400];
    snprintf(yaml, sizeof yaml, "source:\n  socket: /%0108d\n", 0);
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, yaml, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "source.socket"));
    ww_cfg_free(&ww_agent_schema, &c);

    assert_int_equal(s_load(&c,
                            "agent:\n  source: reqlog\nsource:\n  socket: /run/x/r.sock\n"
                            "  socket_mode: '0620'\n  max_age: 3s\n",
                            &err),
                     0);
    assert_string_equal(c.reqlog.path, "/run/x/r.sock");
    assert_int_equal(c.reqlog.mode, 0620);
    assert_int_equal(c.reqlog.max_age_ns, 3000000000LL);
    ww_cfg_free(&ww_agent_schema, &c);
    /* Never under two intervals: a reading one interval old is the newest there can be. */
    assert_int_equal(s_load(&c, "agent:\n  interval: 10s\n  latency_window: 10s\n", &err), 0);
    assert_int_equal(c.reqlog.max_age_ns, 20000000000LL);
    ww_cfg_free(&ww_agent_schema, &c);
    assert_int_equal(s_load(&c, "agent:\n  id: a1\n", &err), 0);
    assert_ptr_equal(ww_sources_get(c.source)->ops, &ww_sim_source);
    assert_string_equal(c.reqlog.path, "/run/waferwatch/reqlog.sock");
    assert_int_equal(c.reqlog.mode, 0660);
    ww_cfg_free(&ww_agent_schema, &c);
}

/* Issue 15 item 3: what the collector would refuse at run time (libzmq at connect, the
 * wire at decode: every batch Nacked and dropped) is a configuration error naming the key. */
static void test_endpoints_and_wire_text_checked(void **state)
{
    (void)state;
    char long_id[140];
    memset(long_id, 'n', 129);
    long_id[129] = '\0';
    char yaml_long[256], yaml_long_nodes[256];
    snprintf(yaml_long, sizeof yaml_long, "node:\n  id: %s\n", long_id);
    long_id[126] = '\0'; /* 126 bytes alone is fine; "-10" makes the last of 11 nodes 129 */
    snprintf(yaml_long_nodes, sizeof yaml_long_nodes, "node:\n  id: %s\nsim:\n  nodes: 11\n",
             long_id);
    const char *const bad[][2] = {
        {"collector:\n  endpoints: [\"http://x\"]\n", "collector.endpoints: \"http://x\""},
        {"collector:\n  endpoints: [\"tcp://127.0.0.1:7878\", \"tcp://host\"]\n",
         "collector.endpoints: \"tcp://host\""},
        {"collector:\n  endpoints: [\"tcp://host:0\"]\n", "collector.endpoints"},
        {"collector:\n  endpoints: [\"tcp://host:80x\"]\n", "collector.endpoints"},
        {"collector:\n  endpoints: [\"ipc://\"]\n", "collector.endpoints"},
        {"node:\n  id: \"bad node/id\"\n", "node.id: \"bad node/id\" has a character"},
        {yaml_long, "node.id"},
        {yaml_long_nodes, "node.id"},
        {"agent:\n  id: \"a\\tb\"\n", "agent.id"},
        {"node:\n  phase: \"p\\x01\"\n", "node.phase"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ww_agent_conf_t c;
        ww_cfg_err_t err;
        if (s_load(&c, bad[i][0], &err) != -EINVAL) {
            fail_msg("case %zu accepted: %s", i, bad[i][0]);
        }
        if (!strstr(err.msg, bad[i][1])) {
            fail_msg("case %zu: '%s' does not name %s", i, err.msg, bad[i][1]);
        }
        ww_cfg_free(&ww_agent_schema, &c);
    }
    const char *const good[] = {
        "collector:\n  endpoints: [\"tcp://127.0.0.1:7878\", \"ipc:///run/ww/c.sock\"]\n",
        "collector:\n  endpoints: [\"tcp://[::1]:7878\", \"tcp://c.example:1\"]\n",
        "node:\n  id: \"okc1-h1_r01.n:2\"\nsim:\n  nodes: 10\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ww_agent_conf_t c;
        ww_cfg_err_t err;
        if (s_load(&c, good[i], &err) != 0) {
            fail_msg("case %zu refused: %s", i, err.msg);
        }
        ww_cfg_free(&ww_agent_schema, &c);
    }
}

/* Issue 15 item 10: one check does not mask the others; every error of a file is
 * reported at once, one a line. The choices are enum rows (issue 16 item 1): the engine
 * refuses them all at once, each at its line and column with the allowed names; the
 * finishing checks then report theirs all at once. */
static void test_every_error_at_once(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c,
                            "agent:\n  source: bogus\n  log_level: loud\n"
                            "spool:\n  policy: bogus\n  fsync: sometimes\n",
                            &err),
                     -EINVAL);
    assert_string_equal(
        err.msg, "t.yaml:2:11: agent.source: \"bogus\" is not one of sim, reqlog, host, nvml\n"
                 "t.yaml:3:14: agent.log_level: \"loud\" is not one of error, warn, info, "
                 "debug\n"
                 "t.yaml:5:11: spool.policy: \"bogus\" is not one of drop_oldest, "
                 "stop_sampling\n"
                 "t.yaml:6:10: spool.fsync: \"sometimes\" is not one of always, interval, "
                 "never");
    ww_cfg_free(&ww_agent_schema, &c);

    assert_int_equal(s_load(&c,
                            "agent:\n  interval: 3s\n  latency_window: 10s\n"
                            "node:\n  id: \"bad node/id\"\n"
                            "collector:\n  endpoints: [\"http://x\"]\n"
                            "sim:\n  idle_w: 23000\n  max_w: 20000\n",
                            &err),
                     -EINVAL);
    static const char *const named[] = {"agent.latency_window", "node.id", "collector.endpoints",
                                        "sim.idle_w"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (!strstr(err.msg, named[i])) {
            fail_msg("%s not named in:\n%s", named[i], err.msg);
        }
    }
    assert_int_equal(ww_cfg_err_count(&err), 4);
    ww_cfg_free(&ww_agent_schema, &c);
}

/* Issue 16 item 1: the choices hold the enums the agent passes on as they are. */
static void test_choices_are_the_modules_enums(void **state)
{
    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, "", &err), 0);
    assert_int_equal(c.spool_policy, WW_SPOOL_DROP_OLDEST);
    assert_int_equal(c.spool_fsync, WW_FSYNC_ALWAYS);
    assert_int_equal(c.log_level, WW_LOG_INFO);
    ww_cfg_free(&ww_agent_schema, &c);
    assert_int_equal(s_load(&c,
                            "agent:\n  log_level: debug\n  source: reqlog\n"
                            "spool:\n  policy: stop_sampling\n  fsync: interval\n",
                            &err),
                     0);
    assert_int_equal(c.spool_policy, WW_SPOOL_REFUSE);
    assert_int_equal(c.spool_fsync, WW_FSYNC_INTERVAL);
    assert_int_equal(c.log_level, WW_LOG_DEBUG);
    assert_ptr_equal(ww_sources_get(c.source)->ops, &ww_reqlog_source);
    ww_cfg_free(&ww_agent_schema, &c);
    assert_int_equal(s_load(&c, "spool:\n  fsync: never\nagent:\n  log_level: error\n", &err), 0);
    assert_int_equal(c.spool_fsync, WW_FSYNC_NEVER);
    assert_int_equal(c.log_level, WW_LOG_ERROR);
    ww_cfg_free(&ww_agent_schema, &c);
}

/* Issue 16 item 4: the registry is the one list of sources; agent.source's names are its
 * names, in its order, and each row's name is its table's. */
static void test_source_registry(void **state)
{
    size_t n = ww_sources_count();
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++) {
        const ww_sources_entry_t *e = ww_sources_get((int)i);
        assert_non_null(e);
        assert_string_equal(e->name, e->ops->name);
        assert_ptr_equal(ww_sources_names[i], e->name);
        assert_ptr_equal(ww_sources_find(e->name), e);
        assert_non_null(e->models);
    }
    assert_null(ww_sources_names[n]);
    assert_null(ww_sources_get((int)n));
    assert_null(ww_sources_get(-1));
    assert_null(ww_sources_find("ipmi"));
    assert_ptr_equal(ww_sources_find("host")->ops, &ww_host_source);
    assert_ptr_equal(ww_sources_find("nvml")->ops, &ww_nvml_source);
    assert_null(ww_sources_find(NULL));
    assert_ptr_equal(ww_sources_find("sim")->ops, &ww_sim_source);
    assert_ptr_equal(ww_sources_find("reqlog")->ops, &ww_reqlog_source);

    ww_agent_conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(s_load(&c, "agent:\n  source: reqlog\n", &err), 0);
    const ww_sources_entry_t *e = ww_sources_get(c.source);
    assert_ptr_equal(ww_sources_conf(e, &c), &c.reqlog);
    assert_int_equal(e->max_nodes, 1);
    assert_non_null(e->check);
    ww_cfg_free(&ww_agent_schema, &c);
    assert_int_equal(s_load(&c, "sim:\n  nodes: 3\n", &err), 0);
    e = ww_sources_get(c.source);
    assert_ptr_equal(ww_sources_conf(e, &c), &c.sim);
    assert_int_equal(e->models(&c), c.sim.n_models);
    ww_cfg_free(&ww_agent_schema, &c);

    /* --help lists the registry's names. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_usage(&ww_agent_schema, f);
    fclose(f);
    assert_non_null(strstr(buf, "agent.source (one of: sim, reqlog, host, nvml; default sim)"));
    free(buf);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_error_at_once),
    cmocka_unit_test(test_choices_are_the_modules_enums),
    cmocka_unit_test(test_source_registry),
    cmocka_unit_test(test_endpoints_and_wire_text_checked),
    cmocka_unit_test(test_reqlog_settings_checked),
    cmocka_unit_test(test_null_strings_are_errors_not_crashes),
    cmocka_unit_test(test_defaults_finish_and_derive),
    cmocka_unit_test(test_window_must_be_a_multiple_of_the_interval),
    cmocka_unit_test(test_idle_power_below_max),
    cmocka_unit_test(test_curve_keys_required_by_default),
};
WW_TEST_MAIN(tests, NULL, NULL)
