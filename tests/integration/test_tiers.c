/* The storage tiers (migration 0018, collector/sql/25_functions_tiers.sql, ww_tiers.h,
 * ww_late.h) against the real collector: every row of node_rollup_1m/_1h, site_rollup_1m/_1h
 * and latency_node_1h equals its recomputation from the raw rows, whatever the order in
 * which the data arrived and wherever the builder was stopped.
 *
 * Why: a minute is built once, when it closes, and is only ever rebuilt where a write said
 * that late data changed it (ww_tier_dirty). A bucket the late-data protocol misses, a build
 * whose progress does not move in the transaction that writes its rows, or a tier that
 * aggregates differently from its definition would leave dashboards wrong forever, with
 * nothing to notice it. So the recomputation here is written independently, in SQL over
 * node_samples, latency_windows and nodes (never through the ww_tier_* functions), and it is
 * compared exactly, row for row and column for column, in one snapshot: the readings are
 * multiples of 0.25 and the latency values powers of two, so every floating-point sum is
 * exact in any order, and a missing, extra or different row fails with the rows shown.
 *
 * 1. Forward, then late: node A's two hours (samples, latency windows) arrive on time while
 *    no builder runs; a builder started three hours behind builds them; then a late backlog
 *    (node B's first samples, samples of A between A's, a node that never sent a Hello,
 *    windows of closed hours, the second part of a stored window) is recorded dirty by the
 *    writes and rebuilt. The tiers equal their recomputation after each step, and /metrics
 *    counts the minutes built and the late buckets recorded and rebuilt.
 * 2. A collector SIGKILLed in the middle of a build transaction (one minute per
 *    transaction; the test holds the state row so that the kill lands while a build waits
 *    for it) leaves exactly the minutes and hours below its progress built and nothing
 *    above; a restarted collector finishes, and the tiers equal their recomputation again.
 */
#include "harness.h"
#include "harness_http.h"
#include "ww_hist.h"
#include "ww_hist_wire.h"
#include "ww_late.h"
#include "ww_store.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#define AGENT "tiers-agent"
#define NODE_A "tiers-a"
#define NODE_B "tiers-b"
#define NODE_C "tiers-c" /* never sends a Hello: no nodes row, '' labels, a 1 s interval */
#define MIN_NS (60 * WW_NS_PER_S)
#define HOUR_NS (3600 * WW_NS_PER_S)
#define WAIT_MS 20000 /* every wait: generous against a loaded 2-core CI machine */

/* ---- the recomputation ----------------------------------------------------------------- */

/* The readings of node_samples, in the column order of the tiers; `integer`: summed as
 * bigint, the others as float8. */
static const struct {
    const char *name;
    bool integer;
} s_readings[] = {
    {"power_w", false},           {"inlet_c", false},         {"outlet_c", false},
    {"flow_lpm", false},          {"wafer_hotspot_c", false}, {"utilization", false},
    {"tokens_per_s", false},      {"throttle_factor", false}, {"requests_queued", true},
    {"requests_in_flight", true}, {"humidity_pct", false},
};
#define S_N_READINGS (sizeof s_readings / sizeof s_readings[0])

/* A query under construction: the recomputations are long, and their reading columns are
 * spelled from the one list above. */
typedef struct {
    char s[32768];
    size_t n;
} s_sql_t;

