/* Unit tests for ww_config: precedence, error origins, every type, printing round-trip and
 * hostile input. Run under ASan/LSan, so "no leak" tests only need to exercise the path. */
#include "ww_config.h"
#include "ww_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *name;
    double weight;
    int64_t count;
    bool enabled;
    ww_cfg_strlist_t aliases;
} model_t;

typedef struct {
    char *name;
    int64_t nodes;
    int64_t seed;
    double rate;
    bool fault;
    int64_t interval_ns;
    ww_cfg_strlist_t tags;
    ww_cfg_table_t models;
    char *endpoint;
    char *deep;
    double other_rate;
} conf_t;

static const ww_cfg_opt_t s_model_rows[] = {
    {.name = "name", .type = WW_CFG_STRING, .offset = offsetof(model_t, name), .help = "id"},
    {.name = "weight",
     .type = WW_CFG_DOUBLE,
     .def = "1",
     .offset = offsetof(model_t, weight),
     .min = 0,
     .max = 100,
     .help = "share"},
    {.name = "limits.count",
     .type = WW_CFG_INT,
     .def = "3",
     .offset = offsetof(model_t, count),
     .min = 1,
     .max = 10,
     .help = "count"},
    {.name = "enabled",
     .type = WW_CFG_BOOL,
     .def = "true",
     .offset = offsetof(model_t, enabled),
     .help = "on"},
    {.name = "aliases",
     .type = WW_CFG_STRLIST,
     .offset = offsetof(model_t, aliases),
     .help = "other names"},
};

static const ww_cfg_opt_t s_rows[] = {
    {.name = "name",
     .type = WW_CFG_STRING,
     .def = "agent",
     .offset = offsetof(conf_t, name),
     .flag = "name",
     .help = "instance name"},
    {.name = "sim.nodes",
     .type = WW_CFG_INT,
     .def = "4",
     .offset = offsetof(conf_t, nodes),
     .min = 1,
     .max = 64,
     .flag = "sim-nodes",
     .help = "simulated nodes"},
    {.name = "sim.seed",
     .type = WW_CFG_INT,
     .def = "42",
     .offset = offsetof(conf_t, seed),
     .flag = "sim-seed",
     .help = "PRNG seed"},
    {.name = "sim.load.rate",
     .type = WW_CFG_DOUBLE,
     .def = "2.5",
     .offset = offsetof(conf_t, rate),
     .min = 0,
     .max = 1000,
     .flag = "rate",
     .help = "arrivals per second"},
    {.name = "sim.fault.enabled",
     .type = WW_CFG_BOOL,
     .def = "false",
     .offset = offsetof(conf_t, fault),
     .flag = "fault",
     .help = "inject a pump fault"},
    {.name = "sim.interval",
     .type = WW_CFG_DURATION,
     .def = "1s",
     .offset = offsetof(conf_t, interval_ns),
     .min = 0.001,
     .max = 3600,
     .flag = "interval",
     .help = "sample interval"},
    {.name = "tags",
     .type = WW_CFG_STRLIST,
     .def = "a,b",
     .offset = offsetof(conf_t, tags),
     .flag = "tags",
     .help = "labels"},
    {.name = "sim.models",
     .type = WW_CFG_TABLE,
     .def = "[{name: m1, weight: 2}]",
     .offset = offsetof(conf_t, models),
     .flag = "models",
     .help = "model mix",
     .sub = s_model_rows,
     .n_sub = sizeof s_model_rows / sizeof s_model_rows[0],
     .elem_size = sizeof(model_t),
     .min_items = 1,
     .max_items = 4},
    {.name = "collector.endpoint",
     .type = WW_CFG_STRING,
     .offset = offsetof(conf_t, endpoint),
     .flag = "endpoint",
     .help = "where to send"},
    {.name = "a.b.c", .type = WW_CFG_STRING, .def = "x", .offset = offsetof(conf_t, deep)},
    /* Listed apart from the other sim.* rows on purpose: printing must still group them. */
    {.name = "sim.load.other",
     .type = WW_CFG_DOUBLE,
     .def = "0.1",
     .offset = offsetof(conf_t, other_rate),
     .help = "another rate"},
};

static const ww_cfg_schema_t s_schema = {
    .program = "test-prog",
    .summary = "config tests",
    .env_prefix = "WWT_",
    .opts = s_rows,
    .n_opts = sizeof s_rows / sizeof s_rows[0],
};

/* Defaults then `yaml`; returns the load's result, err filled. */
static int load(conf_t *c, const char *yaml, ww_cfg_err_t *err)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(ww_cfg_defaults(&s_schema, c, err), 0);
    return ww_cfg_load_buffer(&s_schema, c, yaml, strlen(yaml), "t.yaml", err);
}

/* Writes text to a fresh temporary file; the caller unlinks and frees the name. */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/ww_cfg_test_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void assert_starts_with(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0) {
        fail_msg("'%s' does not start with '%s'", s, prefix);
    }
}

static void assert_contains(const char *s, const char *part)
{
    if (!strstr(s, part)) {
        fail_msg("'%s' does not contain '%s'", s, part);
    }
}

static model_t *model(conf_t *c, size_t i)
{
    assert_true(i < c->models.n);
    return (model_t *)c->models.items + i;
}

static void test_defaults_applied(void **state)
{
    conf_t c = {0};
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
    assert_string_equal(c.name, "agent");
    assert_int_equal(c.nodes, 4);
    assert_int_equal(c.seed, 42);
    assert_true(c.rate == 2.5);
    assert_false(c.fault);
    assert_int_equal(c.interval_ns, 1000000000);
    assert_int_equal(c.tags.n, 2);
    assert_string_equal(c.tags.v[0], "a");
    assert_string_equal(c.tags.v[1], "b");
    assert_int_equal(c.models.n, 1);
    assert_string_equal(model(&c, 0)->name, "m1");
    assert_true(model(&c, 0)->weight == 2);
    assert_int_equal(model(&c, 0)->count, 3); /* sub-row default */
    assert_true(model(&c, 0)->enabled);
    assert_null(c.endpoint);
    assert_string_equal(c.deep, "x");
    ww_cfg_free(&s_schema, &c);
    assert_null(c.name);
    assert_null(c.models.items);
}

static void test_file_overrides_defaults(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    const char *yaml = "# comment\n"
                       "name: edge-1\n"
                       "sim:\n"
                       "  nodes: 8\n"
                       "  load:\n"
                       "    rate: 12.5\n"
                       "  fault: {enabled: yes}\n"
                       "  interval: 250ms\n"
                       "collector:\n"
                       "  endpoint: tcp://127.0.0.1:5555\n"
                       "a:\n"
                       "  b:\n"
                       "    c: deep\n";
    int rc = load(&c, yaml, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.name, "edge-1");
    assert_int_equal(c.nodes, 8);
    assert_int_equal(c.seed, 42);
    assert_true(c.rate == 12.5);
    assert_true(c.fault);
    assert_int_equal(c.interval_ns, 250000000);
    assert_string_equal(c.endpoint, "tcp://127.0.0.1:5555");
    assert_string_equal(c.deep, "deep");
    ww_cfg_free(&s_schema, &c);
}

