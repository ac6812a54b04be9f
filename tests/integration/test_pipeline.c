/* End-to-end: simulated nodes -> waferwatch-agent -> ZeroMQ -> waferwatch-collector ->
 * PostgreSQL, checked row by row against a replay of the same deterministic simulation. */
#include "harness.h"
#include "verify.h"
#include "ww_agent_conf.h"
#include "ww_sim.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define NODES 3

/* Into sql: a query of the count of node_samples rows with some F32 reading off its field's
 * grid (WW_FIELD_RES_<name>, ww_fields.h), by the decimals of the real as numeric. */
#define S_GRID_F32(name)                                                                           \
    len += (size_t)snprintf(sql + len, cap - len,                                                  \
                            " OR round(" #name "::numeric, %d) <> " #name "::numeric",             \
                            (int)lround(-log10(WW_FIELD_RES(name))));
#define S_GRID_U32(name)
#define S_GRID_BOOL(name)
#define S_GRID_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                       \
    WW_FIELD_CAT(S_GRID_, kind)(name)

static void s_off_grid_sql(char *sql, size_t cap)
{
    size_t len = (size_t)snprintf(sql, cap, "SELECT count(*) FROM node_samples WHERE false");
    WW_READING_FIELDS(S_GRID_)
    assert_true(len < cap);
}

static void test_rows_equal_what_the_simulation_sent(void **state)
{
    h_db_t db;
    h_db_create(&db, "pipe");
    h_secure(db.dir, "it-agent", "it-node-*");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);

    char spool[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    endpoint,
                    (char *)"--agent-id",
                    (char *)"it-agent",
                    (char *)"--node-id",
                    (char *)"it-node",
                    (char *)"--phase",
                    (char *)"phase-a",
                    (char *)"--sim-nodes",
                    (char *)"3",
                    (char *)"--sim-seed",
                    (char *)"42",
                    (char *)"--interval",
                    (char *)"100ms",
                    (char *)"--run-for",
                    (char *)"3s",
                    NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    char log[256];
    snprintf(log, sizeof log, "%s/agent.log", db.dir);
    h_agent_wait_ok(h_spawn(argv, log), log, 60000);
    long long ticks = h_log_value(log, "stats:", "ticks");
    long long samples = h_log_value(log, "stats:", "samples");
    long long acked = h_log_value(log, "stats:", "acked");
    long long batches = h_log_value(log, "stats:", "batches");
    assert_true(ticks >= 25 && ticks <= 31);
    assert_int_equal(samples, ticks * NODES);
    /* One batch per tick, and one more at shutdown with the last open latency windows. */
    assert_true(batches == ticks || batches == ticks + 1);
    assert_int_equal(acked, batches);

    /* Exactly `ticks` rows per node, one per tick, no gaps, no duplicates. */
    PGresult *r = h_query(&db, "SELECT node_id, count(*), count(DISTINCT time),"
                               " (extract(epoch from max(time) - min(time)) * 1000)::bigint"
                               " FROM node_samples GROUP BY node_id ORDER BY node_id");
    assert_int_equal(PQntuples(r), NODES);
    for (int i = 0; i < NODES; i++) {
        char want[32];
        snprintf(want, sizeof want, "it-node-%d", i);
        assert_string_equal(PQgetvalue(r, i, 0), want);
        assert_int_equal(atoll(PQgetvalue(r, i, 1)), ticks);
        assert_int_equal(atoll(PQgetvalue(r, i, 2)), ticks);
        assert_int_equal(atoll(PQgetvalue(r, i, 3)), (ticks - 1) * 100);
    }
    PQclear(r);
    /* Every node shares the same tick timestamps, aligned to the interval. */
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT time) FROM node_samples"), ticks);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE"
                                     " (extract(epoch from time) * 1000)::bigint % 100 <> 0"),
                     0);

    /* Replay the simulation with the agent's own configuration and compare every value. */
    long long first = h_log_value(log, "agent ", "first_tick");
    assert_true(first > 0);
    h_verify_t v;
    h_verify_sim(&db, argc, argv, first, first + (ticks - 1) * 100 * WW_NS_PER_MS, &v);
    h_verify_assert_clean(&v, "pipeline");
    assert_int_equal(v.rows, ticks * NODES);
    /* The agent sent each reading on its sensor's grid (ww_quant.h), and so it was stored:
     * checked here in SQL, apart from the replay (which quantizes as the agent does). */
    char sql[2048];
    s_off_grid_sql(sql, sizeof sql);
    assert_int_equal(h_query_ll(&db, sql), 0);

    /* Hello filled the nodes table with the labels. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM nodes WHERE phase = 'phase-a'"
                                     " AND rated_kw = 23 AND agent_id = 'it-agent'"),
                     NODES);
    /* One stream, at the last sequence number. */
    assert_int_equal(h_query_ll(&db, "SELECT last_seq FROM streams WHERE agent_id = 'it-agent'"),
                     batches);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

