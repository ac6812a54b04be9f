/* The request log end to end: waferwatch-sim (the simulated inference server, its own
 * process) -> Unix datagram socket -> waferwatch-agent (agent.source reqlog) -> CURVE ->
 * collector -> PostgreSQL. Every record the sender made lands in exactly one latency window,
 * none late; the readings become sample rows. */
#include "harness.h"
#include "ww_quant.h"
#include "ww_reqlog.h"
#include "ww_test.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static bool s_wait_socket(const char *path, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return true;
        }
        h_sleep_ms(50);
    }
    return false;
}

static void s_show(const char *path)
{
    char *text = h_read_file(path);
    fprintf(stderr, "---- %s ----\n%s\n", path, text ? text : "(missing)");
    free(text);
}

/* An agent recording node from the request log at sock: 200 ms ticks, 1 s windows. Returns
 * once it has bound the socket. */
static pid_t s_agent_start(const char *endpoint, const char *agent_id, const char *node,
                           const char *spool, const char *sock, const char *log)
{
    char *argv[] = {(char *)WW_AGENT_BIN, (char *)"--spool-dir",
                    (char *)spool,        (char *)"--collector",
                    (char *)endpoint,     (char *)"--agent-id",
                    (char *)agent_id,     (char *)"--node-id",
                    (char *)node,         (char *)"--interval",
                    (char *)"200ms",      (char *)"--latency-window",
                    (char *)"1s",         (char *)"--source",
                    (char *)"reqlog",     (char *)"--source-socket",
                    (char *)sock,         NULL};
    pid_t agent = h_spawn(argv, log);
    if (!s_wait_socket(sock, 10000)) {
        s_show(log);
        fail_msg("the agent did not bind %s", sock);
    }
    return agent;
}

