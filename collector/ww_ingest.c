/* ww_ingest: see ww_ingest.h. */
#define WW_LOG_MODULE "ingest"
#include "ww_ingest.h"

#include "ww_auth.h"
#include "ww_backoff.h"
#include "ww_cmetrics.h"
#include "ww_curve.h"
#include "ww_log.h"
#include "ww_store.h"
#include "ww_time.h"
#include "ww_wire.h"
#include "ww_zmon.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#define WW_IDENTITY_MAX 256
/* One turn of the receive loop takes messages for at most this long before it looks at
 * the writer again: a peer that floods large messages cannot keep a group, and the acks
 * of every other agent in it, from being written (ZeroMQ's ROUTER already hands out one
 * message per peer in turn; this bounds how long a group waits for them). */
#define S_TURN_NS (20 * WW_NS_PER_MS)
/* Messages ZeroMQ queues per peer before it stops reading that peer's connection (TCP
 * backpressure): an agent has queue_batches (16) in flight, so 32 never slows one, and a
 * peer sending maximum-size messages holds at most 32 of them here, not libzmq's default
 * 1,000 (16 GB at 16 MiB). */
#define S_RCVHWM 32

/* libzmq 4.3 implements ZMQ_ZAP_ENFORCE_DOMAIN but its header lists it among the draft
 * options; the value is fixed by the library. ww_ingest_run reads it back to be sure. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

typedef struct {
    unsigned char identity[WW_IDENTITY_MAX];
    size_t identity_len;
    ww_envelope_t *env;
    char agent_id[129];
    char reason[256];
    char key[WW_Z85_KEY_LEN + 1]; /* authenticated CURVE key (ZAP User-Id); "" if none */
    Waferwatch__V1__NackCode code;
    uint32_t bad_samples; /* samples refused alone, taken out of the batch */
    /* the first WW_STORE_MAX_SAMPLE_REJECTS ones' node ids and reasons, a line each */
    char bad_reason[WW_STORE_MAX_SAMPLE_REJECTS * 352];
} s_msg_t;

/* A group of messages written in one transaction. */
typedef struct {
    s_msg_t *msgs;
    ww_store_item_t *items;
    size_t n;
    uint64_t samples; /* node samples in its batches */
    ww_store_rc_t rc; /* result of its last write */
} s_group_t;

/* The writer thread's job: idle, a group handed over (being written), written. */
typedef enum { S_JOB_IDLE, S_JOB_WRITING, S_JOB_DONE } s_job_t;

typedef struct {
    const ww_collector_conf_t *conf;
    void *ctx, *sock;
    ww_store_t *store;
    ww_wire_limits_t lim;
    /* Pipelining: the receive loop fills rx while the writer thread writes wr (decoding
     * and building the next COPY overlap PostgreSQL's work on the previous one); replies
     * go out from the receive loop, which owns the socket. */
    s_group_t groups[2];
    s_group_t *rx, *wr;
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_job_t job; /* under mu */
    bool quit;   /* under mu */
    /* The writer's "done": readable when it finished a group, so the receive loop sleeps
     * in zmq_poll on the socket and this, instead of polling the job every 2 ms. */
    int wake_fd;
    uint8_t *enc;
    size_t enc_cap;
    ww_cmetrics_t *metrics; /* NULL without metrics.listen */
    ww_auth_t *auth;        /* NULL in insecure mode */
    ww_zmon_t *zmon;        /* failed handshakes (NULL if libzmq refused the monitor) */
    uint64_t received, malformed, invalid, forbidden, ignored, refused_by_database;
    /* The last write of wr was RETRY (PostgreSQL unavailable): what is held is answered
     * Pending with retry_after_ms, so agents wait instead of resending their window every
     * ack timeout (issue 14: 559 resends per agent in a 3 min outage). */
    bool holding;
    uint32_t retry_after_ms;
    uint64_t pending_replies;
} s_ingest_t;

static const char *s_code_name(Waferwatch__V1__NackCode c)
{
    switch (c) {
    case WAFERWATCH__V1__NACK_CODE__NACK_MALFORMED:
        return "malformed";
    case WAFERWATCH__V1__NACK_CODE__NACK_INVALID:
        return "invalid";
    case WAFERWATCH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION:
        return "unsupported_version";
    case WAFERWATCH__V1__NACK_CODE__NACK_TOO_LARGE:
        return "too_large";
    case WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN:
        return "forbidden";
    default:
        return "unspecified";
    }
}

static void s_reply(s_ingest_t *in, const s_msg_t *m, ww_envelope_t *env)
{
    env->wire_version = WW_WIRE_VERSION;
    env->agent_id = (char *)"collector";
    env->sent_ns = ww_time_now_ns();
    long len = ww_wire_encode(env, &in->enc, &in->enc_cap);
    if (len < 0) {
        WW_ERROR("out of memory encoding a reply");
        return;
    }
    /* A peer that left is not an error: it will reconnect and resend. */
    if (zmq_send(in->sock, m->identity, m->identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(in->sock, in->enc, (size_t)len, ZMQ_DONTWAIT) < 0) {
        WW_DEBUG("reply not sent: %s", zmq_strerror(errno));
    }
}

static void s_send_ack(s_ingest_t *in, const s_msg_t *m, uint64_t epoch, uint64_t seq)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    ww_ack_t ack = WAFERWATCH__V1__ACK__INIT;
    ack.epoch = epoch;
    ack.seq = seq;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    s_reply(in, m, &env);
}

