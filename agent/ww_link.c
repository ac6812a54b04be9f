/* agent_link: see ww_link.h. */
#define WW_LOG_MODULE "link"
#include "ww_link.h"

#include "agent_zmon.h"
#include "ww_backoff.h"
#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    uint64_t seq;
    uint8_t *buf; /* encoded Envelope; NULL once acked or dropped by a Nack */
    size_t len;
    bool refused; /* the collector refused it (`forbidden`) and has not acked it since */
    bool held;    /* refused and not sent again since: waits for the refusal's retry */
} s_entry_t;

struct ww_link {
    void *ctx;
    void *sock;
    void *mon;
    char **endpoints;
    size_t n_endpoints, cur;
    char *agent_id;
    bool curve;
    char server_key[41], public_key[41], secret_key[41];
    ww_spool_t *spool;
    uint64_t epoch;
    int64_t ack_timeout_ns;
    int64_t failover_after_ns;
    size_t max_in_flight;
    /* In-memory window of the spool: the oldest unacked batches, in seq order; the first
     * n_inflight have been sent. Everything up to `loaded` has been paged in. */
    s_entry_t *ring;
    size_t cap, head, count, n_inflight;
    uint64_t loaded;
    uint64_t appended;       /* highest seq in the spool */
    int64_t inflight_since;  /* monotonic time the oldest in-flight entry was (re)sent */
    int64_t progress_at;     /* monotonic time of the last ack, hello ack or pending */
    ww_backoff_t backoff;    /* resends deferred while the collector answers Pending */
    ww_complain_t pending_c; /* "collector holds, not committed": logged once per spell */
    /* hello */
    uint8_t *hello;
    size_t hello_len;
    bool hello_acked;
    int64_t hello_sent_at; /* 0 = due now */
    /* scratch */
    uint8_t *enc;
    size_t enc_cap;
    uint64_t skipped_ticks;
    unsigned monitor_gen;
    agent_zmon_t zmon; /* connect and handshake failures, told to the operator */
    ww_complain_t send_fail, spool_fail;
    /* `forbidden` Nacks: batches held for a retry (ww_link.h "Refused") */
    ww_link_refusal_t refusal;
    bool refusing;          /* a forbidden Nack came and no batch was acked since */
    bool hello_refused;     /* the Hello was refused: resent with the held batches */
    uint64_t n_refused;     /* entries with `refused` set */
    uint64_t refusal_nacks; /* forbidden Nacks since the refusal began */
    char refusal_why[256];  /* the collector's last reason, for /healthz */
    agent_zmon_rate_t forbid_log, reject_log; /* Nack lines at a growing interval */
    /* Repair (ww_link.h): acked seqs the collector's database does not hold, sent again
     * from the spool in order. [repair_next, repair_last] is owed (repair_next 0: none);
     * those below repair_sent have been sent and await their Acks. */
    uint64_t repair_next, repair_last, repair_sent;
    int64_t repair_since; /* monotonic time of the oldest unanswered repair send */
    /* The last seqs a Nack dropped (a ring): the collector records them as a hole like any
     * other, but sending them again would only be refused again. */
    uint64_t nacked_seqs[16];
    unsigned nacked_at;
    ww_link_stats_t st;
    /* other descriptors ww_link_poll waits on */
    struct {
        int fd;
        void (*on_ready)(void *arg);
        void *arg;
    } watch[WW_LINK_MAX_WATCH];
    size_t n_watch;
};

