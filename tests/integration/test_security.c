/* Only enrolled agents write, each only as itself; hostile input leaves the collector up.
 * Real CURVE handshakes against a real collector with its ZAP handler and allowlist. */
#include "harness.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

/* A batch of agent's for node with a time inside the accepted window. */
static long s_encode_batch(h_peer_t *p, const char *agent, const char *node, uint64_t seq,
                           float power)
{
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 60 * WW_NS_PER_S +
                (int64_t)(seq % 50) * WW_NS_PER_S;
    return h_peer_encode_batch(p, agent, node, 4242, seq, power, t);
}

static void s_send_batch(h_peer_t *p, const char *agent, const char *node, uint64_t seq,
                         float power)
{
    long n = s_encode_batch(p, agent, node, seq, power);
    assert_int_equal(zmq_send(p->sock, p->buf, (size_t)n, 0), n);
}

/* The same for a peer whose handshake is meant to fail: offered without waiting. */
static void s_offer_batch(h_peer_t *p, const char *agent, const char *node, uint64_t seq,
                          float power)
{
    long n = s_encode_batch(p, agent, node, seq, power);
    (void)zmq_send(p->sock, p->buf, (size_t)n, ZMQ_DONTWAIT);
}

/* The reply's body case, or -1 when none came within the receive timeout. */
static int s_reply(h_peer_t *p, Waferwatch__V1__NackCode *code)
{
    ww_envelope_t *env = h_peer_recv(p);
    if (!env) {
        return -1;
    }
    int bc = (int)env->body_case;
    if (code && env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK) {
        *code = env->nack->code;
    }
    ww_wire_free(&env);
    return bc;
}

static void s_keygen(const char *dir, const char *name)
{
    char prefix[300], log[300];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, name);
    snprintf(log, sizeof log, "%s/keygen-%s.log", dir, name);
    char *argv[] = {(char *)WW_CLI_BIN, (char *)"keygen", prefix, NULL};
    assert_int_equal(h_wait(h_spawn(argv, log), 10000), 0);
}

