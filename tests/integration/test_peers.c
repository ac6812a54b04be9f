/* What a real collector tells about peers it cannot or does not yet serve (issue 14):
 * handshakes that fail are counted on /metrics by reason and logged with the peer's
 * address; a batch held while PostgreSQL is down is answered Pending (not silence), its
 * resend is answered Pending and not queued twice, and the Ack comes once it is
 * committed. Real CURVE handshakes, raw DEALER peers, real collector processes. */
#include "harness.h"
#include "harness_http.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

static void s_keygen(const char *dir, const char *name)
{
    char prefix[300], log[300];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, name);
    snprintf(log, sizeof log, "%s/keygen-%s.log", dir, name);
    char *argv[] = {(char *)WW_CLI_BIN, (char *)"keygen", prefix, NULL};
    assert_int_equal(h_wait(h_spawn(argv, log), 10000), 0);
}

/* Waits up to 30 s for the collector's metrics port in its log. */
static int s_metrics_port(const char *log)
{
    for (int i = 0; i < 1500; i++) {
        long long port = h_log_value(log, "metrics: listening", "port");
        if (port > 0) {
            return (int)port;
        }
        h_sleep_ms(20);
    }
    fail_msg("%s: no \"metrics: listening\" within 30 s", log);
    return -1;
}

/* Waits up to timeout_ms for a series to reach at least want; returns the last value.
 * Fails the test showing the log when it does not. */
static double s_metric_until(int port, const char *series, double want, int timeout_ms,
                             const char *log)
{
    double v = -1;
    for (int t = 0; t < timeout_ms; t += 100) {
        if ((v = h_metrics_get(port, series)) >= want) {
            return v;
        }
        h_sleep_ms(100);
    }
    char *text = h_read_file(log);
    size_t len = text ? strlen(text) : 0;
    fail_msg("%s is %.0f after %d ms, not %.0f; log's end:\n%s", series, v, timeout_ms, want,
             text ? text + (len > 1500 ? len - 1500 : 0) : "");
    return v;
}

/* Waits up to timeout_ms for a log line containing all of a, b (b may be NULL). */
static bool s_log_has_once(const char *log, const char *a, const char *b, int timeout_ms)
{
    for (int t = 0; t <= timeout_ms; t += 100) {
        char *text = h_read_file(log);
        bool found = false;
        for (char *line = text; line && *line && !found;) {
            char *end = strchr(line, '\n');
            if (end) {
                *end = '\0';
            }
            found = strstr(line, a) && (!b || strstr(line, b));
            line = end ? end + 1 : NULL;
        }
        free(text);
        if (found) {
            return true;
        }
        h_sleep_ms(100);
    }
    return false;
}

/* The same, failing the test with the log when there is no such line. */
static bool s_log_has(const char *log, const char *a, const char *b, int timeout_ms)
{
    if (!s_log_has_once(log, a, b, timeout_ms)) {
        char *text = h_read_file(log);
        fail_msg("no line with \"%s\" and \"%s\" in %s:\n%s", a, b ? b : "", log, text ? text : "");
    }
    return true;
}

#define S_HS "waferwatch_collector_handshake_failures_total"

/* Connects to a tcp:// endpoint by hand, waits delay_ms, sends a ZMTP 3.0 greeting with
 * mechanism NULL, and reads until the server hangs up (at most 5 s). Copies the peer's
 * own "127.0.0.1:PORT" into from. */
static void s_zmtp_null_peer(const char *endpoint, int delay_ms, char *from, size_t cap)
{
    const char *colon = strrchr(endpoint, ':');
    assert_non_null(colon);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    snprintf(from, cap, "handshake failed from 127.0.0.1:%u:", (unsigned)ntohs(me.sin_port));
    h_sleep_ms(delay_ms);
    uint8_t greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    assert_int_equal(write(fd, greeting, sizeof greeting), (ssize_t)sizeof greeting);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t sink[256];
    while (read(fd, sink, sizeof sink) > 0) {
    }
    close(fd);
}