static void test_empty_file_is_all_defaults(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    assert_int_equal(load(&c, "", &err), 0);
    assert_int_equal(c.nodes, 4);
    ww_cfg_free(&s_schema, &c);
    assert_int_equal(load(&c, "# only a comment\n---\n", &err), 0);
    assert_int_equal(c.nodes, 4);
    ww_cfg_free(&s_schema, &c);
    /* A section whose keys are all commented out is null: fine. */
    assert_int_equal(load(&c, "sim:\n  # nodes: 3\n", &err), 0);
    assert_int_equal(c.nodes, 4);
    ww_cfg_free(&s_schema, &c);
}

static void test_env_overrides_file(void **state)
{
    char *path = write_temp("sim:\n  nodes: 8\n  seed: 7\n");
    char *argv[] = {"prog", "--config", path};
    conf_t c = {0};
    ww_cfg_err_t err;
    setenv("WWT_SIM_NODES", "16", 1);
    setenv("WWT_TAGS", "x, y ,z", 1);
    int rc = ww_cfg_parse_args(&s_schema, &c, 3, argv, &err);
    unsetenv("WWT_SIM_NODES");
    unsetenv("WWT_TAGS");
    assert_int_equal(rc, WW_CFG_RUN);
    assert_int_equal(c.nodes, 16);
    assert_int_equal(c.seed, 7);
    assert_int_equal(c.tags.n, 3);
    assert_string_equal(c.tags.v[1], "y");
    ww_cfg_free(&s_schema, &c);

    /* A bad environment value names the variable. */
    memset(&c, 0, sizeof c);
    setenv("WWT_SIM_SEED", "abc", 1);
    rc = ww_cfg_parse_args(&s_schema, &c, 3, argv, &err);
    unsetenv("WWT_SIM_SEED");
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "environment WWT_SIM_SEED: ");
    assert_contains(err.msg, "'abc' is not an integer");
    ww_cfg_free(&s_schema, &c);
    unlink(path);
    free(path);
}

static void test_flag_overrides_env_even_before_config(void **state)
{
    char *path = write_temp("sim:\n  nodes: 8\n  seed: 7\n");
    char *cfgflag = malloc(strlen(path) + 10);
    assert_non_null(cfgflag);
    sprintf(cfgflag, "--config=%s", path);
    char *argv[] = {"prog", "--sim-nodes", "32", "--sim-seed=9", "--fault", cfgflag};
    conf_t c = {0};
    ww_cfg_err_t err;
    setenv("WWT_SIM_NODES", "16", 1);
    int rc = ww_cfg_parse_args(&s_schema, &c, 6, argv, &err);
    unsetenv("WWT_SIM_NODES");
    assert_int_equal(rc, WW_CFG_RUN);
    assert_int_equal(c.nodes, 32);
    assert_int_equal(c.seed, 9);
    assert_true(c.fault);
    ww_cfg_free(&s_schema, &c);

    /* -c FILE, and --no-x for a bool. */
    char *argv2[] = {"prog", "--no-fault", "-c", path, "--check-config"};
    memset(&c, 0, sizeof c);
    rc = ww_cfg_parse_args(&s_schema, &c, 5, argv2, &err);
    assert_int_equal(rc, WW_CFG_CHECK);
    assert_false(c.fault);
    assert_int_equal(c.nodes, 8);
    ww_cfg_free(&s_schema, &c);
    unlink(path);
    free(path);
    free(cfgflag);
}

static void test_unknown_key_names_file_and_line(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  nodes: 3\n  nodez: 4\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:3:");
    assert_contains(err.msg, "sim.nodez");
    assert_contains(err.msg, "unknown key");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  models:\n    - name: a\n      wieght: 2\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:4:7: sim.models[0].wieght: unknown key");
    ww_cfg_free(&s_schema, &c);

    /* A dotted key is not a shortcut for nesting. */
    rc = load(&c, "sim.nodes: 3\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:1:1: sim.nodes: unknown key");
    ww_cfg_free(&s_schema, &c);
}

static void test_bad_int_names_position_and_key(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  nodes: abc\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:10: sim.nodes: 'abc' is not an integer");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  nodes: 1.5\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:10: sim.nodes: '1.5' is not an integer");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  seed: 99999999999999999999\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "out of range");
    ww_cfg_free(&s_schema, &c);

    /* A mapping where a scalar belongs. */
    rc = load(&c, "sim:\n  nodes: {x: 1}\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:10: sim.nodes: expected an integer, found a mapping");
    ww_cfg_free(&s_schema, &c);

    /* A scalar where a section belongs. */
    rc = load(&c, "sim: 3\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:1:6: sim: expected a mapping");
    ww_cfg_free(&s_schema, &c);
}

static void test_range_errors(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  nodes: 0\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:10: sim.nodes: 0 is below the minimum 1");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  load: {rate: 1000.5}\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "sim.load.rate: 1000.5 is above the maximum 1000");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  interval: 2h\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "sim.interval: 2h is above the maximum 1h");
    ww_cfg_free(&s_schema, &c);

    /* Flags name the flag. */
    char *argv[] = {"prog", "--sim-nodes", "65"};
    memset(&c, 0, sizeof c);
    rc = ww_cfg_parse_args(&s_schema, &c, 3, argv, &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "flag --sim-nodes: sim.nodes: 65 is above the maximum 64");
    ww_cfg_free(&s_schema, &c);
}

static void test_bad_bool_and_nonfinite_double(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  fault:\n    enabled: maybe\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:3:14: sim.fault.enabled: 'maybe' is not a boolean");
    ww_cfg_free(&s_schema, &c);

    const char *bad[] = {"nan", "NaN", "inf", "-inf", ".nan", "1e999", "2.5x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0, sizeof c);
        assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
        rc = ww_cfg_set(&s_schema, &c, "sim.load.rate", bad[i], "flag --rate", &err);
        assert_int_equal(rc, -EINVAL);
        assert_starts_with(err.msg, "flag --rate: sim.load.rate: ");
        assert_true(c.rate == 2.5); /* unchanged on error */
        ww_cfg_free(&s_schema, &c);
    }
    rc = load(&c, "sim:\n  load:\n    rate: .nan\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:3:11: sim.load.rate: ");
    ww_cfg_free(&s_schema, &c);

    /* Bools: every accepted spelling. */
    const char *yes[] = {"true", "YES", "on", "1"};
    const char *no[] = {"False", "no", "OFF", "0"};
    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.fault.enabled", yes[i], "t", &err), 0);
        assert_true(c.fault);
        assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.fault.enabled", no[i], "t", &err), 0);
        assert_false(c.fault);
    }
    ww_cfg_free(&s_schema, &c);
}

