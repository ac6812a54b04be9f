/* ww_zmon: see ww_zmon.h. */
#define WW_LOG_MODULE "zmon"
#include "ww_zmon.h"

#include "ww_backoff.h"

#include "ww_log.h"
#include "ww_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

/* "[v6 address]:port" at most, with its NUL. */
#define S_ADDR_LEN 56
/* Descriptors past this are not given an address (the table would grow past 14 MB). */
#define S_MAX_FD (1 << 18)

typedef struct {
    char addr[S_ADDR_LEN]; /* "" when unknown */
} s_conn_t;

/* Kinds of failure rate-limited apart, so that a flood of one (say plain peers) does not
 * hide the first of another (an agent with the wrong server key). */
enum { S_KIND_MISMATCH, S_KIND_CRYPTO, S_KIND_PROTOCOL, S_KIND_NO_DETAIL, S_KINDS };

static int s_kind(int reason, uint32_t value)
{
    if (reason == WW_ZMON_NO_DETAIL) {
        return S_KIND_NO_DETAIL;
    }
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        return S_KIND_MISMATCH;
    }
    return value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ? S_KIND_CRYPTO : S_KIND_PROTOCOL;
}

struct ww_zmon {
    void *sock;            /* the monitored socket (the owner's) */
    void *mon;             /* PAIR: the events (the thread's) */
    void *ctl_rx, *ctl_tx; /* PAIR: the owner's stop (thread's end, owner's end) */
    char endpoint[64];     /* inproc endpoint of the events */
    pthread_t thread;
    bool thread_started;
    _Atomic uint64_t failed[WW_ZMON_REASONS];
    _Atomic uint64_t accepted;
    /* The thread's own from here. */
    s_conn_t *conns; /* indexed by descriptor */
    size_t n_conns;
    int pending;            /* a protocol / no_detail failure waiting for its DISCONNECTED, or -1 */
    uint32_t pending_value; /* its event value */
    ww_zmon_limit_t limit[S_KINDS]; /* log lines, per kind of failure */
};

static const char *const s_reason_names[WW_ZMON_REASONS] = {"protocol", "auth", "no_detail"};

const char *ww_zmon_reason_name(ww_zmon_reason_t reason)
{
    return (unsigned)reason < WW_ZMON_REASONS ? s_reason_names[reason] : "unknown";
}

bool ww_zmon_limit_take(ww_zmon_limit_t *l, int64_t now_ns, uint64_t *unlogged)
{
    const int64_t first = WW_NS_PER_S, most = 3600 * WW_NS_PER_S;
    if (l->interval_ns != 0 && now_ns < l->next_ns) {
        l->unlogged++;
        return false;
    }
    /* A whole interval without a line after the allowed time: the failures stopped and
     * this is a new episode, logged as promptly as the first. */
    if (l->interval_ns == 0 || now_ns - l->next_ns >= l->interval_ns) {
        l->interval_ns = first;
    } else {
        l->interval_ns = ww_backoff_double(l->interval_ns, most);
    }
    l->next_ns = now_ns + l->interval_ns;
    *unlogged = l->unlogged;
    l->unlogged = 0;
    return true;
}

/* What a protocol failure's value (ZMQ_PROTOCOL_ERROR_*) means for an SRE. */
static const char *s_protocol_text(uint32_t v)
{
    switch (v) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "mechanism mismatch: the peer does not speak CURVE";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic error: the peer uses another server public key (or a bad key)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "key exchange failed";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
        return "unexpected handshake command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA:
        return "invalid metadata";
    default:
        if (v >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED && v < ZMQ_PROTOCOL_ERROR_WS_UNSPECIFIED) {
            return "bad reply from the ZAP handler";
        }
        if (v >= ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED &&
            v <= ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME) {
            return "malformed handshake command (not a ZeroMQ peer?)";
        }
        return "ZMTP protocol error";
    }
}

static void s_conn_forget(ww_zmon_t *self, int fd)
{
    if (fd >= 0 && (size_t)fd < self->n_conns) {
        self->conns[fd].addr[0] = '\0';
    }
}

/* ACCEPTED: note the peer's address while the descriptor is still its connection. */
static void s_conn_note(ww_zmon_t *self, int fd)
{
    if (fd < 0 || fd >= S_MAX_FD) {
        return;
    }
    if ((size_t)fd >= self->n_conns) {
        size_t n = self->n_conns ? self->n_conns : 64;
        while (n <= (size_t)fd) {
            n *= 2;
        }
        s_conn_t *v = realloc(self->conns, n * sizeof *v);
        if (!v) {
            return; /* the address is only for the log line */
        }
        memset(v + self->n_conns, 0, (n - self->n_conns) * sizeof *v);
        self->conns = v;
        self->n_conns = n;
    }
    char *out = self->conns[fd].addr;
    out[0] = '\0';
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return; /* gone already */
    }
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, S_ADDR_LEN, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, S_ADDR_LEN, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(out, S_ADDR_LEN, "a local socket");
    }
}

/* Logs a protocol or no_detail failure, rate-limited per reason. */
static void s_log_failure(ww_zmon_t *self, int reason, uint32_t value, const char *addr)
{
    uint64_t unlogged = 0;
    if (!ww_zmon_limit_take(&self->limit[s_kind(reason, value)], ww_time_mono_ns(), &unlogged)) {
        return;
    }
    char more[96] = "";
    if (unlogged > 0) {
        snprintf(more, sizeof more, " (and %llu more like it since the last such line)",
                 (unsigned long long)unlogged);
    }
    const char *from = addr && addr[0] ? addr : "an unknown address (gone before it was read)";
    if (reason == WW_ZMON_PROTOCOL) {
        WW_WARN("handshake failed from %s: protocol: %s%s", from, s_protocol_text(value), more);
    } else {
        WW_WARN("handshake failed from %s: no_detail: connection ended during the handshake "
                "(%s)%s",
                from, value ? strerror((int)value) : "closed", more);
    }
}