static void s_cat(s_sql_t *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_cat(s_sql_t *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(q->s + q->n, sizeof q->s - q->n, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof q->s - q->n);
    q->n += (size_t)k;
}

/* The columns of node_rollup_<tier> that the recomputation yields, in its order. */
static void s_node_table(s_sql_t *q, const char *tier)
{
    s_cat(q, "SELECT time, node_id, samples, humidity_samples, last_time, sampled_s, energy_j,"
             " tokens, throttled_s, requests_completed");
    for (size_t i = 0; i < S_N_READINGS; i++) {
        const char *r = s_readings[i].name;
        s_cat(q, ", %s_sum, %s_min, %s_max, %s_last", r, r, r, r);
    }
    s_cat(q, " FROM node_rollup_%s", tier);
}

/* A node's buckets of `unit` (minute, hour) straight from the table src (node_samples, or
 * a copy of every row ever written to it where compaction moves them), below the state's
 * column `bound` (minutes_done, hours_done): count, sums, extremes, the readings of the
 * latest sample, and energy, tokens and throttled seconds by the node's interval
 * (nodes.interval_ms, 1 s when unknown or 0). The hour is computed from the raw rows too,
 * not from minutes: it must come out the same. */
static void s_node_recomputed(s_sql_t *q, const char *src, const char *unit, const char *bound)
{
    s_cat(q, "SELECT a.b AS time, a.node_id, a.samples, a.humidity_samples, a.last_time,"
             " a.samples * a.iv AS sampled_s,"
             " a.power_w_sum * a.iv AS energy_j, a.tokens_per_s_sum * a.iv AS tokens,"
             " a.throttled_n * a.iv AS throttled_s, a.requests_completed");
    for (size_t i = 0; i < S_N_READINGS; i++) {
        const char *r = s_readings[i].name;
        s_cat(q, ", a.%s_sum, a.%s_min, a.%s_max, l.%s AS %s_last", r, r, r, r, r);
    }
    s_cat(q,
          " FROM (SELECT s.node_id, date_trunc('%s', s.time, 'UTC') AS b,"
          " count(*)::integer AS samples, count(s.humidity_pct)::integer AS humidity_samples,"
          " max(s.time) AS last_time, CASE WHEN count(s.throttled) > 0"
          " THEN count(*) FILTER (WHERE s.throttled) END AS throttled_n,"
          " sum(s.requests_completed) AS requests_completed,"
          " coalesce(nullif(min(n.interval_ms), 0), 1000)::float8 / 1000 AS iv",
          unit);
    for (size_t i = 0; i < S_N_READINGS; i++) {
        const char *r = s_readings[i].name;
        s_cat(q, ", sum(s.%s%s) AS %s_sum, min(s.%s) AS %s_min, max(s.%s) AS %s_max", r,
              s_readings[i].integer ? "" : "::float8", r, r, r, r, r);
    }
    s_cat(q,
          " FROM %s s LEFT JOIN nodes n ON n.node_id = s.node_id"
          " WHERE s.time >= (SELECT start FROM ww_tier_state)"
          " AND s.time < (SELECT %s FROM ww_tier_state) GROUP BY 1, 2) AS a"
          " JOIN (SELECT DISTINCT ON (s.node_id, date_trunc('%s', s.time, 'UTC'))"
          " s.node_id, date_trunc('%s', s.time, 'UTC') AS b",
          src, bound, unit, unit);
    for (size_t i = 0; i < S_N_READINGS; i++) {
        s_cat(q, ", s.%s", s_readings[i].name);
    }
    s_cat(q, " FROM %s s ORDER BY s.node_id, date_trunc('%s', s.time, 'UTC'), s.time DESC", src,
          unit);
    /* Ties (two samples of a node at one instant) as the builder breaks them: the greater
     * readings, in column order. */
    for (size_t i = 0; i < S_N_READINGS; i++) {
        s_cat(q, ", s.%s DESC NULLS LAST", s_readings[i].name);
    }
    s_cat(q, ") AS l ON l.node_id = a.node_id AND l.b = a.b");
}

#define S_SITE_COLUMNS                                                                             \
    "time, site, hall, phase, samples, humidity_samples, rated_kw, sampled_s, energy_j, tokens,"   \
    " throttled_s, requests_completed, inlet_c_sum, outlet_c_sum, flow_lpm_sum,"                   \
    " wafer_hotspot_c_sum, utilization_sum, humidity_pct_sum, nodes, throttled_nodes,"             \
    " power_w_max, inlet_c_max, outlet_c_max, flow_lpm_min, wafer_hotspot_c_max,"                  \
    " humidity_pct_max, hot_node_ids, hot_node_c, inlet_c_samples, outlet_c_samples,"              \
    " flow_lpm_samples, wafer_hotspot_c_samples, utilization_samples, energy_j_tokened"

/* The node buckets above summed per bucket and the site, hall and phase of the node as
 * nodes holds them ('' for a node without a row). */
static void s_site_recomputed(s_sql_t *q, const char *src, const char *unit, const char *bound)
{
    s_cat(q, "SELECT r.time, coalesce(n.site, ''), coalesce(n.hall, ''), coalesce(n.phase, ''),"
             " sum(r.samples), sum(r.humidity_samples), sum(coalesce(n.rated_kw, 0)),"
             " sum(r.sampled_s), sum(r.energy_j), sum(r.tokens), sum(r.throttled_s), "
             "sum(r.requests_completed),"
             " sum(r.inlet_c_sum), sum(r.outlet_c_sum), sum(r.flow_lpm_sum),"
             " sum(r.wafer_hotspot_c_sum), sum(r.utilization_sum), sum(r.humidity_pct_sum),"
             " count(*), count(*) FILTER (WHERE r.throttled_s > 0), max(r.power_w_max),"
             " max(r.inlet_c_max), max(r.outlet_c_max), min(r.flow_lpm_min),"
             " max(r.wafer_hotspot_c_max), max(r.humidity_pct_max),"
             /* The ten hottest nodes of the bucket, hottest first, ties by node_id; a node
              * without a hotspot reading is not among them. */
             " coalesce((SELECT array_agg(h.node_id ORDER BY h.c DESC, h.node_id) FROM (SELECT"
             " x.node_id, x.c FROM unnest(array_agg(r.node_id), array_agg(r.wafer_hotspot_c_max))"
             " AS x(node_id, c) WHERE x.c IS NOT NULL ORDER BY x.c DESC, x.node_id LIMIT 10) h),"
             " '{}'),"
             " coalesce((SELECT array_agg(h.c ORDER BY h.c DESC, h.node_id) FROM (SELECT"
             " x.node_id, x.c FROM unnest(array_agg(r.node_id), array_agg(r.wafer_hotspot_c_max))"
             " AS x(node_id, c) WHERE x.c IS NOT NULL ORDER BY x.c DESC, x.node_id LIMIT 10) h),"
             " '{}'),"
             /* The divisors of the means, and the energy behind J/token. */
             " sum(CASE WHEN r.inlet_c_sum IS NOT NULL THEN r.samples ELSE 0 END),"
             " sum(CASE WHEN r.outlet_c_sum IS NOT NULL THEN r.samples ELSE 0 END),"
             " sum(CASE WHEN r.flow_lpm_sum IS NOT NULL THEN r.samples ELSE 0 END),"
             " sum(CASE WHEN r.wafer_hotspot_c_sum IS NOT NULL THEN r.samples ELSE 0 END),"
             " sum(CASE WHEN r.utilization_sum IS NOT NULL THEN r.samples ELSE 0 END),"
             " sum(CASE WHEN r.tokens IS NOT NULL THEN r.energy_j END) FROM (");
    s_node_recomputed(q, src, unit, bound);
    s_cat(q, ") AS r LEFT JOIN nodes n ON n.node_id = r.node_id GROUP BY 1, 2, 3, 4");
}

/* Histograms compare as text: ww_hist has `=` but no ordering for EXCEPT, and its text is
 * canonical (the same histogram prints the same). */
#define S_LATENCY_TABLE                                                                            \
    "SELECT time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout,"      \
    " requests_rejected, prompt_tokens, output_tokens, windows, queue::text, ttft::text,"          \
    " tpot::text, e2e::text FROM latency_node_1h"
#define S_LATENCY_RECOMPUTED S_LATENCY_RECOMPUTED_OF("latency_windows")
/* The same from a table of latency_windows' columns. */
#define S_LATENCY_RECOMPUTED_OF(src)                                                               \
    "SELECT date_trunc('hour', w.time, 'UTC'), w.node_id, w.model, sum(w.duration_s),"             \
    " sum(w.requests_ok), sum(w.requests_error), sum(w.requests_timeout),"                         \
    " sum(w.requests_rejected), sum(w.prompt_tokens), sum(w.output_tokens), count(*),"             \
    " ww_merge(w.queue)::text, ww_merge(w.ttft)::text, ww_merge(w.tpot)::text,"                    \
    " ww_merge(w.e2e)::text FROM " src " w"                                                        \
    " WHERE w.time >= (SELECT start FROM ww_tier_state)"                                           \
    " AND w.time < (SELECT hours_done FROM ww_tier_state) GROUP BY 1, 2, 3"

/* One tier against its recomputation: the same number of rows (more than none), and no
 * row of either side missing from the other (EXCEPT ALL: duplicates count too). Fails
 * showing a few rows of each difference. Returns the tier's rows. */
static long long s_compare(h_db_t *db, const char *when, const char *what, const s_sql_t *table,
                           const s_sql_t *recomputed)
{
    s_sql_t q = {.n = 0};
    s_cat(&q,
          "WITH t AS (%s), r AS (%s) SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM r),"
          " (SELECT count(*) FROM (SELECT * FROM t EXCEPT ALL SELECT * FROM r) x)"
          " + (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM t) y)",
          table->s, recomputed->s);
    PGresult *res = h_query(db, q.s);
    long long nt = atoll(PQgetvalue(res, 0, 0)), nr = atoll(PQgetvalue(res, 0, 1));
    long long differ = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (nt == nr && differ == 0 && nt > 0) {
        return nt;
    }
    q.n = 0;
    s_cat(&q,
          "WITH t AS (%s), r AS (%s)"
          " (SELECT 'only in the tier:          ' || x::text FROM"
          " (SELECT * FROM t EXCEPT ALL SELECT * FROM r) x LIMIT 4) UNION ALL"
          " (SELECT 'only in the recomputation: ' || y::text FROM"
          " (SELECT * FROM r EXCEPT ALL SELECT * FROM t) y LIMIT 4)",
          table->s, recomputed->s);
    res = h_query(db, q.s);
    /* On stderr in full: cmocka cuts a long failure message. */
    fprintf(stderr, "%s: %s differs from its recomputation:\n", when, what);
    for (int i = 0; i < PQntuples(res); i++) {
        fprintf(stderr, "  %s\n", PQgetvalue(res, i, 0));
    }
    PQclear(res);
    fail_msg("%s: %s has %lld rows, its recomputation %lld, and %lld rows differ (above)", when,
             what, nt, nr, differ);
    return -1;
}

/* Every tier against its recomputation from the samples of src, in one snapshot (the
 * builder runs meanwhile), and nothing built at or after the progress of its tier. */
static void s_check_tiers_of(h_db_t *db, const char *src, const char *when)
{
    PQclear(h_query(db, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    long long above =
        h_query_ll(db, "SELECT (SELECT count(*) FROM node_rollup_1m WHERE time >= s.minutes_done)"
                       " + (SELECT count(*) FROM site_rollup_1m WHERE time >= s.minutes_done)"
                       " + (SELECT count(*) FROM node_rollup_1h WHERE time >= s.hours_done)"
                       " + (SELECT count(*) FROM site_rollup_1h WHERE time >= s.hours_done)"
                       " + (SELECT count(*) FROM latency_node_1h WHERE time >= s.hours_done)"
                       " FROM ww_tier_state s");
    if (above != 0) {
        fail_msg("%s: %lld tier rows at or after the builder's progress (minutes_done, "
                 "hours_done): built but not recorded as built",
                 when, above);
    }
    static const struct {
        const char *tier, *unit, *bound;
    } buckets[] = {{"1m", "minute", "minutes_done"}, {"1h", "hour", "hours_done"}};
    for (size_t k = 0; k < 2; k++) {
        s_sql_t t = {.n = 0}, r = {.n = 0};
        char what[32];
        s_node_table(&t, buckets[k].tier);
        s_node_recomputed(&r, src, buckets[k].unit, buckets[k].bound);
        snprintf(what, sizeof what, "node_rollup_%s", buckets[k].tier);
        s_compare(db, when, what, &t, &r);
        t.n = r.n = 0;
        s_cat(&t, "SELECT " S_SITE_COLUMNS " FROM site_rollup_%s", buckets[k].tier);
        s_site_recomputed(&r, src, buckets[k].unit, buckets[k].bound);
        snprintf(what, sizeof what, "site_rollup_%s", buckets[k].tier);
        s_compare(db, when, what, &t, &r);
    }
    s_sql_t t = {.n = 0}, r = {.n = 0};
    s_cat(&t, S_LATENCY_TABLE);
    s_cat(&r, S_LATENCY_RECOMPUTED_OF("ww_windows('-infinity', 'infinity')"));
    s_compare(db, when, "latency_node_1h", &t, &r);
    PQclear(h_query(db, "COMMIT"));
}

static void s_check_tiers(h_db_t *db, const char *when)
{
    s_check_tiers_of(db, "node_samples", when);
}

/* ---- the environment: a database three hours behind, a collector, a raw peer ---------- */

typedef struct {
    h_db_t db;
    int64_t t0; /* ns: the hour three hours before now, where the builder starts */
    pid_t collector;
    char log[300];
    int port; /* the collector's /metrics */
    h_peer_t p;
    bool peer;
    uint64_t epoch, seq;
} s_env_t;

static void s_exec(h_db_t *db, const char *sql)
{
    PQclear(h_query(db, sql));
}

/* Table `truth`, which a trigger fills with every row ever inserted into `table`: what
 * compaction and retention then move or drop stays there to compare with. */
static void s_truth_table(h_db_t *db, const char *truth, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE TABLE %s (LIKE %s)", truth, table);
    s_exec(db, sql);
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION %s_f() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
             " SET search_path = public AS"
             " $$BEGIN INSERT INTO %s SELECT NEW.*; RETURN NULL; END$$",
             truth, truth);
    s_exec(db, sql);
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER %s_t AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s_f()", truth,
             table, truth);
    s_exec(db, sql);
}

/* Puts every progress of the tier state at t (Unix seconds) and x->t0 there: the minutes and
 * hours from t to now are closed history for the builder to build. */
static void s_state_at(s_env_t *x, long long t)
{
    x->t0 = t * WW_NS_PER_S;
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE ww_tier_state SET start = to_timestamp(%lld), watermark = to_timestamp(%lld),"
             " minutes_done = to_timestamp(%lld), hours_done = to_timestamp(%lld),"
             " compacted_through = to_timestamp(%lld), truncated_through = to_timestamp(%lld),"
             " windows_start = to_timestamp(%lld), windows_dropped_through = to_timestamp(%lld)",
             t, t, t, t, t, t, t, t);
    s_exec(&x->db, sql);
}

