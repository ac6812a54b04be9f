/* The agent's OTLP/HTTP receiver end to end (agent.requests otlp): exports of vLLM-shaped
 * spans POSTed to the agent over real HTTP, plain and gzip, become the first node's latency
 * windows in PostgreSQL, every request span once, at the percentiles sent (within the
 * histogram's bound); what an OTLP/HTTP server must refuse is refused with its status code
 * and a Status body, and costs nothing else; the simulator's own requests stay out. */
#include "harness.h"
#include "harness_http.h"
#include "otlp/otlp_trace.pb-c.h"
#include "otlp_spans.h"
#include "verify.h"
#include "ww_test.h"
#include "ww_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>

#define S_GOOD_A 80
#define S_GOOD_B 80
#define S_GOOD_C 40
#define S_GOOD_D 2 /* in JSON */

static const char *const s_models[] = {"llama3.1-8b", "llama3.1-70b", "llama3.1-405b"};

typedef struct {
    double ttft[S_GOOD_A + S_GOOD_B + S_GOOD_C + S_GOOD_D];
    double e2e[S_GOOD_A + S_GOOD_B + S_GOOD_C + S_GOOD_D];
    size_t n;
} s_sent_t;

/* n good request spans ending just now, their values recorded in sent. */
static void s_good(h_otlp_span_t *s, size_t n, s_sent_t *sent)
{
    uint64_t end = (uint64_t)ww_time_now_ns() - 100 * WW_NS_PER_MS;
    for (size_t i = 0; i < n; i++) {
        size_t k = sent->n++;
        double ttft = 0.05 + 0.001 * (double)k, e2e = ttft + 0.5 + 0.002 * (double)k;
        sent->ttft[k] = ttft;
        sent->e2e[k] = e2e;
        h_otlp_vllm(&s[i], end + i, s_models[k % 3], e2e, ttft, 0.01, 100, 50);
    }
}