static s_entry_t *s_at(ww_link_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

/* Frees an entry's batch: it was acked, dropped by a Nack or by the spool's policy. */
static void s_entry_done(ww_link_t *self, s_entry_t *e)
{
    free(e->buf);
    e->buf = NULL;
    if (e->refused) {
        self->n_refused--;
    }
    e->refused = e->held = false;
}

static void s_pop_front(ww_link_t *self)
{
    s_entry_t *e = s_at(self, 0);
    s_entry_done(self, e);
    self->head = (self->head + 1) % self->cap;
    self->count--;
    if (self->n_inflight > 0) {
        self->n_inflight--;
    }
}

/* Nacked entries at the front are consumed: the collector skips past them. */
static void s_pop_nacked(ww_link_t *self)
{
    while (self->count > 0 && s_at(self, 0)->buf == NULL) {
        s_pop_front(self);
    }
}

/* Releases from the spool everything before the oldest batch still in memory: those
 * were acked, or nacked (consumed by the collector, never to be sent again). */
static void s_release(ww_link_t *self)
{
    uint64_t done = self->count > 0 ? s_at(self, 0)->seq - 1 : self->loaded;
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    if (done > sp.acked) {
        int rc = ww_spool_ack(self->spool, done);
        if (rc < 0) {
            WW_COMPLAIN(&self->spool_fail, "cannot record an ack in the spool: %s", strerror(-rc));
        }
    }
}

/* Pages unacked batches from the spool into the memory window while it has room. */
static void s_refill(ww_link_t *self)
{
    while (self->count < self->cap) {
        uint64_t seq;
        void *data;
        size_t len;
        int rc = ww_spool_next(self->spool, self->loaded, &seq, &data, &len);
        if (rc < 0) {
            WW_COMPLAIN(&self->spool_fail, "cannot read the spool: %s", strerror(-rc));
            return;
        }
        WW_RECOVERED(&self->spool_fail, "reading the spool again");
        if (rc == 0) {
            return;
        }
        s_entry_t *e = s_at(self, self->count);
        *e = (s_entry_t){.seq = seq, .buf = data, .len = len};
        self->count++;
        self->loaded = seq;
    }
}

static void s_close_socket(ww_link_t *self)
{
    if (self->sock) {
        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_close(self->sock);
        self->sock = NULL;
    }
    if (self->mon) {
        zmq_close(self->mon);
        self->mon = NULL;
    }
}

static int s_open_socket(ww_link_t *self)
{
    const char *endpoint = self->endpoints[self->cur];
    self->zmon.reached = self->zmon.handshaken = false; /* a new socket: no connection yet */
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        return -errno;
    }
    int zero = 0, one = 1;
    int hb_ivl = 2000, hb_timeout = 6000, rc_ivl = 100, rc_max = 2000;
    /* Unsent data lives in our spool, not in ZeroMQ's queues: no linger, nothing queued
     * toward a peer that is not connected (ZMQ_IMMEDIATE), heartbeats so that a dead peer
     * is noticed. */
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &rc_ivl, sizeof rc_ivl);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL_MAX, &rc_max, sizeof rc_max);
    if (self->curve &&
        (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, self->server_key, 40) != 0 ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, self->public_key, 40) != 0 ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, self->secret_key, 40) != 0)) {
        return -errno;
    }

    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://ww-link-monitor-%p-%u", (void *)self,
             self->monitor_gen++);
    if (zmq_socket_monitor(self->sock, mon_ep, AGENT_ZMON_EVENTS) != 0) {
        return -errno;
    }
    self->mon = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!self->mon || zmq_connect(self->mon, mon_ep) != 0) {
        return -errno;
    }
    if (zmq_connect(self->sock, endpoint) != 0) {
        int e = errno;
        WW_ERROR("cannot connect to %s: %s", endpoint, zmq_strerror(e));
        return -e;
    }
    WW_INFO("connecting to %s", endpoint);
    return 0;
}

ww_link_t *ww_link_new(const ww_link_conf_t *conf, const ww_hello_t *hello)
{
    return ww_link_open(conf, hello, NULL);
}

ww_link_t *ww_link_open(const ww_link_conf_t *conf, const ww_hello_t *hello, int *err_p)
{
    int err = -ENOMEM;
    ww_link_t *self = calloc(1, sizeof *self);
    if (!self) {
        goto fail;
    }
    self->n_endpoints = conf->n_endpoints;
    self->endpoints = calloc(conf->n_endpoints ? conf->n_endpoints : 1, sizeof(char *));
    for (size_t i = 0; self->endpoints && i < conf->n_endpoints; i++) {
        self->endpoints[i] = strdup(conf->endpoints[i]);
        if (!self->endpoints[i]) {
            goto fail;
        }
    }
    self->agent_id = strdup(conf->agent_id);
    if (conf->server_public_z85 && conf->public_z85 && conf->secret_z85) {
        self->curve = true;
        snprintf(self->server_key, sizeof self->server_key, "%s", conf->server_public_z85);
        snprintf(self->public_key, sizeof self->public_key, "%s", conf->public_z85);
        snprintf(self->secret_key, sizeof self->secret_key, "%s", conf->secret_z85);
    }
    self->cap = conf->queue_batches ? conf->queue_batches : 1;
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->ack_timeout_ns = conf->ack_timeout_ns;
    self->failover_after_ns = conf->failover_after_ns;
    self->max_in_flight = conf->max_in_flight ? conf->max_in_flight : 1;
    agent_zmon_init(&self->zmon, self->curve);
    self->ctx = zmq_ctx_new();
    if (!self->endpoints || conf->n_endpoints == 0 || !self->agent_id || !self->ring ||
        !self->ctx) {
        goto fail;
    }
    self->spool = ww_spool_open(&conf->spool, &err);
    if (!self->spool) {
        if (err != -EBUSY) { /* in use: the spool said by whom */
            WW_ERROR("cannot open the spool in %s: %s", conf->spool.dir, strerror(-err));
        }
        goto fail;
    }
    err = -ENOMEM;
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    self->epoch = sp.epoch;
    self->loaded = sp.acked;
    self->appended = sp.next_seq - 1;
    self->st.replayed = sp.records;
    self->st.dropped = sp.dropped_batches;
    self->st.corrupt = sp.corrupt_records;
    s_refill(self);

    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = self->agent_id;
    env.epoch = self->epoch;
    env.sent_ns = ww_time_now_ns();
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = (ww_hello_t *)hello;
    size_t cap = 0;
    long n = ww_wire_encode(&env, &self->hello, &cap);
    if (n < 0) {
        goto fail;
    }
    self->hello_len = (size_t)n;

    int rc = s_open_socket(self);
    if (rc < 0) {
        WW_ERROR("cannot set up the collector link: %s", zmq_strerror(-rc));
        err = rc;
        goto fail;
    }
    self->progress_at = ww_time_mono_ns();
    WW_INFO("stream epoch %016llx, next seq %llu, %llu unacked batches in the spool %s",
            (unsigned long long)self->epoch, (unsigned long long)sp.next_seq,
            (unsigned long long)sp.records, conf->spool.dir);
    if (err_p) {
        *err_p = 0;
    }
    return self;
fail:
    ww_link_destroy(&self);
    if (err_p) {
        *err_p = err;
    }
    return NULL;
}