/* A fresh database, migrated, whose tier state is put three hours back (s_state_at). */
static void s_setup(s_env_t *x, const char *tag)
{
    memset(x, 0, sizeof *x);
    h_db_create(&x->db, tag);
    h_secure(x->db.dir, AGENT, "tiers-*");
    ww_store_t *store = ww_store_new(x->db.conninfo);
    assert_non_null(store);
    assert_int_equal(ww_store_ensure(store, 1), 0);
    ww_store_destroy(&store);
    s_state_at(x, h_query_ll(&x->db, "SELECT extract(epoch FROM date_trunc('hour', now(), 'UTC')"
                                     " - interval '3 hours')::bigint"));
}

/* Starts a collector (log dir/NAME.log) with the tier builder on or off, running every
 * second with no grace and max_minutes per transaction, /metrics on a free port; opens
 * the raw peer on it when peer. */
static void s_collector_start(s_env_t *x, const char *name, bool tiers, const char *max_minutes,
                              bool peer)
{
    static const char *const vars[] = {"WW_COLLECTOR_TIERS_ENABLED", "WW_COLLECTOR_TIERS_INTERVAL",
                                       "WW_COLLECTOR_TIERS_GRACE", "WW_COLLECTOR_TIERS_MAX_MINUTES",
                                       "WW_COLLECTOR_METRICS_LISTEN"};
    const char *vals[] = {tiers ? "true" : "false", "1s", "0s", max_minutes, "127.0.0.1:0"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        setenv(vars[i], vals[i], 1);
    }
    /* As in production: the writer role, which reaches the tiers only through the SECURITY
     * DEFINER functions and ww_tier_dirty (90_grants.sql). */
    char endpoint[256], conninfo[320];
    snprintf(conninfo, sizeof conninfo, "%s options='-c role=waferwatch_writer'", x->db.conninfo);
    x->collector = h_collector_spawn(x->db.dir, "tcp://127.0.0.1:*", conninfo, name, endpoint,
                                     sizeof endpoint);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
    snprintf(x->log, sizeof x->log, "%s/%s.log", x->db.dir, name);
    x->port = h_metrics_port(x->collector, x->log);
    x->peer = peer;
    if (peer) {
        h_peer_open(&x->p, endpoint, x->db.dir, "agent", NULL, 15000);
        x->epoch++;
        x->seq = 0;
    }
}

static void s_collector_stop(s_env_t *x)
{
    if (x->peer) {
        h_peer_close(&x->p);
        x->peer = false;
    }
    int rc = h_stop(x->collector, 10000);
    if (rc != 0) {
        char *text = h_read_file(x->log);
        fprintf(stderr, "%s\n", text ? text : "(no log)");
        fail_msg("collector exited %d (its log above)", rc);
    }
}

/* Sends env (agent, version filled in) and expects its Ack (seq 0 for a Hello); a Pending
 * is skipped, anything else fails. */
static void s_send_acked(s_env_t *x, ww_envelope_t *env, uint64_t seq)
{
    env->wire_version = WW_WIRE_VERSION;
    env->agent_id = (char *)AGENT;
    env->epoch = x->epoch;
    env->seq = seq;
    long n = ww_wire_encode(env, &x->p.buf, &x->p.cap);
    assert_true(n > 0);
    assert_int_equal(zmq_send(x->p.sock, x->p.buf, (size_t)n, 0), n);
    for (;;) {
        ww_envelope_t *e = h_peer_recv(&x->p);
        if (!e) {
            fail_msg("no reply to seq %llu within 15 s", (unsigned long long)seq);
        }
        if (e->body_case == WAFERWATCH__V1__ENVELOPE__BODY_PENDING) {
            ww_wire_free(&e);
            continue;
        }
        if (e->body_case != WAFERWATCH__V1__ENVELOPE__BODY_ACK || e->ack->epoch != x->epoch ||
            e->ack->seq != seq) {
            fail_msg("expected the Ack of seq %llu, got body %d (%s)", (unsigned long long)seq,
                     (int)e->body_case,
                     e->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK ? e->nack->reason : "");
        }
        ww_wire_free(&e);
        return;
    }
}

/* A Hello of one node with its labels and the agent's sampling interval. */
static void s_hello(s_env_t *x, const char *node, const char *site, const char *hall,
                    const char *phase, double rated_kw, uint32_t interval_ms)
{
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ni.node_id = (char *)node;
    ni.site = (char *)site;
    ni.hall = (char *)hall;
    ni.phase = (char *)phase;
    ni.rated_kw = rated_kw;
    ww_node_info_t *nis[] = {&ni};
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = nis;
    h.n_nodes = 1;
    h.source = (char *)"test";
    h.interval_ms = interval_ms;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send_acked(x, &env, 0);
}

/* The readings of node's sample at t, drawn from (t, node): multiples of 0.25 and small
 * integers, so that every sum of them is exact in any order; varied, so that minima,
 * maxima, the last sample and throttling differ between buckets. humidity: measured on
 * about four samples in five (NULL otherwise). */
static void s_fill(ww_node_sample_t *s, const char *node, int64_t t_ns, bool humidity)
{
    uint64_t seed = (uint64_t)(t_ns / (WW_NS_PER_S / 2)) * 31 + (uint64_t)node[strlen(node) - 1];
    uint64_t r = ww_test_rng_next(&seed);
    h_sample_init(s, node, t_ns, 500 + (float)(r % 4001) * 0.25f);
    s->inlet_c = 18 + (float)((r >> 12) % 40) * 0.25f;
    s->outlet_c = 28 + (float)((r >> 18) % 40) * 0.25f;
    s->flow_lpm = 30 + (float)((r >> 24) % 64) * 0.25f;
    s->wafer_hotspot_c = 50 + (float)((r >> 30) % 160) * 0.25f;
    s->utilization = (float)((r >> 38) % 5) * 0.25f;
    s->tokens_per_s = (float)((r >> 41) % 2000) * 0.5f;
    s->requests_queued = (uint32_t)((r >> 52) % 7);
    s->requests_in_flight = (uint32_t)((r >> 55) % 9);
    s->requests_completed = (uint32_t)((r >> 59) % 5);
    s->throttled = (r >> 62) == 3;
    s->throttle_factor = s->throttled ? 0.75f : 1.0f;
    if (humidity && r % 5 != 0) {
        s->humidity_pct_present_case =
            WAFERWATCH__V1__NODE_SAMPLE__HUMIDITY_PCT_PRESENT_HUMIDITY_PCT;
        s->humidity_pct = 30 + (float)((r >> 20) % 40);
    }
    if (strcmp(node, NODE_C) == 0) {
        /* C measures power and its hotspot, nothing of the coolant, tokens or throttling (a
         * host source): those are NULL in every tier built from it. */
        s->not_measured = WW_FIELD_BIT(4) | WW_FIELD_BIT(5) | WW_FIELD_BIT(6) | WW_FIELD_BIT(9) |
                          WW_FIELD_BIT(10) | WW_FIELD_BIT(12) | WW_FIELD_BIT(13);
        s->inlet_c = s->outlet_c = s->flow_lpm = s->tokens_per_s = s->throttle_factor = 0;
        s->requests_queued = 0;
        s->throttled = false;
    }
}

/* A latency window of one minute with a few requests: counters and histograms drawn from
 * salt, values powers of two (exact sums); tpot holds one value fewer (it needs two output
 * tokens). Built on the caller's stack. */
typedef struct {
    Waferwatch__V1__LatencyWindow w;
    Waferwatch__V1__Histogram pb[4];
    int32_t idx[4][16];
    uint64_t cnt[4][16];
} s_win_t;

static void s_win_init(s_win_t *sw, const char *node, const char *model, int64_t start_ns,
                       unsigned salt)
{
    static const double v[] = {0.25, 0.5, 1, 2, 0.125, 4};
    size_t n = 1 + salt % 6;
    Waferwatch__V1__LatencyWindow w0 = WAFERWATCH__V1__LATENCY_WINDOW__INIT;
    sw->w = w0;
    sw->w.node_id = (char *)node;
    sw->w.model = (char *)model;
    sw->w.start_ns = start_ns;
    sw->w.duration_ns = MIN_NS;
    sw->w.requests_ok = n;
    sw->w.requests_timeout = salt % 3;
    sw->w.requests_rejected = salt % 2;
    sw->w.prompt_tokens = 100 * n;
    sw->w.output_tokens = 10 * n + salt;
    for (int k = 0; k < 4; k++) {
        ww_hist_t h;
        ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
        for (size_t i = 0; i < (k == 2 ? n - 1 : n); i++) {
            assert_int_equal(ww_hist_record(&h, v[(i + salt + (size_t)k) % 6]), 0);
        }
        assert_int_equal(ww_hist_to_pb(&h, &sw->pb[k], sw->idx[k], sw->cnt[k], 16), 0);
        ww_hist_fini(&h);
    }
    sw->w.queue = &sw->pb[0];
    sw->w.ttft = &sw->pb[1];
    sw->w.tpot = &sw->pb[2];
    sw->w.e2e = &sw->pb[3];
}

/* One batch: samples of node every step_ns in [from, to) (none when node is NULL), plus
 * the windows given; sent and acked. */