static char *s_post(unsigned port, const char *path, const void *body, size_t len, const char *type,
                    const char *encoding, long *status, size_t *out_len, char *retry_after)
{
    char url[128], ct[96], ce[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    snprintf(ct, sizeof ct, "Content-Type: %s", type);
    snprintf(ce, sizeof ce, "Content-Encoding: %s", encoding ? encoding : "");
    const char *headers[] = {ct, encoding ? ce : NULL, NULL};
    return h_http_post(url, body, len, headers, status, out_len, retry_after, 32);
}

static uint8_t *s_gzip(const uint8_t *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len);
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* A refusal: its status, and a Status body with a message (and code, when given). */
static void s_refused(char *body, size_t len, long status, long want, int32_t code)
{
    if (status != want) {
        fail_msg("HTTP %ld, expected %ld: %.*s", status, want, (int)len, body);
    }
    Ww__Otlp__V1__RpcStatus *st = ww__otlp__v1__rpc_status__unpack(NULL, len, (uint8_t *)body);
    assert_non_null(st);
    assert_true(strlen(st->message) > 0);
    if (code) {
        assert_int_equal(st->code, code);
    }
    print_message("HTTP %ld: %s\n", status, st->message);
    ww__otlp__v1__rpc_status__free_unpacked(st, NULL);
    free(body);
}

/* A 200: its ExportTraceServiceResponse; returns rejected_spans (0 without partial_success). */
static int64_t s_accepted(char *body, size_t len, long status)
{
    if (status != 200) {
        fail_msg("HTTP %ld: %.*s", status, (int)len, body);
    }
    Ww__Otlp__V1__ExportTraceServiceResponse *r =
        ww__otlp__v1__export_trace_service_response__unpack(NULL, len, (uint8_t *)body);
    assert_non_null(r);
    int64_t rejected = 0;
    if (r->partial_success) {
        rejected = r->partial_success->rejected_spans;
        assert_true(strlen(r->partial_success->error_message) > 0);
        print_message("partial success: %lld refused, %s\n", (long long)rejected,
                      r->partial_success->error_message);
    }
    ww__otlp__v1__export_trace_service_response__free_unpacked(r, NULL);
    free(body);
    return rejected;
}

/* The agent of these tests: otlp-agent, one simulated node otlp-node giving the readings,
 * its requests from OTLP on a free port (returned), /metrics on another; runs for
 * run_for. Fills log with its log's path. */
static pid_t s_agent_start(h_db_t *db, const char *endpoint, const char *run_for, char *log,
                           size_t log_cap, unsigned *otlp_port)
{
    char spool[256];
    snprintf(spool, sizeof spool, "%s/spool", db->dir);
    snprintf(log, log_cap, "%s/agent.log", db->dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    (char *)endpoint,
                    (char *)"--agent-id",
                    (char *)"otlp-agent",
                    (char *)"--node-id",
                    (char *)"otlp-node",
                    (char *)"--phase",
                    (char *)"phase-o",
                    (char *)"--sim-nodes",
                    (char *)"1",
                    (char *)"--interval",
                    (char *)"100ms",
                    (char *)"--latency-window",
                    (char *)"1s",
                    (char *)"--run-for",
                    (char *)run_for,
                    (char *)"--requests",
                    (char *)"otlp",
                    (char *)"--otlp-listen",
                    (char *)"127.0.0.1:0",
                    (char *)"--metrics-listen",
                    (char *)"127.0.0.1:0",
                    NULL};
    setenv("WW_AGENT_OTLP_MAX_BODY", "256 KiB", 1);
    setenv("WW_AGENT_OTLP_MAX_QUEUE", "200", 1);
    setenv("WW_AGENT_OTLP_MAX_DELAY", "1s", 1);
    pid_t agent = h_spawn(argv, log);
    unsetenv("WW_AGENT_OTLP_MAX_BODY");
    unsetenv("WW_AGENT_OTLP_MAX_QUEUE");
    unsetenv("WW_AGENT_OTLP_MAX_DELAY");
    long long port = -1;
    for (int i = 0; i < 500 && port <= 0; i++) {
        h_sleep_ms(20);
        port = h_log_value(log, "otlp: listening", "port");
    }
    if (port <= 0) {
        char *text = h_read_file(log);
        fail_msg("the agent's OTLP receiver did not start:\n%s", text ? text : "(no log)");
    }
    *otlp_port = (unsigned)port;
    return agent;
}

/* A database (tag), a collector and s_agent_start's agent; returns the agent's pid. */
static pid_t s_start(h_db_t *db, const char *tag, const char *run_for, char *log, size_t log_cap,
                     unsigned *otlp_port, pid_t *collector)
{
    h_db_create(db, tag);
    h_secure(db->dir, "otlp-agent", "otlp-node");
    char endpoint[256];
    *collector = h_collector_start(db, endpoint, sizeof endpoint);
    return s_agent_start(db, endpoint, run_for, log, log_cap, otlp_port);
}

static void test_spans_become_latency_windows_once(void **state)
{
    h_db_t db;
    char log[256];
    unsigned p;
    pid_t collector, agent = s_start(&db, "otlp", "5s", log, sizeof log, &p, &collector);
    s_sent_t sent = {0};
    long status;
    size_t len, rlen;
    char *r;

    /* A: plain protobuf. */
    h_otlp_span_t a[S_GOOD_A];
    s_good(a, S_GOOD_A, &sent);
    uint8_t *body = h_otlp_pack(a, S_GOOD_A, &len);
    r = s_post(p, "/v1/traces", body, len, "application/x-protobuf", NULL, &status, &rlen, NULL);
    assert_int_equal(s_accepted(r, rlen, status), 0);
    free(body);

    /* B: gzip. */
    h_otlp_span_t b[S_GOOD_B];
    s_good(b, S_GOOD_B, &sent);
    body = h_otlp_pack(b, S_GOOD_B, &len);
    size_t zlen;
    uint8_t *z = s_gzip(body, len, &zlen);
    r = s_post(p, "/v1/traces", z, zlen, "application/x-protobuf", "gzip", &status, &rlen, NULL);
    assert_int_equal(s_accepted(r, rlen, status), 0);
    free(body);
    free(z);

    /* C: good spans beside 5 without a TTFT, 3 of a model the agent does not serve, 2 that
     * are not requests, one ending 10 minutes ahead of the agent's clock and one two days
     * behind it (their windows would be refused by the collector with the batch's samples):
     * a partial success refusing 10, the rest taken. */
    h_otlp_span_t c[S_GOOD_C + 12];
    s_good(c, S_GOOD_C, &sent);
    uint64_t end = (uint64_t)ww_time_now_ns() - 100 * WW_NS_PER_MS;
    for (int i = 0; i < 5; i++) {
        h_otlp_span_init(&c[S_GOOD_C + i], "llm_request", end);
        h_otlp_double(&c[S_GOOD_C + i], "gen_ai.latency.e2e", 1.0);
        h_otlp_double(&c[S_GOOD_C + i], "gen_ai.latency.time_in_queue", 0.1);
        h_otlp_int(&c[S_GOOD_C + i], "gen_ai.usage.prompt_tokens", 10);
        h_otlp_int(&c[S_GOOD_C + i], "gen_ai.usage.completion_tokens", 10);
        h_otlp_str(&c[S_GOOD_C + i], "gen_ai.response.model", "llama3.1-8b", 11);
    }
    for (int i = 5; i < 8; i++) {
        h_otlp_vllm(&c[S_GOOD_C + i], end, "mistral-large", 1.0, 0.2, 0.1, 10, 10);
    }
    for (int i = 8; i < 10; i++) {
        h_otlp_span_init(&c[S_GOOD_C + i], "http.request", end);
    }
    h_otlp_vllm(&c[S_GOOD_C + 10], end + 600 * (uint64_t)WW_NS_PER_S, "llama3.1-8b", 1.0, 0.2, 0.1,
                10, 10);
    h_otlp_vllm(&c[S_GOOD_C + 11], end - 2 * 86400 * (uint64_t)WW_NS_PER_S, "llama3.1-8b", 1.0, 0.2,
                0.1, 10, 10);
    body = h_otlp_pack(c, S_GOOD_C + 12, &len);
    r = s_post(p, "/v1/traces", body, len, "application/x-protobuf", NULL, &status, &rlen, NULL);
    assert_int_equal(s_accepted(r, rlen, status), 10);
    free(body);

    /* More than the queue holds (otlp.max_queue 200, whatever the agent took already): 503
     * with Retry-After, nothing taken. */
    h_otlp_span_t big[250];
    for (int i = 0; i < 250; i += 50) {
        s_sent_t unsent = {0};
        s_good(big + i, 50, &unsent);
    }
    body = h_otlp_pack(big, 250, &len);
    char retry[32];
    r = s_post(p, "/v1/traces", body, len, "application/x-protobuf", NULL, &status, &rlen, retry);
    s_refused(r, rlen, status, 503, 8);
    assert_string_equal(retry, "1");
    free(body);

    /* What the server refuses, each with its code and a Status. */
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    r = s_post(p, "/v1/traces", junk, sizeof junk, "application/x-protobuf", NULL, &status, &rlen,
               NULL);
    s_refused(r, rlen, status, 400, 3);
    r = s_post(p, "/v1/traces", junk, sizeof junk, "application/x-protobuf", "gzip", &status, &rlen,
               NULL);
    s_refused(r, rlen, status, 400, 3);
    r = s_post(p, "/v1/traces", "{}", 2, "text/plain", NULL, &status, &rlen, NULL);
    s_refused(r, rlen, status, 415, 0);

    /* D: the JSON encoding, as the specification writes it (times and integers as strings),
     * two good spans and one without a TTFT; answered in JSON. */
    char json[4096];
    size_t jl =
        (size_t)snprintf(json, sizeof json, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    for (int i = 0; i < S_GOOD_D + 1; i++) {
        size_t k = sent.n;
        double ttft = 0.05 + 0.001 * (double)k, e2e = ttft + 0.5 + 0.002 * (double)k;
        char ttft_attr[128] = ""; /* the third span lacks it */
        if (i < S_GOOD_D) {
            sent.ttft[k] = ttft;
            sent.e2e[k] = e2e;
            sent.n++;
            snprintf(ttft_attr, sizeof ttft_attr,
                     "{\"key\":\"gen_ai.latency.time_to_first_token\",\"value\":{"
                     "\"doubleValue\":%.17g}},",
                     ttft);
        }
        jl += (size_t)snprintf(
            json + jl, sizeof json - jl,
            "%s{\"name\":\"llm_request\",\"endTimeUnixNano\":\"%lld\",\"attributes\":["
            "{\"key\":\"gen_ai.latency.e2e\",\"value\":{\"doubleValue\":%.17g}},"
            "%s{\"key\":\"gen_ai.latency.time_in_queue\",\"value\":{\"doubleValue\":0.01}},"
            "{\"key\":\"gen_ai.usage.prompt_tokens\",\"value\":{\"intValue\":\"100\"}},"
            "{\"key\":\"gen_ai.usage.completion_tokens\",\"value\":{\"intValue\":\"50\"}},"
            "{\"key\":\"gen_ai.response.model\",\"value\":{\"stringValue\":\"%s\"}}]}",
            i ? "," : "", (long long)(ww_time_now_ns() - 100 * WW_NS_PER_MS), e2e, ttft_attr,
            s_models[k % 3]);
    }
    jl += (size_t)snprintf(json + jl, sizeof json - jl, "]}]}]}");
    assert_true(jl < sizeof json);
    r = s_post(p, "/v1/traces", json, jl, "application/json", NULL, &status, &rlen, NULL);
    assert_int_equal(status, 200);
    if (!strstr(r, "\"partialSuccess\":{\"rejectedSpans\":\"1\"")) {
        fail_msg("JSON reply: %s", r);
    }
    free(r);
    r = s_post(p, "/v1/traces", "{\"resourceSpans\":[", 18, "application/json", NULL, &status,
               &rlen, NULL);
    assert_int_equal(status, 400);
    const char *want = "{\"code\":3,\"message\":\"not JSON: line 1, column 19";
    if (strncmp(r, want, strlen(want)) != 0) {
        fail_msg("JSON error reply: %s", r);
    }
    free(r);
    r = s_post(p, "/v1/traces", junk, sizeof junk, "application/x-protobuf", "br", &status, &rlen,
               NULL);
    s_refused(r, rlen, status, 415, 0);
    r = s_post(p, "/v1/logs", junk, sizeof junk, "application/x-protobuf", NULL, &status, &rlen,
               NULL);
    s_refused(r, rlen, status, 404, 0);
    r = s_post(p, "/v1/metrics", junk, sizeof junk, "application/x-protobuf", NULL, &status, &rlen,
               NULL);
    s_refused(r, rlen, status, 400, 3);
    /* Metrics in JSON: an empty export is taken; a point whose count is not a number is
     * refused with its path, in JSON. */
    r = s_post(p, "/v1/metrics", "{}", 2, "application/json", NULL, &status, &rlen, NULL);
    assert_int_equal(status, 200);
    assert_string_equal(r, "{}");
    free(r);
    static const char bad_count[] =
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":"
        "\"gen_ai.server.time_to_first_token\",\"exponentialHistogram\":{"
        "\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_DELTA\",\"dataPoints\":"
        "[{\"count\":\"x\"}]}}]}]}]}";
    r = s_post(p, "/v1/metrics", bad_count, sizeof bad_count - 1, "application/json", NULL, &status,
               &rlen, NULL);
    assert_int_equal(status, 400);
    if (!strstr(r, "resourceMetrics[0].scopeMetrics[0].metrics[0].exponentialHistogram."
                   "dataPoints[0].count: not a count")) {
        fail_msg("JSON metrics error reply: %s", r);
    }
    free(r);
    uint8_t *large = calloc(1, 300 * 1024);
    assert_non_null(large);
    /* Refused from its Content-Length, before the body is read. Sent as a careful client
     * sends a large body (curl itself past 1 MiB): Expect: 100-continue, so that the 413
     * arrives before the body is sent. Without it the agent's close after the early 413
     * can reset the connection while the client still writes (a fresh-clone run under the
     * sanitizers saw HTTP 0 here). */
    char big_url[128];
    snprintf(big_url, sizeof big_url, "http://127.0.0.1:%u/v1/traces", p);
    const char *expect[] = {"Content-Type: application/x-protobuf", "Expect: 100-continue", NULL};
    r = h_http_post(big_url, large, 300 * 1024, expect, &status, &rlen, NULL, 0);
    s_refused(r, rlen, status, 413, 0);
    /* A small gzip body that inflates past otlp.max_body. */
    uint8_t *zeros = calloc(1, 4 * 1024 * 1024);
    assert_non_null(zeros);
    z = s_gzip(zeros, 4 * 1024 * 1024, &zlen);
    assert_true(zlen < 256 * 1024);
    r = s_post(p, "/v1/traces", z, zlen, "application/x-protobuf", "gzip", &status, &rlen, NULL);
    s_refused(r, rlen, status, 413, 0);
    free(z);
    free(zeros);
    free(large);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", p);
    r = h_http_request(NULL, url, NULL, &status, NULL, 0);
    assert_int_equal(status, 405);
    free(r);

    /* What an SRE sees of it on the agent's /metrics (published every tick). */
    int mport = h_metrics_port(agent, log);
    h_sleep_ms(300);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_requests_total"), sent.n);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_spans_refused_total"), 11);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_overloaded_total"), 1);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_too_large_total"), 2);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_bad_requests_total"), 5);
    assert_int_equal(h_metrics_get(mport, "waferwatch_agent_otlp_unsupported_total"), 4);

    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_log_value(log, "stats:", "otlp_exports"), 4);
    assert_int_equal(h_log_value(log, "stats:", "otlp_spans"),
                     S_GOOD_A + S_GOOD_B + S_GOOD_C + 12 + S_GOOD_D + 1);
    assert_int_equal(h_log_value(log, "stats:", "otlp_requests"), (long long)sent.n);
    assert_int_equal(h_log_value(log, "stats:", "otlp_refused"), 11);
    assert_int_equal(h_log_value(log, "stats:", "nacked"), 0);
    assert_int_equal(h_log_value(log, "stats:", "otlp_errors"), 12);
    /* The simulator gave the readings; its own requests were not the node's. */
    assert_true(h_log_value(log, "stats:", "source_requests_dropped") > 0);
    assert_true(h_log_value(log, "stats:", "samples") >= 40);
    assert_int_equal(h_log_value(log, "stats:", "acked"), h_log_value(log, "stats:", "batches"));
    assert_int_equal(h_stop(collector, 10000), 0);

    /* Every request span once, in the node's windows, at the values sent. */
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows"),
                     (long long)sent.n);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_error + requests_timeout"
                                     " + requests_rejected) FROM latency_windows"),
                     0);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT node_id) FROM latency_windows"
                                     " WHERE node_id = 'otlp-node'"),
                     1);
    assert_int_equal(h_query_ll(&db, "SELECT sum(output_tokens) FROM latency_windows"),
                     (long long)sent.n * 50);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT model) FROM latency_windows"), 3);
    h_verify_quantiles(&db, "ttft", sent.ttft, sent.n, "latency_windows");
    h_verify_quantiles(&db, "e2e", sent.e2e, sent.n, "latency_windows");
    assert_int_equal(h_verify_rollups(&db), 0);
    h_db_drop(&db);
}