static void test_only_enrolled_keys_write(void **state)
{
    h_db_t db;
    h_db_create(&db, "curve");
    h_secure(db.dir, "good-agent", "good-node-*");
    s_keygen(db.dir, "stranger");
    s_keygen(db.dir, "fake-collector");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);

    h_peer_t p;
    /* An unknown key: the handshake is refused, nothing is written. Each refused peer's
     * batch is offered without waiting: once its handshake has failed, libzmq has no pipe
     * for it and a blocking send would wait forever. */
    h_peer_open(&p, endpoint, db.dir, "stranger", NULL, 3000);
    s_offer_batch(&p, "good-agent", "good-node-1", 1, 1000);
    assert_int_equal(s_reply(&p, NULL), -1);
    h_peer_close(&p);
    /* No CURVE at all. */
    h_peer_open(&p, endpoint, db.dir, NULL, NULL, 3000);
    s_offer_batch(&p, "good-agent", "good-node-1", 2, 1000);
    assert_int_equal(s_reply(&p, NULL), -1);
    h_peer_close(&p);
    /* An enrolled key that trusts the wrong server key. */
    h_peer_open(&p, endpoint, db.dir, "agent", "fake-collector", 3000);
    s_offer_batch(&p, "good-agent", "good-node-1", 3, 1000);
    assert_int_equal(s_reply(&p, NULL), -1);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 0);

    /* The enrolled key with the right server key writes. */
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    s_send_batch(&p, "good-agent", "good-node-1", 4, 1234.5f);
    assert_int_equal(s_reply(&p, NULL), WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 1);
    char log[256];
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    char *text = h_read_file(log);
    assert_non_null(strstr(text, "refused a connection"));
    free(text);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static void test_an_agent_writes_only_as_itself(void **state)
{
    h_db_t db;
    h_db_create(&db, "ident");
    h_secure(db.dir, "good-agent", "good-node-*");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    Waferwatch__V1__NackCode code = 0;
    /* Another node than its own. */
    s_send_batch(&p, "good-agent", "victim-node", 1, 1000);
    assert_int_equal(s_reply(&p, &code), WAFERWATCH__V1__ENVELOPE__BODY_NACK);
    assert_int_equal(code, WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN);
    /* Another agent's identity. */
    s_send_batch(&p, "evil-agent", "good-node-1", 2, 1000);
    assert_int_equal(s_reply(&p, &code), WAFERWATCH__V1__ENVELOPE__BODY_NACK);
    assert_int_equal(code, WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN);
    /* Itself: stored. */
    s_send_batch(&p, "good-agent", "good-node-7", 3, 777);
    assert_int_equal(s_reply(&p, NULL), WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"
                                     " WHERE node_id = 'good-node-7'"),
                     1);
    assert_int_equal(
        h_query_ll(&db, "SELECT count(*) FROM ingest_rejects WHERE code = 'forbidden'"), 2);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static void test_allowlist_reload_on_sighup(void **state)
{
    h_db_t db;
    h_db_create(&db, "hup");
    h_secure(db.dir, "good-agent", "good-node-*");
    char allow[300], saved[300];
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    snprintf(saved, sizeof saved, "%s/allowlist.saved", db.dir);
    assert_int_equal(rename(allow, saved), 0);
    FILE *f = fopen(allow, "w");
    fputs("# nobody enrolled yet\n", f);
    fclose(f);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    s_send_batch(&p, "good-agent", "good-node-1", 1, 1000);
    assert_int_equal(s_reply(&p, NULL), -1);
    h_peer_close(&p);
    /* Enrol, SIGHUP: a new connection is admitted. */
    assert_int_equal(rename(saved, allow), 0);
    kill(collector, SIGHUP);
    h_sleep_ms(1500);
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    s_send_batch(&p, "good-agent", "good-node-1", 2, 1000);
    assert_int_equal(s_reply(&p, NULL), WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    h_peer_close(&p);
    /* A broken allowlist is refused whole; the previous one stays in force. */
    f = fopen(allow, "w");
    fputs("not-a-key agent\n", f);
    fclose(f);
    kill(collector, SIGHUP);
    h_sleep_ms(1500);
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    s_send_batch(&p, "good-agent", "good-node-1", 3, 1000);
    assert_int_equal(s_reply(&p, NULL), WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    h_peer_close(&p);
    /* Revoked: refused. */
    f = fopen(allow, "w");
    fclose(f);
    kill(collector, SIGHUP);
    h_sleep_ms(1500);
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    s_send_batch(&p, "good-agent", "good-node-1", 4, 1000);
    assert_int_equal(s_reply(&p, NULL), -1);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 2);
    char log[256];
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    char *text = h_read_file(log);
    assert_non_null(strstr(text, "previous one stays in force"));
    free(text);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

/* A batch whose one sample is implausible: written and acked without it, the sample
 * recorded in ingest_rejects with its node and field, counted; the other nodes' samples
 * of the tick are not lost. */
static void test_implausible_sample_refused_alone(void **state)
{
    h_db_t db;
    h_db_create(&db, "implausible");
    h_secure(db.dir, "good-agent", "good-node-*");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - WW_NS_PER_S;
    ww_node_sample_t s[3];
    ww_node_sample_t *sp[3];
    const char *nodes[3] = {"good-node-1", "good-node-2", "good-node-3"};
    for (int i = 0; i < 3; i++) {
        h_sample_init(&s[i], nodes[i], t, 20000);
        sp[i] = &s[i];
    }
    s[1].outlet_c = 175; /* a pump fault reading past the plausible range */
    long n = h_peer_encode_samples(&p, "good-agent", 77, 1, sp, 3);
    assert_int_equal(zmq_send(p.sock, p.buf, (size_t)n, 0), n);
    assert_int_equal(s_reply(&p, NULL), WAFERWATCH__V1__ENVELOPE__BODY_ACK);
    h_peer_close(&p);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 2);
    assert_int_equal(
        h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE node_id = 'good-node-2'"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ingest_rejects"
                                     " WHERE code = 'implausible_sample' AND seq = 1"
                                     " AND reason LIKE '%good-node-2%outlet_c%'"),
                     1);
    assert_int_equal(h_query_ll(&db, "SELECT last_seq FROM streams WHERE epoch = 77"), 1);
    assert_int_equal(h_stop(collector, 10000), 0);
    char log[300];
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    assert_int_equal(h_log_value(log, "stopping:", "implausible_samples"), 1);
    h_db_drop(&db);
}