void ww_link_destroy(ww_link_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_link_t *self = *self_p;
    s_close_socket(self);
    memset(self->secret_key, 0, sizeof self->secret_key);
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    if (self->ring) {
        while (self->count > 0) {
            s_pop_front(self);
        }
    }
    if (self->spool) {
        ww_spool_sync(self->spool);
        ww_spool_close(&self->spool);
    }
    for (size_t i = 0; self->endpoints && i < self->n_endpoints; i++) {
        free(self->endpoints[i]);
    }
    free(self->endpoints);
    free(self->ring);
    free(self->hello);
    free(self->enc);
    free(self->agent_id);
    free(self);
    *self_p = NULL;
}

/* Drops memory entries the spool no longer holds (its drop_oldest policy removed them). */
static void s_forget_dropped(ww_link_t *self)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    uint64_t oldest = sp.next_seq - sp.records; /* the spool keeps a contiguous range */
    while (self->count > 0 && s_at(self, 0)->seq < oldest) {
        s_pop_front(self);
    }
    if (self->loaded < oldest - 1) {
        self->loaded = oldest - 1;
    }
    self->st.dropped = sp.dropped_batches;
}

int ww_link_submit(ww_link_t *self, ww_batch_t *batch)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    Waferwatch__V1__SpoolLoss loss = WAFERWATCH__V1__SPOOL_LOSS__INIT;
    loss.dropped_batches = sp.dropped_batches;
    loss.corrupt_records = sp.corrupt_records;
    loss.skipped_ticks = self->skipped_ticks;
    batch->loss =
        (loss.dropped_batches || loss.corrupt_records || loss.skipped_ticks) ? &loss : NULL;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = self->agent_id;
    env.epoch = self->epoch;
    env.seq = sp.next_seq;
    env.sent_ns = ww_time_now_ns();
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = batch;
    long n = ww_wire_encode(&env, &self->enc, &self->enc_cap);
    batch->loss = NULL;
    if (n < 0) {
        return (int)n;
    }
    uint64_t dropped = 0;
    int rc = ww_spool_append(self->spool, sp.next_seq, self->enc, (size_t)n, &dropped);
    if (rc == -ENOSPC) {
        if (ww_link_disk_full(self)) {
            self->st.disk_full++;
        } else {
            self->st.refused++;
        }
        return rc;
    }
    if (rc < 0) {
        WW_COMPLAIN(&self->spool_fail, "cannot append to the spool: %s", strerror(-rc));
        return rc;
    }
    WW_RECOVERED(&self->spool_fail, "appending to the spool again");
    self->st.spooled++;
    self->appended = sp.next_seq;
    if (dropped > 0) {
        WW_WARN("%s: dropped the %llu oldest unacked batches (%llu in this stream)",
                ww_link_disk_full(self) ? "the spool's filesystem is full"
                                        : "spool full (spool.max_bytes)",
                (unsigned long long)dropped, (unsigned long long)(sp.dropped_batches + dropped));
        s_forget_dropped(self);
    }
    /* Keep it in memory too when the window is caught up with the spool. */
    if (self->count < self->cap && self->loaded + 1 == sp.next_seq) {
        uint8_t *copy = malloc((size_t)n);
        if (copy) {
            memcpy(copy, self->enc, (size_t)n);
            s_entry_t *e = s_at(self, self->count);
            *e = (s_entry_t){.seq = sp.next_seq, .buf = copy, .len = (size_t)n};
            self->count++;
            self->loaded = sp.next_seq;
        }
    }
    return 0;
}

static int s_send(ww_link_t *self, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) < 0) {
        /* EAGAIN: no connected peer (ZMQ_IMMEDIATE); the batch stays spooled. */
        if (errno != EAGAIN) {
            WW_COMPLAIN(&self->send_fail, "send to %s failed: %s", self->endpoints[self->cur],
                        zmq_strerror(errno));
        }
        return -errno;
    }
    WW_RECOVERED(&self->send_fail, "sending to %s again", self->endpoints[self->cur]);
    self->st.sent++;
    return 0;
}

static const s_entry_t *s_at_c(const ww_link_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

/* Whether e goes on the wire when its turn comes: not acked or dropped, and not a refused
 * batch waiting for the refusal's retry. */
static bool s_sendable(const ww_link_t *self, const s_entry_t *e, int64_t now)
{
    return e->buf && !(e->held && ww_link_refusal_held(&self->refusal, now));
}

/* In-flight batches whose answer is awaited (held ones are not: nothing was resent). */
static size_t s_awaiting(const ww_link_t *self, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_inflight; i++) {
        if (s_sendable(self, s_at_c(self, i), now)) {
            n++;
        }
    }
    return n;
}