static void test_failed_handshakes_are_counted_and_logged(void **state)
{
    h_db_t db;
    h_db_create(&db, "hshake");
    h_secure(db.dir, "good-agent", "good-node-*");
    s_keygen(db.dir, "fake-collector");
    s_keygen(db.dir, "stranger");
    char endpoint[256], log[300];
    setenv("WW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:0", 1);
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_METRICS_LISTEN");
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    int port = s_metrics_port(log);
    assert_true(h_metrics_get(port, S_HS "{reason=\"protocol\"}") == 0);
    assert_true(h_metrics_get(port, S_HS "{reason=\"auth\"}") == 0);

    /* A plain ZeroMQ peer (ZMTP 3.0, mechanism NULL) by hand, slow enough that its address
     * is still there to read: mechanism mismatch, logged with its address and port. */
    char from[64];
    s_zmtp_null_peer(endpoint, 300, from, sizeof from);
    assert_true(s_metric_until(port, S_HS "{reason=\"protocol\"}", 1, 10000, log) >= 1);
    assert_true(s_log_has(log, from, "protocol: mechanism mismatch", 5000));

    /* A plain ZeroMQ DEALER: the same, though which side notices first varies (protocol,
     * or no_detail when the DEALER hangs up first); its address is best effort. Its batch
     * is offered after the failure: libzmq then has dropped the connection's pipe, and a
     * blocking send would wait forever (this hung a CI run when the failure came first). */
    double before = h_metrics_get(port, S_HS "{reason=\"protocol\"}") +
                    h_metrics_get(port, S_HS "{reason=\"no_detail\"}");
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, NULL, NULL, 200);
    double after = before;
    for (int i = 0; i < 100 && after < before + 1; i++) {
        h_sleep_ms(100);
        after = h_metrics_get(port, S_HS "{reason=\"protocol\"}") +
                h_metrics_get(port, S_HS "{reason=\"no_detail\"}");
    }
    assert_true(after >= before + 1);
    h_peer_offer_batch(&p, "good-agent", "good-node-1", 1, 1, 1000, ww_time_now_ns());
    h_peer_close(&p);

    /* An enrolled key that trusts another server key: the server cannot open its HELLO. */
    before = h_metrics_get(port, S_HS "{reason=\"protocol\"}");
    h_peer_open(&p, endpoint, db.dir, "agent", "fake-collector", 200);
    h_peer_offer_batch(&p, "good-agent", "good-node-1", 1, 2, 1000, ww_time_now_ns());
    assert_true(s_metric_until(port, S_HS "{reason=\"protocol\"}", before + 1, 10000, log) >=
                before + 1);
    h_peer_close(&p);
    assert_true(s_log_has(log, "handshake failed from ", "protocol: cryptographic error", 5000));

    /* A key that is not enrolled: refused by the ZAP handler, counted as auth. */
    h_peer_open(&p, endpoint, db.dir, "stranger", NULL, 200);
    h_peer_offer_batch(&p, "good-agent", "good-node-1", 1, 3, 1000, ww_time_now_ns());
    assert_true(s_metric_until(port, S_HS "{reason=\"auth\"}", 1, 10000, log) >= 1);
    h_peer_close(&p);
    assert_true(s_log_has(log, "refused a connection from 127.0.0.1", "not enrolled", 5000));
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 0);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