/* The OpenTelemetry JavaScript SDK's own OTLP/HTTP exporters (installed from npm into a
 * cache, tests/otel_sdk/install.sh), protobuf and JSON, each send 300 spans through the
 * SDK's batch processor: every one lands once, errors as errors, at the values the script
 * gave (emit_spans.cjs). Skipped, saying why, only when node or the npm registry cannot be
 * reached. */
/* The OpenTelemetry JavaScript SDK installed into dir (skips the test, saying why, when it
 * cannot be). */
static void s_sdk(char *dir, size_t cap)
{
    char cmd[2600];
    const char *cache = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    snprintf(dir, cap, "%s%s/waferwatch/otel-sdk",
             cache  ? cache
             : home ? home
                    : "/tmp",
             cache ? "" : "/.cache");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && '%s/install.sh' '%s' > '%s/install.out' 2>&1", dir,
             WW_OTEL_SDK_SRC, dir, dir);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        char out[600];
        snprintf(out, sizeof out, "%s/install.out", dir);
        char *why = h_read_file(out);
        print_message("SKIPPED: the OpenTelemetry JavaScript SDK cannot be installed: %s\n",
                      why ? why : "?");
        free(why);
        skip();
    }
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        char out[600];
        snprintf(out, sizeof out, "%s/install.out", dir);
        char *why = h_read_file(out);
        fail_msg("tests/otel_sdk/install.sh %s failed:\n%s", dir, why ? why : "?");
    }
}