static void s_batch(s_env_t *x, const char *node, int64_t from, int64_t to, int64_t step_ns,
                    bool humidity, Waferwatch__V1__LatencyWindow **windows, size_t n_windows)
{
    size_t n = node ? (size_t)((to - from + step_ns - 1) / step_ns) : 0;
    ww_node_sample_t *s = calloc(n + 1, sizeof *s);
    ww_node_sample_t **sp = calloc(n + 1, sizeof *sp);
    assert_true(s && sp);
    for (size_t i = 0; i < n; i++) {
        s_fill(&s[i], node, from + (int64_t)i * step_ns, humidity);
        sp[i] = &s[i];
    }
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.samples = sp;
    b.n_samples = n;
    b.latency_windows = windows;
    b.n_latency_windows = n_windows;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    s_send_acked(x, &env, ++x->seq);
    free(sp);
    free(s);
}

/* Polls `sql` (one number) every step_ms until it is non-zero; fails naming `what` after
 * WAIT_MS, with the collector's log. */
static void s_wait_sql(s_env_t *x, const char *sql, int step_ms, const char *what)
{
    for (int waited = 0; waited <= WAIT_MS; waited += step_ms) {
        if (h_query_ll(&x->db, sql) > 0) {
            return;
        }
        h_sleep_ms(step_ms);
    }
    char *text = h_read_file(x->log);
    PGresult *r = h_query(&x->db, "SELECT watermark, minutes_done, hours_done, now(),"
                                  " (SELECT count(*) FROM ww_tier_dirty) FROM ww_tier_state");
    fprintf(stderr, "collector log %s:\n%s\n", x->log, text ? text : "(none)");
    fail_msg("not within %d ms: %s (watermark %s, minutes_done %s, hours_done %s, now %s, "
             "%s dirty; collector log above)",
             WAIT_MS, what, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
             PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4));
}

/* Waits until the builder has built every closed minute (grace 0: up to the last minute)
 * and the hours up to hours_from_t0 after t0. */
static void s_wait_caught_up(s_env_t *x, int hours_from_t0)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (minutes_done >= date_trunc('minute', now(), 'UTC') - interval '1 minute'"
             " AND hours_done >= to_timestamp(%lld))::int FROM ww_tier_state",
             (long long)((x->t0 + hours_from_t0 * HOUR_NS) / WW_NS_PER_S));
    s_wait_sql(x, sql, 100, "the tier builder catches up");
}

/* The value of one series of the collector's /metrics ("name" or "name{label=\"v\"}"),
 * -1 when absent. */
static double s_metric(const s_env_t *x, const char *series)
{
    return h_metrics_get(x->port, series);
}

#define RUNS_OK "waferwatch_collector_tier_runs_total{result=\"ok\"}"
#define RUNS_ERROR "waferwatch_collector_tier_runs_total{result=\"error\"}"

/* The panel functions (45_functions_panels.sql) over a range read from the hour tier give the
 * same rows wherever hours_done stands in it: the hours below it from the hour tables, the
 * minutes from it on from the minute tables (each exactly once). Averages are compared to 6
 * decimals (their sums are added in another order); power and tokens/s, means of means,
 * are not compared. Run with the builder stopped: it moves hours_done back. */
static void s_check_panels_across_hours_done(s_env_t *x)
{
    static const struct {
        const char *head, *tail; /* around the range's arguments */
    } panels[] = {
        {"SELECT time, site, hall, phase, nodes, rated_mw, inlet_max_c, outlet_max_c,"
         " flow_min_lpm, hotspot_max_c, throttled_nodes, requests_completed, samples,"
         " humidity_samples, round(inlet_avg_c::numeric, 6) AS inlet,"
         " round(outlet_avg_c::numeric, 6) AS outlet, round(hotspot_avg_c::numeric, 6) AS hot"
         " FROM ww_site_series(",
         ")"},
        {"SELECT time, node_id, power_max_w, hotspot_max_c, flow_min_lpm, throttle_factor_min,"
         " round(inlet_c::numeric, 6) AS inlet, round(outlet_c::numeric, 6) AS outlet,"
         " round(throttled_share::numeric, 6) AS throttled FROM ww_node_series('{" NODE_A "," NODE_B
         "," NODE_C "}', ",
         ")"},
        {"SELECT l::text FROM ww_latency_series(", ") l"},
        {"SELECT l::text FROM ww_node_latency_series('{" NODE_A "," NODE_B "}', ", ") l"},
        {"SELECT node_id, site, rack, phase, hotspot_max_c, outlet_max_c, flow_min_lpm,"
         " round(throttled_share::numeric, 6) AS throttled FROM ww_hottest_nodes(",
         ", ARRAY(SELECT DISTINCT site FROM site_rollup_1m),"
         " ARRAY(SELECT DISTINCT phase FROM site_rollup_1m))"},
    };
    char range[160], sql[4096];
    long long t0 = x->t0 / WW_NS_PER_S;
    snprintf(range, sizeof range, "to_timestamp(%lld), to_timestamp(%lld), interval '1 hour'",
             t0 - 3600, t0 + 4 * 3600);
    static const int hours_done[] = {3, 1, 0}; /* after t0; the first is the built state */
    for (size_t k = 0; k < sizeof panels / sizeof panels[0]; k++) {
        char query[1024];
        snprintf(query, sizeof query, "%s%s%s", panels[k].head, range, panels[k].tail);
        for (size_t h = 0; h < sizeof hours_done / sizeof hours_done[0]; h++) {
            long long at = t0 + hours_done[h] * 3600LL;
            snprintf(sql, sizeof sql,
                     "UPDATE ww_tier_state SET hours_done = to_timestamp(%lld),"
                     " compacted_through = least(compacted_through, to_timestamp(%lld)),"
                     " truncated_through = least(truncated_through, to_timestamp(%lld))",
                     at, at, at);
            s_exec(&x->db, sql);
            if (h == 0) {
                snprintf(sql, sizeof sql, "CREATE TEMP TABLE panel_%zu AS %s", k, query);
                s_exec(&x->db, sql);
                snprintf(sql, sizeof sql, "SELECT count(*) FROM panel_%zu", k);
                if (h_query_ll(&x->db, sql) == 0) {
                    fail_msg("panel %zu has no rows over the test's hours: %s", k, query);
                }
                continue;
            }
            snprintf(sql, sizeof sql,
                     "SELECT (SELECT count(*) FROM (SELECT * FROM panel_%zu EXCEPT ALL %s) a)"
                     " + (SELECT count(*) FROM (%s EXCEPT ALL SELECT * FROM panel_%zu) b)",
                     k, query, query, k);
            long long differ = h_query_ll(&x->db, sql);
            if (differ != 0) {
                fail_msg("%s\n with hours_done at t0 + %d h: %lld rows differ from hours_done "
                         "at t0 + 3 h",
                         query, hours_done[h], differ);
            }
        }
    }
}

/* ---- 1. forward, then late ------------------------------------------------------------- */