/* Whether the collector owes us progress: an answer to an in-flight batch, or a send the
 * window has room for. Batches held after a refusal do not count, so a long refusal
 * causes neither ack timeouts nor failovers: its own schedule retries them. */
static bool s_waiting(const ww_link_t *self, int64_t now)
{
    return s_awaiting(self, now) > 0 ||
           (self->count > self->n_inflight && self->n_inflight < self->max_in_flight) ||
           (!self->hello_acked && !self->hello_refused);
}

/* Sends the held batches again from the oldest (the retry is due, or an Ack ended the
 * refusal): the window restarts at the first held one; the Hello too if it was refused. */
static void s_retry_refused(ww_link_t *self, int64_t now)
{
    for (size_t i = 0; i < self->n_inflight; i++) {
        if (s_at(self, i)->held) {
            for (size_t j = i; j < self->n_inflight; j++) {
                self->st.resent += s_at(self, j)->buf != NULL;
            }
            self->n_inflight = i;
            break;
        }
    }
    self->inflight_since = now;
    self->progress_at = now; /* a new attempt: its answers are the progress awaited */
    if (self->hello_refused) {
        self->hello_refused = false;
        self->hello_sent_at = 0;
    }
}

/* Moves to the next endpoint: a new socket, hello again, resend from the oldest. */
static void s_failover(ww_link_t *self)
{
    const char *from = self->endpoints[self->cur];
    self->cur = (self->cur + 1) % self->n_endpoints;
    WW_WARN("no progress from %s for %lld ms with %zu batches waiting: failing over to %s", from,
            (long long)(self->failover_after_ns / WW_NS_PER_MS), self->count,
            self->endpoints[self->cur]);
    s_close_socket(self);
    if (s_open_socket(self) < 0) {
        s_close_socket(self);
    }
    self->st.failovers++;
    self->st.resent += self->n_inflight;
    self->n_inflight = 0;
    self->repair_sent = self->repair_next; /* what was owed is sent again to the new one */
    self->hello_acked = false;
    self->hello_sent_at = 0;
    self->progress_at = ww_time_mono_ns();
    ww_backoff_reset(&self->backoff); /* another collector holds nothing of ours */
}

/* A deferral ended without an Ack: resend what the collector does not hold (the in-flight
 * batches above held_seq), or, when it holds them all, the oldest alone as a probe: its
 * answer says whether the collector can commit again. */
static void s_resend_after_pending(ww_link_t *self, int64_t now)
{
    size_t held = 0;
    while (held < self->n_inflight && s_at(self, held)->seq <= self->backoff.held_seq) {
        held++;
    }
    if (held < self->n_inflight) {
        self->st.resent += self->n_inflight - held;
        self->n_inflight = held; /* the send loop below sends the rest again */
    } else {
        s_entry_t *e = s_at(self, 0);
        if (s_sendable(self, e, now) && s_send(self, e->buf, e->len) == 0) {
            self->st.resent++;
        }
    }
    self->inflight_since = now;
    ww_backoff_resent(&self->backoff);
}

/* Repair: the collector's Ack named seqs [first, last] its database does not hold. Those
 * this agent has released as acked and still keeps in the spool are owed again (a batch
 * still in the window is sent by the window). Joined with a repair under way. hello: the
 * range came with the Hello's Ack, which names the stream's newest hole at every connect:
 * seqs no longer kept were counted (or dropped by the spool's policy) before, so they are
 * neither counted nor logged again. */
static void s_repair_add(ww_link_t *self, uint64_t first, uint64_t last, bool hello)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    uint64_t released = self->count > 0 ? s_at(self, 0)->seq - 1 : self->loaded;
    if (last > released) {
        last = released;
    }
    if (first > last) {
        return;
    }
    const char *ep = self->endpoints[self->cur];
    /* Below the oldest record on disk: no longer here (spool.keep_acked passed, or dropped
     * by the spool's policy, which counted it then): the collector keeps them lost. */
    uint64_t gone_hi = sp.oldest == 0 || sp.oldest > last ? last : sp.oldest - 1;
    if (first <= gone_hi && hello) {
        first = gone_hi + 1;
        if (first > last) {
            return;
        }
    } else if (first <= gone_hi) {
        self->st.repair_gone += gone_hi - first + 1;
        WW_WARN("collector %s lacks seqs %llu..%llu, which this agent no longer keeps "
                "(spool.keep_acked): they stay counted as lost",
                ep, (unsigned long long)first, (unsigned long long)gone_hi);
        first = gone_hi + 1;
        if (first > last) {
            return;
        }
    }
    WW_WARN("collector %s lacks seqs %llu..%llu, acked before (its database lost them: a "
            "failover?): sending them again from the spool",
            ep, (unsigned long long)first, (unsigned long long)last);
    if (self->repair_next == 0) {
        self->repair_next = self->repair_sent = first;
        self->repair_last = last;
        self->repair_since = 0;
        return;
    }
    if (first < self->repair_next) {
        self->repair_next = self->repair_sent = first; /* resend from there */
    }
    if (last > self->repair_last) {
        self->repair_last = last;
    }
}