static void test_sim_to_agent_to_postgres(void **state)
{
    h_db_t db;
    h_db_create(&db, "reqlog");
    h_secure(db.dir, "rl-agent", "rl-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    char spool[256], sock[256], agent_log[256], sim_log[256], second_log[256], check_log[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    snprintf(sock, sizeof sock, "%s/reqlog.sock", db.dir);
    snprintf(agent_log, sizeof agent_log, "%s/agent.log", db.dir);
    snprintf(sim_log, sizeof sim_log, "%s/sim.log", db.dir);
    snprintf(second_log, sizeof second_log, "%s/second.log", db.dir);
    snprintf(check_log, sizeof check_log, "%s/check.log", db.dir);

    pid_t agent = s_agent_start(endpoint, "rl-agent", "rl-node", spool, sock, agent_log);

    /* A second agent on the same socket is refused (exit 2) and leaves the first's alone;
     * --check-config does not bind it at all. */
    char spool2[256];
    snprintf(spool2, sizeof spool2, "%s/spool2", db.dir);
    char *second_argv[] = {(char *)WW_AGENT_BIN,
                           (char *)"--spool-dir",
                           spool2,
                           (char *)"--collector",
                           endpoint,
                           (char *)"--agent-id",
                           (char *)"rl-agent2",
                           (char *)"--source",
                           (char *)"reqlog",
                           (char *)"--source-socket",
                           sock,
                           NULL};
    assert_int_equal(h_wait(h_spawn(second_argv, second_log), 10000), 2);
    char *second = h_read_file(second_log);
    assert_non_null(second);
    assert_non_null(strstr(second, "another process is bound to it"));
    free(second);
    char *check_argv[] = {(char *)WW_AGENT_BIN,
                          (char *)"--spool-dir",
                          spool2,
                          (char *)"--collector",
                          endpoint,
                          (char *)"--source",
                          (char *)"reqlog",
                          (char *)"--source-socket",
                          sock,
                          (char *)"--check-config",
                          NULL};
    assert_int_equal(h_wait(h_spawn(check_argv, check_log), 10000), 0);
    assert_true(s_wait_socket(sock, 100));

    /* No sender yet: the agent has nothing to sample, and says so (once, below). */
    bool said = false;
    for (int waited = 0; !said && waited < 5000; waited += 50) {
        char *text = h_read_file(agent_log);
        said = text && strstr(text, "no reading newer than source.max_age");
        free(text);
        h_sleep_ms(50);
    }
    assert_true(said);

    /* The sender: 1,000 requests/s for 3 s, readings every 200 ms. */
    setenv("WW_AGENT_SIM_ARRIVAL_RATE", "1000", 1);
    setenv("WW_AGENT_SIM_DIURNAL_AMPLITUDE", "0", 1);
    setenv("WW_AGENT_SIM_BURST_PROB", "0", 1);
    char *sim_argv[] = {(char *)WW_SIM_BIN,
                        (char *)"--node-id",
                        (char *)"rl-node",
                        (char *)"--interval",
                        (char *)"200ms",
                        (char *)"--run-for",
                        (char *)"3s",
                        (char *)"--source-socket",
                        sock,
                        NULL};
    pid_t sim = h_spawn(sim_argv, sim_log);
    unsetenv("WW_AGENT_SIM_ARRIVAL_RATE");
    unsetenv("WW_AGENT_SIM_DIURNAL_AMPLITUDE");
    unsetenv("WW_AGENT_SIM_BURST_PROB");
    int rc = h_wait(sim, 20000);
    if (rc != 0) {
        s_show(sim_log);
        fail_msg("waferwatch-sim exited %d", rc);
    }
    long long made = h_log_value(sim_log, "stats:", "records");
    long long sent = h_log_value(sim_log, "stats:", "records_sent");
    assert_true(made > 1500);
    assert_int_equal(sent, made);

    /* Let the agent take the last datagrams, then stop it: it sends its open windows. */
    h_sleep_ms(1500);
    rc = h_stop(agent, 20000);
    if (rc != 0) {
        s_show(agent_log);
        fail_msg("the agent exited %d", rc);
    }
    assert_int_equal(h_log_value(agent_log, "stats:", "requests"), made);
    assert_int_equal(h_log_value(agent_log, "stats:", "late_requests"), 0);
    assert_int_equal(h_log_value(agent_log, "stats:", "unacked"), 0);
    struct stat st;
    assert_int_equal(stat(sock, &st), -1); /* the agent removed its socket */

    /* Every record in exactly one window, under the sender's model names. */
    long long in_windows =
        h_query_ll(&db, "SELECT coalesce(sum(requests_ok + requests_error + requests_timeout + "
                        "requests_rejected), 0) FROM latency_windows WHERE node_id = 'rl-node'");
    assert_int_equal(in_windows, made);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT model) FROM latency_windows "
                                     "WHERE node_id = 'rl-node' AND model NOT IN "
                                     "('llama3.1-8b', 'llama3.1-70b', 'llama3.1-405b')"),
                     0);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT model) FROM latency_windows "
                                     "WHERE node_id = 'rl-node'"),
                     3);
    /* Windows are whole seconds: one row per model and window start. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM (SELECT time, model, count(*) AS n "
                                     "FROM latency_windows WHERE node_id = 'rl-node' "
                                     "GROUP BY 1, 2 HAVING count(*) > 1) d"),
                     0);

    /* The readings: a sample row per tick while they came, with the sender's physics. */
    long long rows = h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE node_id = 'rl-node'");
    assert_true(rows >= 10);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE node_id = "
                                     "'rl-node' AND NOT (power_w BETWEEN 9200 AND 23000 AND "
                                     "inlet_c BETWEEN 24 AND 26 AND flow_lpm > 30)"),
                     0);
    /* requests_completed counts what the agent took between its samples: never more than
     * was made, and most of it (the records after the last sample have no row). */
    long long completed = h_query_ll(
        &db, "SELECT sum(requests_completed) FROM node_samples WHERE node_id = 'rl-node'");
    assert_true(completed <= made && completed >= made * 7 / 10);
    /* Before the sender's first reading the agent had nothing to sample: it said so once,
     * then that sampling resumed. */
    char *alog = h_read_file(agent_log);
    assert_non_null(alog);
    const char *p = strstr(alog, "no reading newer than source.max_age");
    assert_non_null(p);
    assert_null(strstr(p + 1, "no reading newer than source.max_age"));
    assert_non_null(strstr(p, "sampling again"));
    free(alog);

    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static void s_send(int fd, const char *path, const void *buf, size_t len)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)len);
}

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The readings a producer sends, with more digits than any sensor resolves: the first half of
 * the run with humidity, the second without (NaN: not measured). */