static void test_tiers_equal_recomputation_after_late_data(void **state)
{
    (void)state;
    s_env_t x;
    s_setup(&x, "tiers");
    const int64_t t0 = x.t0;

    /* On time, no builder: A's two hours every 5 s (site s1), C's five minutes without a
     * Hello, A's windows every 10 minutes; B (site s2, a 5 s interval) says Hello only. */
    s_collector_start(&x, "ingest", false, "10", true);
    s_hello(&x, NODE_A, "s1", "h1", "p1", 23, 1000);
    s_hello(&x, NODE_B, "s2", "h2", "p2", 17.5, 5000);
    s_batch(&x, NODE_A, t0, t0 + HOUR_NS, 5 * WW_NS_PER_S, true, NULL, 0);
    s_batch(&x, NODE_A, t0 + HOUR_NS, t0 + 2 * HOUR_NS, 5 * WW_NS_PER_S, true, NULL, 0);
    s_batch(&x, NODE_C, t0 + 90 * MIN_NS, t0 + 95 * MIN_NS, 5 * WW_NS_PER_S, true, NULL, 0);
    s_win_t ontime[12];
    Waferwatch__V1__LatencyWindow *wp[12];
    for (unsigned i = 0; i < 12; i++) {
        s_win_init(&ontime[i], NODE_A, i % 3 == 2 ? "m2" : "m1", t0 + i * 10 * MIN_NS, i);
        wp[i] = &ontime[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, wp, 12);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ww_tier_dirty"), 0);
    s_collector_stop(&x);

    /* The builder, three hours behind, builds the closed history forward. */
    s_collector_start(&x, "tiers", true, "10", true);
    s_wait_caught_up(&x, 3);
    s_check_tiers(&x.db, "after the forward build");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ww_tier_dirty"), 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_rollup_1m"), 120 + 5);

    /* Late: B's first samples (1 h 05), A's between A's (a minute's new last sample at
     * :57.5, the last of each hour), C's in an hour without data, windows of closed hours
     * (one the second part of a stored window: merged by the collector). */
    s_batch(&x, NODE_B, t0 + 10 * MIN_NS, t0 + 75 * MIN_NS, 5 * WW_NS_PER_S, false, NULL, 0);
    static const int64_t extra_ms[] = {5 * 60000 + 2500,   5 * 60000 + 27500, 5 * 60000 + 57500,
                                       59 * 60000 + 57500, 61 * 60000 + 500,  119 * 60000 + 59500};
    for (size_t i = 0; i < sizeof extra_ms / sizeof extra_ms[0]; i++) {
        int64_t t = t0 + extra_ms[i] * 1000000;
        s_batch(&x, NODE_A, t, t + 1, 1, true, NULL, 0);
    }
    s_batch(&x, NODE_C, t0 + 150 * MIN_NS, t0 + 152 * MIN_NS, 5 * WW_NS_PER_S, true, NULL, 0);
    /* Before the tiers' start (ww_tier_state.start: data older than the tiers): stored,
     * recorded late, and left out of the tiers, so that its hour is never built from that
     * minute alone. */
    s_batch(&x, NODE_A, t0 - 30 * MIN_NS, t0 - 29 * MIN_NS, 5 * WW_NS_PER_S, true, NULL, 0);
    s_win_t late[5];
    s_win_init(&late[0], NODE_A, "m1", t0 + 25 * MIN_NS, 7);
    s_win_init(&late[1], NODE_A, "m1", t0 + 10 * MIN_NS, 4); /* ontime[1]'s second part */
    s_win_init(&late[2], NODE_B, "m2", t0 + 70 * MIN_NS, 5);
    s_win_init(&late[3], NODE_B, "m1", t0 + 130 * MIN_NS, 3);
    s_win_init(&late[4], NODE_B, "m1", t0 + 131 * MIN_NS, 2);
    for (int i = 0; i < 5; i++) {
        wp[i] = &late[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, wp, 5);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_windows WHERE parts = 2"), 1);

    s_wait_sql(&x, "SELECT (count(*) = 0)::int FROM ww_tier_dirty", 100,
               "every late bucket is rebuilt (ww_tier_dirty empty)");
    double runs = s_metric(&x, RUNS_OK);
    for (int waited = 0; s_metric(&x, RUNS_OK) <= runs; waited += 100) {
        if (waited > WAIT_MS) {
            fail_msg("no tier builder run within %d ms after the late buckets", WAIT_MS);
        }
        h_sleep_ms(100);
    }
    s_check_tiers(&x.db, "after the late backlog");
    assert_int_equal(h_query_ll(&x.db, "SELECT (SELECT count(*) FROM node_rollup_1m WHERE time <"
                                       " s.start) + (SELECT count(*) FROM node_rollup_1h WHERE"
                                       " time < s.start) FROM ww_tier_state s"),
                     0);

    /* The late data is in the tiers (not only equal: there). */
    assert_int_equal(h_query_ll(&x.db,
                                "SELECT count(*) FROM node_rollup_1m WHERE node_id = '" NODE_B
                                "' AND samples = 12"),
                     65);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM site_rollup_1h WHERE site = 's2'"), 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM site_rollup_1h WHERE site = ''"), 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_node_1h"
                                       " WHERE node_id = '" NODE_B "'"),
                     2);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT samples * 1000 + extract(epoch FROM last_time - time) * 10 FROM node_rollup_1m"
             " WHERE node_id = '" NODE_A "' AND time = to_timestamp(%lld)",
             (long long)((t0 + 5 * MIN_NS) / WW_NS_PER_S));
    assert_int_equal(h_query_ll(&x.db, sql), 15 * 1000 + 575); /* 12 + 3 samples, last :57.5 */

    /* /metrics: what was built, recorded late and rebuilt (at least the distinct late
     * buckets: B's 65 minutes, A's 4, C's 2, and 3 node-hours of windows); no failed run. */
    if (s_metric(&x, "waferwatch_collector_tier_buckets_built_total{bucket=\"minute\"}") < 120 ||
        s_metric(&x, "waferwatch_collector_tier_buckets_built_total{bucket=\"hour\"}") < 3 ||
        s_metric(&x, "waferwatch_collector_tier_late_buckets_recorded_total") < 65 + 4 + 2 + 3 ||
        s_metric(&x, "waferwatch_collector_tier_late_buckets_rebuilt_total") < 65 + 4 + 2 + 3 ||
        s_metric(&x, "waferwatch_collector_tier_builder") != 1 || s_metric(&x, RUNS_ERROR) != 0) {
        char url[64];
        long code;
        snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", x.port);
        char *body = h_http_get(url, &code);
        fprintf(stderr, "%s", body);
        fail_msg("tier metrics do not show the builds and late buckets (/metrics above)");
    }
    s_collector_stop(&x);
    s_check_panels_across_hours_done(&x);
    h_db_drop(&x.db);
}

/* ---- 2. a crash in the middle of a build ------------------------------------------------- */

static void test_tiers_crash_mid_build(void **state)
{
    (void)state;
    s_env_t x;
    s_setup(&x, "tierscrash");
    /* Three hours of two nodes every 10 s and a window every 20 minutes, written straight
     * into the raw tables (the history an upgraded database brings). */
    char sql[2048];
    s_exec(&x.db, "INSERT INTO nodes (node_id, agent_id, site, hall, phase, rated_kw, interval_ms)"
                  " VALUES ('" NODE_A "', '" AGENT "', 's1', 'h1', 'p1', 23, 1000),"
                  " ('" NODE_B "', '" AGENT "', 's2', 'h2', 'p2', 17.5, 5000)");
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples (time, node_id, power_w, inlet_c, outlet_c, flow_lpm,"
             " wafer_hotspot_c, utilization, tokens_per_s, requests_queued, requests_in_flight,"
             " requests_completed, throttled, throttle_factor, humidity_pct)"
             " SELECT to_timestamp(%lld) + g * interval '10 s', n, 500 + (g %% 4001) * 0.25,"
             " 18 + (g %% 37) * 0.25, 28 + (g %% 41) * 0.25, 30 + (g %% 7) * 0.25,"
             " 50 + (g * 7 %% 160) * 0.25, (g %% 5) * 0.25, (g * 13 %% 2000) * 0.5, g %% 7,"
             " g %% 9, g %% 5, g %% 11 = 0, CASE WHEN g %% 11 = 0 THEN 0.75 ELSE 1 END,"
             " CASE WHEN g %% 5 = 0 THEN NULL ELSE 30 + g %% 40 END"
             " FROM generate_series(0, 1079) g, (VALUES ('" NODE_A "'), ('" NODE_B "')) v(n)",
             (long long)(x.t0 / WW_NS_PER_S));
    s_exec(&x.db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_windows (time, node_id, model, duration_s, requests_ok,"
             " requests_error, requests_timeout, requests_rejected, prompt_tokens, output_tokens,"
             " queue, ttft, tpot, e2e)"
             " SELECT to_timestamp(%lld) + g * interval '20 min', '" NODE_A "', 'm1', 60, g, 0,"
             " g %% 2, 0, 100 * g, 10 * g, ww_hist_make(6, g, 0, NULL, NULL, g, 0, 0, 0, '{}'),"
             " ww_hist_make(6, g, 0, NULL, NULL, g, 0, 0, 0, '{}'),"
             " ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}'),"
             " ww_hist_make(6, g, 0, NULL, NULL, g, 0, 0, 0, '{}')"
             " FROM generate_series(0, 8) g",
             (long long)(x.t0 / WW_NS_PER_S));
    s_exec(&x.db, sql);

    /* One minute per transaction: ~180 transactions to catch up. Once past the first hour,
     * hold the state row: the builder's next step waits for it inside its transaction, and
     * the collector is killed there. */
    s_collector_start(&x, "crashing", true, "1", false);
    snprintf(sql, sizeof sql, "SELECT (minutes_done >= to_timestamp(%lld))::int FROM ww_tier_state",
             (long long)((x.t0 + 61 * MIN_NS) / WW_NS_PER_S));
    s_wait_sql(&x, sql, 5, "the builder passes the first hour");
    PGconn *hold = PQconnectdb(x.db.conninfo);
    assert_int_equal(PQstatus(hold), CONNECTION_OK);
    PGresult *r = PQexec(hold, "BEGIN; SELECT (minutes_done < date_trunc('minute', now(), 'UTC'))"
                               "::int FROM ww_tier_state FOR UPDATE");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (atoi(PQgetvalue(r, 0, 0)) != 1) {
        fail_msg("the builder caught up before it could be stopped in the middle of a build");
    }
    PQclear(r);
    s_wait_sql(&x,
               "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
               " AND wait_event_type = 'Lock' AND query LIKE '%ww_tier_%'",
               5, "the builder waits for the held state row");
    long long done = h_query_ll(&x.db, "SELECT extract(epoch FROM minutes_done)::bigint"
                                       " FROM ww_tier_state");
    assert_int_equal(kill(x.collector, SIGKILL), 0);
    assert_int_equal(h_wait(x.collector, 10000), 128 + SIGKILL);
    s_check_tiers(&x.db, "after the SIGKILL");
    assert_int_equal(h_query_ll(&x.db, "SELECT extract(epoch FROM minutes_done)::bigint"
                                       " FROM ww_tier_state"),
                     done);
    assert_true(h_query_ll(&x.db, "SELECT count(*) FROM node_rollup_1h") >= 2);
    PQclear(PQexec(hold, "ROLLBACK"));
    PQfinish(hold);

    /* A new collector takes over (once the dead one's session is gone) and finishes. */
    s_collector_start(&x, "restarted", true, "1", false);
    s_wait_caught_up(&x, 3);
    s_check_tiers(&x.db, "after the restart");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_rollup_1m"), 2 * 180);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_rollup_1h"), 2 * 3);
    s_collector_stop(&x);
    h_db_drop(&x.db);
}