static void test_refuses_to_start_without_a_key_and_insecure_is_loud(void **state)
{
    h_db_t db;
    h_db_create(&db, "nokey");
    char log[256];
    snprintf(log, sizeof log, "%s/nokey.log", db.dir);
    char *a[] = {(char *)WW_COLLECTOR_BIN,
                 (char *)"--pg",
                 db.conninfo,
                 (char *)"--listen",
                 (char *)"tcp://127.0.0.1:*",
                 NULL};
    assert_int_equal(h_wait(h_spawn(a, log), 10000), 2);
    char *text = h_read_file(log);
    assert_non_null(strstr(text, "security.server_key"));
    free(text);
    snprintf(log, sizeof log, "%s/insecure.log", db.dir);
    char *b[] = {(char *)WW_COLLECTOR_BIN,    (char *)"--pg",       db.conninfo, (char *)"--listen",
                 (char *)"tcp://127.0.0.1:*", (char *)"--insecure", NULL};
    pid_t pid = h_spawn(b, log);
    h_sleep_ms(1500);
    assert_int_equal(h_stop(pid, 10000), 0);
    text = h_read_file(log);
    assert_non_null(strstr(text, "INSECURE MODE"));
    free(text);
    /* A secret key file readable by others is refused. */
    h_secure(db.dir, "a", "*");
    char key[300];
    snprintf(key, sizeof key, "%s/collector.key", db.dir);
    assert_int_equal(chmod(key, 0644), 0);
    snprintf(log, sizeof log, "%s/openkey.log", db.dir);
    char allow[300];
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    char *c[] = {(char *)WW_COLLECTOR_BIN,
                 (char *)"--pg",
                 db.conninfo,
                 (char *)"--listen",
                 (char *)"tcp://127.0.0.1:*",
                 (char *)"--server-key",
                 key,
                 (char *)"--allowlist",
                 allow,
                 NULL};
    /* A configuration error: 2, which systemd does not restart in a loop. */
    assert_int_equal(h_wait(h_spawn(c, log), 10000), 2);
    text = h_read_file(log);
    assert_non_null(strstr(text, "flag --server-key: security.server_key: "));
    assert_non_null(strstr(text, "readable by others"));
    free(text);
    /* The .pub where the secret key belongs is said to be a public key file, not "readable
     * by others (mode 644)", which would send the operator to chmod the wrong file. */
    snprintf(key, sizeof key, "%s/collector.pub", db.dir);
    snprintf(log, sizeof log, "%s/pubkey.log", db.dir);
    assert_int_equal(h_wait(h_spawn(c, log), 10000), 2);
    text = h_read_file(log);
    if (!strstr(text, "this is a public key file") || strstr(text, "readable by others")) {
        fail_msg("expected 'this is a public key file', got:\n%s", text);
    }
    free(text);
    h_db_drop(&db);
}

