/* agent_link: see agent_link.h. */
#define WW_LOG_MODULE "link"
#include "agent_link.h"

#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    uint64_t seq;
    uint8_t *buf; /* encoded Envelope; NULL once nacked */
    size_t len;
} s_entry_t;

struct ww_link {
    void *ctx;
    void *sock;
    void *mon;
    char *endpoint;
    char *agent_id;
    uint64_t epoch;
    uint64_t next_seq;
    int64_t ack_timeout_ns;
    size_t max_in_flight;
    /* ring of unacked batches in seq order; the first n_inflight have been sent */
    s_entry_t *ring;
    size_t cap, head, count, n_inflight;
    int64_t inflight_since; /* monotonic time the oldest in-flight entry was (re)sent */
    /* hello */
    uint8_t *hello;
    size_t hello_len;
    bool hello_acked;
    int64_t hello_sent_at; /* 0 = due now */
    /* scratch */
    uint8_t *enc;
    size_t enc_cap;
    bool connected;
    ww_complain_t send_fail;
    ww_link_stats_t st;
};

static uint64_t s_random_epoch(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) {
            v = 0;
        }
        close(fd);
    }
    if (v == 0) {
        /* No urandom: time and pid still differ between restarts. */
        v = (uint64_t)ww_time_now_ns() ^ ((uint64_t)getpid() << 32);
    }
    return v ? v : 1;
}

static s_entry_t *s_at(ww_link_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

static void s_pop_front(ww_link_t *self)
{
    s_entry_t *e = s_at(self, 0);
    free(e->buf);
    e->buf = NULL;
    self->head = (self->head + 1) % self->cap;
    self->count--;
    if (self->n_inflight > 0) {
        self->n_inflight--;
    }
}

/* Nacked entries at the front are consumed: the collector moved its stream past them. */
static void s_pop_nacked(ww_link_t *self)
{
    while (self->count > 0 && s_at(self, 0)->buf == NULL) {
        s_pop_front(self);
    }
}

static int s_open_socket(ww_link_t *self)
{
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        return -errno;
    }
    int zero = 0, one = 1;
    int hb_ivl = 2000, hb_timeout = 6000, rc_ivl = 100, rc_max = 5000;
    /* Unsent data lives in our queue, not in ZeroMQ's: no linger, nothing queued toward a
     * peer that is not connected (ZMQ_IMMEDIATE), heartbeats so a dead peer is noticed. */
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &rc_ivl, sizeof rc_ivl);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL_MAX, &rc_max, sizeof rc_max);

    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://ww-link-monitor-%p", (void *)self);
    if (zmq_socket_monitor(self->sock, mon_ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
        return -errno;
    }
    self->mon = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!self->mon || zmq_connect(self->mon, mon_ep) != 0) {
        return -errno;
    }
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        int e = errno;
        WW_ERROR("cannot connect to %s: %s", self->endpoint, zmq_strerror(e));
        return -e;
    }
    return 0;
}

ww_link_t *ww_link_new(const ww_link_conf_t *conf, const ww_hello_t *hello)
{
    ww_link_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->endpoint = strdup(conf->endpoint);
    self->agent_id = strdup(conf->agent_id);
    self->cap = conf->queue_batches ? conf->queue_batches : 1;
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->ack_timeout_ns = conf->ack_timeout_ns;
    self->max_in_flight = conf->max_in_flight ? conf->max_in_flight : 1;
    self->epoch = s_random_epoch();
    self->next_seq = 1;
    self->ctx = zmq_ctx_new();
    if (!self->endpoint || !self->agent_id || !self->ring || !self->ctx) {
        goto fail;
    }

    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = self->agent_id;
    env.epoch = self->epoch;
    env.sent_ns = ww_time_now_ns();
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = (ww_hello_t *)hello;
    long n = ww_wire_encode(&env, &self->hello, &self->hello_len);
    if (n < 0) {
        goto fail;
    }
    self->hello_len = (size_t)n;

    int rc = s_open_socket(self);
    if (rc < 0) {
        WW_ERROR("cannot set up the collector link: %s", zmq_strerror(-rc));
        goto fail;
    }
    WW_INFO("stream epoch %016llx, connecting to %s", (unsigned long long)self->epoch,
            self->endpoint);
    return self;
fail:
    ww_link_destroy(&self);
    return NULL;
}

void ww_link_destroy(ww_link_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_link_t *self = *self_p;
    if (self->sock) {
        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_close(self->sock);
    }
    if (self->mon) {
        zmq_close(self->mon);
    }
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    if (self->ring) {
        while (self->count > 0) {
            s_pop_front(self);
        }
    }
    free(self->ring);
    free(self->hello);
    free(self->enc);
    free(self->endpoint);
    free(self->agent_id);
    free(self);
    *self_p = NULL;
}

int ww_link_submit(ww_link_t *self, const ww_batch_t *batch)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = self->agent_id;
    env.epoch = self->epoch;
    env.seq = self->next_seq;
    env.sent_ns = ww_time_now_ns();
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = (ww_batch_t *)batch;
    long n = ww_wire_encode(&env, &self->enc, &self->enc_cap);
    if (n < 0) {
        return (int)n;
    }
    uint8_t *copy = malloc((size_t)n);
    if (!copy) {
        return -ENOMEM;
    }
    memcpy(copy, self->enc, (size_t)n);
    if (self->count == self->cap) {
        s_entry_t *old = s_at(self, 0);
        WW_WARN("queue full (%zu batches): dropping batch seq %llu unacked", self->cap,
                (unsigned long long)old->seq);
        self->st.dropped++;
        s_pop_front(self);
    }
    s_entry_t *e = s_at(self, self->count);
    e->seq = self->next_seq++;
    e->buf = copy;
    e->len = (size_t)n;
    self->count++;
    self->st.submitted++;
    return 0;
}