/* ---- 2b. two writes of one late bucket, the builder between them ------------------------ */

/* Runs sql on c, failing with its error. */
static void s_on(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
}

/* One late write as ww_store makes it, as the writer role, left open: the tier lock and
 * the watermark, a sample of node A at t (Unix s), its (node, minute) by WW_LATE_SQL. */
static PGconn *s_late_write(h_db_t *db, long long t, double power)
{
    PGconn *c = PQconnectdb(db->conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    s_on(c, "SET ROLE waferwatch_writer");
    s_on(c, "BEGIN");
    s_on(c, WW_LATE_WATERMARK_SQL);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples VALUES (to_timestamp(%lld), '" NODE_A "', %g, 20, 30, 40,"
             " 50, 0.5, 100, 1, 2, 3, false, 1, NULL)",
             t, power);
    s_on(c, sql);
    char secs[32];
    snprintf(secs, sizeof secs, "{%lld}", t / 60 * 60);
    const char *p[3] = {"{s}", "{" NODE_A "}", secs};
    PGresult *r = PQexecParams(c, WW_LATE_SQL, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("WW_LATE_SQL as the writer: %s", PQerrorMessage(c));
    }
    PQclear(r);
    return c;
}

/* A late bucket recorded by one write, then by a second write still open when the builder
 * takes the entry: the builder must see the second write's sample (it waits for it: the
 * second write's record locks the entry), or the bucket is rebuilt without it and nothing
 * records it again. */
static void test_late_bucket_written_twice_during_a_build(void **state)
{
    (void)state;
    s_env_t x;
    s_setup(&x, "tierlate2");
    long long t0 = x.t0 / WW_NS_PER_S;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples SELECT to_timestamp(%lld) + g * interval '10 s', '" NODE_A
             "', 100 + g, 20, 30, 40, 50, 0.5, 100, 1, 2, 3, false, 1, NULL"
             " FROM generate_series(0, 359) g",
             t0);
    s_exec(&x.db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_windows (time, node_id, model, duration_s, requests_ok,"
             " requests_error, requests_timeout, requests_rejected, prompt_tokens, output_tokens,"
             " queue, ttft, tpot, e2e) SELECT to_timestamp(%lld), '" NODE_A "', 'm1', 60, 1, 0,"
             " 0, 0, 100, 10, h, h, h, h"
             " FROM (SELECT ww_hist_make(6, 1, 0, NULL, NULL, 1, 0, 0, 0, '{}') AS h) x",
             t0);
    s_exec(&x.db, sql);
    s_exec(&x.db, "UPDATE ww_tier_state SET watermark = date_trunc('minute', now(), 'UTC')");
    s_exec(&x.db, "SELECT * FROM ww_tier_build(100000, 100000)");
    s_check_tiers(&x.db, "built");
    PGconn *w1 = s_late_write(&x.db, t0 + 125, 1000.5);
    s_on(w1, "COMMIT");
    PGconn *w2 = s_late_write(&x.db, t0 + 127, 2000.5);
    PGconn *b = PQconnectdb(x.db.conninfo);
    assert_int_equal(PQstatus(b), CONNECTION_OK);
    assert_int_equal(PQsendQuery(b, "SELECT * FROM ww_tier_build(100000, 100000)"), 1);
    h_sleep_ms(500);
    s_on(w2, "COMMIT");
    PGresult *r;
    while ((r = PQgetResult(b))) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fail_msg("the build failed: %s", PQerrorMessage(b));
        }
        PQclear(r);
    }
    PQfinish(b);
    PQfinish(w1);
    PQfinish(w2);
    /* Whatever entry is left is rebuilt now; then every tier holds both late samples. */
    s_exec(&x.db, "SELECT * FROM ww_tier_build(100000, 100000)");
    s_check_tiers(&x.db, "after two writes of one late bucket around a build");
    h_db_drop(&x.db);
}

/* ---- 3. compaction ---------------------------------------------------------------------- */

/* Every sample ever written (a row trigger on node_samples copies each into compact_truth,
 * in the writing transaction), against what ww_samples() reads back over all time: the same
 * rows, compared as text (-0 is not 0 there, NaN is NaN), duplicates counted. */
static void s_check_samples(s_env_t *x, const char *when)
{
    s_sql_t q = {.n = 0};
    s_cat(&q, "WITH a AS (SELECT s::text AS r FROM ww_samples('-infinity', 'infinity') s),"
              " t AS (SELECT s::text AS r FROM compact_truth s)"
              " SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM a),"
              " (SELECT count(*) FROM (SELECT r FROM a EXCEPT ALL SELECT r FROM t) x)"
              " + (SELECT count(*) FROM (SELECT r FROM t EXCEPT ALL SELECT r FROM a) y)");
    PGresult *r = h_query(&x->db, q.s);
    long long nt = atoll(PQgetvalue(r, 0, 0)), na = atoll(PQgetvalue(r, 0, 1));
    long long differ = atoll(PQgetvalue(r, 0, 2));
    PQclear(r);
    if (nt == na && differ == 0 && nt > 0) {
        return;
    }
    fail_msg("%s: %lld samples written, ww_samples() gives %lld, %lld differ", when, nt, na,
             differ);
}

/* Every window ever written (window_truth_c, by a trigger) against what ww_windows() reads
 * back over all time, both merged per key (node, start, model) as the ingest path merges a
 * second part of a window, histograms as text (canonical: equal histograms, equal text). */
#define S_WINDOWS_BY_KEY(src)                                                                      \
    "SELECT w.node_id, w.time, w.model, sum(w.duration_s), sum(w.requests_ok),"                    \
    " sum(w.requests_error), sum(w.requests_timeout), sum(w.requests_rejected),"                   \
    " sum(w.prompt_tokens), sum(w.output_tokens), sum(w.parts), ww_merge(w.queue)::text,"          \
    " ww_merge(w.ttft)::text, ww_merge(w.tpot)::text, ww_merge(w.e2e)::text FROM " src " w"        \
    " GROUP BY 1, 2, 3"

static void s_check_windows(s_env_t *x, const char *when)
{
    s_sql_t t = {.n = 0}, r = {.n = 0};
    s_cat(&t, S_WINDOWS_BY_KEY("ww_windows('-infinity', 'infinity')"));
    s_cat(&r, S_WINDOWS_BY_KEY("window_truth_c"));
    s_compare(&x->db, when, "ww_windows", &t, &r);
}

/* Raw samples are rewritten as one block per node-hour and each wholly compacted day's raw
 * partition is emptied, and nothing is lost or changed on the way: ww_samples() gives back
 * every sample ever written, bit for bit (NaN, -0.0, a denormal, a NULL humidity, two
 * samples of one instant), and every tier still equals its recomputation from them:
 *  - a collector killed, and its session terminated (the transaction aborted as in a
 *    crash), while a compaction waits inside its transaction leaves nothing half done;
 *  - a restarted collector compacts yesterday whole and empties its partition (TRUNCATE:
 *    its size is 0), the samples before the tiers' start stay raw;
 *  - late samples (into the emptied day, a new node there, today's compacted hours, one at
 *    an instant already stored) go into their blocks, rebuild their tiers, and leave no
 *    raw row behind in the emptied day.
 * Latency windows (0021) go the same way, in one block per node-hour beside the samples'
 * (a node with windows and no samples too), bit for bit through ww_windows(); a late second
 * part of a compacted window is merged into it, a late window of a new node gets its block,
 * and latency_node_1h stays their recomputation. */