static void test_duration_parsing(void **state)
{
    static const struct {
        const char *text;
        int64_t ns;
    } ok[] = {
        {"1s", 1000000000},   {"1.5s", 1500000000},   {"250ms", 250000000},
        {"1500us", 1500000},  {"2", 2000000000},      {"0.25", 250000000},
        {"5m", 300000000000}, {"1h", 3600000000000},  {"30m15s", 1815000000000},
        {"0.1s", 100000000},  {"1500ms", 1500000000}, {"2000000ns", 2000000},
        {".5s", 500000000},   {"0.001", 1000000},
    };
    conf_t c = {0};
    ww_cfg_err_t err;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = ww_cfg_set(&s_schema, &c, "sim.interval", ok[i].text, "t", &err);
        if (rc != 0) {
            fail_msg("%s: %s", ok[i].text, err.msg);
        }
        assert_int_equal(c.interval_ns, ok[i].ns);
    }
    const char *bad[] = {"5x",  "1 s", "-1s",    "s",    "",
                         "1h2", "ms",  "1.5.5s", "1e3s", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ww_cfg_set(&s_schema, &c, "sim.interval", bad[i], "flag --interval", &err);
        if (rc != -EINVAL) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_starts_with(err.msg, "flag --interval: sim.interval: ");
    }
    assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.interval", "5x", "f", &err), -EINVAL);
    assert_contains(err.msg, "unknown duration unit 'x'");
    /* A duration below the minimum of 1 ms. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.interval", "500us", "f", &err), -EINVAL);
    assert_contains(err.msg, "500us is below the minimum 1ms");
    /* "2d" parses but is out of range: 1 day = 86400 s > 3600 s. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.interval", "2d", "f", &err), -EINVAL);
    ww_cfg_free(&s_schema, &c);
}

static void test_strlist_from_yaml_and_text(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "tags:\n  - one\n  - \"two, three\"\n  - 3\n", &err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.tags.n, 3);
    assert_string_equal(c.tags.v[0], "one");
    assert_string_equal(c.tags.v[1], "two, three");
    assert_string_equal(c.tags.v[2], "3");
    /* Flow text replaces it. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "tags", "[p, 'q, r']", "flag --tags", &err), 0);
    assert_int_equal(c.tags.n, 2);
    assert_string_equal(c.tags.v[1], "q, r");
    /* Comma text. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "tags", " k ,l", "flag --tags", &err), 0);
    assert_int_equal(c.tags.n, 2);
    assert_string_equal(c.tags.v[0], "k");
    assert_string_equal(c.tags.v[1], "l");
    /* Empty text: empty list. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "tags", "", "flag --tags", &err), 0);
    assert_int_equal(c.tags.n, 0);
    assert_int_equal(ww_cfg_set(&s_schema, &c, "tags", "a,,b", "flag --tags", &err), -EINVAL);
    assert_contains(err.msg, "empty item 2");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "tags: [a, [b]]\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:1:11: tags: item 2: expected a string");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "tags: a\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "expected a list of strings, found a scalar");
    ww_cfg_free(&s_schema, &c);
}

static void test_table_from_yaml_and_flow_text(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c,
                  "sim:\n"
                  "  models:\n"
                  "    - name: llama\n"
                  "      weight: 3\n"
                  "      limits: {count: 7}\n"
                  "      aliases: [l3, l]\n"
                  "    - name: qwen\n"
                  "      enabled: off\n",
                  &err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.models.n, 2);
    assert_string_equal(model(&c, 0)->name, "llama");
    assert_true(model(&c, 0)->weight == 3);
    assert_int_equal(model(&c, 0)->count, 7);
    assert_int_equal(model(&c, 0)->aliases.n, 2);
    assert_string_equal(model(&c, 0)->aliases.v[1], "l");
    assert_string_equal(model(&c, 1)->name, "qwen");
    assert_true(model(&c, 1)->weight == 1); /* sub-row default */
    assert_int_equal(model(&c, 1)->count, 3);
    assert_false(model(&c, 1)->enabled);

    /* Flow text from a flag replaces the whole table. */
    rc = ww_cfg_set(&s_schema, &c, "sim.models", "[{name: a, weight: 5}, {name: b}, {name: c}]",
                    "flag --models", &err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.models.n, 3);
    assert_string_equal(model(&c, 2)->name, "c");
    assert_true(model(&c, 0)->weight == 5);

    /* min_items 1 and max_items 4; the old value survives a failed set. */
    rc = ww_cfg_set(&s_schema, &c, "sim.models", "[]", "flag --models", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "flag --models: sim.models: 0 items given, at least 1 required");
    rc = ww_cfg_set(&s_schema, &c, "sim.models", "[{}, {}, {}, {}, {}]", "flag --models", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "at most 4 allowed");
    assert_int_equal(c.models.n, 3);

    /* A bad element value names the element. */
    rc = ww_cfg_set(&s_schema, &c, "sim.models", "[{name: a}, {name: b, weight: heavy}]",
                    "flag --models", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "flag --models: sim.models[1].weight: 'heavy' is not a number");
    rc = ww_cfg_set(&s_schema, &c, "sim.models", "[{name: a", "flag --models", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "invalid YAML");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  models: []\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:11: sim.models: 0 items given, at least 1 required");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  models:\n    - just-a-name\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:3:7: sim.models[0]: expected a mapping");
    ww_cfg_free(&s_schema, &c);
}

static void test_duplicate_key(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  nodes: 3\n  nodes: 4\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "t.yaml:3:3: sim.nodes: duplicate key (first set at line 2)");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  nodes: 3\nname: a\nsim:\n  seed: 4\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:4:1: sim: duplicate key");
    ww_cfg_free(&s_schema, &c);
}

static void test_yaml_syntax_error_has_line(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c, "sim:\n  nodes: 3\n  seed: [1, 2\nname: x\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:4:");
    assert_contains(err.msg, "YAML syntax error");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "sim:\n  nodes: 3\n bad indent: 1\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:3:");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "- 1\n- 2\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, "t.yaml:1:1: the top level must be a mapping");
    ww_cfg_free(&s_schema, &c);

    rc = load(&c, "name: a\n---\nname: b\n", &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "more than one YAML document");
    ww_cfg_free(&s_schema, &c);
}

