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
/* Agents routed to a writer by name (s_lane_of): the fleet's 32,600 nodes with room. */
#define S_ROUTES_MAX 100000

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

/* A writer's job: idle, a group handed over (being written), written. */
typedef enum { S_JOB_IDLE, S_JOB_WRITING, S_JOB_DONE } s_job_t;

typedef struct s_ingest s_ingest_t;

/* One writer: a PostgreSQL connection and its thread. PostgreSQL runs one backend, on one
 * core, per connection, and one connection got ~0.75 of a core in a backlog's drain
 * (bench/RESULTS.md); writers side by side let the server's other cores write too. Every
 * message of an agent goes to the same writer (s_lane_of), so a stream's batches are
 * written in order and the exactly-once checks (ww_store.h) see them as with one writer;
 * writers meet only on rows that many agents share (the latency rollups, locked in key
 * order: they wait, never deadlock). */
typedef struct {
    s_ingest_t *in;
    /* Pipelining: the receive loop fills rx while the writer thread writes wr (decoding
     * and building the next COPY overlap PostgreSQL's work on the previous one); replies
     * go out from the receive loop, which owns the socket. */
    s_group_t groups[2];
    s_group_t *rx, *wr;
    ww_store_t *store;
    pthread_t thread;
    bool started;
    pthread_cond_t cv;
    s_job_t job;         /* under in->mu */
    ww_store_stats_t st; /* the store's counters, copied while its writer was idle */
    /* The last write of wr was RETRY (PostgreSQL unavailable): what is held is answered
     * Pending with retry_after_ms, so agents wait instead of resending their window every
     * ack timeout (issue 14: 559 resends per agent in a 3 min outage). */
    bool holding;
    uint32_t retry_after_ms;
    int64_t retry_at, backoff;
    size_t agents; /* agents routed here (s_lane_of) */
} s_lane_t;

/* An agent id and the writer of its messages. */
typedef struct {
    char *id;
    uint32_t lane;
} s_route_t;

struct s_ingest {
    const ww_collector_conf_t *conf;
    void *ctx, *sock;
    ww_wire_limits_t lim;
    s_lane_t *lanes;
    size_t n_lanes;
    s_route_t *routes; /* open addressing, routes_cap a power of two */
    size_t routes_cap, n_routes;
    bool routes_frozen;
    /* The message being received, before it is known whose (and so which writer's) it is. */
    s_msg_t in_msg;
    ww_store_item_t in_item;
    pthread_mutex_t mu;
    bool mu_made;
    bool quit; /* under mu */
    /* The writers' "done": readable when one finished a group, so the receive loop sleeps
     * in zmq_poll on the socket and this, instead of polling the jobs every 2 ms. */
    int wake_fd;
    uint8_t *enc;
    size_t enc_cap;
    ww_cmetrics_t *metrics; /* NULL without metrics.listen */
    ww_auth_t *auth;        /* NULL in insecure mode */
    ww_zmon_t *zmon;        /* failed handshakes (NULL if libzmq refused the monitor) */
    uint64_t received, malformed, invalid, forbidden, ignored, refused_by_database;
    uint64_t pending_replies;
};

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

/* [first, last] (0, 0: none): seqs of the stream that the database does not hold
 * (ww_store_item_t), named in the Ack so that an agent still keeping them sends them again
 * (waferwatch.proto, Ack). */
static void s_send_ack(s_ingest_t *in, const s_msg_t *m, uint64_t epoch, uint64_t seq,
                       uint64_t first, uint64_t last)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    ww_ack_t ack = WAFERWATCH__V1__ACK__INIT;
    ack.epoch = epoch;
    ack.seq = seq;
    ack.missing_first = first;
    ack.missing_last = last;
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

static void s_send_pending(s_ingest_t *in, const s_lane_t *ln, const s_msg_t *m, uint64_t epoch,
                           uint64_t seq)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    Waferwatch__V1__Pending pending = WAFERWATCH__V1__PENDING__INIT;
    pending.epoch = epoch;
    pending.seq = seq;
    /* Not holding: a resend raced its own write, whose Ack comes within moments. */
    pending.retry_after_ms = ln->holding ? ln->retry_after_ms : 1000;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_PENDING;
    env.pending = &pending;
    s_reply(in, m, &env);
    in->pending_replies++;
}

/* FNV-1a of an agent id, mixed (murmur3's finalizer) so that its low bits, which pick a
 * slot, depend on every byte. */