static void test_compaction_keeps_every_sample(void **state)
{
    (void)state;
    s_env_t x;
    s_setup(&x, "compact");
    long long y = h_query_ll(&x.db, "SELECT extract(epoch FROM date_trunc('day', now(), 'UTC')"
                                    " - interval '1 day')::bigint");
    s_state_at(&x, y);
    char sql[1024];
    s_exec(&x.db, "SELECT ww_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 2, 4)");
    s_truth_table(&x.db, "compact_truth", "node_samples");
    s_truth_table(&x.db, "window_truth_c", "latency_windows");

    /* Everything on time first, no builder. */
    s_collector_start(&x, "ingest", false, "1440", true);
    s_hello(&x, NODE_A, "s1", "h1", "p1", 23, 10000);
    s_hello(&x, NODE_B, "s2", "h2", "p2", 17.5, 10000);
    /* From half an hour before the tiers' start (stays raw) to two minutes ago, every 10 s:
     * A and C (no Hello) with humidity, B without; windows of A in both days. */
    int64_t now =
        (int64_t)h_query_ll(&x.db, "SELECT extract(epoch FROM now())::bigint") * WW_NS_PER_S;
    int64_t from = x.t0 - 30 * MIN_NS, to = now - 2 * MIN_NS;
    for (int64_t h = from; h < to; h += HOUR_NS) {
        int64_t e = h + HOUR_NS < to ? h + HOUR_NS : to;
        s_batch(&x, NODE_A, h, e, 10 * WW_NS_PER_S, true, NULL, 0);
        s_batch(&x, NODE_B, h, e, 10 * WW_NS_PER_S, false, NULL, 0);
        s_batch(&x, NODE_C, h + 5 * WW_NS_PER_S, e, 10 * WW_NS_PER_S, true, NULL, 0);
    }
    /* E says Hello and falls silent yesterday: all its samples end up in blocks. */
    s_hello(&x, "tiers-e", "s1", "h1", "p1", 23, 10000);
    s_batch(&x, "tiers-e", x.t0 + 2 * HOUR_NS, x.t0 + 3 * HOUR_NS, 10 * WW_NS_PER_S, true, NULL, 0);
    /* Windows: A's in both days, B's of a second model, one of a node without samples, one
     * before the tiers' start (stays raw). */
    enum { N_WIN = 11 };
    s_win_t win[N_WIN];
    Waferwatch__V1__LatencyWindow *wp[N_WIN];
    for (unsigned i = 0; i < N_WIN; i++) {
        const char *node = i < 4 ? NODE_A : i < 9 ? NODE_B : i == 9 ? "tiers-w" : NODE_A;
        int64_t t = i < 4    ? x.t0 + (int64_t)i * 7 * HOUR_NS
                    : i < 9  ? x.t0 + (int64_t)(i - 4) * 5 * HOUR_NS + 30 * MIN_NS
                    : i == 9 ? x.t0 + 6 * HOUR_NS
                             : x.t0 - 20 * MIN_NS;
        s_win_init(&win[i], node, i >= 4 && i < 9 ? "m2" : "m1", t, i);
        wp[i] = &win[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, wp, N_WIN);
    /* Values no grid holds, stored as they are: by SQL, as another producer could. */
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples VALUES"
             " (to_timestamp(%lld), '" NODE_A "', 'NaN', '-0', 1e-40, 'Infinity', 0.1234567,"
             " 0.5, '-Infinity', 0, 2147483647, 0, true, 1, NULL),"
             " (to_timestamp(%lld), '" NODE_A "', 1, 2, 3, 4, 5, 0.5, 7, 8, 9, 10, false, 0.75,"
             " 99.5)",
             y + 3 * 3600 + 10, y + 3 * 3600 + 10);
    s_exec(&x.db, sql);
    s_collector_stop(&x);

    /* The builder builds it all, then its compaction's first insert waits for this lock,
     * inside its transaction. */
    PGconn *hold = PQconnectdb(x.db.conninfo);
    assert_int_equal(PQstatus(hold), CONNECTION_OK);
    PQclear(PQexec(hold, "BEGIN; LOCK TABLE node_samples_compact IN SHARE MODE"));
    setenv("WW_COLLECTOR_COMPACTION_AGE", "1s", 1);
    setenv("WW_COLLECTOR_COMPACTION_MAX_NODES", "1", 1);
    /* Windows kept (retention would drop the day before yesterday's). */
    setenv("WW_COLLECTOR_RETENTION_WINDOW_DAYS", "0", 1);
    s_collector_start(&x, "compact", true, "1440", false);
    s_wait_sql(&x,
               "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
               " AND wait_event_type = 'Lock' AND query LIKE '%ww_compact(%'",
               20, "the compaction waits for the held lock inside its transaction");
    /* The crash: the collector killed, its session ended with the transaction open. */
    assert_int_equal(kill(x.collector, SIGKILL), 0);
    assert_int_equal(h_wait(x.collector, 10000), 128 + SIGKILL);
    s_exec(&x.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE datname = current_database() AND query LIKE '%ww_compact(%'"
                  " AND pid <> pg_backend_pid()");
    PQclear(PQexec(hold, "COMMIT"));
    PQfinish(hold);
    snprintf(sql, sizeof sql,
             "SELECT (compacted_through = to_timestamp(%lld) AND compact_node IS NULL"
             " AND truncated_through = to_timestamp(%lld))::int FROM ww_tier_state",
             y, y);
    assert_int_equal(h_query_ll(&x.db, sql), 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples_compact"), 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_windows_compact"), 0);
    s_check_samples(&x, "after the crash");
    s_check_windows(&x, "after the crash");
    s_check_tiers_of(&x.db, "compact_truth", "after the crash");

    /* Restarted: yesterday compacted whole and its raw partition emptied. Compaction
     * reaches hours before the watermark minus compaction.age (ww_compact), and the
     * watermark is the minute of now: yesterday's last hour is compactable only from
     * 00:01 UTC. A run whose clock is in the first minute of a UTC day (a fresh-clone run
     * at 00:00:30 failed here, its 20-s wait ending before 00:01) first waits it out. */
    long long early_ms = h_query_ll(&x.db, "SELECT greatest(0, extract(epoch FROM"
                                           " date_trunc('day', now(), 'UTC') + interval"
                                           " '62 seconds' - now()) * 1000)::bigint");
    if (early_ms > 0) {
        h_sleep_ms((int)early_ms);
    }
    s_collector_start(&x, "compact2", true, "1440", true);
    snprintf(sql, sizeof sql,
             "SELECT (truncated_through >= to_timestamp(%lld) + interval '1 day' AND"
             " compacted_through >= date_trunc('hour', now(), 'UTC') - interval '1 hour')::int"
             " FROM ww_tier_state",
             y);
    s_wait_sql(&x, sql, 50, "compaction empties yesterday and reaches the last hour");
    s_check_samples(&x, "after compaction");
    s_check_windows(&x, "after compaction");
    s_check_tiers_of(&x.db, "compact_truth", "after compaction");
    snprintf(sql, sizeof sql,
             "SELECT pg_relation_size(format('latency_windows_p%%s', to_char(to_timestamp(%lld)"
             " AT TIME ZONE 'UTC', 'YYYYMMDD')))",
             y);
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM latency_windows WHERE time < to_timestamp(%lld)", y);
    assert_int_equal(h_query_ll(&x.db, sql), 1);
    /* Yesterday's windows all in blocks: A's four, B's five, the one of the node without
     * samples. */
    snprintf(sql, sizeof sql,
             "SELECT sum(windows) FROM latency_windows_compact WHERE time < to_timestamp(%lld)",
             y + 86400);
    assert_int_equal(h_query_ll(&x.db, sql), 4 + 5 + 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM latency_windows_compact WHERE node_id = 'tiers-w'"
             " AND time = to_timestamp(%lld)",
             y + 6 * 3600);
    assert_int_equal(h_query_ll(&x.db, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT pg_relation_size(format('node_samples_p%%s', to_char(to_timestamp(%lld)"
             " AT TIME ZONE 'UTC', 'YYYYMMDD')))",
             y);
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM node_samples WHERE time < to_timestamp(%lld)",
             y);
    assert_int_equal(h_query_ll(&x.db, sql), 3 * 180);
    assert_true(h_query_ll(&x.db, "SELECT count(*) FROM node_samples_compact") >= 3 * 24);
    if (s_metric(&x, "waferwatch_collector_compaction_blocks_written_total") < 3 * 24 ||
        s_metric(&x, "waferwatch_collector_compaction_samples_total") < 3 * 24 * 360 ||
        s_metric(&x, "waferwatch_collector_compaction_raw_truncations_total") != 1 ||
        s_metric(&x, "waferwatch_collector_compaction_behind_seconds") < 0) {
        fail_msg("compaction metrics do not show the node-hours and the day emptied");
    }

    /* Late: into the emptied day (between A's samples; a new node; B at an instant it
     * already has, other readings), into a compacted hour of today when there is one. */
    s_batch(&x, NODE_A, x.t0 + 10 * HOUR_NS + 5 * WW_NS_PER_S, x.t0 + 10 * HOUR_NS + MIN_NS,
            10 * WW_NS_PER_S, true, NULL, 0);
    s_batch(&x, "tiers-d", x.t0 + 5 * HOUR_NS, x.t0 + 5 * HOUR_NS + 30 * WW_NS_PER_S,
            10 * WW_NS_PER_S, true, NULL, 0);
    s_batch(&x, NODE_B, x.t0 + 20 * HOUR_NS + 3 * WW_NS_PER_S,
            x.t0 + 20 * HOUR_NS + 4 * WW_NS_PER_S, WW_NS_PER_S, true, NULL, 0);
    s_batch(&x, NODE_B, x.t0 + 20 * HOUR_NS + 10 * WW_NS_PER_S,
            x.t0 + 20 * HOUR_NS + 11 * WW_NS_PER_S, WW_NS_PER_S, true, NULL, 0);
    /* A second part of A's first window (compacted, its day emptied), a window of a node
     * new to the day, one more of B in an hour it has. */
    s_win_t lw[3];
    Waferwatch__V1__LatencyWindow *lp[3];
    s_win_init(&lw[0], NODE_A, "m1", x.t0, 20);
    s_win_init(&lw[1], "tiers-d", "m1", x.t0 + 5 * HOUR_NS, 21);
    s_win_init(&lw[2], NODE_B, "m2", x.t0 + 5 * HOUR_NS + 31 * MIN_NS, 22);
    for (int i = 0; i < 3; i++) {
        lp[i] = &lw[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, lp, 3);
    int64_t today = x.t0 + 24 * HOUR_NS;
    if (now - today >= 2 * HOUR_NS) {
        s_batch(&x, NODE_A, today + 7 * WW_NS_PER_S, today + 8 * WW_NS_PER_S, WW_NS_PER_S, true,
                NULL, 0);
    }
    double runs = s_metric(&x, RUNS_OK);
    s_wait_sql(&x, "SELECT (count(*) = 0)::int FROM ww_tier_dirty", 50, "the late rows are taken");
    for (int waited = 0; s_metric(&x, RUNS_OK) < runs + 2; waited += 100) {
        if (waited > WAIT_MS) {
            fail_msg("the tier builder did not run twice after the late rows");
        }
        h_sleep_ms(100);
    }
    s_check_samples(&x, "after the late rows");
    s_check_windows(&x, "after the late rows");
    s_check_tiers_of(&x.db, "compact_truth", "after the late rows");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM latency_windows WHERE time >= to_timestamp(%lld)"
             " AND time < to_timestamp(%lld)",
             y, y + 86400);
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT (parts = 2)::int FROM ww_windows(to_timestamp(%lld), to_timestamp(%lld))"
             " WHERE node_id = '" NODE_A "' AND model = 'm1'",
             y, y + 1);
    assert_int_equal(h_query_ll(&x.db, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM node_samples WHERE time >= to_timestamp(%lld)"
             " AND time < to_timestamp(%lld)",
             y, y + 86400);
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM node_samples_compact WHERE node_id = 'tiers-d'"
             " AND time = to_timestamp(%lld)",
             y + 5 * 3600);
    assert_int_equal(h_query_ll(&x.db, sql), 1);

    /* ww_node_latest reads raw rows from truncated_through on: a node whose only sample
     * lies before (late, before the tiers' start: still a raw row) shows none; A shows its
     * latest. */
    s_hello(&x, "tiers-e", "s1", "h1", "p1", 23, 10000);
    s_batch(&x, "tiers-e", x.t0 - 20 * MIN_NS, x.t0 - 20 * MIN_NS + 1, 1, true, NULL, 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"
                                       " WHERE node_id = 'tiers-e'"),
                     1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ww_node_latest"
                                       " WHERE node_id = 'tiers-e' AND time IS NULL"),
                     1);
    assert_int_equal(h_query_ll(&x.db,
                                "SELECT count(*) FROM ww_node_latest l WHERE node_id = '" NODE_A
                                "' AND time = (SELECT max(time) FROM node_samples"
                                " WHERE node_id = '" NODE_A "')"),
                     1);
    unsetenv("WW_COLLECTOR_COMPACTION_AGE");
    unsetenv("WW_COLLECTOR_COMPACTION_MAX_NODES");
    unsetenv("WW_COLLECTOR_RETENTION_WINDOW_DAYS");
    s_collector_stop(&x);
    h_db_drop(&x.db);
}