static void test_missing_file_names_path(void **state)
{
    conf_t c = {0};
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
    int rc = ww_cfg_load_file(&s_schema, &c, "/nonexistent/ww.yaml", &err);
    assert_int_equal(rc, -ENOENT);
    assert_string_equal(err.msg, "/nonexistent/ww.yaml: No such file or directory");
    rc = ww_cfg_load_file(&s_schema, &c, "/tmp", &err);
    assert_true(rc < 0);
    assert_starts_with(err.msg, "/tmp: ");
    ww_cfg_free(&s_schema, &c);

    char *argv[] = {"prog", "--config", "/nonexistent/ww.yaml"};
    memset(&c, 0, sizeof c);
    rc = ww_cfg_parse_args(&s_schema, &c, 3, argv, &err);
    assert_int_equal(rc, -EINVAL);
    assert_contains(err.msg, "/nonexistent/ww.yaml");
    ww_cfg_free(&s_schema, &c);

    /* A file error carries the path and the line. */
    char *path = write_temp("sim:\n  nodes: 99\n");
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
    rc = ww_cfg_load_file(&s_schema, &c, path, &err);
    assert_int_equal(rc, -EINVAL);
    assert_starts_with(err.msg, path);
    assert_contains(err.msg, ":2:10: sim.nodes: 99 is above the maximum 64");
    ww_cfg_free(&s_schema, &c);
    unlink(path);
    free(path);
}

static void assert_conf_equal(conf_t *a, conf_t *b)
{
    if (a->name || b->name) {
        assert_string_equal(a->name, b->name);
    }
    assert_int_equal(a->nodes, b->nodes);
    assert_int_equal(a->seed, b->seed);
    assert_true(a->rate == b->rate);
    assert_true(a->other_rate == b->other_rate);
    assert_int_equal(a->fault, b->fault);
    assert_int_equal(a->interval_ns, b->interval_ns);
    assert_int_equal(a->tags.n, b->tags.n);
    for (size_t i = 0; i < a->tags.n; i++) {
        assert_string_equal(a->tags.v[i], b->tags.v[i]);
    }
    assert_int_equal(a->models.n, b->models.n);
    for (size_t i = 0; i < a->models.n; i++) {
        model_t *ma = model(a, i), *mb = model(b, i);
        assert_string_equal(ma->name, mb->name);
        assert_true(ma->weight == mb->weight);
        assert_int_equal(ma->count, mb->count);
        assert_int_equal(ma->enabled, mb->enabled);
        assert_int_equal(ma->aliases.n, mb->aliases.n);
        for (size_t j = 0; j < ma->aliases.n; j++) {
            assert_string_equal(ma->aliases.v[j], mb->aliases.v[j]);
        }
    }
    assert_true((a->endpoint == NULL) == (b->endpoint == NULL));
    if (a->endpoint) {
        assert_string_equal(a->endpoint, b->endpoint);
    }
    assert_true((a->deep == NULL) == (b->deep == NULL));
    if (a->deep) {
        assert_string_equal(a->deep, b->deep);
    }
}

static char *print_to_string(conf_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_print(&s_schema, c, f);
    fclose(f);
    return buf;
}

static void test_print_round_trips(void **state)
{
    conf_t c;
    ww_cfg_err_t err;
    int rc =
        load(&c,
             "name: \"quote \\\" back\\\\slash\\nnewline\\ttab \\u00e9 \\u0085 \\x01 #: - [x]\"\n"
             "sim:\n"
             "  nodes: 64\n"
             "  seed: -9223372036854775808\n"
             "  load: {rate: 0.1, other: 1e-300}\n"
             "  interval: 1500ms\n"
             "  models:\n"
             "    - {name: 'yes', weight: 0.30000000000000004, aliases: ['a,b', '']}\n"
             "    - {name: '~', enabled: false, limits: {count: 10}}\n"
             "tags: ['true', '', 'null', ' sp ']\n"
             "a: {b: {c: ~}}\n",
             &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    char *text = print_to_string(&c);
    assert_contains(text, "interval: 1500ms\n");
    assert_contains(text, "    - name: \"yes\"\n");
    /* sim.load.other is listed apart in the schema but printed under the one "sim:". */
    assert_contains(text, "    rate: 0.1\n    other: 1e-300\n");

    /* Loaded over defaults and over a zeroed config: both equal. */
    conf_t d;
    rc = load(&d, text, &err);
    if (rc != 0) {
        fail_msg("%s\n%s", err.msg, text);
    }
    assert_conf_equal(&c, &d);
    assert_null(d.deep);
    ww_cfg_free(&s_schema, &d);
    memset(&d, 0, sizeof d);
    rc = ww_cfg_load_buffer(&s_schema, &d, text, strlen(text), "printed", &err);
    assert_int_equal(rc, 0);
    assert_conf_equal(&c, &d);
    ww_cfg_free(&s_schema, &d);
    free(text);

    /* Strings from flags may hold bytes YAML cannot: the output must still load. */
    assert_int_equal(ww_cfg_set(&s_schema, &c, "name", "bad \xff\xfe utf8 \x7f", "t", &err), 0);
    assert_int_equal(ww_cfg_set(&s_schema, &c, "sim.interval", "1h", "t", &err), 0);
    text = print_to_string(&c);
    assert_contains(text, "interval: 1h\n");
    memset(&d, 0, sizeof d);
    rc = ww_cfg_load_buffer(&s_schema, &d, text, strlen(text), "printed", &err);
    if (rc != 0) {
        fail_msg("%s\n%s", err.msg, text);
    }
    ww_cfg_free(&s_schema, &d);
    free(text);
    ww_cfg_free(&s_schema, &c);
}

static void test_print_config_flag(void **state)
{
    char *argv[] = {"prog", "--print-config", "--sim-nodes=5"};
    conf_t c = {0};
    ww_cfg_err_t err;
    /* stdout goes to a temporary file so the printed YAML can be checked. */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    char *path = write_temp("");
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);
    int rc = ww_cfg_parse_args(&s_schema, &c, 3, argv, &err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, WW_CFG_PRINT);
    ww_cfg_free(&s_schema, &c);

    conf_t d = {0};
    assert_int_equal(ww_cfg_defaults(&s_schema, &d, &err), 0);
    rc = ww_cfg_load_file(&s_schema, &d, path, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(d.nodes, 5);
    ww_cfg_free(&s_schema, &d);
    unlink(path);
    free(path);
}

static void test_help_version_and_unknown_flag(void **state)
{
    conf_t c = {0};
    ww_cfg_err_t err;
    /* --help wins over an unknown flag elsewhere on the line. */
    char *argv[] = {"prog", "--bogus", "--help"};
    assert_int_equal(ww_cfg_parse_args(&s_schema, &c, 3, argv, &err), WW_CFG_HELP);
    ww_cfg_free(&s_schema, &c);

    char *argv_v[] = {"prog", "--version"};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_schema, &c, 2, argv_v, &err), WW_CFG_VERSION);
    ww_cfg_free(&s_schema, &c);

    char *argv_u[] = {"prog", "--sim-nodes", "3", "--bogus=1"};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_schema, &c, 4, argv_u, &err), -EINVAL);
    assert_string_equal(err.msg, "unknown flag --bogus (see --help)");
    ww_cfg_free(&s_schema, &c);

    char *argv_m[] = {"prog", "--sim-nodes"};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_schema, &c, 2, argv_m, &err), -EINVAL);
    assert_string_equal(err.msg, "flag --sim-nodes: missing value");
    ww_cfg_free(&s_schema, &c);

    char *argv_p[] = {"prog", "stray"};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_schema, &c, 2, argv_p, &err), -EINVAL);
    assert_contains(err.msg, "unexpected argument 'stray'");
    ww_cfg_free(&s_schema, &c);

    /* Usage lists every key with its flag, env var, type, default and range. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_usage(&s_schema, f);
    fclose(f);
    assert_contains(buf, "Usage: test-prog [--config FILE] [flags]");
    assert_contains(buf, "sim.nodes (int, default 4, range 1..64)");
    assert_contains(buf, "flag --sim-nodes VALUE, env WWT_SIM_NODES");
    assert_contains(buf, "sim.interval (duration, default 1s, range 1ms..1h)");
    assert_contains(buf, "limits.count (int, default 3, range 1..10)");
    assert_contains(buf, "env WWT_A_B_C");
    free(buf);
}

static void test_set_twice_does_not_leak(void **state)
{
    conf_t c = {0};
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ww_cfg_set(&s_schema, &c, "name", "again", "t", &err), 0);
        assert_int_equal(ww_cfg_set(&s_schema, &c, "tags", "[x, y]", "t", &err), 0);
        assert_int_equal(
            ww_cfg_set(&s_schema, &c, "sim.models", "[{name: q, aliases: [r]}]", "t", &err), 0);
        const char *yaml = "name: n\ntags: [z]\nsim: {models: [{name: w}]}\n";
        assert_int_equal(ww_cfg_load_buffer(&s_schema, &c, yaml, strlen(yaml), "t", &err), 0);
    }
    assert_string_equal(c.name, "n");
    assert_int_equal(ww_cfg_set(&s_schema, &c, "name", NULL, "t", &err), 0);
    assert_null(c.name);
    assert_int_equal(ww_cfg_set(&s_schema, &c, "nope", "1", "t", &err), -ENOENT);
    assert_contains(err.msg, "unknown key nope");
    ww_cfg_free(&s_schema, &c);
    ww_cfg_free(&s_schema, &c); /* freeing twice is harmless: everything was NULLed */
}