static uint32_t s_id_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

/* Doubles the table of routes (rehashing them). Returns 0 or -ENOMEM. */
static int s_routes_grow(s_ingest_t *in)
{
    size_t cap = in->routes_cap ? 2 * in->routes_cap : 256;
    s_route_t *t = calloc(cap, sizeof *t);
    if (!t) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < in->routes_cap; i++) {
        if (in->routes[i].id) {
            size_t k = s_id_hash(in->routes[i].id) & (cap - 1);
            while (t[k].id) {
                k = (k + 1) & (cap - 1);
            }
            t[k] = in->routes[i];
        }
    }
    free(in->routes);
    in->routes = t;
    in->routes_cap = cap;
    return 0;
}

/* The writer of every message of agent_id: the one with the fewest agents when its first
 * message came, then always that one, so that a stream's batches are written in order and
 * a handful of agents (a benchmark's eight) still share the writers evenly. Ids past
 * S_ROUTES_MAX (or after an allocation failed) go by their hash: the table never forgets an
 * id, so an agent never changes writer. */
static s_lane_t *s_lane_of(s_ingest_t *in, const char *agent_id)
{
    uint32_t h = s_id_hash(agent_id);
    if (in->routes_cap > 0) {
        for (size_t k = h & (in->routes_cap - 1); in->routes[k].id;
             k = (k + 1) & (in->routes_cap - 1)) {
            if (strcmp(in->routes[k].id, agent_id) == 0) {
                return &in->lanes[in->routes[k].lane];
            }
        }
    }
    if (in->routes_frozen || in->n_routes >= S_ROUTES_MAX) {
        return &in->lanes[h % in->n_lanes];
    }
    char *id = NULL;
    if ((4 * (in->n_routes + 1) > 3 * in->routes_cap && s_routes_grow(in) < 0) ||
        !(id = strdup(agent_id))) {
        WW_WARN("out of memory routing agents to writers: agents seen from now on go by the hash "
                "of their id");
        in->routes_frozen = true;
        return &in->lanes[h % in->n_lanes];
    }
    size_t least = 0;
    for (size_t l = 1; l < in->n_lanes; l++) {
        least = in->lanes[l].agents < in->lanes[least].agents ? l : least;
    }
    size_t k = h & (in->routes_cap - 1);
    while (in->routes[k].id) {
        k = (k + 1) & (in->routes_cap - 1);
    }
    in->routes[k] = (s_route_t){.id = id, .lane = (uint32_t)least};
    in->n_routes++;
    in->lanes[least].agents++;
    return &in->lanes[least];
}

/* Held message i of a writer (received, not committed) in arrival order: wr's, then
 * rx's. */
