/* waferwatch-sim, the simulated system run as its own process, against a real request-log
 * socket: what it sends (every datagram and record checked with the codec), what the
 * agent's own source (ww_reqlog_source) receives when it binds late (the backlog), the
 * backlog's bound, and configuration errors. No PostgreSQL, no collector. */
#include "harness.h"
#include "ww_reqlog_source.h"
#include "ww_sim_defaults.h"
#include "ww_test.h"
#include "ww_time.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The simulator's defaults the checks compare with (ww_agent_conf.c). */
#define S_IDLE_W 9200.0
#define S_MAX_W 23000.0

/* Load for the runs: far above what 64 concurrent requests serve, so both completions and
 * rejections show; no diurnal swing or bursts, so the rate is the same whenever it runs. */
static const char *const s_load_env[] = {"WW_AGENT_SIM_ARRIVAL_RATE=2000",
                                         "WW_AGENT_SIM_DIURNAL_AMPLITUDE=0",
                                         "WW_AGENT_SIM_BURST_PROB=0", NULL};

typedef struct {
    char dir[64];
    char sock[128];
    char log[128];
    pid_t pid; /* the running waferwatch-sim, or 0 */
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/ww-simproc-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->sock, sizeof f->sock, "%s/reqlog.sock", f->dir);
    snprintf(f->log, sizeof f->log, "%s/sim.log", f->dir);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    char path[192];
    const char *files[] = {"reqlog.sock", "sim.log", "sim.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Starts waferwatch-sim with argv (after the program) and env ("K=V", NULL-terminated,
 * may be NULL) added, stdout and stderr to f->log. */
static void s_spawn(s_fix_t *f, const char *const *args, const char *const *env)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)WW_SIM_BIN;
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(n < 31);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (size_t i = 0; env && env[i]; i++) {
            char kv[256];
            snprintf(kv, sizeof kv, "%s", env[i]);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            }
        }
        execv(argv[0], argv);
        _exit(127);
    }
    f->pid = pid;
}