/* The Nack's reason as every agent's decoder accepts it (ww_wire_validate: text of at
 * most max_string bytes): printable ASCII (a reason may quote what a peer sent), cut with
 * "..." when longer. A reason the agent could not decode would leave it resending the
 * refused batch forever; the whole reason is in ingest_rejects. */
static void s_nack_reason(char *dst, size_t max_string, const char *src)
{
    size_t n = 0;
    for (const char *p = src; *p && n < max_string; p++) {
        unsigned char c = (unsigned char)*p;
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (src[n] != '\0' && n >= 3) {
        memcpy(dst + n - 3, "...", 3);
    }
    dst[n] = '\0';
}

static void s_send_nack(s_ingest_t *in, const s_msg_t *m, uint64_t epoch, uint64_t seq)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    ww_nack_t nack = WAFERWATCH__V1__NACK__INIT;
    char reason[sizeof m->reason];
    size_t max = in->lim.max_string < sizeof reason ? in->lim.max_string : sizeof reason - 1;
    s_nack_reason(reason, max, m->reason);
    nack.epoch = epoch;
    nack.seq = seq;
    nack.code = m->code;
    nack.reason = reason;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_NACK;
    env.nack = &nack;
    s_reply(in, m, &env);
}

static void s_send_pending(s_ingest_t *in, const s_msg_t *m, uint64_t epoch, uint64_t seq)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    Waferwatch__V1__Pending pending = WAFERWATCH__V1__PENDING__INIT;
    pending.epoch = epoch;
    pending.seq = seq;
    /* Not holding: a resend raced its own write, whose Ack comes within moments. */
    pending.retry_after_ms = in->holding ? in->retry_after_ms : 1000;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_PENDING;
    env.pending = &pending;
    s_reply(in, m, &env);
    in->pending_replies++;
}

/* Held message i (received, not committed) in arrival order: wr's, then rx's. */
static s_msg_t *s_held(s_ingest_t *in, size_t i)
{
    return i < in->wr->n ? &in->wr->msgs[i] : &in->rx->msgs[i - in->wr->n];
}

/* Same stream: the same authenticated key, agent id and epoch. Both decoded (env set).
 * Reads only what the writer thread never writes (the envelope, agent_id, key), so it is
 * safe on wr while the writer writes it. */
static bool s_same_stream(const s_msg_t *a, const s_msg_t *b)
{
    return a->env->epoch == b->env->epoch && strcmp(a->agent_id, b->agent_id) == 0 &&
           strcmp(a->key, b->key) == 0;
}

static bool s_is_batch(const s_msg_t *m)
{
    return m->env && m->env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
}

/* The held batch that m (a batch not in the groups yet) resends, or NULL. */
static s_msg_t *s_held_find(s_ingest_t *in, const s_msg_t *m)
{
    size_t n = in->wr->n + in->rx->n;
    for (size_t i = 0; i < n; i++) {
        s_msg_t *h = s_held(in, i);
        if (h != m && s_is_batch(h) && h->env->seq == m->env->seq && s_same_stream(h, m)) {
            return h;
        }
    }
    return NULL;
}

/* The highest batch seq of m's stream held, m's own when it is a batch (0 when only the
 * stream's Hello is held). */
static uint64_t s_held_max_seq(s_ingest_t *in, const s_msg_t *m)
{
    uint64_t max = s_is_batch(m) ? m->env->seq : 0;
    size_t n = in->wr->n + in->rx->n;
    for (size_t i = 0; i < n; i++) {
        const s_msg_t *h = s_held(in, i);
        if (s_is_batch(h) && h->env->seq > max && s_same_stream(h, m)) {
            max = h->env->seq;
        }
    }
    return max;
}

/* After a failed write: one Pending per stream held, to its newest message's connection
 * (the agent's live one), naming the highest seq held. */
static void s_pending_held(s_ingest_t *in)
{
    size_t n = in->wr->n + in->rx->n;
    for (size_t i = 0; i < n; i++) {
        const s_msg_t *m = s_held(in, i);
        if (!m->env) {
            continue; /* a refusal: its Nack comes with its commit */
        }
        bool newest = true;
        for (size_t k = i + 1; k < n && newest; k++) {
            const s_msg_t *later = s_held(in, k);
            newest = !(later->env && s_same_stream(later, m));
        }
        if (newest) {
            s_send_pending(in, m, m->env->epoch, s_held_max_seq(in, m));
        }
    }
}

/* Identity binding: the envelope's agent_id must be the authenticated key's, and every
 * node it writes must be among the key's node patterns. Sets m->reason on refusal. */