static const ww_reading_t s_sent[2] = {
    {.power_w = 15000.37f,
     .inlet_c = 25.04f,
     .outlet_c = 30.06f,
     .flow_lpm = 40.049f,
     .wafer_hotspot_c = 50.13f,
     .utilization = 0.50049f,
     .tokens_per_s = 1234.56f,
     .requests_queued = 5,
     .requests_in_flight = 2,
     .throttled = false,
     .throttle_factor = 0.99951f,
     .humidity_pct = 41.26f},
    {.power_w = 9876.54f,
     .inlet_c = 24.96f,
     .outlet_c = 31.47f,
     .flow_lpm = 39.951f,
     .wafer_hotspot_c = 61.08f,
     .utilization = 0.25049f,
     .tokens_per_s = 654.32f,
     .requests_queued = 0,
     .requests_in_flight = 1,
     .throttled = true,
     .throttle_factor = 0.75049f,
     .humidity_pct = NAN},
};

/* Whether row `row` of r (time, then the columns of ww_fields.h in their order) holds
 * exactly what the agent sends for *rd: each F32 reading quantized to its sensor resolution
 * (ww_quant_reading: the same step, so the comparison is exact), a NaN one NULL, the counters
 * and flag as sent but requests_completed (the source's own count). */
#define S_ROW_F32(name, v, isnull, txt) (isnan(v) ? isnull : !isnull && strtof(txt, NULL) == v)
#define S_ROW_U32(name, v, isnull, txt)                                                            \
    (!isnull &&                                                                                    \
     (strcmp(#name, "requests_completed") == 0 || strtoll(txt, NULL, 10) == (long long)v))
#define S_ROW_BOOL(name, v, isnull, txt) (!isnull && strcmp(txt, v ? "t" : "f") == 0)
#define S_ROW_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                        \
    ok = ok && WW_FIELD_CAT(S_ROW_, kind)(name, want.name, PQgetisnull(r, row, col),               \
                                          PQgetvalue(r, row, col));                                \
    col++;

static bool s_row_is(PGresult *r, int row, const ww_reading_t *rd)
{
    ww_reading_t want = *rd;
    ww_quant_reading(&want);
    bool ok = true;
    int col = 1;
    WW_READING_FIELDS(S_ROW_)
    return ok;
}

/* A sender that batches for 300 ms: records reach the agent up to 300 ms after they finished,
 * so after the tick that ends their window. They still land in their own window, once: none
 * late, one row per window and model. Its readings are stored as the agent sends them: on
 * their sensor's grid, humidity NULL when not measured. */
static void test_records_behind_the_tick_keep_their_window(void **state)
{
    h_db_t db;
    h_db_create(&db, "reqlag");
    h_secure(db.dir, "rl-lag", "rl-lag-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    char spool[256], sock[256], agent_log[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    snprintf(sock, sizeof sock, "%s/reqlog.sock", db.dir);
    snprintf(agent_log, sizeof agent_log, "%s/agent.log", db.dir);
    pid_t agent = s_agent_start(endpoint, "rl-lag", "rl-lag-node", spool, sock, agent_log);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    const char *models[] = {"m-lag"};
    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    long long made = 0;
    int64_t t_end = s_now_ns() + 3500000000LL;
    int64_t t_half = t_end - 1750000000LL;
    /* Every 50 ms: a reading, and the records (one per ms) that finished by 300 ms ago. */
    int64_t next_done = 0;
    for (int64_t now = s_now_ns(); now < t_end; now = s_now_ns()) {
        uint8_t rd_buf[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES];
        const ww_reading_t *rd = &s_sent[now < t_half ? 0 : 1];
        s_send(fd, sock, rd_buf, ww_reqlog_reading(rd_buf, now, rd));
        assert_int_equal(ww_reqlog_begin(b, models, 1), 0);
        if (next_done == 0) {
            next_done = (now - 300000000) / 1000000 * 1000000;
        }
        for (; next_done <= now - 300000000; next_done += 1000000) {
            int64_t done = next_done;
            ww_request_t r = {.model = 0,
                              .status = WW_REQ_OK,
                              .arrival_ns = done - 90000000,
                              .start_ns = done - 80000000,
                              .first_token_ns = done - 50000000,
                              .done_ns = done,
                              .prompt_tokens = 100,
                              .output_tokens = 20};
            if (ww_reqlog_add(b, &r) == 0) {
                s_send(fd, sock, b->buf, b->len);
                assert_int_equal(ww_reqlog_begin(b, models, 1), 0);
                assert_int_equal(ww_reqlog_add(b, &r), 1);
            }
            made++;
        }
        s_send(fd, sock, b->buf, b->len);
        h_sleep_ms(50);
    }
    close(fd);
    free(b);
    h_sleep_ms(1500);
    int rc = h_stop(agent, 20000);
    if (rc != 0) {
        s_show(agent_log);
        fail_msg("the agent exited %d", rc);
    }
    assert_int_equal(h_log_value(agent_log, "stats:", "requests"), made);
    assert_int_equal(h_log_value(agent_log, "stats:", "late_requests"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows "
                                     "WHERE node_id = 'rl-lag-node' AND model = 'm-lag'"),
                     made);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM (SELECT time FROM latency_windows "
                                     "WHERE node_id = 'rl-lag-node' GROUP BY time "
                                     "HAVING count(*) > 1) d"),
                     0);
    /* Each full window holds exactly its second of records: 1,000 (one per ms). */
    assert_true(h_query_ll(&db, "SELECT count(*) FROM latency_windows WHERE node_id = "
                                "'rl-lag-node' AND requests_ok = 1000") >= 2);
    /* Every sample row is one of the two readings exactly as the agent sends it (quantized),
     * and both were stored (first those with humidity, then those without). */
    PGresult *r = h_query(&db, "SELECT time" WW_READING_COLUMNS " FROM node_samples"
                               " WHERE node_id = 'rl-lag-node' ORDER BY time");
    int rows = PQntuples(r), seen[2] = {0, 0};
    int power = PQfnumber(r, "power_w"), rh = PQfnumber(r, "humidity_pct");
    for (int row = 0; row < rows; row++) {
        int which = s_row_is(r, row, &s_sent[0]) ? 0 : s_row_is(r, row, &s_sent[1]) ? 1 : -1;
        if (which < 0 || (which == 0 && seen[1] > 0)) {
            fail_msg("row %d of %d (%s: power_w %s, humidity_pct %s) is not what the agent "
                     "sends for the reading of its time",
                     row, rows, PQgetvalue(r, row, 0), PQgetvalue(r, row, power),
                     PQgetisnull(r, row, rh) ? "NULL" : PQgetvalue(r, row, rh));
        }
        seen[which]++;
    }
    PQclear(r);
    assert_true(seen[0] >= 2 && seen[1] >= 2);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sim_to_agent_to_postgres),
    cmocka_unit_test(test_records_behind_the_tick_keep_their_window),
};
WW_TEST_MAIN(tests, NULL, NULL)