/* Receives a reply; fails the test on timeout. */
static ww_envelope_t *s_recv(h_peer_t *p)
{
    ww_envelope_t *env = h_peer_recv(p);
    if (!env) {
        fail_msg("no reply from the collector");
    }
    return env;
}

static void s_send(h_peer_t *p, uint64_t epoch, uint64_t seq, float power_w, int64_t t)
{
    h_peer_send_batch(p, "raw-agent", "raw-node", epoch, seq, power_w, t);
}

static void test_garbage_gets_nack_and_collector_keeps_serving(void **state)
{
    h_db_t db;
    h_db_create(&db, "nack");
    h_secure(db.dir, "raw-agent", "raw-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 15000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 10 * WW_NS_PER_S;

    /* 1. Bytes that are not an Envelope. */
    const char junk[] = "\xff\xff\xff\xff\xff garbage";
    assert_true(zmq_send(p.sock, junk, sizeof junk, 0) > 0);
    ww_envelope_t *reply = s_recv(&p);
    assert_int_equal(reply->body_case, WAFERWATCH__V1__ENVELOPE__BODY_NACK);
    assert_int_equal(reply->nack->code, WAFERWATCH__V1__NACK_CODE__NACK_MALFORMED);
    ww_wire_free(&reply);

    /* 2. A well-formed batch whose sample is an hour in the future: the sample is refused
     * alone, with the field named, the batch acked (an implausible reading: test_security). */
    s_send(&p, 77, 1, 1000, t + 3600 * WW_NS_PER_S);
    reply = s_recv(&p);
    assert_int_equal(reply->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    assert_int_equal(reply->ack->seq, 1);
    ww_wire_free(&reply);

    /* 3. The collector is still serving: a valid batch is acked and stored. */
    s_send(&p, 77, 2, 12345.5f, t);
    reply = s_recv(&p);
    assert_int_equal(reply->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    assert_int_equal(reply->ack->seq, 2);
    assert_true(reply->ack->epoch == 77);
    ww_wire_free(&reply);

    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 1);
    /* 12345.5 W is off the 1 W grid agents quantize to: a collector stores what it receives
     * exactly (an older agent, another producer). */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE power_w = 12345.5"),
                     1);
    /* A sample without humidity_pct (an agent that predates it) stores NULL, not 0. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE power_w = 12345.5"
                                     " AND humidity_pct IS NULL"),
                     1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ingest_rejects"), 2);
    assert_int_equal(
        h_query_ll(&db, "SELECT count(*) FROM ingest_rejects WHERE code = 'malformed'"), 1);
    assert_int_equal(h_query_ll(&db,
                                "SELECT count(*) FROM ingest_rejects WHERE code ="
                                " 'implausible_sample' AND seq = 1 AND reason LIKE '%time_ns%'"),
                     1);
    h_peer_close(&p);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static void test_replayed_batch_is_stored_once(void **state)
{
    h_db_t db;
    h_db_create(&db, "replay");
    h_secure(db.dir, "raw-agent", "raw-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 15000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 5 * WW_NS_PER_S;
    for (int round = 0; round < 3; round++) {
        s_send(&p, 99, 1, 1000.0f, t);
        ww_envelope_t *reply = s_recv(&p);
        assert_int_equal(reply->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
        assert_int_equal(reply->ack->seq, 1);
        ww_wire_free(&reply);
    }
    /* The next batch skips seq 2 (as if the agent dropped it): it is still written. */
    s_send(&p, 99, 3, 3000.0f, t + WW_NS_PER_S);
    ww_envelope_t *reply = s_recv(&p);
    assert_int_equal(reply->ack->seq, 3);
    ww_wire_free(&reply);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 2);
    assert_int_equal(h_query_ll(&db, "SELECT last_seq FROM streams WHERE epoch = 99"), 3);
    h_peer_close(&p);
    assert_int_equal(h_stop(collector, 10000), 0);
    char log[256];
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    assert_int_equal(h_log_value(log, "stopping:", "duplicates"), 2);
    assert_int_equal(h_log_value(log, "stopping:", "gaps"), 1);
    h_db_drop(&db);
}

/* A Hello of stream epoch, one node raw-node. */
static void s_send_hello(h_peer_t *p, uint64_t epoch)
{
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ww_node_info_t *nip = &ni;
    ni.node_id = (char *)"raw-node";
    ni.phase = (char *)"phase-raw";
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = &nip;
    h.n_nodes = 1;
    h.interval_ms = 1000;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)"raw-agent";
    env.epoch = epoch;
    env.sent_ns = ww_time_now_ns();
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    uint8_t *buf = NULL;
    size_t cap = 0;
    long n = ww_wire_encode(&env, &buf, &cap);
    assert_true(n > 0);
    assert_true(zmq_send(p->sock, buf, (size_t)n, 0) == (int)n);
    free(buf);
}