static void s_event(ww_zmon_t *self, uint16_t event, uint32_t value)
{
    switch (event) {
    case ZMQ_EVENT_ACCEPTED:
        atomic_fetch_add_explicit(&self->accepted, 1, memory_order_relaxed);
        s_conn_note(self, (int)value);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: {
        int reason =
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? WW_ZMON_PROTOCOL : WW_ZMON_NO_DETAIL;
        atomic_fetch_add_explicit(&self->failed[reason], 1, memory_order_relaxed);
        if (self->pending >= 0) { /* never matched: say it without an address */
            s_log_failure(self, self->pending, self->pending_value, NULL);
        }
        self->pending = reason;
        self->pending_value = value;
        break;
    }
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        atomic_fetch_add_explicit(&self->failed[WW_ZMON_AUTH], 1, memory_order_relaxed);
        break;
    case ZMQ_EVENT_DISCONNECTED: {
        int fd = (int)value;
        if (self->pending >= 0) {
            const char *addr = fd >= 0 && (size_t)fd < self->n_conns ? self->conns[fd].addr : NULL;
            s_log_failure(self, self->pending, self->pending_value, addr);
            self->pending = -1;
        }
        s_conn_forget(self, fd);
        break;
    }
    default:
        break;
    }
}

/* Reads every event waiting: a 6-byte frame (event, value) then the endpoint frame. */
static void s_drain(ww_zmon_t *self)
{
    for (;;) {
        zmq_msg_t head;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        bool ok = zmq_msg_size(&head) == 6;
        if (ok) {
            const uint8_t *d = zmq_msg_data(&head);
            memcpy(&event, d, sizeof event);
            memcpy(&value, d + 2, sizeof value);
        }
        int more = zmq_msg_more(&head);
        zmq_msg_close(&head);
        while (more) {
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, self->mon, 0) < 0) {
                zmq_msg_close(&x);
                return;
            }
            more = zmq_msg_more(&x);
            zmq_msg_close(&x);
        }
        if (ok) {
            s_event(self, event, value);
        }
    }
}

static void *s_thread(void *arg)
{
    ww_zmon_t *self = arg;
    for (;;) {
        zmq_pollitem_t items[2] = {{self->mon, 0, ZMQ_POLLIN, 0}, {self->ctl_rx, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break; /* ETERM: the context is going away */
        }
        if (items[0].revents & ZMQ_POLLIN) {
            s_drain(self);
        }
        if (items[1].revents & ZMQ_POLLIN) {
            break;
        }
    }
    if (self->pending >= 0) {
        s_log_failure(self, self->pending, self->pending_value, NULL);
        self->pending = -1;
    }
    return NULL;
}

static void *s_pair(void *ctx, bool bind, const char *endpoint)
{
    void *s = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    /* No limit on the events queue: at the limit libzmq's I/O thread would block on it
     * (it sends events without ZMQ_DONTWAIT) and stall every agent's traffic. */
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        (bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint)) != 0) {
        if (s) {
            zmq_close(s);
        }
        return NULL;
    }
    return s;
}

ww_zmon_t *ww_zmon_new(void *zmq_ctx, void *sock, char *why, size_t why_len)
{
    ww_zmon_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    self->pending = -1;
    self->sock = sock;
    snprintf(self->endpoint, sizeof self->endpoint, "inproc://ww-zmon-%p", (void *)self);
    const int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    char ctl[80];
    snprintf(ctl, sizeof ctl, "inproc://ww-zmon-ctl-%p", (void *)self);
    if (zmq_socket_monitor(sock, self->endpoint, events) != 0 ||
        !(self->mon = s_pair(zmq_ctx, false, self->endpoint)) ||
        !(self->ctl_rx = s_pair(zmq_ctx, true, ctl)) ||
        !(self->ctl_tx = s_pair(zmq_ctx, false, ctl))) {
        snprintf(why, why_len, "cannot monitor the socket: %s", zmq_strerror(errno));
        ww_zmon_destroy(&self);
        return NULL;
    }
    /* The thread takes no signals: they are the receive loop's to see. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(why, why_len, "cannot start the socket monitor thread: %s", strerror(rc));
        ww_zmon_destroy(&self);
        return NULL;
    }
    self->thread_started = true;
    return self;
}

void ww_zmon_destroy(ww_zmon_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_zmon_t *self = *self_p;
    if (self->sock) {
        zmq_socket_monitor(self->sock, NULL, 0);
    }
    if (self->thread_started) {
        zmq_send(self->ctl_tx, "", 0, 0);
        pthread_join(self->thread, NULL);
    }
    if (self->mon) {
        zmq_close(self->mon);
    }
    if (self->ctl_rx) {
        zmq_close(self->ctl_rx);
    }
    if (self->ctl_tx) {
        zmq_close(self->ctl_tx);
    }
    free(self->conns);
    free(self);
    *self_p = NULL;
}

void ww_zmon_stats(const ww_zmon_t *self, ww_zmon_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self) {
        return;
    }
    for (int r = 0; r < WW_ZMON_REASONS; r++) {
        out->failed[r] = atomic_load_explicit(&self->failed[r], memory_order_relaxed);
    }
    out->accepted = atomic_load_explicit(&self->accepted, memory_order_relaxed);
}