/* Sends owed repair batches, at most max_in_flight unanswered, and sends them again from
 * the first unanswered one after ack_timeout (the window's rule). A seq the spool no
 * longer holds is passed (the collector keeps it counted as lost; repair_gone here). */
static bool s_was_nacked(const ww_link_t *self, uint64_t seq)
{
    for (size_t i = 0; i < sizeof self->nacked_seqs / sizeof self->nacked_seqs[0]; i++) {
        if (self->nacked_seqs[i] == seq) {
            return true;
        }
    }
    return false;
}

static void s_repair_pump(ww_link_t *self, int64_t now)
{
    if (self->repair_next == 0) {
        return;
    }
    if (self->repair_sent > self->repair_next && now - self->repair_since > self->ack_timeout_ns) {
        self->st.resent += self->repair_sent - self->repair_next;
        self->repair_sent = self->repair_next;
    }
    while (self->repair_sent <= self->repair_last &&
           self->repair_sent - self->repair_next < self->max_in_flight) {
        void *data = NULL;
        size_t len = 0;
        int rc = ww_spool_get(self->spool, self->repair_sent, &data, &len);
        if (rc < 0) {
            WW_COMPLAIN(&self->spool_fail, "cannot read the spool: %s", strerror(-rc));
            return;
        }
        if (rc == 1 && s_was_nacked(self, self->repair_sent)) {
            free(data); /* refused for good: its hole is the refusal's, counted as such */
            rc = 0;
        } else if (rc == 0) {
            self->st.repair_gone++;
        }
        if (rc == 0) {
            if (self->repair_sent == self->repair_next) {
                self->repair_next++;
            }
            self->repair_sent++;
            continue;
        }
        rc = s_send(self, data, len);
        free(data);
        if (rc < 0) {
            break;
        }
        if (self->repair_sent == self->repair_next) {
            self->repair_since = now;
        }
        self->repair_sent++;
        self->st.repaired++;
    }
    if (self->repair_next > self->repair_last) {
        self->repair_next = self->repair_last = self->repair_sent = 0;
    }
}

/* The Ack (or a Nack) of a repair batch: it and everything sent before it are answered (the
 * collector writes a stream's batches in order). A refused repair batch is not held for a
 * retry: its hole stays, and the next Hello's Ack names it again. */
static void s_repair_acked(ww_link_t *self, uint64_t seq, int64_t now)
{
    if (self->repair_next == 0 || seq < self->repair_next || seq >= self->repair_sent) {
        return;
    }
    self->repair_next = seq + 1;
    self->repair_since = now;
    if (self->repair_next > self->repair_last) {
        WW_INFO("collector %s holds every batch it lacked again (repair done up to seq %llu)",
                self->endpoints[self->cur], (unsigned long long)seq);
        self->repair_next = self->repair_last = self->repair_sent = 0;
    }
}

/* Sends the hello and whatever the window allows; restarts the window on ack timeout. */
static void s_pump(ww_link_t *self)
{
    int64_t now = ww_time_mono_ns();
    if (ww_link_refusal_due(&self->refusal, now)) {
        s_retry_refused(self, now);
        ww_link_refusal_retried(&self->refusal);
    }
    if (self->n_endpoints > 1 && s_waiting(self, now) &&
        now - self->progress_at > self->failover_after_ns) {
        s_failover(self);
    }
    if (!self->sock) {
        return;
    }
    if (self->count < self->cap && self->loaded < self->appended) {
        s_refill(self); /* batches waiting on disk only (after a drop or a long outage) */
    }
    if (!self->hello_acked && !self->hello_refused &&
        (self->hello_sent_at == 0 || now - self->hello_sent_at > self->ack_timeout_ns)) {
        if (s_send(self, self->hello, self->hello_len) == 0) {
            self->hello_sent_at = now;
        }
    }
    if (ww_backoff_deferred(&self->backoff, now)) {
        /* The collector holds what is in flight and said when to ask again: no resend
         * before then, however long the ack takes (its database may be down). */
    } else if (self->n_inflight > 0 && ww_backoff_due(&self->backoff, now)) {
        s_resend_after_pending(self, now);
    } else if (now - self->inflight_since > self->ack_timeout_ns && s_awaiting(self, now) > 0) {
        size_t awaiting = s_awaiting(self, now);
        WW_WARN("no ack for seq %llu within %lld ms: resending %zu batches",
                (unsigned long long)s_at(self, 0)->seq,
                (long long)(self->ack_timeout_ns / WW_NS_PER_MS), awaiting);
        self->st.resent += awaiting;
        self->n_inflight = 0;
    }
    while (self->n_inflight < self->count && self->n_inflight < self->max_in_flight) {
        s_entry_t *e = s_at(self, self->n_inflight);
        if (s_sendable(self, e, now)) {
            if (s_send(self, e->buf, e->len) < 0) {
                break;
            }
            e->held = false;
        }
        if (self->n_inflight == 0) {
            self->inflight_since = now;
        }
        self->n_inflight++;
    }
    s_repair_pump(self, now);
}