/* Exit code of the child if it has exited (128+signal when killed), else -1. */
static int s_exited(s_fix_t *f, int timeout_ms)
{
    int64_t end = ww_time_mono_ns() + (int64_t)timeout_ms * WW_NS_PER_MS;
    for (;;) {
        int status;
        pid_t r = waitpid(f->pid, &status, WNOHANG);
        if (r == f->pid) {
            f->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (ww_time_mono_ns() >= end) {
            return -1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Value of " key=" in the last line of the log that contains marker; fails when absent. */
static long long s_log_value(const char *log, const char *marker, const char *key)
{
    const char *line = NULL;
    for (const char *p = strstr(log, marker); p; p = strstr(p + 1, marker)) {
        line = p;
    }
    if (!line) {
        fail_msg("no line with \"%s\" in the log:\n%s", marker, log);
    }
    while (line > log && line[-1] != '\n') {
        line--;
    }
    const char *eol = strchr(line, '\n');
    char want[64];
    snprintf(want, sizeof want, " %s=", key);
    const char *v = strstr(line, want);
    if (!v || (eol && v > eol)) {
        fail_msg("no %s= on the line \"%.*s\"", key, eol ? (int)(eol - line) : 200, line);
    }
    return strtoll(v + strlen(want), NULL, 10);
}

/* The simulator's default model names, in their order. */
static size_t s_default_names(char names[][WW_MODEL_NAME_MAX])
{
    ww_sim_model_t m[WW_SIM_MAX_MODELS];
    size_t n = ww_sim_default_models(m, WW_SIM_MAX_MODELS);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], WW_MODEL_NAME_MAX, "%s", m[i].name);
        free(m[i].name);
    }
    return n;
}

/* ---- 1: what goes on the wire ---- */

typedef struct {
    char names[WW_SIM_MAX_MODELS][WW_MODEL_NAME_MAX];
    size_t n_names;
    uint64_t datagrams, bad_datagrams, bad_records, records, since_reading;
    uint64_t per_model[WW_SIM_MAX_MODELS], per_status[4];
    int64_t last_done, first_reading_ns, last_reading_ns, first_done;
    unsigned readings;
} s_wire_t;

/* Checks one datagram as the agent would take it, strictly. */
static void s_wire_take(s_wire_t *w, const uint8_t *buf, size_t len)
{
    ww_reqlog_msg_t m;
    const char *why = NULL;
    w->datagrams++;
    if (ww_reqlog_parse(buf, len, &m, &why) < 0) {
        print_error("bad datagram of %zu bytes: %s\n", len, why);
        w->bad_datagrams++;
        return;
    }
    if (m.type == WW_REQLOG_READING) {
        const ww_reading_t *r = &m.reading;
        /* On the agent's schedule: wall-clock multiples of agent.interval (1 s), each one. */
        assert_int_equal(m.time_ns % WW_NS_PER_S, 0);
        if (w->readings == 0) {
            w->first_reading_ns = m.time_ns;
            assert_int_equal(w->records, 0); /* nothing finishes before the first tick */
        } else {
            assert_int_equal(m.time_ns, w->last_reading_ns + WW_NS_PER_S);
        }
        w->last_reading_ns = m.time_ns;
        w->readings++;
        if (r->power_w < S_IDLE_W - 1 || r->power_w > S_MAX_W + 1) {
            fail_msg("reading %u: power %.1f W is outside idle..max", w->readings,
                     (double)r->power_w);
        }
        assert_true(r->utilization >= 0.0f && r->utilization <= 1.0f);
        assert_true(r->flow_lpm > 39.0f && r->flow_lpm < 41.0f);
        assert_true(r->inlet_c > 24.0f && r->inlet_c < 26.0f);
        assert_true(r->outlet_c > r->inlet_c - 1.0f);
        assert_true(r->throttle_factor > 0.0f && r->throttle_factor <= 1.0f);
        /* The interval's completions are exactly the records sent since the last reading. */
        if ((uint64_t)r->requests_completed != w->since_reading) {
            fail_msg("reading %u says %u completed, %llu records came since the previous one",
                     w->readings, r->requests_completed, (unsigned long long)w->since_reading);
        }
        if (w->readings > 1) {
            assert_true(r->tokens_per_s > 0.0f); /* it is serving */
            assert_true(r->requests_in_flight > 0);
        }
        w->since_reading = 0;
        return;
    }
    /* REQUESTS: the model table is the simulator's, in order. */
    assert_int_equal(m.n_models, w->n_names);
    for (unsigned i = 0; i < m.n_models; i++) {
        if (m.model_len[i] != strlen(w->names[i]) ||
            memcmp(m.model[i], w->names[i], m.model_len[i]) != 0) {
            fail_msg("model %u is \"%.*s\", expected %s", i, (int)m.model_len[i], m.model[i],
                     w->names[i]);
        }
    }
    assert_true(m.count > 0); /* no empty datagrams */
    for (uint32_t k = 0; k < m.count; k++) {
        ww_request_t r;
        if (ww_reqlog_record(&m, k, &r, &why) < 0) {
            print_error("bad record: %s\n", why);
            w->bad_records++;
            continue;
        }
        if (r.done_ns < w->last_done) {
            fail_msg("record %llu finished at %lld, before the previous one (%lld)",
                     (unsigned long long)w->records, (long long)r.done_ns, (long long)w->last_done);
        }
        assert_true(w->readings > 0 && r.done_ns > w->first_reading_ns);
        if (w->records == 0) {
            w->first_done = r.done_ns;
        }
        w->last_done = r.done_ns;
        w->per_model[r.model]++;
        w->per_status[r.status]++;
        w->records++;
        w->since_reading++;
    }
}

static void s_wire_drain(s_wire_t *w, int fd, uint8_t *buf)
{
    for (;;) {
        ssize_t n = recv(fd, buf, WW_REQLOG_MAX_DGRAM + 1, MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            if (errno != EINTR) {
                return;
            }
            continue;
        }
        s_wire_take(w, buf, (size_t)n);
    }
}

static int s_bind(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void test_sends_records_and_readings(void **state)
{
    s_fix_t *f = *state;
    static s_wire_t w;
    memset(&w, 0, sizeof w);
    w.n_names = s_default_names(w.names);
    assert_int_equal(w.n_names, 3);
    int fd = s_bind(f->sock);
    const char *args[] = {"--source-socket", f->sock,     "--run-for", "3s", "--interval", "1s",
                          "--node-id",       "simproc-1", NULL};
    s_spawn(f, args, s_load_env);
    uint8_t *buf = malloc(WW_REQLOG_MAX_DGRAM + 1);
    assert_non_null(buf);
    int rc = -1;
    int64_t end = ww_time_mono_ns() + 10 * WW_NS_PER_S;
    while (rc < 0 && ww_time_mono_ns() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 50);
        s_wire_drain(&w, fd, buf);
        rc = s_exited(f, 0);
    }
    s_wire_drain(&w, fd, buf);
    free(buf);
    close(fd);
    char *log = h_read_file(f->log);
    assert_non_null(log);
    if (rc != 0) {
        fail_msg("waferwatch-sim ended with %d (-1: still running after 10 s):\n%s", rc, log);
    }
    print_message("%llu datagrams, %llu records (%llu ok, %llu rejected), %u readings\n",
                  (unsigned long long)w.datagrams, (unsigned long long)w.records,
                  (unsigned long long)w.per_status[WW_REQ_OK],
                  (unsigned long long)w.per_status[WW_REQ_REJECTED], w.readings);
    assert_int_equal(w.bad_datagrams, 0);
    assert_int_equal(w.bad_records, 0);
    /* run_for 3 s at 1 s: ticks at +0, +1 and +2 s; steps up to +2.9 s. */
    assert_int_equal(w.readings, 3);
    /* ~2000 arrivals/s for 2.9 s, less those still queued or running at the end. */
    if (w.records < 4000 || w.records > 7000) {
        fail_msg("%llu records in ~2.9 s at 2000 requests/s", (unsigned long long)w.records);
    }
    assert_true(w.first_done - w.first_reading_ns < 300 * WW_NS_PER_MS);
    assert_true(w.last_done < w.first_reading_ns + 3 * WW_NS_PER_S);
    /* The model mix follows the weights 0.5, 0.3, 0.2. */
    const double weight[] = {0.5, 0.3, 0.2};
    for (int i = 0; i < 3; i++) {
        double share = (double)w.per_model[i] / (double)w.records;
        if (share < weight[i] - 0.06 || share > weight[i] + 0.06) {
            fail_msg("model %s: share %.3f, weight %.1f", w.names[i], share, weight[i]);
        }
    }
    assert_true(w.per_status[WW_REQ_OK] > 100);
    assert_true(w.per_status[WW_REQ_REJECTED] > 100); /* overloaded on purpose */
    /* Its own account agrees with what arrived: nothing dropped, nothing left behind. */
    assert_int_equal(s_log_value(log, "stats:", "records"), (long long)w.records);
    assert_int_equal(s_log_value(log, "stats:", "records_sent"), (long long)w.records);
    assert_int_equal(s_log_value(log, "stats:", "readings_sent"), 3);
    assert_int_equal(s_log_value(log, "stats:", "datagrams_sent"), (long long)w.datagrams);
    assert_int_equal(s_log_value(log, "stats:", "dropped_datagrams"), 0);
    assert_int_equal(s_log_value(log, "stats:", "backlog"), 0);
    assert_null(strstr(log, "cannot send"));
    free(log);
}

/* ---- 2: the agent binds late: the backlog reaches the real source ---- */

typedef struct {
    uint64_t records, disorder, bad_model;
    int64_t first_done, last_done;
} s_got_t;

static void s_got_sink(void *arg, const ww_request_t *r)
{
    s_got_t *g = arg;
    if (g->records == 0) {
        g->first_done = r->done_ns;
    } else if (r->done_ns < g->last_done) {
        g->disorder++;
    }
    if (r->model >= 3) {
        g->bad_model++;
    }
    g->last_done = r->done_ns;
    g->records++;
}

/* Lets the source take what arrives for ms milliseconds (or until the child exits when
 * until_exit; returns its exit code then, else -1). */
static int s_pump(void *src, s_fix_t *f, int ms, bool until_exit)
{
    int rc = -1;
    int64_t end = ww_time_mono_ns() + (int64_t)ms * WW_NS_PER_MS;
    while (ww_time_mono_ns() < end) {
        struct pollfd p = {.fd = ww_reqlog_source.fd(src), .events = POLLIN};
        poll(&p, 1, 20);
        assert_int_equal(ww_reqlog_source.ready(src), 0);
        if (until_exit && (rc = s_exited(f, 0)) >= 0) {
            break;
        }
    }
    assert_int_equal(ww_reqlog_source.ready(src), 0);
    return rc;
}

static void test_backlog_reaches_late_agent(void **state)
{
    s_fix_t *f = *state;
    char names[WW_SIM_MAX_MODELS][WW_MODEL_NAME_MAX];
    assert_int_equal(s_default_names(names), 3);
    const char *args[] = {"--source-socket", f->sock, "--interval", "1s", NULL};
    s_spawn(f, args, s_load_env);
    /* No agent yet: from its first tick (up to 1 s after the start) everything is held. Bind
     * 1.5 s after that, when 15 steps of records wait. */
    int64_t end = ww_time_mono_ns() + 5 * WW_NS_PER_S;
    char *log = NULL;
    while (!log || !strstr(log, "cannot send to the agent")) {
        free(log);
        if (ww_time_mono_ns() > end) {
            fail_msg("waferwatch-sim did not report the missing agent:\n%s", h_read_file(f->log));
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        log = h_read_file(f->log);
    }
    free(log);
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);

    ww_reqlog_conf_t rc_conf = {.path = f->sock, .mode = 0600, .max_age_ns = 5 * WW_NS_PER_S};
    void *src = NULL;
    assert_int_equal(ww_reqlog_source.open(&rc_conf, 0, ww_time_now_ns(), &src), 0);
    static s_got_t g;
    memset(&g, 0, sizeof g);
    ww_reqlog_source.set_sink(src, s_got_sink, &g);
    s_pump(src, f, 2000, false);
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    int rc = s_pump(src, f, 5000, true);
    ww_reading_t r;
    int sampled = ww_reqlog_source.sample(src, ww_time_now_ns(), &r);
    const char *model[3];
    for (unsigned i = 0; i < 3; i++) {
        model[i] = ww_reqlog_source.model_name(src, i);
    }
    bool more = ww_reqlog_source.model_name(src, 3) != NULL;
    for (unsigned i = 0; i < 3; i++) {
        assert_non_null(model[i]);
        assert_string_equal(model[i], names[i]);
    }
    ww_reqlog_source.close(&src);
    log = h_read_file(f->log);
    assert_non_null(log);
    if (rc != 0) {
        fail_msg("waferwatch-sim ended with %d after SIGTERM (-1: still running):\n%s", rc, log);
    }
    print_message("%llu records, first done %.3f s after the first tick\n",
                  (unsigned long long)g.records,
                  (double)(g.first_done - s_log_value(log, "first_tick=", "first_tick")) / 1e9);
    assert_false(more);
    assert_int_equal(sampled, 0); /* a reading arrived and is fresh */
    assert_true(r.power_w >= S_IDLE_W - 1 && r.power_w <= S_MAX_W + 1);
    assert_int_equal(g.disorder, 0);
    assert_int_equal(g.bad_model, 0);
    /* What finished before the agent was there arrived: the first records are from the
     * producer's first steps. */
    long long first_tick = s_log_value(log, "first_tick=", "first_tick");
    assert_true(first_tick > 0);
    assert_true(g.records > 0);
    if (g.first_done - first_tick > 500 * WW_NS_PER_MS) {
        fail_msg("the earliest record finished %.3f s after the producer's first tick",
                 (double)(g.first_done - first_tick) / 1e9);
    }
    /* And nothing was lost: every record made was received. */
    assert_int_equal(s_log_value(log, "stats:", "records"), (long long)g.records);
    assert_int_equal(s_log_value(log, "stats:", "dropped_records"), 0);
    assert_int_equal(s_log_value(log, "stats:", "backlog"), 0);
    assert_true(g.records > 2000 * 3); /* ~3.5 s at 2000/s, less what is running */
    /* The outage was logged once, and its end. */
    assert_non_null(strstr(log, "cannot send to the agent"));
    assert_non_null(strstr(log, "no socket at that path"));
    assert_non_null(strstr(log, "is back after"));
    assert_non_null(strstr(log, "stopping (Terminated)"));
    free(log);
}

/* ---- 3: the backlog is bounded: the oldest go, counted ---- */

static void test_backlog_drops_oldest_when_full(void **state)
{
    s_fix_t *f = *state;
    /* 100,000 requests/s fill ~30 datagrams a step: past 1024 in ~3.5 s. */
    const char *env[] = {"WW_AGENT_SIM_ARRIVAL_RATE=100000", "WW_AGENT_SIM_DIURNAL_AMPLITUDE=0",
                         "WW_AGENT_SIM_BURST_PROB=0", NULL};
    const char *args[] = {"--source-socket", f->sock, "--run-for", "5s", "--interval", "1s", NULL};
    s_spawn(f, args, env);
    int rc = s_exited(f, 20000);
    char *log = h_read_file(f->log);
    assert_non_null(log);
    if (rc != 0) {
        fail_msg("waferwatch-sim ended with %d:\n%s", rc, log);
    }
    long long made = s_log_value(log, "stats:", "records");
    long long dropped = s_log_value(log, "stats:", "dropped_records");
    long long held = s_log_value(log, "stats:", "backlog_records");
    print_message("%lld records made, %lld dropped, %lld held\n", made, dropped, held);
    assert_int_equal(s_log_value(log, "stats:", "backlog"), 1024);
    assert_int_equal(s_log_value(log, "stats:", "datagrams_sent"), 0);
    assert_true(s_log_value(log, "stats:", "dropped_datagrams") > 0);
    assert_true(dropped > 0);
    assert_true(made > 300000);
    assert_int_equal(made, dropped + held); /* every record accounted for */
    assert_non_null(strstr(log, "backlog full (1024 datagrams)"));
    /* Logged once per condition, not once per datagram. */
    const char *p = strstr(log, "backlog full");
    assert_null(strstr(p + 1, "backlog full"));
    p = strstr(log, "cannot send to the agent");
    assert_non_null(p);
    assert_null(strstr(p + 1, "cannot send to the agent"));
    free(log);
}

/* ---- 4: configuration ---- */

static void s_expect(s_fix_t *f, const char *const *args, const char *const *env, int want_rc,
                     const char *want_text)
{
    s_spawn(f, args, env);
    int rc = s_exited(f, 10000);
    char *log = h_read_file(f->log);
    assert_non_null(log);
    if (rc != want_rc || !strstr(log, want_text)) {
        fail_msg("%s %s: exit %d (want %d), output (want \"%s\"):\n%s", args[0],
                 args[1] ? args[1] : "", rc, want_rc, want_text, log);
    }
    free(log);
}

static void test_config_errors(void **state)
{
    s_fix_t *f = *state;
    const char *nodes[] = {"--sim-nodes", "2", "--source-socket", f->sock, NULL};
    s_expect(f, nodes, NULL, 2, "sim.nodes");

    const char *check[] = {"--check-config", "--source-socket", f->sock, NULL};
    const char *spaced[] = {"WW_AGENT_SIM_MODELS=[{name: llama3.1-8b}, {name: \"big model\"}]",
                            NULL};
    s_expect(f, check, spaced, 2, "sim.models[1].name: \"big model\"");

    char yaml[160];
    snprintf(yaml, sizeof yaml, "%s/sim.yaml", f->dir);
    FILE *fp = fopen(yaml, "w");
    assert_non_null(fp);
    fprintf(fp,
            "agent:\n  source: reqlog\nsource:\n  socket: %s\nsim:\n  models:\n"
            "    - {name: \"tab\\tmodel\"}\n",
            f->sock);
    fclose(fp);
    const char *file[] = {"--config", yaml, "--check-config", NULL};
    s_expect(f, file, NULL, 2, "sim.models[0].name");

    /* The same file with good names passes, and the check says what it would do. */
    fp = fopen(yaml, "w");
    assert_non_null(fp);
    fprintf(fp, "agent:\n  source: reqlog\n  interval: 500ms\nsource:\n  socket: %s\n", f->sock);
    fclose(fp);
    char want[256];
    snprintf(want, sizeof want,
             "configuration ok: node n7, 3 model(s), 30 requests/s, reading "
             "every 500 ms, sending to %s",
             f->sock);
    const char *good[] = {"--config", yaml, "--check-config", "--node-id", "n7", NULL};
    s_expect(f, good, NULL, 0, want);
    /* A check binds nothing and sends nothing. */
    assert_int_equal(access(f->sock, F_OK), -1);

    const char *empty[] = {"--check-config", "--source-socket", "", NULL};
    s_expect(f, empty, NULL, 2, "source.socket");
    const char *level[] = {"--check-config", "--log-level", "loud", NULL};
    s_expect(f, level, NULL, 2, "agent.log_level");
    const char *version[] = {"--version", NULL};
    s_expect(f, version, NULL, 0, "waferwatch-sim ");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sends_records_and_readings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backlog_reaches_late_agent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backlog_drops_oldest_when_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, s_setup, s_teardown),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