static int s_authorize(s_ingest_t *in, s_msg_t *m)
{
    const ww_envelope_t *env = m->env;
    char why[200];
    int rc = ww_auth_check(in->auth, m->key, env->agent_id, NULL, why, sizeof why);
    if (rc == 0 && env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_HELLO) {
        for (size_t i = 0; rc == 0 && i < env->hello->n_nodes; i++) {
            rc = ww_auth_check(in->auth, m->key, env->agent_id, env->hello->nodes[i]->node_id, why,
                               sizeof why);
        }
    } else if (rc == 0 && env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_BATCH) {
        const ww_batch_t *b = env->batch;
        for (size_t i = 0; rc == 0 && i < b->n_samples; i++) {
            rc = ww_auth_check(in->auth, m->key, env->agent_id, b->samples[i]->node_id, why,
                               sizeof why);
        }
        for (size_t i = 0; rc == 0 && i < b->n_latency_windows; i++) {
            rc = ww_auth_check(in->auth, m->key, env->agent_id, b->latency_windows[i]->node_id, why,
                               sizeof why);
        }
    }
    if (rc < 0) {
        snprintf(m->reason, sizeof m->reason, "forbidden: %s", why);
    }
    return rc;
}

static void s_clear(s_group_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        ww_wire_free(&g->msgs[i].env);
    }
    g->n = 0;
    g->samples = 0;
}

/* Takes the samples refused alone (implausible readings, a time outside the accepted
 * range, counters a column cannot hold) out of an accepted batch, keeping the reasons of
 * the first WW_STORE_MAX_SAMPLE_REJECTS: the batch is written and acked without them and
 * each is recorded in ingest_rejects (the rest counted), so one bad sensor does not cost
 * the other nodes of the tick. */
static void s_drop_implausible(s_msg_t *m, int64_t now_ns, const ww_wire_limits_t *lim)
{
    ww_batch_t *b = m->env->batch;
    size_t keep = 0, used = 0;
    m->bad_samples = 0;
    m->bad_reason[0] = '\0';
    for (size_t i = 0; i < b->n_samples; i++) {
        ww_wire_why_t why;
        if (ww_wire_check_sample(b->samples[i], i, lim, now_ns, &why) == 0) {
            b->samples[keep++] = b->samples[i];
            continue;
        }
        if (m->bad_samples++ < WW_STORE_MAX_SAMPLE_REJECTS) {
            int w = snprintf(m->bad_reason + used, sizeof m->bad_reason - used, "%snode %.64s: %s",
                             used ? "\n" : "", b->samples[i]->node_id, why.msg);
            used += w > 0 ? (size_t)w : 0;
            used = used < sizeof m->bad_reason ? used : sizeof m->bad_reason - 1;
        }
        protobuf_c_message_free_unpacked(&b->samples[i]->base, NULL);
    }
    b->n_samples = keep;
    if (m->bad_samples) {
        WW_WARN("batch %s/%016llx seq %llu: %u samples refused alone, first: %.*s", m->agent_id,
                (unsigned long long)m->env->epoch, (unsigned long long)m->env->seq, m->bad_samples,
                (int)strcspn(m->bad_reason, "\n"), m->bad_reason);
    }
}

/* Receives one message into the next slot of the receiving group. Returns 1 when a message
 * was taken into the group, 0 when it needs no write (heartbeat), -EAGAIN when nothing is
 * waiting. */