static void s_on_ack(ww_link_t *self, const ww_ack_t *a)
{
    if (a->epoch != self->epoch) {
        WW_DEBUG("ack for another epoch %016llx ignored", (unsigned long long)a->epoch);
        return;
    }
    self->progress_at = ww_time_mono_ns();
    if (a->seq == 0) {
        if (!self->hello_acked) {
            self->hello_acked = true;
            self->st.hellos_acked++;
            WW_INFO("collector %s accepted hello", self->endpoints[self->cur]);
        }
        if (a->missing_first != 0) {
            s_repair_add(self, a->missing_first, a->missing_last, true);
        }
        return;
    }
    ww_backoff_reset(&self->backoff);
    WW_RECOVERED(&self->pending_c, "collector %s commits again (ack for seq %llu)",
                 self->endpoints[self->cur], (unsigned long long)a->seq);
    s_repair_acked(self, a->seq, self->progress_at);
    if (a->missing_first != 0) {
        s_repair_add(self, a->missing_first, a->missing_last, false);
    }
    /* Cumulative: everything up to seq that the collector received. A batch it refused
     * is released only by the Ack of its own seq (the collector acks each batch by its
     * seq): a later batch's Ack may answer a send made before the refused one was sent
     * again. Held, it is sent later and fills the hole it left. */
    bool moved = false;
    for (size_t i = 0; i < self->count && s_at(self, i)->seq <= a->seq; i++) {
        s_entry_t *e = s_at(self, i);
        if (e->buf && (!e->refused || e->seq == a->seq)) {
            self->st.acked++;
            s_entry_done(self, e);
            moved = true;
        }
    }
    s_pop_nacked(self);
    if (self->refusing) {
        /* The log's interval is not reset: a collector that acks some batches and refuses
         * others must not bring back a line per batch. */
        WW_INFO("collector %s accepts this agent again (ack for seq %llu, after %llu forbidden "
                "Nacks); %llu refused batches left to send",
                self->endpoints[self->cur], (unsigned long long)a->seq,
                (unsigned long long)self->refusal_nacks, (unsigned long long)self->n_refused);
        self->refusal_nacks = 0;
        self->refusing = false;
        ww_link_refusal_reset(&self->refusal);
        s_retry_refused(self, self->progress_at);
    }
    if (moved) {
        s_release(self);
        self->inflight_since = self->progress_at;
        s_refill(self);
    }
}

/* Received, not committed: keep the batches, hold resends back (ww_backoff.h). */
static void s_on_pending(ww_link_t *self, const Waferwatch__V1__Pending *p)
{
    if (p->epoch != self->epoch) {
        WW_DEBUG("pending for another epoch %016llx ignored", (unsigned long long)p->epoch);
        return;
    }
    int64_t now = ww_time_mono_ns();
    self->progress_at = now; /* the collector is there: failing over would not help */
    self->st.pendings++;
    int64_t until =
        ww_backoff_pending(&self->backoff, now, p->seq, p->retry_after_ms, self->ack_timeout_ns);
    WW_COMPLAIN(&self->pending_c,
                "collector %s holds up to seq %llu but cannot commit yet: resends deferred "
                "%lld ms, backing off up to %lld s",
                self->endpoints[self->cur], (unsigned long long)p->seq,
                (long long)((until - now) / WW_NS_PER_MS),
                (long long)(WW_BACKOFF_MAX_NS / WW_NS_PER_S));
}

/* " (3 more since the last report, 12 in all)" or "". */
static void s_more(char *buf, size_t cap, uint64_t unlogged, uint64_t spell)
{
    buf[0] = '\0';
    if (unlogged > 0) {
        snprintf(buf, cap, " (%llu more since the last report, %llu in all)",
                 (unsigned long long)unlogged, (unsigned long long)spell);
    }
}

/* A `forbidden` Nack: keep the batch, hold it for the refusal's retry (ww_link.h). */
static void s_on_forbidden(ww_link_t *self, const ww_nack_t *n, int64_t now)
{
    self->st.forbidden++;
    self->refusal_nacks++;
    self->progress_at = now; /* the collector is there: failing over would not help */
    self->refusing = true;
    snprintf(self->refusal_why, sizeof self->refusal_why, "%s", n->reason ? n->reason : "");
    int64_t until = ww_link_refusal_nack(&self->refusal, now);
    if (n->seq == 0) {
        self->hello_refused = true;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_entry_t *e = s_at(self, i);
        if (e->seq == n->seq && e->buf) {
            if (!e->refused) {
                e->refused = true;
                self->n_refused++;
            }
            e->held = true;
        }
    }
    uint64_t unlogged = 0;
    if (agent_zmon_rate_take(&self->forbid_log, now, &unlogged)) {
        char more[96];
        s_more(more, sizeof more, unlogged, self->forbid_log.spell);
        WW_WARN("collector %s refuses this agent (seq %llu): %s; %llu batches held in the spool, "
                "sent again in %lld s (the collector's allowlist must admit this agent id and "
                "its nodes)%s",
                self->endpoints[self->cur], (unsigned long long)n->seq, self->refusal_why,
                (unsigned long long)self->n_refused, (long long)((until - now) / WW_NS_PER_S),
                more);
    }
}