/* Inputs a fuzzer would find: none may crash, leak or hang; all must be refused or parse. */
static void test_hostile_input(void **state)
{
    static const char *const inputs[] = {
        "tags: &a [*a]\n",
        "sim: {models: &m [{name: a, aliases: *m}]}\n",
        "sim: {models: [&e {name: a}, *e]}\n",
        "name: &s x\na: {b: {c: *s}}\n",
        "name: *undefined\n",
        "\xff\xfe\x00\x01",
        "? [a]\n: b\n",
        "name: \"a\\0b\"\n",
        "sim: {\"nodes\\0x\": 3}\n",
        "sim:\n\tnodes: 3\n",
        "!!map {name: !!binary aGk=}\n",
        "sim: {models: [[1, 2]]}\n",
        "sim: {models: ~}\n",
        "name: [",
        "%YAML 1.1\n%YAML 1.1\n---\n",
        ": :\n",
    };
    conf_t c;
    ww_cfg_err_t err;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        memset(&c, 0, sizeof c);
        assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
        size_t len = i == 5 ? 4 : strlen(inputs[i]);
        int rc = ww_cfg_load_buffer(&s_schema, &c, inputs[i], len, "h", &err);
        if (i < 5) {
            assert_int_equal(rc, -EINVAL); /* aliases, anchors reused and undefined ones */
        }
        if (rc < 0) {
            assert_true(err.msg[0] != '\0');
        }
        ww_cfg_free(&s_schema, &c);
    }

    /* Deep nesting must not overflow a stack, here or in libyaml. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    assert_non_null(deep);
    strcpy(deep, "tags: ");
    memset(deep + 6, '[', depth);
    memset(deep + 6 + depth, ']', depth);
    deep[6 + 2 * depth] = '\0';
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_load_buffer(&s_schema, &c, deep, strlen(deep), "h", &err), -EINVAL);
    ww_cfg_free(&s_schema, &c);
    free(deep);

    /* Mutations of a valid file: any result is fine, a crash or a leak is not. */
    const char *seed = "name: edge\nsim:\n  nodes: 8\n  interval: 250ms\n  models:\n"
                       "    - {name: a, weight: 2, aliases: [x]}\ntags: [a, b]\n";
    size_t slen = strlen(seed);
    char *buf = malloc(slen + 1);
    assert_non_null(buf);
    static const char s_alphabet[] = "\n :-[]{},'\"&*!#?|>~0aZ.\t\\%@`";
    uint32_t x = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, seed, slen + 1);
        for (int k = 0; k < 1 + round % 4; k++) {
            x = x * 1103515245u + 12345u;
            size_t pos = (x >> 8) % slen;
            x = x * 1103515245u + 12345u;
            buf[pos] = s_alphabet[(x >> 8) % (sizeof s_alphabet - 1)];
        }
        memset(&c, 0, sizeof c);
        assert_int_equal(ww_cfg_defaults(&s_schema, &c, &err), 0);
        (void)ww_cfg_load_buffer(&s_schema, &c, buf, slen, "m", &err);
        ww_cfg_free(&s_schema, &c);
    }
    free(buf);
}

/* A second, small schema for sizes, big integer ranges and empty defaults. */
typedef struct {
    int64_t max_bytes;
    int64_t big;
    char *label;
} sized_t;

static const ww_cfg_opt_t s_sized_rows[] = {
    WW_CFG_ROW("spool.max_bytes", WW_CFG_SIZE, "1 GiB", offsetof(sized_t, max_bytes), 4096,
               1125899906842624.0, "max-bytes", "spool size"),
    WW_CFG_ROW("big", WW_CFG_INT, "5", offsetof(sized_t, big), 1, 1e15, NULL, "a large count"),
    WW_CFG_ROW("label", WW_CFG_STRING, "", offsetof(sized_t, label), 0, 0, NULL,
               "empty means the host name"),
};