/* A peer that keeps failing is logged once, then rate-limited with a count. */
static void test_failed_handshake_log_is_rate_limited(void **state)
{
    h_db_t db;
    h_db_create(&db, "hsrate");
    h_secure(db.dir, "good-agent", "good-node-*");
    char endpoint[256], log[300];
    setenv("WW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:0", 1);
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_METRICS_LISTEN");
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    int port = s_metrics_port(log);
    /* 80 plain peers, each failing and reconnecting for 2.5 s: hundreds of failures, a
     * handful of lines. How often one reconnects after a failed handshake depends on the
     * machine (under ASan, two or three times in 2.5 s: 40 peers gave 86 to 110 failures,
     * around the 100 wanted), so there are enough peers for twice that. */
    enum { PEERS = 80 };
    h_peer_t p[PEERS];
    for (int i = 0; i < PEERS; i++) {
        h_peer_open(&p[i], endpoint, db.dir, NULL, NULL, 100);
    }
    h_sleep_ms(2500);
    for (int i = 0; i < PEERS; i++) {
        h_peer_close(&p[i]);
    }
    /* Each counts as protocol or no_detail, by which side hangs up first. */
    h_sleep_ms(1500);
    double failures = h_metrics_get(port, S_HS "{reason=\"protocol\"}") +
                      h_metrics_get(port, S_HS "{reason=\"no_detail\"}");
    char *text = h_read_file(log);
    int lines = 0;
    for (char *s = text; (s = strstr(s, "zmon: handshake failed")); s++) {
        lines++;
    }
    bool counted = strstr(text, "more like it since the last such line") != NULL;
    free(text);
    /* 2.5 s: at most lines at 0, 1 s (and 3 s) per kind, two kinds. A line after a kind's
     * first carries the count of those not logged; on a slow machine (ASan under load) the
     * failures may all fall in the first second, leaving only the first line per kind. */
    if (failures < 100 || lines < 1 || lines > 6 || (lines > 2 && !counted)) {
        fail_msg("%.0f failures gave %d log lines (want >= 100 failures, 1..6 lines, with a "
                 "count: %d)",
                 failures, lines, counted);
    }
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

/* The next reply, decoded without validation (a Pending is the collector's to send, so the
 * codec's validation, which is the receiver's, refuses it); NULL after the timeout. */
static ww_envelope_t *s_recv_any(h_peer_t *p)
{
    uint8_t buf[65536];
    int n = zmq_recv(p->sock, buf, sizeof buf, 0);
    if (n < 0) {
        return NULL;
    }
    ww_envelope_t *env = waferwatch__v1__envelope__unpack(NULL, (size_t)n, buf);
    assert_non_null(env);
    return env;
}

static void s_free(ww_envelope_t *env)
{
    waferwatch__v1__envelope__free_unpacked(env, NULL);
}

/* Expects a Pending for (epoch, seq) with a retry_after_ms in [1 s, 30 s]. */
static void s_expect_pending(h_peer_t *p, uint64_t epoch, uint64_t seq)
{
    ww_envelope_t *env = s_recv_any(p);
    if (!env) {
        fail_msg("silence: no Pending for seq %llu", (unsigned long long)seq);
    }
    if (env->body_case != WAFERWATCH__V1__ENVELOPE__BODY_PENDING) {
        fail_msg("body %d, expected a Pending for seq %llu", (int)env->body_case,
                 (unsigned long long)seq);
    }
    assert_true(env->pending->epoch == epoch);
    assert_true(env->pending->seq == seq);
    assert_in_range(env->pending->retry_after_ms, 1000, 30000);
    s_free(env);
}

static void test_held_batches_are_answered_pending_then_acked(void **state)
{
    h_pg_t pg;
    h_db_t db;
    h_pg_start(&pg, &db, "pending");
    h_secure(db.dir, "good-agent", "good-node-*");
    char endpoint[256], log[300];
    setenv("WW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:0", 1);
    pid_t collector = h_collector_spawn(db.dir, "tcp://127.0.0.1:*", pg.conninfo, "collector",
                                        endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_METRICS_LISTEN");
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    int port = s_metrics_port(log);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 8000);
    const uint64_t epoch = 99;
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 30 * WW_NS_PER_S;
    h_peer_send_batch(&p, "good-agent", "good-node-1", epoch, 1, 1001, t);
    ww_envelope_t *env = s_recv_any(&p);
    assert_non_null(env);
    assert_int_equal(env->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    s_free(env);

    /* PostgreSQL down: the batch is held, and the sender hears so. */
    h_pg_cmd(&pg, "pause");
    h_peer_send_batch(&p, "good-agent", "good-node-1", epoch, 2, 1002, t + WW_NS_PER_S);
    s_expect_pending(&p, epoch, 2);
    /* Its resend (the agent's ack timeout): Pending again, not queued twice. */
    h_peer_send_batch(&p, "good-agent", "good-node-1", epoch, 2, 1002, t + WW_NS_PER_S);
    s_expect_pending(&p, epoch, 2);
    /* A new batch while it is held: Pending, naming the highest seq held. */
    h_peer_send_batch(&p, "good-agent", "good-node-1", epoch, 3, 1003, t + 2 * WW_NS_PER_S);
    s_expect_pending(&p, epoch, 3);
    assert_true(s_metric_until(port, "waferwatch_collector_pending_replies_total", 3, 5000, log) >=
                3);

    /* Back: the held batches are committed and acked, each once. Pendings of later failed
     * retries may come first. */
    h_pg_cmd(&pg, "resume");
    bool acked[4] = {false, false, false, false};
    int acks = 0;
    for (int i = 0; i < 40 && !(acked[2] && acked[3]); i++) {
        env = s_recv_any(&p);
        if (!env) {
            break;
        }
        if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_ACK && env->ack->seq < 4) {
            acked[env->ack->seq] = true;
            acks++;
        } else if (env->body_case != WAFERWATCH__V1__ENVELOPE__BODY_PENDING) {
            fail_msg("unexpected reply body %d after the database returned", (int)env->body_case);
        }
        s_free(env);
    }
    assert_true(acked[2] && acked[3]);
    assert_int_equal(acks, 2);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 3);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT power_w) FROM node_samples"), 3);
    assert_int_equal(h_stop(collector, 20000), 0);
    assert_int_equal(h_log_value(log, "stopping:", "duplicates"), 0);
    h_pg_stop(&pg, &db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_failed_handshakes_are_counted_and_logged),
    cmocka_unit_test(test_failed_handshake_log_is_rate_limited),
    cmocka_unit_test(test_held_batches_are_answered_pending_then_acked),
};
WW_TEST_MAIN(tests, NULL, NULL)