static void s_on_nack(ww_link_t *self, const ww_nack_t *n)
{
    int64_t now = ww_time_mono_ns();
    if (n->epoch != self->epoch) {
        WW_DEBUG("nack for another epoch %016llx ignored", (unsigned long long)n->epoch);
        return;
    }
    s_repair_acked(self, n->seq, now);
    if (ww_link_nack_keeps((int)n->code)) {
        s_on_forbidden(self, n, now);
        return;
    }
    self->nacked_seqs[self->nacked_at++ %
                      (sizeof self->nacked_seqs / sizeof self->nacked_seqs[0])] = n->seq;
    uint64_t unlogged = 0;
    if (agent_zmon_rate_take(&self->reject_log, now, &unlogged)) {
        char more[96];
        s_more(more, sizeof more, unlogged, self->reject_log.spell);
        WW_WARN("collector rejected seq %llu (code %d): %s; dropped (a resend cannot help)%s",
                (unsigned long long)n->seq, (int)n->code, n->reason, more);
    }
    if (n->seq == 0) {
        /* A rejected hello would be rejected again: stop resending it. */
        self->hello_acked = true;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_entry_t *e = s_at(self, i);
        if (e->seq == n->seq && e->buf) {
            s_entry_done(self, e);
            self->st.nacked++;
        }
    }
    s_pop_nacked(self);
    s_release(self);
    s_refill(self);
}

static void s_on_reply(ww_link_t *self, const uint8_t *buf, size_t len)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_wire_why_t why;
    ww_envelope_t *env = NULL;
    if (ww_wire_decode(buf, len, &lim, ww_time_now_ns(), &env, &why) < 0) {
        WW_WARN("ignoring a reply from the collector: %s", why.msg);
        return;
    }
    if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_ACK) {
        s_on_ack(self, env->ack);
    } else if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_PENDING) {
        s_on_pending(self, env->pending);
    } else if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK) {
        s_on_nack(self, env->nack);
    }
    ww_wire_free(&env);
}

/* Handles every event the socket's monitor has queued (agent_zmon.h logs the failures). */
static void s_on_monitor(ww_link_t *self)
{
    uint16_t event;
    uint32_t value;
    while (self->mon && agent_zmon_read(self->mon, &event, &value) == 1) {
        const char *ep = self->endpoints[self->cur];
        bool said = agent_zmon_note(&self->zmon, event, value, ep, ww_time_mono_ns());
        if (event == ZMQ_EVENT_CONNECTED) {
            self->st.connects++;
            if (self->zmon.rate[AGENT_ZMON_HANDSHAKE].failing) {
                /* every retry connects, then fails its handshake: that line says it */
                WW_DEBUG("connected to %s (%zu batches waiting)", ep, self->count);
            } else {
                WW_INFO("connected to %s (%zu batches waiting)", ep, self->count);
            }
            /* A new connection may be a restarted collector: say hello again and resend
             * what was in flight on the old connection (replays are harmless). */
            self->hello_acked = false;
            self->hello_sent_at = 0;
            self->st.resent += self->n_inflight;
            self->n_inflight = 0;
            self->repair_sent = self->repair_next;
            ww_backoff_reset(&self->backoff);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            if (!said) { /* a connection that worked; a failed handshake was said already */
                WW_WARN("disconnected from %s; %zu batches kept until acked", ep, self->count);
            }
            self->n_inflight = 0;
        }
    }
}

int ww_link_poll(ww_link_t *self, int64_t timeout_ns)
{
    int64_t end = ww_time_mono_ns() + (timeout_ns > 0 ? timeout_ns : 0);
    for (;;) {
        s_pump(self);
        int64_t now = ww_time_mono_ns();
        int64_t wait = end - now;
        /* Wake for the next ack deadline too. */
        if (s_awaiting(self, now) > 0) {
            int64_t d = self->backoff.until_ns != 0
                            ? self->backoff.until_ns - now
                            : self->inflight_since + self->ack_timeout_ns - now;
            wait = d < wait ? d : wait;
        }
        if (self->refusal.until_ns != 0) {
            int64_t d = self->refusal.until_ns - now;
            wait = d < wait ? d : wait;
        }
        if (!self->hello_acked && !self->hello_refused && self->hello_sent_at != 0) {
            int64_t d = self->hello_sent_at + self->ack_timeout_ns - now;
            wait = d < wait ? d : wait;
        }
        if (self->n_endpoints > 1 && s_waiting(self, now)) {
            int64_t d = self->progress_at + self->failover_after_ns - now + 1;
            wait = d < wait ? d : wait;
        }
        if (wait < 0) {
            wait = 0;
        }
        /* The socket and its monitor (while there is a socket), then the watched fds. */
        zmq_pollitem_t items[2 + WW_LINK_MAX_WATCH];
        int n_items = 0;
        if (self->sock) {
            items[n_items++] = (zmq_pollitem_t){self->sock, 0, ZMQ_POLLIN, 0};
            items[n_items++] = (zmq_pollitem_t){self->mon, 0, ZMQ_POLLIN, 0};
        }
        const int watch_at = n_items;
        for (size_t w = 0; w < self->n_watch; w++) {
            items[n_items++] = (zmq_pollitem_t){NULL, self->watch[w].fd, ZMQ_POLLIN, 0};
        }
        int rc = zmq_poll(n_items ? items : NULL, n_items,
                          (long)((wait + WW_NS_PER_MS - 1) / WW_NS_PER_MS));
        if (rc < 0) {
            if (errno == EINTR) {
                return -EINTR;
            }
            WW_ERROR("poll failed: %s", zmq_strerror(errno));
            return -errno;
        }
        for (size_t w = 0; w < self->n_watch; w++) {
            if (items[watch_at + (int)w].revents & ZMQ_POLLIN) {
                self->watch[w].on_ready(self->watch[w].arg);
            }
        }
        if (!self->sock) {
            items[0].revents = items[1].revents = 0;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            s_on_monitor(self);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (self->sock && zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) >= 0) {
                s_on_reply(self, zmq_msg_data(&m), zmq_msg_size(&m));
            }
            zmq_msg_close(&m);
        }
        if (ww_time_mono_ns() >= end) {
            s_pump(self);
            return 0;
        }
    }
}