static int s_send(ww_link_t *self, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) < 0) {
        /* EAGAIN: no connected peer (ZMQ_IMMEDIATE); the batch stays queued. */
        if (errno != EAGAIN) {
            WW_COMPLAIN(&self->send_fail, "send to %s failed: %s", self->endpoint,
                        zmq_strerror(errno));
        }
        return -errno;
    }
    WW_RECOVERED(&self->send_fail, "sending to %s again", self->endpoint);
    self->st.sent++;
    return 0;
}

/* Sends the hello and whatever the window allows; restarts the window on ack timeout. */
static void s_pump(ww_link_t *self)
{
    int64_t now = ww_time_mono_ns();
    if (!self->hello_acked &&
        (self->hello_sent_at == 0 || now - self->hello_sent_at > self->ack_timeout_ns)) {
        if (s_send(self, self->hello, self->hello_len) == 0) {
            self->hello_sent_at = now;
        }
    }
    if (self->n_inflight > 0 && now - self->inflight_since > self->ack_timeout_ns) {
        WW_WARN("no ack for seq %llu within %lld ms: resending %zu batches",
                (unsigned long long)s_at(self, 0)->seq,
                (long long)(self->ack_timeout_ns / WW_NS_PER_MS), self->n_inflight);
        self->st.resent += self->n_inflight;
        self->n_inflight = 0;
    }
    while (self->n_inflight < self->count && self->n_inflight < self->max_in_flight) {
        s_entry_t *e = s_at(self, self->n_inflight);
        if (e->buf && s_send(self, e->buf, e->len) < 0) {
            break;
        }
        if (self->n_inflight == 0) {
            self->inflight_since = now;
        }
        self->n_inflight++;
    }
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
        const ww_ack_t *a = env->ack;
        if (a->epoch != self->epoch) {
            WW_DEBUG("ack for another epoch %016llx ignored", (unsigned long long)a->epoch);
        } else if (a->seq == 0) {
            if (!self->hello_acked) {
                self->hello_acked = true;
                self->st.hellos_acked++;
                WW_INFO("collector accepted hello");
            }
        } else {
            while (self->count > 0 && s_at(self, 0)->seq <= a->seq) {
                if (s_at(self, 0)->buf) {
                    self->st.acked++;
                }
                s_pop_front(self);
            }
            s_pop_nacked(self);
            self->inflight_since = ww_time_mono_ns();
        }
    } else if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK) {
        const ww_nack_t *n = env->nack;
        WW_WARN("collector rejected seq %llu (code %d): %s; dropped", (unsigned long long)n->seq,
                (int)n->code, n->reason);
        if (n->epoch == self->epoch && n->seq == 0) {
            /* A rejected hello would be rejected again: stop resending it. */
            self->hello_acked = true;
        }
        for (size_t i = 0; n->epoch == self->epoch && i < self->count; i++) {
            s_entry_t *e = s_at(self, i);
            if (e->seq == n->seq && e->buf) {
                free(e->buf);
                e->buf = NULL;
                self->st.nacked++;
            }
        }
        s_pop_nacked(self);
    }
    ww_wire_free(&env);
}

static void s_on_monitor(ww_link_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    uint16_t event = 0;
    if (zmq_msg_size(&m) >= 2) {
        memcpy(&event, zmq_msg_data(&m), sizeof event);
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->mon, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    if (event == ZMQ_EVENT_CONNECTED) {
        self->connected = true;
        self->st.connects++;
        WW_INFO("connected to %s (%zu batches waiting)", self->endpoint, self->count);
        /* A new connection may be a restarted collector: say hello again, resend what was
         * in flight on the old connection (replays are harmless). */
        self->hello_acked = false;
        self->hello_sent_at = 0;
        self->st.resent += self->n_inflight;
        self->n_inflight = 0;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        self->connected = false;
        WW_WARN("disconnected from %s; %zu batches kept until acked", self->endpoint, self->count);
        self->n_inflight = 0;
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
        if (self->n_inflight > 0) {
            int64_t d = self->inflight_since + self->ack_timeout_ns - now;
            wait = d < wait ? d : wait;
        }
        if (!self->hello_acked && self->hello_sent_at != 0) {
            int64_t d = self->hello_sent_at + self->ack_timeout_ns - now;
            wait = d < wait ? d : wait;
        }
        if (wait < 0) {
            wait = 0;
        }
        zmq_pollitem_t items[] = {{self->sock, 0, ZMQ_POLLIN, 0}, {self->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 2, (long)((wait + WW_NS_PER_MS - 1) / WW_NS_PER_MS));
        if (rc < 0) {
            if (errno == EINTR) {
                return -EINTR;
            }
            WW_ERROR("poll failed: %s", zmq_strerror(errno));
            return -errno;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            s_on_monitor(self);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) >= 0) {
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

size_t ww_link_pending(const ww_link_t *self)
{
    return self->count;
}

uint64_t ww_link_epoch(const ww_link_t *self)
{
    return self->epoch;
}

void ww_link_stats(const ww_link_t *self, ww_link_stats_t *out)
{
    *out = self->st;
}