/* The next reply must be an Ack of seq naming missing_first..missing_last (0, 0: none). */
static void s_expect_ack(h_peer_t *p, uint64_t seq, uint64_t first, uint64_t last)
{
    ww_envelope_t *r = s_recv(p);
    assert_int_equal(r->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    assert_int_equal(r->ack->seq, seq);
    if (r->ack->missing_first != first || r->ack->missing_last != last) {
        fail_msg("ack of seq %llu named %llu..%llu, not %llu..%llu", (unsigned long long)seq,
                 (unsigned long long)r->ack->missing_first,
                 (unsigned long long)r->ack->missing_last, (unsigned long long)first,
                 (unsigned long long)last);
    }
    ww_wire_free(&r);
}

/* Zero loss through a database failover, the collector's side (issue 20): the Ack of the
 * batch that opens a hole names the seqs missing before it, and the Ack of every Hello
 * names the stream's newest hole, until it is filled; a batch filling it is acked by its
 * own seq and names nothing. */
static void test_acks_name_the_seqs_the_database_lacks(void **state)
{
    h_db_t db;
    h_db_create(&db, "missing");
    h_secure(db.dir, "raw-agent", "raw-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 15000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 10 * WW_NS_PER_S;
    s_send_hello(&p, 123);
    s_expect_ack(&p, 0, 0, 0);
    s_send(&p, 123, 1, 1000.0f, t);
    s_expect_ack(&p, 1, 0, 0);
    s_send(&p, 123, 4, 1000.0f, t + 3 * WW_NS_PER_S);
    s_expect_ack(&p, 4, 2, 3);
    s_send(&p, 123, 4, 1000.0f, t + 3 * WW_NS_PER_S); /* a replay opens nothing */
    s_expect_ack(&p, 4, 0, 0);
    s_send_hello(&p, 123);
    s_expect_ack(&p, 0, 2, 3);
    s_send(&p, 123, 2, 1000.0f, t + WW_NS_PER_S);
    s_expect_ack(&p, 2, 0, 0);
    s_send_hello(&p, 123);
    s_expect_ack(&p, 0, 3, 3);
    s_send(&p, 123, 3, 1000.0f, t + 2 * WW_NS_PER_S);
    s_expect_ack(&p, 3, 0, 0);
    s_send_hello(&p, 123);
    s_expect_ack(&p, 0, 0, 0);
    s_send_hello(&p, 124); /* another stream of the agent: its own holes only (none) */
    s_expect_ack(&p, 0, 0, 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 4);
    assert_int_equal(h_query_ll(&db, "SELECT lost_batches FROM streams WHERE epoch = 123"), 0);
    h_peer_close(&p);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

/* Two collectors sharing a database receive the first batch of the same new streams at
 * the same moment (an agent failing over mid-send): each batch is stored once. */
static void test_two_collectors_race_on_new_streams(void **state)
{
    h_db_t db;
    h_db_create(&db, "race");
    h_secure(db.dir, "raw-agent", "raw-node");
    char ep_a[256], ep_b[256];
    pid_t a = h_collector_spawn(db.dir, "tcp://127.0.0.1:*", db.conninfo, "collector-a", ep_a,
                                sizeof ep_a);
    pid_t b = h_collector_spawn(db.dir, "tcp://127.0.0.1:*", db.conninfo, "collector-b", ep_b,
                                sizeof ep_b);
    h_peer_t pa, pb;
    h_peer_open(&pa, ep_a, db.dir, "agent", NULL, 15000);
    h_peer_open(&pb, ep_b, db.dir, "agent", NULL, 15000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 10 * WW_NS_PER_S;
    const int streams = 300;
    for (int i = 0; i < streams; i++) {
        h_peer_send_batch(&pa, "raw-agent", "raw-node", 5000 + (uint64_t)i, 1, (float)i, t);
        h_peer_send_batch(&pb, "raw-agent", "raw-node", 5000 + (uint64_t)i, 1, (float)i, t);
    }
    for (int i = 0; i < 2 * streams; i++) {
        ww_envelope_t *r = s_recv(i % 2 ? &pb : &pa);
        assert_int_equal(r->body_case, WAFERWATCH__V1__ENVELOPE__BODY_ACK);
        ww_wire_free(&r);
    }
    h_peer_close(&pa);
    h_peer_close(&pb);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), streams);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM streams WHERE last_seq = 1"), streams);
    assert_int_equal(h_stop(a, 10000), 0);
    assert_int_equal(h_stop(b, 10000), 0);
    h_db_drop(&db);
}

/* Writers side by side (ingest.writers): six agents, spread over three writers by their
 * ids, stream samples and latency windows of one phase over the same minutes, in
 * transactions of at most two messages, so that the writers update the same rollup rows
 * again and again, interleaved. Every agent's rows are exactly its simulation's, every
 * rollup is the merge of the stored windows, and no transaction was retried (the writers
 * wait for each other's rollup rows, they never deadlock). */
static void test_writers_side_by_side_store_exactly_once(void **state)
{
    enum { AGENTS = 6, SIM_NODES = 3 };
    h_db_t db;
    h_db_create(&db, "writers");
    h_secure(db.dir, "unused", "none");
    char names[AGENTS][16], patterns[AGENTS][64], keys[AGENTS][256], spools[AGENTS][256];
    char node_ids[AGENTS][64], seeds[AGENTS][16], logs[AGENTS][256];
    for (int i = 0; i < AGENTS; i++) {
        snprintf(names[i], sizeof names[i], "wr-%c", 'a' + i);
        snprintf(patterns[i], sizeof patterns[i], "wr-%c-node-*", 'a' + i);
        h_enrol(db.dir, names[i], names[i], patterns[i]);
    }
    setenv("WW_COLLECTOR_INGEST_WRITERS", "3", 1);
    setenv("WW_COLLECTOR_INGEST_MAX_GROUP", "2", 1);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_INGEST_WRITERS");
    unsetenv("WW_COLLECTOR_INGEST_MAX_GROUP");
    char *argv[AGENTS][24];
    pid_t agents[AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        snprintf(keys[i], sizeof keys[i], "%s/%s.key", db.dir, names[i]);
        snprintf(spools[i], sizeof spools[i], "%s/spool-%s", db.dir, names[i]);
        snprintf(node_ids[i], sizeof node_ids[i], "wr-%c-node", 'a' + i);
        snprintf(seeds[i], sizeof seeds[i], "%d", 300 + i);
        snprintf(logs[i], sizeof logs[i], "%s/%s.log", db.dir, names[i]);
        char *a[] = {(char *)WW_AGENT_BIN,
                     (char *)"--agent-key",
                     keys[i],
                     (char *)"--spool-dir",
                     spools[i],
                     (char *)"--collector",
                     endpoint,
                     (char *)"--agent-id",
                     names[i],
                     (char *)"--node-id",
                     node_ids[i],
                     (char *)"--phase",
                     (char *)"phase-w",
                     (char *)"--sim-nodes",
                     (char *)"3",
                     (char *)"--sim-seed",
                     seeds[i],
                     (char *)"--interval",
                     (char *)"100ms",
                     (char *)"--latency-window",
                     (char *)"1s",
                     (char *)"--run-for",
                     (char *)"4s",
                     NULL};
        assert_true(sizeof a <= sizeof argv[i]);
        memcpy(argv[i], a, sizeof a);
        agents[i] = h_spawn(argv[i], logs[i]);
    }
    /* One connection per writer (one backend each), beside the tier builder's: one writer
     * would make two. */
    assert_true(h_query_ll(&db,
                           "SELECT count(*) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()") >= 3);
    for (int i = 0; i < AGENTS; i++) {
        h_agent_wait_ok(agents[i], logs[i], 60000);
        long long ticks = h_log_value(logs[i], "stats:", "ticks");
        assert_true(ticks >= 25);
        assert_int_equal(h_log_value(logs[i], "stats:", "acked"),
                         h_log_value(logs[i], "stats:", "batches"));
        long long first = h_log_value(logs[i], "agent ", "first_tick");
        h_verify_t v;
        h_verify_sim(&db, 23, argv[i], first, h_verify_last_tick(logs[i], 100 * WW_NS_PER_MS), &v);
        h_verify_assert_clean(&v, names[i]);
        assert_int_equal(v.rows, ticks * SIM_NODES);
    }
    assert_int_equal(h_stop(collector, 10000), 0);
    char log[256];
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    /* No transaction retried. A batch an agent resent after its ack timeout (the sanitizer
     * build under load) is a duplicate, stored once: the rows above are exact. */
    assert_int_equal(h_log_value(log, "stopping:", "retries"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT node_id) FROM node_samples"),
                     AGENTS * SIM_NODES);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM latency_windows") > AGENTS * SIM_NODES);
    assert_int_equal(h_verify_rollups(&db), 0);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rows_equal_what_the_simulation_sent),
    cmocka_unit_test(test_garbage_gets_nack_and_collector_keeps_serving),
    cmocka_unit_test(test_replayed_batch_is_stored_once),
    cmocka_unit_test(test_acks_name_the_seqs_the_database_lacks),
    cmocka_unit_test(test_two_collectors_race_on_new_streams),
    cmocka_unit_test(test_writers_side_by_side_store_exactly_once),
};
WW_TEST_MAIN(tests, NULL, NULL)