/* Deterministic generator for the flood. */
static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;
static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void test_hostile_flood_leaves_valid_data_and_counts_every_bad_message(void **state)
{
    long total = getenv("WW_HOSTILE_MESSAGES") ? atol(getenv("WW_HOSTILE_MESSAGES")) : 1000000;
    const long every = 100; /* one valid batch per 100 messages */
    h_db_t db;
    h_db_create(&db, "flood");
    h_secure(db.dir, "good-agent", "good-node-*");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 3000);
    int hwm = 0; /* no drops on our side: block instead */
    zmq_setsockopt(p.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    size_t big_len = (16u << 20) + 1000; /* over the 16 MiB limit, under the transport cap */
    uint8_t *big = calloc(1, big_len);
    uint8_t junk[256];
    long valid = 0, bad = 0;
    uint64_t seq = 0;
    for (long i = 0; i < total; i++) {
        if (i % every == 0) {
            seq++;
            long n = s_encode_batch(&p, "good-agent", "good-node-1", seq, (float)seq);
            assert_int_equal(zmq_send(p.sock, p.buf, (size_t)n, 0), n);
            valid++;
            continue;
        }
        long n;
        switch (s_next() % 8) {
        case 0: /* random bytes */
            n = (long)(s_next() % sizeof junk);
            for (long k = 0; k < n; k++) {
                junk[k] = (uint8_t)s_next();
            }
            zmq_send(p.sock, junk, (size_t)n, 0);
            break;
        case 1: /* a valid batch cut short */
            n = s_encode_batch(&p, "good-agent", "good-node-1", 999999, 1);
            zmq_send(p.sock, p.buf, (size_t)(s_next() % (uint64_t)(n - 1)) + 1, 0);
            break;
        case 2: /* NaN: the batch is taken without its sample (recorded as a reject at
                   every receipt); its own epoch, so it never moves the valid stream */
            n = h_peer_encode_batch(&p, "good-agent", "good-node-1", 4343, 999999, NAN,
                                    ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - WW_NS_PER_S);
            zmq_send(p.sock, p.buf, (size_t)n, 0);
            break;
        case 3: /* another node */
            n = s_encode_batch(&p, "good-agent", "victim-node", 999999, 1);
            zmq_send(p.sock, p.buf, (size_t)n, 0);
            break;
        case 4: /* empty message */
            zmq_send(p.sock, "", 0, 0);
            break;
        case 5: /* two frames */
            zmq_send(p.sock, "a", 1, ZMQ_SNDMORE);
            zmq_send(p.sock, "b", 1, 0);
            break;
        case 6: /* oversized, rarely: each costs 16 MiB on the wire */
            if (s_next() % 50000 == 0) {
                zmq_send(p.sock, big, big_len, 0);
            } else {
                n = s_encode_batch(&p, "", "good-node-1", 999999, 1); /* no agent id */
                zmq_send(p.sock, p.buf, (size_t)n, 0);
            }
            break;
        default: /* unsupported wire version */
            n = s_encode_batch(&p, "good-agent", "good-node-1", 999999, 1);
            p.buf[1] = 9; /* field 1 (wire_version) value */
            zmq_send(p.sock, p.buf, (size_t)n, 0);
            break;
        }
        bad++;
        if (i % 4096 == 0) { /* drop the replies we do not read */
            char sink[256];
            while (zmq_recv(p.sock, sink, sizeof sink, ZMQ_DONTWAIT) >= 0) {
            }
        }
    }
    free(big);
    /* Wait until everything sent is accounted for. */
    long long stored = 0, refused = 0;
    for (int t = 0; t < 1200; t++) {
        stored = h_query_ll(&db, "SELECT count(*) FROM node_samples");
        refused = h_query_ll(&db, "SELECT count(*) FROM ingest_rejects");
        if (stored == valid && refused == bad) {
            break;
        }
        char sink[256];
        while (zmq_recv(p.sock, sink, sizeof sink, ZMQ_DONTWAIT) >= 0) {
        }
        h_sleep_ms(250);
    }
    h_peer_close(&p);
    if (stored != valid || refused != bad) {
        fail_msg("sent %ld valid and %ld bad: %lld stored, %lld refused", valid, bad, stored,
                 refused);
    }
    /* Every valid sample's value, exactly once. */
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT power_w) FROM node_samples"), valid);
    assert_int_equal(h_stop(collector, 30000), 0); /* still up, and stops cleanly */
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_only_enrolled_keys_write),
    cmocka_unit_test(test_an_agent_writes_only_as_itself),
    cmocka_unit_test(test_implausible_sample_refused_alone),
    cmocka_unit_test(test_allowlist_reload_on_sighup),
    cmocka_unit_test(test_refuses_to_start_without_a_key_and_insecure_is_loud),
    cmocka_unit_test(test_hostile_flood_leaves_valid_data_and_counts_every_bad_message),
};
WW_TEST_MAIN(tests, NULL, NULL)