static const ww_cfg_schema_t s_sized_schema = {
    .program = "sized",
    .env_prefix = "WWS_",
    .opts = s_sized_rows,
    .n_opts = sizeof s_sized_rows / sizeof s_sized_rows[0],
};

static int sized_load(sized_t *c, const char *yaml, ww_cfg_err_t *err)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(ww_cfg_defaults(&s_sized_schema, c, err), 0);
    return ww_cfg_load_buffer(&s_sized_schema, c, yaml, strlen(yaml), "s.yaml", err);
}

static void test_sizes_and_ranges_read_as_humans_write_them(void **state)
{
    sized_t c;
    ww_cfg_err_t err;
    assert_int_equal(sized_load(&c, "", &err), 0);
    assert_int_equal(c.max_bytes, INT64_C(1) << 30);
    ww_cfg_free(&s_sized_schema, &c);
    assert_int_equal(sized_load(&c, "spool:\n  max_bytes: 16MiB\n", &err), 0);
    assert_int_equal(c.max_bytes, INT64_C(16) << 20);
    ww_cfg_free(&s_sized_schema, &c);
    assert_int_equal(sized_load(&c, "spool:\n  max_bytes: 5000\n", &err), 0);
    assert_int_equal(c.max_bytes, 5000);
    ww_cfg_free(&s_sized_schema, &c);
    assert_int_equal(sized_load(&c, "spool:\n  max_bytes: 3 MB\n", &err), -EINVAL);
    assert_starts_with(err.msg, "s.yaml:2:14: spool.max_bytes: ");
    assert_contains(err.msg, "unknown size unit");
    ww_cfg_free(&s_sized_schema, &c);
    assert_int_equal(sized_load(&c, "spool:\n  max_bytes: 1 KiB\n", &err), -EINVAL);
    assert_contains(err.msg, "1 KiB is below the minimum 4 KiB");
    ww_cfg_free(&s_sized_schema, &c);

    /* Help: sizes in binary units, integers in full, an empty default said as "none". */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_usage(&s_sized_schema, f);
    fclose(f);
    assert_contains(buf, "spool.max_bytes (size, default 1 GiB, range 4 KiB..1 PiB)");
    assert_contains(buf, "big (int, default 5, range 1..1000000000000000)");
    assert_contains(buf, "label (string, default none)");
    assert_null(strstr(buf, "default )"));
    assert_null(strstr(buf, "e+"));
    free(buf);

    /* --print-config writes the unit, and it loads back to the same bytes. */
    assert_int_equal(sized_load(&c, "spool:\n  max_bytes: 3145728\n", &err), 0);
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_print(&s_sized_schema, &c, f);
    fclose(f);
    assert_contains(buf, "max_bytes: 3 MiB");
    sized_t back;
    assert_int_equal(sized_load(&back, buf, &err), 0);
    assert_int_equal(back.max_bytes, c.max_bytes);
    ww_cfg_free(&s_sized_schema, &back);
    ww_cfg_free(&s_sized_schema, &c);
    free(buf);
}

static void test_unknown_environment_variable_is_refused(void **state)
{
    char *argv[] = {"prog"};
    conf_t c = {0};
    ww_cfg_err_t err;
    setenv("WWT_SIM_NODE", "16", 1);
    int rc = ww_cfg_parse_args(&s_schema, &c, 1, argv, &err);
    unsetenv("WWT_SIM_NODE");
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, "environment WWT_SIM_NODE: unknown key (did you mean "
                                 "WWT_SIM_NODES?)");
    ww_cfg_free(&s_schema, &c);
    /* Known names, and other prefixes, still pass. */
    memset(&c, 0, sizeof c);
    setenv("WWT_SIM_NODES", "16", 1);
    setenv("WWTX_ANYTHING", "1", 1);
    rc = ww_cfg_parse_args(&s_schema, &c, 1, argv, &err);
    unsetenv("WWT_SIM_NODES");
    unsetenv("WWTX_ANYTHING");
    assert_int_equal(rc, WW_CFG_RUN);
    assert_int_equal(c.nodes, 16);
    ww_cfg_free(&s_schema, &c);
}

/* Issue 15 item 10: one bad value must not hide the next. Every error of a file is
 * reported, one per line, each with its line and column, up to WW_CFG_MAX_ERRORS. */
static void test_every_error_of_a_file_is_reported(void **state)
{
    (void)state;
    conf_t c;
    ww_cfg_err_t err;
    int rc = load(&c,
                  "sim:\n"
                  "  nodes: 0\n"
                  "  nodez: 4\n"
                  "  models:\n"
                  "    - name: a\n"
                  "      weight: 200\n"
                  "    - name: b\n"
                  "      wieght: 2\n"
                  "tags: [x]\n"
                  "colector: {}\n",
                  &err);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(ww_cfg_err_count(&err), 5);
    assert_string_equal(err.msg, "t.yaml:2:10: sim.nodes: 0 is below the minimum 1\n"
                                 "t.yaml:3:3: sim.nodez: unknown key\n"
                                 "t.yaml:6:15: sim.models[0].weight: 200 is above the maximum 100\n"
                                 "t.yaml:8:7: sim.models[1].wieght: unknown key\n"
                                 "t.yaml:10:1: colector: unknown key");
    /* The valid values around the errors were read. */
    assert_int_equal(c.tags.n, 1);
    ww_cfg_free(&s_schema, &c);

    /* A file of garbage stops at the cap, and says so. */
    char big[4096] = "";
    for (int i = 0; i < 40; i++) {
        snprintf(big + strlen(big), sizeof big - strlen(big), "k%d: 1\n", i);
    }
    rc = load(&c, big, &err);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(ww_cfg_err_count(&err), WW_CFG_MAX_ERRORS + 1);
    assert_starts_with(err.msg, "t.yaml:1:1: k0: unknown key\nt.yaml:2:1: k1: unknown key\n");
    assert_non_null(strstr(err.msg, "t.yaml:20:1: k19: unknown key\n(stopped after 20 errors)"));
    assert_null(strstr(err.msg, "k20"));
    ww_cfg_free(&s_schema, &c);

    ww_cfg_err_t e = {{0}};
    assert_int_equal(ww_cfg_err_count(&e), 0);
    assert_int_equal(ww_cfg_err_add(&e, "a: %d", 1), 1);
    assert_int_equal(ww_cfg_err_add(&e, "b"), 2);
    assert_string_equal(e.msg, "a: 1\nb");
}