static void test_the_javascript_sdk_exporter_is_understood(void **state)
{
    char dir[512], cmd[2600];
    s_sdk(dir, sizeof dir);
    int rc;
    h_db_t db;
    char log[256];
    unsigned p;
    pid_t collector, agent = s_start(&db, "otlpsdk", "5s", log, sizeof log, &p, &collector);
    enum { N = 300 };
    static const char *const encodings[] = {"proto", "json"};
    for (int i = 0; i < 2; i++) {
        snprintf(
            cmd, sizeof cmd,
            "node '%s/emit_spans.cjs' http://127.0.0.1:%u/v1/traces %d %s > '%s/node.log' 2>&1",
            dir, p, N, encodings[i], db.dir);
        rc = system(cmd);
        snprintf(cmd, sizeof cmd, "%s/node.log", db.dir);
        char *out = h_read_file(cmd);
        print_message("node (%s): %s", encodings[i], out ? out : "(no output)\n");
        assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
        free(out);
    }
    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_log_value(log, "stats:", "otlp_exports") > 0, 1);
    assert_int_equal(h_log_value(log, "stats:", "otlp_requests"), 2 * N);
    assert_int_equal(h_log_value(log, "stats:", "otlp_refused"), 0);
    assert_int_equal(h_stop(collector, 10000), 0);

    /* emit_spans.cjs's values, sent twice (protobuf, then JSON): span k has TTFT
     * 0.05 + 0.001 k, e2e TTFT + 0.5 + 0.002 k, and every tenth is an error (its latencies
     * are not a success's). */
    double ttft[2 * N], e2e[2 * N];
    size_t ok = 0;
    for (int k = 0; k < 2 * N; k++) {
        if ((k % N) % 10 != 9) {
            ttft[ok] = 0.05 + 0.001 * (k % N);
            e2e[ok] = ttft[ok] + 0.5 + 0.002 * (k % N);
            ok++;
        }
    }
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows"), ok);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_error) FROM latency_windows"),
                     2 * N / 10);
    /* Tokens are a success's (an error's were not served). */
    assert_int_equal(h_query_ll(&db, "SELECT sum(prompt_tokens) FROM latency_windows"),
                     (long long)ok * 100);
    h_verify_quantiles(&db, "ttft", ttft, ok, "latency_windows");
    h_verify_quantiles(&db, "e2e", e2e, ok, "latency_windows");
    h_db_drop(&db);
}