static int s_receive(s_ingest_t *in)
{
    s_group_t *g = in->rx;
    s_msg_t *m = &g->msgs[g->n];
    ww_store_item_t *it = &g->items[g->n];
    memset(it, 0, sizeof *it);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, in->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return -EAGAIN;
    }
    m->identity_len = zmq_msg_size(&id) < WW_IDENTITY_MAX ? zmq_msg_size(&id) : WW_IDENTITY_MAX;
    memcpy(m->identity, zmq_msg_data(&id), m->identity_len);
    int more = zmq_msg_more(&id);
    zmq_msg_close(&id);
    zmq_msg_init(&body);
    size_t frames = 0;
    while (more) {
        /* Keep the first body frame; drain any extras (a well-formed agent sends one). */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        if (zmq_msg_recv(frames == 0 ? &body : &extra, in->sock, 0) < 0) {
            zmq_msg_close(&extra);
            break;
        }
        more = zmq_msg_more(frames == 0 ? &body : &extra);
        zmq_msg_close(&extra);
        frames++;
    }
    in->received++;
    ww_wire_why_t why;
    int rc;
    int64_t now_ns = ww_time_now_ns();
    if (frames != 1) {
        rc = -EBADMSG;
        why.have_seq = 0;
        snprintf(why.msg, sizeof why.msg, "message: %zu body frames, expected 1", frames);
    } else {
        rc = ww_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), &in->lim, now_ns, &m->env,
                            &why);
    }
    const char *uid = frames == 1 ? zmq_msg_gets(&body, "User-Id") : NULL;
    snprintf(m->key, sizeof m->key, "%s", uid ? uid : "");
    zmq_msg_close(&body);
    if (rc == -ENOMEM) {
        /* Our memory, not the peer's fault: no Nack (the agent would drop a good batch);
         * unanswered, it is sent again after the agent's ack timeout. */
        WW_ERROR("out of memory decoding a message: not answered, the agent resends it");
        return 0;
    }
    if (rc < 0) {
        m->code = ww_wire_nack_code(rc);
        snprintf(m->reason, sizeof m->reason, "%s", why.msg);
        if (rc == -EBADMSG) {
            in->malformed++;
        } else {
            in->invalid++;
        }
        snprintf(m->agent_id, sizeof m->agent_id, "%s", why.have_seq ? why.agent_id : "");
        it->kind = WW_ITEM_REJECT;
        it->agent_id = m->agent_id;
        it->epoch = why.have_seq ? why.epoch : 0;
        it->seq = why.have_seq ? why.seq : 0;
        it->reject_code = s_code_name(m->code);
        it->reject_reason = m->reason;
        char who[320];
        ww_auth_describe(in->auth, m->key, m->agent_id, who, sizeof who);
        WW_WARN("refused a message from %s: %s", who, why.msg);
        g->n++;
        return 1;
    }
    ww_envelope_t *env = m->env;
    snprintf(m->agent_id, sizeof m->agent_id, "%s", env->agent_id);
    if (in->auth && s_authorize(in, m) < 0) {
        in->forbidden++;
        m->code = WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN;
        it->kind = WW_ITEM_REJECT;
        it->agent_id = m->agent_id;
        it->epoch = env->epoch;
        it->seq = env->seq;
        it->reject_code = s_code_name(m->code);
        it->reject_reason = m->reason;
        WW_WARN("refused a message: %s", m->reason);
        ww_wire_free(&m->env);
        g->n++;
        return 1;
    }
    it->agent_id = m->agent_id;
    it->epoch = env->epoch;
    it->seq = env->seq;
    it->env = env;
    /* Only while PostgreSQL cannot commit (the resend storm of a database outage): in
     * normal operation a copy goes through and is classified a duplicate by the store,
     * which records its refused samples at every receipt, as docs/architecture.md says. */
    s_msg_t *held = in->holding && s_is_batch(m) ? s_held_find(in, m) : NULL;
    if (held) {
        /* A resend of a batch held: not queued twice. Its Ack goes to the connection the
         * agent sends on now (the writer thread never reads identities). */
        memcpy(held->identity, m->identity, m->identity_len);
        held->identity_len = m->identity_len;
        s_send_pending(in, m, env->epoch, s_held_max_seq(in, m));
        ww_wire_free(&m->env);
        return 0;
    }
    switch (env->body_case) {
    case WAFERWATCH__V1__ENVELOPE__BODY_HELLO:
        it->kind = WW_ITEM_HELLO;
        it->seq = 0;
        break;
    case WAFERWATCH__V1__ENVELOPE__BODY_BATCH:
        it->kind = WW_ITEM_BATCH;
        s_drop_implausible(m, now_ns, &in->lim);
        it->bad_samples = m->bad_samples;
        it->bad_reason = m->bad_reason;
        g->samples += env->batch->n_samples;
        break;
    default:
        /* Heartbeats need nothing; acks and nacks are the collector's to send. */
        in->ignored++;
        ww_wire_free(&m->env);
        return 0;
    }
    g->n++;
    if (in->holding && s_is_batch(m)) {
        s_send_pending(in, m, env->epoch, s_held_max_seq(in, m));
    }
    return 1;
}

static void s_replies(s_ingest_t *in, const s_group_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        const ww_store_item_t *it = &g->items[i];
        const s_msg_t *m = &g->msgs[i];
        if (!it->committed) {
            continue;
        }
        switch (it->kind) {
        case WW_ITEM_HELLO:
            s_send_ack(in, m, it->epoch, 0);
            break;
        case WW_ITEM_BATCH:
            if (it->disp == WW_DISP_WRITTEN || it->disp == WW_DISP_DUPLICATE) {
                s_send_ack(in, m, it->epoch, it->seq);
            }
            break;
        case WW_ITEM_REJECT:
            s_send_nack(in, m, it->epoch, it->seq);
            break;
        }
    }
}

/* A group PostgreSQL refused as data: write its items one by one, turning each one that
 * is refused alone into a recorded reject, so one bad batch cannot block the others. */
static ww_store_rc_t s_write_singly(s_ingest_t *in, s_group_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        ww_store_item_t *it = &g->items[i];
        ww_store_rc_t rc = ww_store_write(in->store, it, 1);
        if (rc == WW_STORE_REJECT) {
            s_msg_t *m = &g->msgs[i];
            m->code = WAFERWATCH__V1__NACK_CODE__NACK_INVALID;
            snprintf(m->reason, sizeof m->reason, "refused by PostgreSQL as invalid data");
            it->kind = WW_ITEM_REJECT;
            it->reject_code = "refused_by_database";
            it->reject_reason = m->reason;
            __atomic_add_fetch(&in->refused_by_database, 1, __ATOMIC_RELAXED);
            rc = ww_store_write(in->store, it, 1);
        }
        if (rc != WW_STORE_OK) {
            return WW_STORE_RETRY; /* items before i are committed; their disp says so */
        }
    }
    return WW_STORE_OK;
}