/* ---- 4. latency windows dropped after a day, late ones merged ------------------------------ */

/* latency_node_1h against its recomputation from every window ever written (window_truth,
 * filled by a trigger: retention drops the windows themselves). */
static void s_check_latency_truth(s_env_t *x, const char *when)
{
    s_sql_t t = {.n = 0}, r = {.n = 0};
    s_cat(&t, S_LATENCY_TABLE);
    s_cat(&r, S_LATENCY_RECOMPUTED_OF("window_truth"));
    s_compare(&x->db, when, "latency_node_1h", &t, &r);
}

/* retention.window_days (migration 0020): the tier job drops the days of latency windows
 * before yesterday once their hours are built, and does not make their partitions again;
 * a late window of a dropped day is merged into its node-hour (an hour that has a row, a
 * model new to it, an hour that had none) and deleted, one of a kept day recomputes its
 * hour from the windows; latency_node_1h stays exactly all the windows ever written. */
static void test_window_retention_merges_late_windows(void **state)
{
    (void)state;
    s_env_t x;
    s_setup(&x, "winret");
    long long d0 = h_query_ll(&x.db, "SELECT extract(epoch FROM date_trunc('day', now(), 'UTC'))"
                                     "::bigint");
    s_state_at(&x, d0 - 3 * 86400);
    int64_t day = 24 * HOUR_NS, t0 = x.t0; /* three days before today, 00:00 UTC */
    s_truth_table(&x.db, "window_truth", "latency_windows");

    /* On time, no builder: windows of A in each of the three days before today. */
    s_collector_start(&x, "ingest", false, "1440", true);
    s_hello(&x, NODE_A, "s1", "h1", "p1", 23, 10000);
    const int64_t on_time[] = {t0 + 10 * HOUR_NS, t0 + 10 * HOUR_NS + MIN_NS,
                               t0 + day + 5 * HOUR_NS, t0 + 2 * day + 3 * HOUR_NS};
    enum { N_ON = sizeof on_time / sizeof on_time[0] };
    s_win_t win[N_ON];
    Waferwatch__V1__LatencyWindow *wp[N_ON];
    for (unsigned i = 0; i < N_ON; i++) {
        s_win_init(&win[i], NODE_A, "m1", on_time[i], i);
        wp[i] = &win[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, wp, N_ON);
    s_collector_stop(&x);

    /* The builder builds the three days, then drops the two before yesterday. */
    setenv("WW_COLLECTOR_COMPACTION_AGE", "0", 1);
    setenv("WW_COLLECTOR_RETENTION_WINDOW_DAYS", "1", 1);
    s_collector_start(&x, "build", true, "1440", true);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (windows_dropped_through = to_timestamp(%lld))::int FROM ww_tier_state",
             d0 - 86400);
    s_wait_sql(&x, sql, 50, "the windows before yesterday are dropped");
    s_check_latency_truth(&x, "after the drop");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_partition_tree('latency_windows') t"
             " WHERE t.isleaf AND t.relid::text ~ '_p[0-9]{8}$'"
             " AND to_date(right(t.relid::text, 8), 'YYYYMMDD') < to_timestamp(%lld) AT TIME ZONE"
             " 'UTC'",
             d0 - 86400);
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ww_windows('-infinity', 'infinity')"),
                     1);

    /* Late: into the hour of the first day that has a row (m1 again, and a new model m2), an
     * hour of the second day that had none, and yesterday (kept: recomputed). */
    const int64_t late[] = {t0 + 10 * HOUR_NS + 2 * MIN_NS, t0 + 10 * HOUR_NS + 3 * MIN_NS,
                            t0 + day + 7 * HOUR_NS, t0 + 2 * day + 3 * HOUR_NS + MIN_NS};
    enum { N_LATE = sizeof late / sizeof late[0] };
    s_win_t lw[N_LATE];
    Waferwatch__V1__LatencyWindow *lp[N_LATE];
    for (unsigned i = 0; i < N_LATE; i++) {
        s_win_init(&lw[i], NODE_A, i == 1 ? "m2" : "m1", late[i], 10 + i);
        lp[i] = &lw[i].w;
    }
    s_batch(&x, NULL, 0, 0, 1, false, lp, N_LATE);
    s_wait_sql(&x,
               "SELECT (NOT EXISTS (SELECT 1 FROM ww_tier_dirty) AND NOT EXISTS (SELECT 1 FROM"
               " latency_windows WHERE time < (SELECT windows_dropped_through FROM"
               " ww_tier_state)))::int",
               50, "the late windows are merged");
    s_check_latency_truth(&x, "after the late windows");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ww_windows('-infinity', 'infinity')"),
                     2);
    /* The maintenance does not make the dropped days' partitions again. */
    s_exec(&x.db, "SELECT ww_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 7, 10)");
    assert_int_equal(h_query_ll(&x.db, sql), 0);
    unsetenv("WW_COLLECTOR_COMPACTION_AGE");
    unsetenv("WW_COLLECTOR_RETENTION_WINDOW_DAYS");
    s_collector_stop(&x);
    h_db_drop(&x.db);
}

/* ---- 5. a watermark no agent time can be compared with ------------------------------------ */

/* The write transaction reads ww_tier_state.watermark as Unix microseconds and compares it
 * with the samples' Unix ns: a watermark past what an int64 of ns holds (year 2262; a row
 * set by hand) is refused and the write retried, never clamped into range. */
static void test_watermark_out_of_range_is_refused(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "tierwm");
    ww_store_t *store = ww_store_new(db.conninfo);
    assert_non_null(store);
    assert_int_equal(ww_store_ensure(store, 1), 0);
    PQclear(h_query(&db, "UPDATE ww_tier_state SET watermark = '3000-01-01 00:00:00+00'"));
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ni.node_id = (char *)"wm-node";
    ww_node_info_t *nis[] = {&ni};
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = nis;
    h.n_nodes = 1;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    ww_store_item_t it = {.kind = WW_ITEM_HELLO, .agent_id = "wm-agent", .epoch = 1, .env = &env};
    assert_int_equal(ww_store_write(store, &it, 1), WW_STORE_RETRY);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM nodes"), 0);
    /* Set right, the same write goes through. */
    PQclear(h_query(&db, "UPDATE ww_tier_state SET watermark = minutes_done"));
    assert_int_equal(ww_store_write(store, &it, 1), WW_STORE_OK);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM nodes"), 1);
    ww_store_destroy(&store);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_tiers_equal_recomputation_after_late_data),
    cmocka_unit_test(test_tiers_crash_mid_build),
    cmocka_unit_test(test_late_bucket_written_twice_during_a_build),
    cmocka_unit_test(test_compaction_keeps_every_sample),
    cmocka_unit_test(test_window_retention_merges_late_windows),
    cmocka_unit_test(test_watermark_out_of_range_is_refused),
};
WW_TEST_MAIN(tests, NULL, NULL)