int ww_link_watch(ww_link_t *self, int fd, void (*on_ready)(void *arg), void *arg)
{
    for (size_t w = 0; w < self->n_watch; w++) {
        if (self->watch[w].arg == arg) {
            if (fd < 0) {
                self->watch[w] = self->watch[--self->n_watch];
            } else {
                self->watch[w].fd = fd;
                self->watch[w].on_ready = on_ready;
            }
            return 0;
        }
    }
    if (fd < 0) {
        return 0;
    }
    if (self->n_watch == WW_LINK_MAX_WATCH) {
        return -ENOSPC;
    }
    self->watch[self->n_watch].fd = fd;
    self->watch[self->n_watch].on_ready = on_ready;
    self->watch[self->n_watch].arg = arg;
    self->n_watch++;
    return 0;
}

uint64_t ww_link_pending(const ww_link_t *self)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    return sp.records;
}

bool ww_link_disk_full(const ww_link_t *self)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    return sp.disk_full;
}

uint64_t ww_link_epoch(const ww_link_t *self)
{
    return self->epoch;
}

uint64_t ww_link_next_seq(const ww_link_t *self)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    return sp.next_seq;
}

void ww_link_count_skipped(ww_link_t *self, uint64_t ticks)
{
    self->skipped_ticks += ticks;
}

void ww_link_stats(const ww_link_t *self, ww_link_stats_t *out)
{
    *out = self->st;
    out->dropped = 0;
    out->corrupt = 0;
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    out->dropped = sp.dropped_batches;
    out->corrupt = sp.corrupt_records;
    out->connect_failures = self->zmon.rate[AGENT_ZMON_CONNECT].total;
    out->handshake_failures = self->zmon.rate[AGENT_ZMON_HANDSHAKE].total;
}

uint64_t ww_link_repairing(const ww_link_t *self)
{
    return self->repair_next == 0 ? 0 : self->repair_last - self->repair_next + 1;
}

void ww_link_depth(const ww_link_t *self, ww_link_depth_t *out)
{
    ww_spool_state_t sp;
    ww_spool_state(self->spool, &sp);
    out->spool_bytes = sp.bytes;
    out->pending = sp.records;
    out->queued = self->count;
    out->in_flight = s_awaiting(self, ww_time_mono_ns());
    out->held = self->n_refused;
    out->kept = sp.kept;
}

bool ww_link_refusal(const ww_link_t *self, char *reason, size_t cap, uint64_t *held)
{
    if (!self->refusing) {
        return false;
    }
    snprintf(reason, cap, "%s", self->refusal_why);
    *held = self->n_refused;
    return true;
}

bool ww_link_nack_keeps(int code)
{
    return code == WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN;
}

int64_t ww_link_refusal_nack(ww_link_refusal_t *r, int64_t now_ns)
{
    if (r->until_ns != 0) {
        /* Held, or due and not retried yet: an answer to a send of the open round. */
        return r->until_ns;
    }
    if (r->delay_ns == 0) {
        r->delay_ns = WW_LINK_REFUSAL_FIRST_NS;
    } else {
        r->delay_ns =
            r->delay_ns > WW_LINK_REFUSAL_MAX_NS / 2 ? WW_LINK_REFUSAL_MAX_NS : r->delay_ns * 2;
    }
    r->until_ns = now_ns + r->delay_ns;
    r->rounds++;
    return r->until_ns;
}

bool ww_link_refusal_held(const ww_link_refusal_t *r, int64_t now_ns)
{
    return r->until_ns != 0 && now_ns < r->until_ns;
}

bool ww_link_refusal_due(const ww_link_refusal_t *r, int64_t now_ns)
{
    return r->until_ns != 0 && now_ns >= r->until_ns;
}

void ww_link_refusal_retried(ww_link_refusal_t *r)
{
    r->until_ns = 0;
}

void ww_link_refusal_reset(ww_link_refusal_t *r)
{
    r->delay_ns = 0;
    r->until_ns = 0;
    r->rounds = 0;
}