/* The SDK's metrics (@opentelemetry/sdk-metrics, exporter-metrics-otlp-proto and -http): the
 * GenAI latency histograms as exponential histograms, with delta temporality, cumulative,
 * and cumulative in JSON (three exports each, emit_metrics.cjs): every request counted once, errors
 * as errors, tokens summed, percentiles within the histograms' bound of the values sent; the
 * windows are `aggregated` on the wire and stored as they came. */
static void test_the_javascript_sdk_metrics_are_merged(void **state)
{
    char dir[512], cmd[2600];
    s_sdk(dir, sizeof dir);
    h_db_t db;
    char log[256];
    unsigned p;
    pid_t collector, agent = s_start(&db, "otlpmet", "6s", log, sizeof log, &p, &collector);
    enum { N = 300, RUNS = 3 };
    static const char *const modes[RUNS][2] = {
        {"delta", "proto"}, {"cumulative", "proto"}, {"cumulative", "json"}};
    for (int i = 0; i < RUNS; i++) {
        snprintf(cmd, sizeof cmd,
                 "node '%s/emit_metrics.cjs' http://127.0.0.1:%u/v1/metrics %d %s %s > "
                 "'%s/node.log' 2>&1",
                 dir, p, N, modes[i][0], modes[i][1], db.dir);
        int rc = system(cmd);
        snprintf(cmd, sizeof cmd, "%s/node.log", db.dir);
        char *out = h_read_file(cmd);
        print_message("node (%s, %s): %s", modes[i][0], modes[i][1], out ? out : "(no output)\n");
        assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
        free(out);
    }
    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_log_value(log, "stats:", "otlp_metric_exports"), 3 * RUNS);
    assert_int_equal(h_log_value(log, "stats:", "otlp_points_refused"), 0);
    assert_true(h_log_value(log, "stats:", "otlp_points_merged") > 0);
    assert_int_equal(h_stop(collector, 10000), 0);

    /* emit_metrics.cjs's requests, once a run: request k of model k % 3 is an error when
     * k % 10 == 9, else TTFT 0.05 + 0.001 k, TPOT 0.002 + 0.00001 k, duration
     * TTFT + 0.5 + 0.002 k, 100 input and 50 output tokens. */
    double ttft[RUNS * N], tpot[RUNS * N], e2e[RUNS * N];
    size_t ok = 0;
    for (int k = 0; k < RUNS * N; k++) {
        int j = k % N;
        if (j % 10 != 9) {
            ttft[ok] = 0.05 + 0.001 * j;
            tpot[ok] = 0.002 + 0.00001 * j;
            e2e[ok] = ttft[ok] + 0.5 + 0.002 * j;
            ok++;
        }
    }
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows"), ok);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_error) FROM latency_windows"),
                     RUNS * N / 10);
    assert_int_equal(h_query_ll(&db, "SELECT sum(prompt_tokens) FROM latency_windows"),
                     (long long)ok * 100);
    assert_int_equal(h_query_ll(&db, "SELECT sum(output_tokens) FROM latency_windows"),
                     (long long)ok * 50);
    for (int m = 0; m < 3; m++) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT ww_hist_count(ww_merge(ttft)) FROM latency_windows WHERE model = '%s'",
                 s_models[m]);
        assert_int_equal(h_query_ll(&db, sql), (long long)ok / 3);
    }
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count(ww_merge(queue)) FROM latency_windows"),
                     0);
    h_verify_quantiles(&db, "ttft", ttft, ok, "latency_windows");
    h_verify_quantiles(&db, "tpot", tpot, ok, "latency_windows");
    h_verify_quantiles(&db, "e2e", e2e, ok, "latency_windows");
    assert_int_equal(h_verify_rollups(&db), 0);
    h_db_drop(&db);
}