/* A program's own checks name the line of the value they refuse, as the parser does. */
static void test_locate_finds_line_and_column_of_a_key(void **state)
{
    (void)state;
    const char *y = "sim:\n"
                    "  nodes: 3\n"
                    "  models:\n"
                    "    - name: a\n"
                    "    - name: b\n"
                    "      weight: 2\n";
    size_t line, col;
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.nodes", &line, &col), 0);
    assert_true(line == 2 && col == 10);
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.models[1].weight", &line, &col), 0);
    assert_true(line == 6 && col == 15);
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.models[1]", &line, &col), 0);
    assert_true(line == 5 && col == 7);
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.models[2].name", &line, &col), -ENOENT);
    assert_true(line == 0 && col == 0);
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.seed", &line, &col), -ENOENT);
    assert_int_equal(ww_cfg_locate(y, strlen(y), "sim.nodes[0]", &line, &col), -ENOENT);
    assert_int_equal(ww_cfg_locate("a: [", 4, "a", &line, &col), -ENOENT);

    char *path = write_temp(y);
    char *buf = NULL;
    size_t len = 0;
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_read_file(path, &buf, &len, &err), 0);
    assert_int_equal(len, strlen(y));
    assert_string_equal(buf, y);
    free(buf);
    unlink(path);
    assert_int_equal(ww_cfg_read_file(path, &buf, &len, &err), -ENOENT);
    assert_contains(err.msg, path);
    free(path);
}

static void test_origin_names_flag_environment_or_file_line(void **state)
{
    char *path = write_temp("name: x\nsim:\n  nodes: 8\n  seed: 7\n");
    char *argv[] = {"prog", "--config", path, "--sim-seed=9"};
    char where[512], want[512];
    assert_int_equal(ww_cfg_origin(&s_schema, 3, argv, "sim.seed", where, sizeof where), 0);
    snprintf(want, sizeof want, "%s:4:9", path);
    assert_string_equal(where, want);
    assert_int_equal(ww_cfg_origin(&s_schema, 4, argv, "sim.seed", where, sizeof where), 0);
    assert_string_equal(where, "flag --sim-seed");
    setenv("WWT_SIM_NODES", "16", 1);
    assert_int_equal(ww_cfg_origin(&s_schema, 3, argv, "sim.nodes", where, sizeof where), 0);
    unsetenv("WWT_SIM_NODES");
    assert_string_equal(where, "environment WWT_SIM_NODES");
    assert_int_equal(ww_cfg_origin(&s_schema, 3, argv, "sim.interval", where, sizeof where), 0);
    assert_string_equal(where, "default");
    assert_int_equal(ww_cfg_origin(&s_schema, 3, argv, "nope", where, sizeof where), -ENOENT);
    unlink(path);
    free(path);
}

/* ---- enum rows (issue 16 item 1) ------------------------------------------------------- */

typedef struct {
    int policy;
    int odd;
} choice_t;

static const char *const s_policies[] = {"drop_oldest", "stop_sampling", NULL};
/* Names YAML would misread if printed plain: a null word, blanks, a leading digit. */
static const char *const s_odd_names[] = {"null", "two words", "1st", "plain-name.v2", NULL};
static const char *const s_no_names[] = {NULL};

static const ww_cfg_opt_t s_choice_rows[] = {
    WW_CFG_ENUM_ROW("spool.policy", s_policies, "drop_oldest", offsetof(choice_t, policy),
                    "spool-policy", "when the spool is full"),
    WW_CFG_ENUM_ROW("odd", s_odd_names, NULL, offsetof(choice_t, odd), NULL, "odd names"),
};

static const ww_cfg_schema_t s_choice_schema = {
    .program = "choice",
    .env_prefix = "WWE_",
    .opts = s_choice_rows,
    .n_opts = sizeof s_choice_rows / sizeof s_choice_rows[0],
};

static int choice_load(choice_t *c, const char *yaml, ww_cfg_err_t *err)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(ww_cfg_defaults(&s_choice_schema, c, err), 0);
    return ww_cfg_load_buffer(&s_choice_schema, c, yaml, strlen(yaml), "/x/agent.yaml", err);
}

static char *choice_print(const choice_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_print(&s_choice_schema, c, f);
    fclose(f);
    return buf;
}

/* Help lists the names and the default (a NULL default is the first name). */
static void test_enum_help_lists_names_and_default(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ww_cfg_usage(&s_choice_schema, f);
    fclose(f);
    assert_contains(buf, "spool.policy (one of: drop_oldest, stop_sampling; default drop_oldest)\n"
                         "      flag --spool-policy VALUE, env WWE_SPOOL_POLICY\n");
    assert_contains(buf, "odd (one of: null, two words, 1st, plain-name.v2; default null)");
    free(buf);
    choice_t c;
    ww_cfg_err_t err;
    assert_int_equal(choice_load(&c, "", &err), 0);
    assert_int_equal(c.policy, 0);
    assert_int_equal(c.odd, 0);
}

/* A file's value is the name's index; anything else is refused with file:line:col, the
 * key and the allowed names, and the old value stays. */
static void test_enum_from_file_and_its_errors(void **state)
{
    choice_t c;
    ww_cfg_err_t err;
    assert_int_equal(choice_load(&c, "spool:\n  policy: stop_sampling\nodd: \"two words\"\n", &err),
                     0);
    assert_int_equal(c.policy, 1);
    assert_int_equal(c.odd, 1);
    assert_int_equal(choice_load(&c, "spool:\n  policy: \"stop_sampling\"\n", &err), 0);
    assert_int_equal(c.policy, 1);

    assert_int_equal(choice_load(&c, "odd: 1st\nspool:\n  policy: bogus\n", &err), -EINVAL);
    assert_string_equal(err.msg, "/x/agent.yaml:3:11: spool.policy: \"bogus\" is not one of "
                                 "drop_oldest, stop_sampling");
    assert_int_equal(c.policy, 0);
    assert_int_equal(c.odd, 2);
    /* Names are exact: case matters, as it did for the strings compared before. */
    assert_int_equal(choice_load(&c, "spool:\n  policy: Drop_Oldest\n", &err), -EINVAL);
    assert_contains(err.msg, "\"Drop_Oldest\" is not one of drop_oldest, stop_sampling");
    /* Null, and a value that is not a scalar, say what is expected. */
    assert_int_equal(choice_load(&c, "spool:\n  policy:\n", &err), -EINVAL);
    assert_starts_with(err.msg, "/x/agent.yaml:2:");
    assert_contains(err.msg,
                    "spool.policy: missing value (expected one of drop_oldest, stop_sampling)");
    assert_int_equal(choice_load(&c, "spool:\n  policy: [drop_oldest]\n", &err), -EINVAL);
    assert_string_equal(err.msg, "/x/agent.yaml:2:11: spool.policy: expected one of drop_oldest, "
                                 "stop_sampling, found a sequence");
    /* Every bad choice of a file at once, each on its line. */
    assert_int_equal(choice_load(&c, "spool:\n  policy: a\nodd: b\n", &err), -EINVAL);
    assert_int_equal(ww_cfg_err_count(&err), 2);
    assert_contains(err.msg, "/x/agent.yaml:2:11: spool.policy: \"a\" is not one of");
    assert_contains(err.msg, "\n/x/agent.yaml:3:6: odd: \"b\" is not one of null, two words, 1st, "
                             "plain-name.v2");
}