/* Writes the group in one transaction (one by one if PostgreSQL refuses it as data). Runs
 * on the writer thread: touches the group and the store, never the socket. */
static ww_store_rc_t s_store(s_ingest_t *in, s_group_t *g)
{
    int64_t t0 = ww_time_mono_ns();
    ww_store_rc_t wrc = ww_store_write(in->store, g->items, g->n);
    ww_cmetrics_write(in->metrics, wrc, g->n, (double)(ww_time_mono_ns() - t0) / WW_NS_PER_S);
    if (wrc == WW_STORE_REJECT) {
        wrc = s_write_singly(in, g);
    }
    ww_cmetrics_t *m = in->metrics;
    int64_t now = ww_time_now_ns();
    for (size_t i = 0; m && i < g->n; i++) {
        const ww_store_item_t *it = &g->items[i];
        if (it->committed && it->disp == WW_DISP_WRITTEN && it->env->batch->n_samples > 0) {
            double d = (double)(now - it->env->batch->samples[0]->time_ns) / 1e9;
            ww_cmetrics_delay(m, d > 0 ? d : 0);
        }
    }
    return wrc;
}

/* Answers what the write committed. Returns true when the group is done; false when it
 * must be retried (items already committed, by s_write_singly, are answered and leave
 * the group). */
static bool s_finish(s_ingest_t *in, s_group_t *g, ww_store_rc_t wrc)
{
    s_replies(in, g);
    if (wrc == WW_STORE_OK) {
        s_clear(g);
        return true;
    }
    size_t keep = 0;
    g->samples = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->items[i].committed) {
            ww_wire_free(&g->msgs[i].env);
            continue;
        }
        g->msgs[keep] = g->msgs[i];
        g->items[keep] = g->items[i];
        /* These point into the message slot that just moved. */
        g->items[keep].agent_id = g->msgs[keep].agent_id;
        if (g->items[keep].kind == WW_ITEM_REJECT) {
            g->items[keep].reject_reason = g->msgs[keep].reason;
        }
        g->items[keep].bad_reason = g->msgs[keep].bad_reason;
        if (g->items[keep].kind == WW_ITEM_BATCH) {
            g->samples += g->items[keep].env->batch->n_samples;
        }
        keep++;
    }
    g->n = keep;
    return false;
}

/* Writes the group on the calling thread (the writer thread must be idle). */
static bool s_write_group(s_ingest_t *in, s_group_t *g)
{
    return s_finish(in, g, s_store(in, g));
}

static void *s_writer_main(void *arg)
{
    s_ingest_t *in = arg;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        while (in->job != S_JOB_WRITING && !in->quit) {
            pthread_cond_wait(&in->cv, &in->mu);
        }
        if (in->job != S_JOB_WRITING) {
            break;
        }
        pthread_mutex_unlock(&in->mu);
        ww_store_rc_t rc = s_store(in, in->wr);
        pthread_mutex_lock(&in->mu);
        in->wr->rc = rc;
        in->job = S_JOB_DONE;
        pthread_cond_broadcast(&in->cv);
        uint64_t one = 1;
        /* A full counter (never: the loop reads it each turn) only means "already woken". */
        ssize_t w = write(in->wake_fd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

static s_job_t s_job(s_ingest_t *in)
{
    pthread_mutex_lock(&in->mu);
    s_job_t j = in->job;
    pthread_mutex_unlock(&in->mu);
    return j;
}

/* Hands wr to the writer thread. */
static void s_submit(s_ingest_t *in)
{
    pthread_mutex_lock(&in->mu);
    in->job = S_JOB_WRITING;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

/* Waits for the writer thread to finish what it writes. */
static void s_wait_writer(s_ingest_t *in)
{
    pthread_mutex_lock(&in->mu);
    while (in->job == S_JOB_WRITING) {
        pthread_cond_wait(&in->cv, &in->mu);
    }
    pthread_mutex_unlock(&in->mu);
}

/* Clears the writer's wake-up (the job itself is read under mu). */
static void s_take_wake(s_ingest_t *in)
{
    uint64_t n;
    ssize_t r = read(in->wake_fd, &n, sizeof n);
    (void)r; /* EAGAIN: nothing to clear */
}

/* Copies the counters to /metrics (when served). */
static void s_publish(const s_ingest_t *in)
{
    ww_cmetrics_t *m = in->metrics;
    if (!m) {
        return;
    }
    ww_store_stats_t st;
    ww_store_stats(in->store, &st);
    ww_ingest_counts_t c = {
        .received = in->received,
        .malformed = in->malformed,
        .invalid = in->invalid,
        .forbidden = in->forbidden,
        .refused_by_database = __atomic_load_n(&in->refused_by_database, __ATOMIC_RELAXED),
        .pending = in->rx->n + in->wr->n,
        .pending_replies = in->pending_replies,
    };
    ww_zmon_stats_t hs;
    ww_zmon_stats(in->zmon, &hs);
    for (int r = 0; r < WW_ZMON_REASONS; r++) {
        c.handshake_failures[r] = hs.failed[r];
    }
    ww_cmetrics_publish(m, &c, &st);
}

static int s_write_endpoint_file(const char *path, const char *endpoint)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return -errno;
    }
    fprintf(f, "%s\n", endpoint);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        return -errno;
    }
    return 0;
}