static s_msg_t *s_held(s_lane_t *ln, size_t i)
{
    return i < ln->wr->n ? &ln->wr->msgs[i] : &ln->rx->msgs[i - ln->wr->n];
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

/* The batch held by m's writer that m (a batch not in the groups yet) resends, or NULL. */
static s_msg_t *s_held_find(s_lane_t *ln, const s_msg_t *m)
{
    size_t n = ln->wr->n + ln->rx->n;
    for (size_t i = 0; i < n; i++) {
        s_msg_t *h = s_held(ln, i);
        if (h != m && s_is_batch(h) && h->env->seq == m->env->seq && s_same_stream(h, m)) {
            return h;
        }
    }
    return NULL;
}

/* The highest batch seq of m's stream held, m's own when it is a batch (0 when only the
 * stream's Hello is held). */
static uint64_t s_held_max_seq(s_lane_t *ln, const s_msg_t *m)
{
    uint64_t max = s_is_batch(m) ? m->env->seq : 0;
    size_t n = ln->wr->n + ln->rx->n;
    for (size_t i = 0; i < n; i++) {
        const s_msg_t *h = s_held(ln, i);
        if (s_is_batch(h) && h->env->seq > max && s_same_stream(h, m)) {
            max = h->env->seq;
        }
    }
    return max;
}

/* After a failed write: one Pending per stream the writer holds, to its newest message's
 * connection (the agent's live one), naming the highest seq held. */
static void s_pending_held(s_ingest_t *in, s_lane_t *ln)
{
    size_t n = ln->wr->n + ln->rx->n;
    for (size_t i = 0; i < n; i++) {
        const s_msg_t *m = s_held(ln, i);
        if (!m->env) {
            continue; /* a refusal: its Nack comes with its commit */
        }
        bool newest = true;
        for (size_t k = i + 1; k < n && newest; k++) {
            const s_msg_t *later = s_held(ln, k);
            newest = !(later->env && s_same_stream(later, m));
        }
        if (newest) {
            s_send_pending(in, ln, m, m->env->epoch, s_held_max_seq(ln, m));
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

/* Puts message m and its item into slot k of g (m may be that slot): the item's pointers
 * into its message (agent id, reasons) follow it; the envelope moves with it. */
static void s_slot_put(s_group_t *g, size_t k, const s_msg_t *m, const ww_store_item_t *it)
{
    if (&g->msgs[k] != m) {
        g->msgs[k] = *m;
    }
    ww_store_item_t *d = &g->items[k];
    if (d != it) {
        *d = *it;
    }
    d->agent_id = g->msgs[k].agent_id;
    if (d->kind == WW_ITEM_REJECT) {
        d->reject_reason = g->msgs[k].reason;
    }
    d->bad_reason = g->msgs[k].bad_reason;
}

/* Takes the message received (in->in_msg) into the receiving group of its writer. */
static void s_admit(s_ingest_t *in, s_lane_t *ln)
{
    s_group_t *g = ln->rx;
    s_slot_put(g, g->n, &in->in_msg, &in->in_item);
    in->in_msg.env = NULL; /* the group's now */
    if (g->items[g->n].kind == WW_ITEM_BATCH) {
        g->samples += g->items[g->n].env->batch->n_samples;
    }
    g->n++;
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

/* Receives one message into the receiving group of its writer. Returns 1 when a message was
 * taken into a group, 0 when it needs no write (heartbeat), -EAGAIN when nothing is
 * waiting. */
static int s_receive(s_ingest_t *in)
{
    s_msg_t *m = &in->in_msg;
    ww_store_item_t *it = &in->in_item;
    memset(it, 0, sizeof *it);
    m->env = NULL;
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
        s_admit(in, s_lane_of(in, m->agent_id));
        return 1;
    }
    ww_envelope_t *env = m->env;
    snprintf(m->agent_id, sizeof m->agent_id, "%s", env->agent_id);
    s_lane_t *ln = s_lane_of(in, m->agent_id);
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
        s_admit(in, ln);
        return 1;
    }
    it->agent_id = m->agent_id;
    it->epoch = env->epoch;
    it->seq = env->seq;
    it->env = env;
    /* Only while PostgreSQL cannot commit (the resend storm of a database outage): in
     * normal operation a copy goes through and is classified a duplicate by the store,
     * which records its refused samples at every receipt, as docs/architecture.md says. */
    s_msg_t *held = ln->holding && s_is_batch(m) ? s_held_find(ln, m) : NULL;
    if (held) {
        /* A resend of a batch held: not queued twice. Its Ack goes to the connection the
         * agent sends on now (the writer thread never reads identities). */
        memcpy(held->identity, m->identity, m->identity_len);
        held->identity_len = m->identity_len;
        s_send_pending(in, ln, m, env->epoch, s_held_max_seq(ln, m));
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
        break;
    default:
        /* Heartbeats need nothing; acks and nacks are the collector's to send. */
        in->ignored++;
        ww_wire_free(&m->env);
        return 0;
    }
    s_admit(in, ln);
    if (ln->holding && s_is_batch(&ln->rx->msgs[ln->rx->n - 1])) {
        m = &ln->rx->msgs[ln->rx->n - 1];
        s_send_pending(in, ln, m, m->env->epoch, s_held_max_seq(ln, m));
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
            s_send_ack(in, m, it->epoch, 0, it->missing_first, it->missing_last);
            break;
        case WW_ITEM_BATCH:
            if (it->disp == WW_DISP_WRITTEN || it->disp == WW_DISP_DUPLICATE) {
                /* A batch after a hole it opened names the hole (the seqs just before it). */
                bool opened = it->holes > 0 && (uint64_t)it->holes < it->seq;
                s_send_ack(in, m, it->epoch, it->seq, opened ? it->seq - (uint64_t)it->holes : 0,
                           opened ? it->seq - 1 : 0);
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
static ww_store_rc_t s_write_singly(s_ingest_t *in, s_lane_t *ln, s_group_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        ww_store_item_t *it = &g->items[i];
        ww_store_rc_t rc = ww_store_write(ln->store, it, 1);
        if (rc == WW_STORE_REJECT) {
            s_msg_t *m = &g->msgs[i];
            m->code = WAFERWATCH__V1__NACK_CODE__NACK_INVALID;
            snprintf(m->reason, sizeof m->reason, "refused by PostgreSQL as invalid data");
            it->kind = WW_ITEM_REJECT;
            it->reject_code = "refused_by_database";
            it->reject_reason = m->reason;
            __atomic_add_fetch(&in->refused_by_database, 1, __ATOMIC_RELAXED);
            rc = ww_store_write(ln->store, it, 1);
        }
        if (rc != WW_STORE_OK) {
            return WW_STORE_RETRY; /* items before i are committed; their disp says so */
        }
    }
    return WW_STORE_OK;
}

/* Writes the writer's group wr in one transaction (one by one if PostgreSQL refuses it as
 * data). Runs on the writer's thread: touches the group and the store, never the socket. */
static ww_store_rc_t s_store(s_lane_t *ln)
{
    s_ingest_t *in = ln->in;
    s_group_t *g = ln->wr;
    int64_t t0 = ww_time_mono_ns();
    ww_store_rc_t wrc = ww_store_write(ln->store, g->items, g->n);
    ww_cmetrics_write(in->metrics, wrc, g->n, (double)(ww_time_mono_ns() - t0) / WW_NS_PER_S);
    if (wrc == WW_STORE_REJECT) {
        wrc = s_write_singly(in, ln, g);
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
        s_slot_put(g, keep, &g->msgs[i], &g->items[i]);
        if (g->items[keep].kind == WW_ITEM_BATCH) {
            g->samples += g->items[keep].env->batch->n_samples;
        }
        keep++;
    }
    g->n = keep;
    return false;
}

static void *s_writer_main(void *arg)
{
    s_lane_t *ln = arg;
    s_ingest_t *in = ln->in;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        while (ln->job != S_JOB_WRITING && !in->quit) {
            pthread_cond_wait(&ln->cv, &in->mu);
        }
        if (ln->job != S_JOB_WRITING) {
            break;
        }
        pthread_mutex_unlock(&in->mu);
        ww_store_rc_t rc = s_store(ln);
        pthread_mutex_lock(&in->mu);
        ln->wr->rc = rc;
        ln->job = S_JOB_DONE;
        pthread_cond_broadcast(&ln->cv);
        uint64_t one = 1;
        /* A full counter (never: the loop reads it each turn) only means "already woken". */
        ssize_t w = write(in->wake_fd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

static s_job_t s_job(s_lane_t *ln)
{
    pthread_mutex_lock(&ln->in->mu);
    s_job_t j = ln->job;
    pthread_mutex_unlock(&ln->in->mu);
    return j;
}

static void s_set_job(s_lane_t *ln, s_job_t job)
{
    pthread_mutex_lock(&ln->in->mu);
    ln->job = job;
    pthread_cond_broadcast(&ln->cv);
    pthread_mutex_unlock(&ln->in->mu);
}

/* Waits for the writer to finish what it writes. */
static void s_wait_writer(s_lane_t *ln)
{
    pthread_mutex_lock(&ln->in->mu);
    while (ln->job == S_JOB_WRITING) {
        pthread_cond_wait(&ln->cv, &ln->in->mu);
    }
    pthread_mutex_unlock(&ln->in->mu);
}

/* Clears the writers' wake-up (the jobs themselves are read under mu). */
static void s_take_wake(s_ingest_t *in)
{
    uint64_t n;
    ssize_t r = read(in->wake_fd, &n, sizeof n);
    (void)r; /* EAGAIN: nothing to clear */
}

/* Messages received and not committed yet, all writers together. */
static size_t s_held_count(const s_ingest_t *in)
{
    size_t n = 0;
    for (size_t l = 0; l < in->n_lanes; l++) {
        n += in->lanes[l].rx->n + in->lanes[l].wr->n;
    }
    return n;
}

/* The counters of every writer's store, as last copied while it was idle. */
static void s_store_stats(const s_ingest_t *in, ww_store_stats_t *st)
{
    memset(st, 0, sizeof *st);
    for (size_t l = 0; l < in->n_lanes; l++) {
        ww_store_stats_add(st, &in->lanes[l].st);
    }
}

/* Copies the counters to /metrics (when served). */
static void s_publish(const s_ingest_t *in)
{
    ww_cmetrics_t *m = in->metrics;
    if (!m) {
        return;
    }
    ww_store_stats_t st;
    s_store_stats(in, &st);
    ww_ingest_counts_t c = {
        .received = in->received,
        .malformed = in->malformed,
        .invalid = in->invalid,
        .forbidden = in->forbidden,
        .refused_by_database = __atomic_load_n(&in->refused_by_database, __ATOMIC_RELAXED),
        .pending = s_held_count(in),
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

/* Everything before the loop: writers (groups, stores), socket (CURVE, monitor, bind),
 * schema, endpoint file, writer threads. Returns 0, or a negative errno (logged); what was made is
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
    pthread_mutex_init(&in->mu, NULL);
    in->mu_made = true;
    in->lanes = calloc((size_t)conf->writers, sizeof *in->lanes);
    if (!in->lanes) {
        return -ENOMEM;
    }
    in->n_lanes = (size_t)conf->writers;
    bool made = true;
    for (size_t l = 0; l < in->n_lanes; l++) {
        s_lane_t *ln = &in->lanes[l];
        ln->in = in;
        pthread_cond_init(&ln->cv, NULL);
        for (int k = 0; k < 2; k++) {
            ln->groups[k].msgs = calloc((size_t)conf->max_group, sizeof *ln->groups[k].msgs);
            ln->groups[k].items = calloc((size_t)conf->max_group, sizeof *ln->groups[k].items);
            made = made && ln->groups[k].msgs && ln->groups[k].items;
        }
        ln->rx = &ln->groups[0];
        ln->wr = &ln->groups[1];
        ln->backoff = 100 * WW_NS_PER_MS;
        ln->store = ww_store_new(conf->pg_conninfo);
        if (ln->store) {
            ww_store_set_retention(ln->store, (int)conf->retention_raw_days,
                                   (int)conf->retention_rollup_days);
        }
        made = made && ln->store;
    }
    in->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    in->ctx = zmq_ctx_new();
    if (!made || !in->ctx) {
        return -ENOMEM;
    }
    if (in->wake_fd < 0) {
        int e = errno;
        WW_ERROR("cannot make the writers' eventfd: %s", strerror(e));
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
    while ((rc = ww_store_ensure(in->lanes[0].store, conf->pg_migrate)) < 0 && !*stop) {
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
    /* The other writers connect now too (a failure is retried at their first write). */
    for (size_t l = 1; rc == 0 && l < in->n_lanes; l++) {
        (void)ww_store_ensure(in->lanes[l].store, conf->pg_migrate);
    }
    ww_cmetrics_pg_up(in->metrics, rc == 0);
    WW_INFO("listening on %s", endpoint);
    if (conf->endpoint_file && *conf->endpoint_file) {
        if ((rc = s_write_endpoint_file(conf->endpoint_file, endpoint)) < 0) {
            WW_ERROR("cannot write %s: %s", conf->endpoint_file, strerror(-rc));
            return rc;
        }
    }
    for (size_t l = 0; l < in->n_lanes; l++) {
        s_lane_t *ln = &in->lanes[l];
        if (pthread_create(&ln->thread, NULL, s_writer_main, ln) != 0) {
            WW_ERROR("cannot start writer thread %zu", l + 1);
            return -EAGAIN;
        }
        ln->started = true;
    }
    WW_INFO("%zu writers (ingest.writers)", in->n_lanes);
    return 0;
}

/* Swaps the writer's rx and wr and hands wr (what rx received) to it. */
static void s_hand_over(s_lane_t *ln)
{
    s_group_t *t = ln->wr;
    ln->wr = ln->rx;
    ln->rx = t;
    s_set_job(ln, S_JOB_WRITING);
}

/* A writer finished its group: answers it, and hands over the next one first when it is
 * ready (unless maintenance is due, which waits for every writer to be idle). */
static void s_lane_done(s_ingest_t *in, s_lane_t *ln, bool maintain_due)
{
    const ww_collector_conf_t *conf = in->conf;
    s_group_t *done = ln->wr;
    /* The store is quiet until the hand-over: its counters are copied now, as the writer
     * may not be idle again for a while. */
    ww_store_stats(ln->store, &ln->st);
    /* A committed group is answered and freed after the writer has the next one (a
     * backlog's group of 65k samples takes ~20 ms to free: the server idled that long
     * between transactions). */
    bool next = done->rc == WW_STORE_OK && ln->rx->n > 0 && !maintain_due;
    if (next) {
        s_publish(in);
        s_hand_over(ln);
    }
    if (s_finish(in, done, done->rc)) {
        ln->backoff = 100 * WW_NS_PER_MS;
        ln->holding = false;
    } else {
        /* Keep the group and retry it later; read at most one more group meanwhile:
         * backpressure into the agents' spools. */
        ln->retry_at = ww_time_mono_ns() + ln->backoff;
        ln->backoff = ww_backoff_double(ln->backoff, conf->retry_max_ns);
        /* Agents may wait the next interval: the Ack comes by itself once a retry
         * commits, and every failed retry renews this. */
        int64_t after_ms = ln->backoff / WW_NS_PER_MS;
        after_ms = after_ms < 1000 ? 1000 : after_ms;
        ln->retry_after_ms = (uint32_t)(after_ms > 30000 ? 30000 : after_ms);
        ln->holding = true;
        s_pending_held(in, ln);
    }
    if (!next) {
        s_set_job(ln, S_JOB_IDLE);
    }
}

/* Whether the receiving group of some writer is full: nothing more is read until it has
 * been handed over (the next message could be for that writer). */
static bool s_rx_full(const s_ingest_t *in)
{
    for (size_t l = 0; l < in->n_lanes; l++) {
        const s_group_t *rx = in->lanes[l].rx;
        if (rx->n >= (size_t)in->conf->max_group ||
            rx->samples >= (uint64_t)in->conf->max_group_samples) {
            return true;
        }
    }
    return false;
}

/* Hands each idle writer what is ready: its received group, or the held one when its retry
 * is due. Returns the ms until a held group's retry is due (1000 at most; 0: now). */
static long s_dispatch(s_ingest_t *in, bool maintain_due)
{
    long wait_ms = 1000;
    int64_t now = ww_time_mono_ns();
    for (size_t l = 0; l < in->n_lanes; l++) {
        s_lane_t *ln = &in->lanes[l];
        if (s_job(ln) != S_JOB_IDLE) {
            continue;
        }
        if (ln->wr->n > 0) {
            int64_t left = ln->retry_at - now;
            if (left <= 0) {
                s_set_job(ln, S_JOB_WRITING);
            } else if (left / WW_NS_PER_MS + 1 < wait_ms) {
                wait_ms = (long)(left / WW_NS_PER_MS) + 1;
            }
        } else if (ln->rx->n > 0 && !maintain_due) {
            s_hand_over(ln);
        }
    }
    return wait_ms;
}

/* The hourly maintenance, on the first writer's connection once every writer is idle (the
 * others only forget their node -> phase caches). Returns whether it ran. */
static bool s_maintain(s_ingest_t *in)
{
    for (size_t l = 0; l < in->n_lanes; l++) {
        if (s_job(&in->lanes[l]) != S_JOB_IDLE) {
            return false;
        }
    }
    ww_store_maintain(in->lanes[0].store);
    for (size_t l = 1; l < in->n_lanes; l++) {
        ww_store_forget_phases(in->lanes[l].store);
    }
    return true;
}

/* The receive loop, until *stop: takes messages into the writers' rx while they write
 * their wr, and answers each group once its write is known. */
static void s_loop(s_ingest_t *in, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    int64_t next_maintain = ww_time_mono_ns() + 3600 * WW_NS_PER_S;
    while (!*stop) {
        if (*reload && in->auth) {
            *reload = 0;
            ww_auth_reload(in->auth);
        }
        bool maintain_due = ww_time_mono_ns() >= next_maintain;
        s_take_wake(in);
        for (size_t l = 0; l < in->n_lanes; l++) {
            s_lane_t *ln = &in->lanes[l];
            if (s_job(ln) == S_JOB_DONE) {
                s_lane_done(in, ln, maintain_due);
            }
            if (s_job(ln) == S_JOB_IDLE) {
                ww_store_stats(ln->store, &ln->st); /* the store is the loop's while idle */
            }
        }
        if (maintain_due && s_maintain(in)) {
            next_maintain = ww_time_mono_ns() + 3600 * WW_NS_PER_S;
            maintain_due = false;
        }
        s_publish(in);
        /* Hand the writers what is ready before decoding more: a large message decoded
         * first would delay every ack in the group by its decode time. */
        long wait_ms = s_dispatch(in, maintain_due);
        bool rx_full = s_rx_full(in);
        /* Sleep until input (unless an rx is full), a writer's result or a retry is due. */
        zmq_pollitem_t items[2] = {{in->sock, 0, rx_full ? 0 : ZMQ_POLLIN, 0},
                                   {NULL, in->wake_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, wait_ms) < 0 && errno == EINTR) {
            continue;
        }
        if (!rx_full && (items[0].revents & ZMQ_POLLIN)) {
            /* Take what is already waiting, up to the groups' limits, for one turn. */
            int64_t turn_end = ww_time_mono_ns() + S_TURN_NS;
            while (!s_rx_full(in) && s_receive(in) != -EAGAIN && ww_time_mono_ns() < turn_end) {
            }
        }
        s_dispatch(in, maintain_due);
    }
}

/* SIGTERM: what was received is committed and acked before exit, within drain_timeout;
 * what still sits in ZeroMQ's queues was never acked and the agents send it again. */
static void s_drain(s_ingest_t *in)
{
    const ww_collector_conf_t *conf = in->conf;
    for (size_t l = 0; l < in->n_lanes; l++) {
        s_lane_t *ln = &in->lanes[l];
        s_wait_writer(ln);
        if (s_job(ln) == S_JOB_DONE) {
            s_finish(in, ln->wr, ln->wr->rc);
            s_set_job(ln, S_JOB_IDLE);
        }
    }
    size_t held = s_held_count(in);
    if (held > 0) {
        WW_INFO("draining %zu received messages before exit", held);
        int64_t drain_end = ww_time_mono_ns() + conf->drain_ns;
        int64_t backoff = 100 * WW_NS_PER_MS;
        for (size_t l = 0; l < in->n_lanes; l++) {
            s_lane_t *ln = &in->lanes[l];
            for (int k = 0; k < 2; k++) { /* wr, then rx: in arrival order */
                if (k == 1 && ln->wr->n == 0) {
                    s_group_t *t = ln->wr;
                    ln->wr = ln->rx;
                    ln->rx = t;
                }
                /* On this thread: the writer is idle. */
                while (ln->wr->n > 0 && !s_finish(in, ln->wr, s_store(ln)) &&
                       ww_time_mono_ns() < drain_end) {
                    s_sleep_ns(backoff);
                    backoff = ww_backoff_double(backoff, conf->retry_max_ns);
                }
            }
        }
        if ((held = s_held_count(in)) > 0) {
            WW_WARN("%zu messages not committed at exit (not acked: the agents resend them)", held);
        }
    }
    ww_store_stats_t st;
    ww_hist_t delay;
    ww_hist_init(&delay, WW_HIST_DEFAULT_SCALE);
    for (size_t l = 0; l < in->n_lanes; l++) {
        ww_store_stats(in->lanes[l].store, &in->lanes[l].st);
        if (ww_store_delay_merge(in->lanes[l].store, &delay) < 0) {
            WW_WARN("out of memory merging the writers' delays: the quantiles below miss some");
        }
    }
    s_store_stats(in, &st);
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
            s_held_count(in), 1e3 * ww_hist_quantile(&delay, 0.5),
            1e3 * ww_hist_quantile(&delay, 0.99), 1e3 * ww_hist_quantile(&delay, 1.0));
    ww_hist_fini(&delay);
}

/* Undoes s_start, whatever it reached. */
static void s_stop(s_ingest_t *in)
{
    if (in->mu_made) {
        pthread_mutex_lock(&in->mu);
        in->quit = true;
        for (size_t l = 0; l < in->n_lanes; l++) {
            pthread_cond_broadcast(&in->lanes[l].cv);
        }
        pthread_mutex_unlock(&in->mu);
    }
    for (size_t l = 0; l < in->n_lanes; l++) {
        s_lane_t *ln = &in->lanes[l];
        if (ln->started) {
            pthread_join(ln->thread, NULL);
        }
        for (int k = 0; k < 2; k++) {
            if (ln->groups[k].msgs) {
                s_clear(&ln->groups[k]);
            }
            free(ln->groups[k].msgs);
            free(ln->groups[k].items);
        }
        pthread_cond_destroy(&ln->cv);
        ww_store_destroy(&ln->store);
    }
    free(in->lanes);
    in->lanes = NULL;
    for (size_t i = 0; i < in->routes_cap; i++) {
        free(in->routes[i].id);
    }
    free(in->routes);
    in->routes = NULL;
    ww_wire_free(&in->in_msg.env);
    if (in->mu_made) {
        pthread_mutex_destroy(&in->mu);
    }
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