/* The environment and flags take the name like any row, and name themselves in errors. */
static void test_enum_from_environment_and_flags(void **state)
{
    choice_t c;
    ww_cfg_err_t err;
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_defaults(&s_choice_schema, &c, &err), 0);
    setenv("WWE_SPOOL_POLICY", "stop_sampling", 1);
    assert_int_equal(ww_cfg_apply_env(&s_choice_schema, &c, &err), 0);
    assert_int_equal(c.policy, 1);
    setenv("WWE_SPOOL_POLICY", "sometimes", 1);
    assert_int_equal(ww_cfg_apply_env(&s_choice_schema, &c, &err), -EINVAL);
    assert_string_equal(err.msg, "environment WWE_SPOOL_POLICY: spool.policy: \"sometimes\" is not "
                                 "one of drop_oldest, stop_sampling");
    assert_int_equal(c.policy, 1);
    unsetenv("WWE_SPOOL_POLICY");

    char *good[] = {(char *)"choice", (char *)"--spool-policy", (char *)"stop_sampling", NULL};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_choice_schema, &c, 3, good, &err), WW_CFG_RUN);
    assert_int_equal(c.policy, 1);
    char *bad[] = {(char *)"choice", (char *)"--spool-policy=nope", NULL};
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_parse_args(&s_choice_schema, &c, 2, bad, &err), -EINVAL);
    assert_string_equal(err.msg, "flag --spool-policy: spool.policy: \"nope\" is not one of "
                                 "drop_oldest, stop_sampling");
    assert_int_equal(ww_cfg_set(&s_choice_schema, &c, "odd", "plain-name.v2", "test", &err), 0);
    assert_int_equal(c.odd, 3);
}

/* --print-config writes the name (quoted when YAML would read it otherwise) and every
 * value loads back to the same index and prints the same. */
static void test_enum_print_loads_back(void **state)
{
    for (int p = 0; p < 2; p++) {
        for (int o = 0; o < 4; o++) {
            choice_t c = {.policy = p, .odd = o}, back;
            ww_cfg_err_t err;
            char *text = choice_print(&c);
            if (choice_load(&back, text, &err) != 0) {
                fail_msg("%s does not load back: %s", text, err.msg);
            }
            assert_int_equal(back.policy, p);
            assert_int_equal(back.odd, o);
            char *again = choice_print(&back);
            assert_string_equal(text, again);
            free(again);
            free(text);
        }
    }
    choice_t c = {.policy = 1, .odd = 0};
    char *text = choice_print(&c);
    assert_contains(text, "  policy: stop_sampling\n");
    assert_contains(text, "odd: \"null\"\n");
    free(text);
    c.odd = 1;
    text = choice_print(&c);
    assert_contains(text, "odd: \"two words\"\n");
    free(text);
    c.odd = 3;
    text = choice_print(&c);
    assert_contains(text, "odd: plain-name.v2\n");
    free(text);
    /* An index that is no name (a program's bug) prints as null, which is refused. */
    c.odd = 9;
    text = choice_print(&c);
    assert_contains(text, "odd: ~\n");
    choice_t back;
    ww_cfg_err_t err;
    assert_int_equal(choice_load(&back, text, &err), -EINVAL);
    free(text);
}

/* A row without names, or whose default is none of them, is a schema bug said as such. */
static void test_enum_schema_errors(void **state)
{
    const ww_cfg_opt_t rows[] = {
        WW_CFG_ENUM_ROW("e", s_no_names, NULL, offsetof(choice_t, policy), NULL, "no names"),
    };
    const ww_cfg_schema_t s = {.program = "bad", .opts = rows, .n_opts = 1};
    choice_t c;
    ww_cfg_err_t err;
    memset(&c, 0, sizeof c);
    assert_int_equal(ww_cfg_defaults(&s, &c, &err), -EINVAL);
    assert_contains(err.msg, "default: e: schema error: an enum row needs names");
    const ww_cfg_opt_t rows2[] = {
        WW_CFG_ENUM_ROW("e", s_policies, "sometimes", offsetof(choice_t, policy), NULL, "bad"),
    };
    const ww_cfg_schema_t s2 = {.program = "bad", .opts = rows2, .n_opts = 1};
    assert_int_equal(ww_cfg_defaults(&s2, &c, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "default: e: \"sometimes\" is not one of drop_oldest, stop_sampling");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults_applied),
    cmocka_unit_test(test_file_overrides_defaults),
    cmocka_unit_test(test_empty_file_is_all_defaults),
    cmocka_unit_test(test_env_overrides_file),
    cmocka_unit_test(test_flag_overrides_env_even_before_config),
    cmocka_unit_test(test_unknown_key_names_file_and_line),
    cmocka_unit_test(test_bad_int_names_position_and_key),
    cmocka_unit_test(test_range_errors),
    cmocka_unit_test(test_bad_bool_and_nonfinite_double),
    cmocka_unit_test(test_duration_parsing),
    cmocka_unit_test(test_strlist_from_yaml_and_text),
    cmocka_unit_test(test_table_from_yaml_and_flow_text),
    cmocka_unit_test(test_duplicate_key),
    cmocka_unit_test(test_yaml_syntax_error_has_line),
    cmocka_unit_test(test_missing_file_names_path),
    cmocka_unit_test(test_print_round_trips),
    cmocka_unit_test(test_print_config_flag),
    cmocka_unit_test(test_help_version_and_unknown_flag),
    cmocka_unit_test(test_set_twice_does_not_leak),
    cmocka_unit_test(test_hostile_input),
    cmocka_unit_test(test_sizes_and_ranges_read_as_humans_write_them),
    cmocka_unit_test(test_unknown_environment_variable_is_refused),
    cmocka_unit_test(test_origin_names_flag_environment_or_file_line),
    cmocka_unit_test(test_every_error_of_a_file_is_reported),
    cmocka_unit_test(test_locate_finds_line_and_column_of_a_key),
    cmocka_unit_test(test_enum_help_lists_names_and_default),
    cmocka_unit_test(test_enum_from_file_and_its_errors),
    cmocka_unit_test(test_enum_from_environment_and_flags),
    cmocka_unit_test(test_enum_print_loads_back),
    cmocka_unit_test(test_enum_schema_errors),
};
WW_TEST_MAIN(tests, NULL, NULL)