/* No simulator: readings from the host's sysfs (agent.source host, a fixture tree laid out
 * as the kernel's), requests from OTLP. Power and the hotspot are stored as read; what a
 * host does not measure is NULL, never 0; the spans become the node's windows. */
static void test_host_readings_beside_otlp_requests(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "otlphost");
    h_secure(db.dir, "otlp-agent", "otlp-node");
    char root[300];
    snprintf(root, sizeof root, "%s/host", db.dir);
    assert_int_equal(mkdir(root, 0755), 0);
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "61200\n"); /* 0.1 C grid */
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/name", "acpi_power_meter\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/power1_average", "412000000\n"); /* 412 W */
    char endpoint[256], spool[320], log[320];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    snprintf(log, sizeof log, "%s/agent.log", db.dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    endpoint,
                    (char *)"--agent-id",
                    (char *)"otlp-agent",
                    (char *)"--node-id",
                    (char *)"otlp-node",
                    (char *)"--phase",
                    (char *)"phase-o",
                    (char *)"--source",
                    (char *)"host",
                    (char *)"--interval",
                    (char *)"100ms",
                    (char *)"--latency-window",
                    (char *)"1s",
                    (char *)"--run-for",
                    (char *)"3s",
                    (char *)"--requests",
                    (char *)"otlp",
                    (char *)"--otlp-listen",
                    (char *)"127.0.0.1:0",
                    NULL};
    setenv("WW_AGENT_HOST_ROOT", root, 1);
    setenv("WW_AGENT_HOST_POWER", "hwmon/acpi_power_meter/power1", 1);
    setenv("WW_AGENT_HOST_HOTSPOT", "hwmon/coretemp/Package id 0", 1);
    setenv("WW_AGENT_OTLP_MAX_DELAY", "1s", 1);
    pid_t agent = h_spawn(argv, log);
    unsetenv("WW_AGENT_HOST_ROOT");
    unsetenv("WW_AGENT_HOST_POWER");
    unsetenv("WW_AGENT_HOST_HOTSPOT");
    unsetenv("WW_AGENT_OTLP_MAX_DELAY");
    long long port = -1;
    for (int i = 0; i < 500 && port <= 0; i++) {
        h_sleep_ms(20);
        port = h_log_value(log, "otlp: listening", "port");
    }
    assert_true(port > 0);
    s_sent_t sent = {0};
    h_otlp_span_t sp[30];
    s_good(sp, 30, &sent);
    size_t len, rlen;
    long status;
    uint8_t *body = h_otlp_pack(sp, 30, &len);
    char *r = s_post((unsigned)port, "/v1/traces", body, len, "application/x-protobuf", NULL,
                     &status, &rlen, NULL);
    assert_int_equal(s_accepted(r, rlen, status), 0);
    free(body);
    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_stop(collector, 10000), 0);
    long long ticks = h_log_value(log, "stats:", "ticks");
    assert_true(ticks >= 20);
    assert_int_equal(h_query_ll(&db,
                                "SELECT count(*) FROM node_samples WHERE node_id ="
                                " 'otlp-node' AND power_w = 412 AND wafer_hotspot_c = 61.2::real"
                                " AND inlet_c IS NULL AND outlet_c IS NULL AND flow_lpm IS NULL"
                                " AND utilization IS NULL AND tokens_per_s IS NULL"
                                " AND requests_queued IS NULL AND requests_in_flight IS NULL"
                                " AND requests_completed IS NULL AND throttled IS NULL"
                                " AND throttle_factor IS NULL AND humidity_pct IS NULL"),
                     ticks);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), ticks);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows WHERE"
                                     " node_id = 'otlp-node'"),
                     30);
    h_verify_quantiles(&db, "ttft", sent.ttft, sent.n, "latency_windows");
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_spans_become_latency_windows_once),
    cmocka_unit_test(test_the_javascript_sdk_exporter_is_understood),
    cmocka_unit_test(test_the_javascript_sdk_metrics_are_merged),
    cmocka_unit_test(test_host_readings_beside_otlp_requests),
};
WW_TEST_MAIN(tests, NULL, NULL)