static void s_sleep_ns(int64_t ns)
{
    zmq_poll(NULL, 0, (long)(ns / WW_NS_PER_MS));
}

/* CURVE server with ZAP enforced for our domain, so a missing or failing handler can
 * never mean "allow all". */
static int s_secure(s_ingest_t *in, const ww_collector_conf_t *conf)
{
    if (conf->insecure) {
        WW_ERROR("INSECURE MODE (security.insecure): no CURVE, no allowlist; anyone who can "
                 "reach %s can write any node's data. Never run a production fleet like this.",
                 conf->listen);
        return 0;
    }
    ww_curve_key_t key;
    char why[512];
    int rc = ww_curve_load(conf->server_key_file, 1, &key, why, sizeof why);
    if (rc < 0) {
        WW_ERROR("security.server_key: %s", why);
        return rc;
    }
    int one = 1;
    const char *domain = "waferwatch";
    if (zmq_setsockopt(in->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(in->sock, ZMQ_CURVE_SECRETKEY, key.secret_z85, WW_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(in->sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0 ||
        zmq_setsockopt(in->sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0) {
        WW_ERROR("cannot enable CURVE: %s", zmq_strerror(errno));
        return -errno;
    }
    memset(&key, 0, sizeof key);
    int enforced = 0;
    size_t len = sizeof enforced;
    if (zmq_getsockopt(in->sock, ZMQ_ZAP_ENFORCE_DOMAIN, &enforced, &len) != 0 || enforced != 1) {
        WW_ERROR("this libzmq does not enforce the ZAP domain: refusing to run without it");
        return -ENOTSUP;
    }
    in->auth = ww_auth_new(in->ctx, conf->allowlist, why, sizeof why);
    if (!in->auth) {
        WW_ERROR("security.allowlist: %s", why);
        return -EINVAL;
    }
    return 0;
}

/* Everything before the loop: groups, store, socket (CURVE, monitor, bind), schema,
 * endpoint file, writer thread. Returns 0, or a negative errno (logged); what was made is
 * undone by s_stop either way. */
static int s_start(s_ingest_t *in, const ww_collector_conf_t *conf, volatile sig_atomic_t *stop)
{
    in->conf = conf;
    in->wake_fd = -1;
    ww_wire_limits_default(&in->lim);
    in->lim.max_message_bytes = (size_t)conf->max_message_bytes;
    in->lim.max_samples = (size_t)conf->max_samples;
    in->lim.max_past_ns = conf->max_past_ns;
    in->lim.max_future_ns = conf->max_future_ns;
    for (int k = 0; k < 2; k++) {
        in->groups[k].msgs = calloc((size_t)conf->max_group, sizeof *in->groups[k].msgs);
        in->groups[k].items = calloc((size_t)conf->max_group, sizeof *in->groups[k].items);
    }
    in->rx = &in->groups[0];
    in->wr = &in->groups[1];
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    in->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    in->store = ww_store_new(conf->pg_conninfo);
    if (in->store) {
        ww_store_set_retention(in->store, (int)conf->retention_raw_days,
                               (int)conf->retention_rollup_days);
    }
    in->ctx = zmq_ctx_new();
    if (!in->groups[0].msgs || !in->groups[0].items || !in->groups[1].msgs ||
        !in->groups[1].items || !in->store || !in->ctx) {
        return -ENOMEM;
    }
    if (in->wake_fd < 0) {
        int e = errno;
        WW_ERROR("cannot make the writer's eventfd: %s", strerror(e));
        return -e;
    }
    in->sock = zmq_socket(in->ctx, ZMQ_ROUTER);
    /* The transport drops a peer whose message passes twice the limit without reading it;
     * up to that, an oversized message is read, refused with a Nack and counted. */
    int64_t maxmsg = 2 * conf->max_message_bytes + 4096;
    int linger = 1000, rcvhwm = S_RCVHWM;
    zmq_setsockopt(in->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(in->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(in->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    int rc = s_secure(in, conf);
    if (rc < 0) {
        return rc;
    }
    /* Before bind, so that no failed handshake goes uncounted. Not fatal: the collector
     * serves without it, only blind to peers that fail the handshake. */
    char zwhy[256];
    if (!(in->zmon = ww_zmon_new(in->ctx, in->sock, zwhy, sizeof zwhy))) {
        WW_WARN("failed handshakes will not be counted or logged: %s", zwhy);
    }
    if (zmq_bind(in->sock, conf->listen) != 0) {
        rc = -errno;
        WW_ERROR("cannot listen on %s: %s", conf->listen, zmq_strerror(errno));
        return rc;
    }
    char endpoint[512];
    size_t eplen = sizeof endpoint;
    zmq_getsockopt(in->sock, ZMQ_LAST_ENDPOINT, endpoint, &eplen);

    /* Schema first: a collector that cannot migrate must not accept data. */
    int64_t backoff = 100 * WW_NS_PER_MS;
    while ((rc = ww_store_ensure(in->store, conf->pg_migrate)) < 0 && !*stop) {
        if (rc == -EPROTO || rc == -EIO) {
            WW_ERROR("cannot prepare the database; stopping");
            return rc;
        }
        if (rc == -EACCES) {
            /* Wrong credentials at start: a configuration error (exit 2, which systemd
             * does not restart); once running, a refused reconnect is retried instead,
             * with the data kept and /healthz saying why. */
            return rc;
        }
        s_sleep_ns(backoff);
        backoff = ww_backoff_double(backoff, conf->retry_max_ns);
    }
    ww_cmetrics_pg_up(in->metrics, rc == 0);
    WW_INFO("listening on %s", endpoint);
    if (conf->endpoint_file && *conf->endpoint_file) {
        if ((rc = s_write_endpoint_file(conf->endpoint_file, endpoint)) < 0) {
            WW_ERROR("cannot write %s: %s", conf->endpoint_file, strerror(-rc));
            return rc;
        }
    }
    if (pthread_create(&in->writer, NULL, s_writer_main, in) != 0) {
        WW_ERROR("cannot start the writer thread");
        return -EAGAIN;
    }
    in->writer_started = true;
    return 0;
}

/* Swaps rx and wr and hands wr (what rx received) to the writer. */
static void s_hand_over(s_ingest_t *in)
{
    s_group_t *t = in->wr;
    in->wr = in->rx;
    in->rx = t;
    s_submit(in);
}

/* The receive loop, until *stop: takes messages into rx while the writer writes wr, and
 * answers each group once its write is known. */
static void s_loop(s_ingest_t *in, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    const ww_collector_conf_t *conf = in->conf;
    int64_t next_maintain = ww_time_mono_ns() + 3600 * WW_NS_PER_S;
    int64_t retry_at = 0;
    int64_t backoff = 100 * WW_NS_PER_MS;
    while (!*stop) {
        if (*reload && in->auth) {
            *reload = 0;
            ww_auth_reload(in->auth);
        }
        s_job_t job = s_job(in);
        if (job == S_JOB_DONE) {
            s_take_wake(in);
            s_group_t *done = in->wr;
            /* A committed group is answered and freed after the writer has the next one (a
             * backlog's group of 65k samples takes ~20 ms to free: the server idled that
             * long between transactions). The store is quiet until the hand-over: its
             * counters are published now, as the writer may not be idle again for a while. */
            bool next =
                done->rc == WW_STORE_OK && in->rx->n > 0 && ww_time_mono_ns() < next_maintain;
            if (next) {
                s_publish(in);
                s_hand_over(in);
            }
            if (s_finish(in, done, done->rc)) {
                backoff = 100 * WW_NS_PER_MS;
                in->holding = false;
            } else {
                /* Keep the group and retry it later; read at most one more group meanwhile:
                 * backpressure into the agents' spools. */
                retry_at = ww_time_mono_ns() + backoff;
                backoff = ww_backoff_double(backoff, conf->retry_max_ns);
                /* Agents may wait the next interval: the Ack comes by itself once a retry
                 * commits, and every failed retry renews this. */
                int64_t after_ms = backoff / WW_NS_PER_MS;
                after_ms = after_ms < 1000 ? 1000 : after_ms;
                in->retry_after_ms = (uint32_t)(after_ms > 30000 ? 30000 : after_ms);
                in->holding = true;
                s_pending_held(in);
            }
            pthread_mutex_lock(&in->mu);
            if (!next) {
                in->job = S_JOB_IDLE;
            }
            job = in->job;
            pthread_mutex_unlock(&in->mu);
        }
        if (job == S_JOB_IDLE) {
            /* The store is the receive loop's while the writer is idle. */
            if (ww_time_mono_ns() >= next_maintain) {
                ww_store_maintain(in->store);
                next_maintain = ww_time_mono_ns() + 3600 * WW_NS_PER_S;
            }
            s_publish(in);
            /* Hand the writer what is ready before decoding more: a large message decoded
             * first would delay every ack in the group by its decode time. */
            if (in->wr->n == 0 && in->rx->n > 0) {
                s_hand_over(in);
                job = S_JOB_WRITING;
            }
        }
        bool rx_full = in->rx->n >= (size_t)conf->max_group ||
                       in->rx->samples >= (uint64_t)conf->max_group_samples;
        /* Sleep until input (unless rx is full), the writer's result or a retry is due. */
        long wait_ms = 1000;
        if (job == S_JOB_IDLE && in->wr->n > 0) {
            int64_t left = retry_at - ww_time_mono_ns();
            wait_ms = left > 0 ? (long)(left / WW_NS_PER_MS) + 1 : 0;
        } else if (job == S_JOB_IDLE && in->rx->n > 0) {
            wait_ms = 0;
        }
        zmq_pollitem_t items[2] = {{in->sock, 0, rx_full ? 0 : ZMQ_POLLIN, 0},
                                   {NULL, in->wake_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, wait_ms) < 0 && errno == EINTR) {
            continue;
        }
        if (!rx_full && (items[0].revents & ZMQ_POLLIN)) {
            /* Take what is already waiting, up to the group's limits, for one turn. */
            int64_t turn_end = ww_time_mono_ns() + S_TURN_NS;
            while (in->rx->n < (size_t)conf->max_group &&
                   in->rx->samples < (uint64_t)conf->max_group_samples &&
                   s_receive(in) != -EAGAIN && ww_time_mono_ns() < turn_end) {
            }
        }
        if (job == S_JOB_IDLE) {
            if (in->wr->n == 0 && in->rx->n > 0) {
                s_hand_over(in);
            } else if (in->wr->n > 0 && ww_time_mono_ns() >= retry_at) {
                s_submit(in);
            }
        }
    }
}

/* SIGTERM: what was received is committed and acked before exit, within drain_timeout;
 * what still sits in ZeroMQ's queues was never acked and the agents send it again. */
static void s_drain(s_ingest_t *in)
{
    const ww_collector_conf_t *conf = in->conf;
    s_wait_writer(in);
    if (s_job(in) == S_JOB_DONE) {
        s_finish(in, in->wr, in->wr->rc);
        in->job = S_JOB_IDLE;
    }
    if (in->rx->n + in->wr->n > 0) {
        WW_INFO("draining %zu received messages before exit", in->rx->n + in->wr->n);
        int64_t drain_end = ww_time_mono_ns() + conf->drain_ns;
        int64_t backoff = 100 * WW_NS_PER_MS;
        for (int k = 0; k < 2; k++) {
            s_group_t *g = k == 0 ? in->wr : in->rx; /* in arrival order */
            while (g->n > 0 && !s_write_group(in, g) && ww_time_mono_ns() < drain_end) {
                s_sleep_ns(backoff);
                backoff = ww_backoff_double(backoff, conf->retry_max_ns);
            }
        }
        if (in->rx->n + in->wr->n > 0) {
            WW_WARN("%zu messages not committed at exit (not acked: the agents resend them)",
                    in->rx->n + in->wr->n);
        }
    }
    ww_store_stats_t st;
    ww_store_stats(in->store, &st);
    WW_INFO("stopping: received=%llu rows=%llu latency_windows=%llu transactions=%llu "
            "duplicates=%llu gaps=%llu rejects=%llu (malformed=%llu invalid=%llu forbidden=%llu) "
            "retries=%llu implausible_samples=%llu late=%llu window_parts=%llu outages=%llu "
            "pending_replies=%llu unwritten=%zu delay_p50_ms=%.0f delay_p99_ms=%.0f "
            "delay_max_ms=%.0f",
            (unsigned long long)in->received, (unsigned long long)st.rows,
            (unsigned long long)st.windows, (unsigned long long)st.transactions,
            (unsigned long long)st.duplicates, (unsigned long long)st.gaps,
            (unsigned long long)st.rejects, (unsigned long long)in->malformed,
            (unsigned long long)in->invalid, (unsigned long long)in->forbidden,
            (unsigned long long)st.retries, (unsigned long long)st.implausible_samples,
            (unsigned long long)st.late, (unsigned long long)st.window_parts,
            (unsigned long long)st.outages, (unsigned long long)in->pending_replies,
            in->rx->n + in->wr->n, 1e3 * ww_store_delay_quantile(in->store, 0.5),
            1e3 * ww_store_delay_quantile(in->store, 0.99),
            1e3 * ww_store_delay_quantile(in->store, 1.0));
}

/* Undoes s_start, whatever it reached. */
static void s_stop(s_ingest_t *in)
{
    if (in->writer_started) {
        pthread_mutex_lock(&in->mu);
        in->quit = true;
        pthread_cond_signal(&in->cv);
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->writer, NULL);
    }
    for (int k = 0; k < 2; k++) {
        s_clear(&in->groups[k]);
        free(in->groups[k].msgs);
        free(in->groups[k].items);
    }
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    if (in->wake_fd >= 0) {
        close(in->wake_fd);
    }
    ww_zmon_destroy(&in->zmon); /* before its socket closes */
    if (in->sock) {
        zmq_close(in->sock);
    }
    ww_auth_destroy(&in->auth);
    if (in->ctx) {
        zmq_ctx_term(in->ctx);
    }
    ww_store_destroy(&in->store);
    free(in->enc);
}

int ww_ingest_run(const ww_collector_conf_t *conf, ww_cmetrics_t *metrics,
                  volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    s_ingest_t in;
    memset(&in, 0, sizeof in);
    in.metrics = metrics;
    int ret = s_start(&in, conf, stop);
    if (ret == 0) {
        s_loop(&in, stop, reload);
        s_drain(&in);
    }
    s_stop(&in);
    return ret;
}
