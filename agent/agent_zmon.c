/* agent_zmon: see agent_zmon.h. */
#define WW_LOG_MODULE "link"
#include "agent_zmon.h"

#include "ww_backoff.h"
#include "ww_log.h"

#include <errno.h>
#include <string.h>

void agent_zmon_init(agent_zmon_t *self, bool curve)
{
    memset(self, 0, sizeof *self);
    self->curve = curve;
}

int agent_zmon_read(void *mon, uint16_t *event, uint32_t *value)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        return e == EAGAIN ? 0 : -e;
    }
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&m) == 6) {
        const uint8_t *d = zmq_msg_data(&m);
        memcpy(event, d, sizeof *event);
        memcpy(value, d + 2, sizeof *value);
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the endpoint frame: the link knows its endpoint */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return 1;
}

bool agent_zmon_rate_take(agent_zmon_rate_t *r, int64_t now_ns, uint64_t *unlogged)
{
    r->total++;
    r->spell++;
    if (r->failing && now_ns < r->next_ns) {
        r->unlogged++;
        return false;
    }
    *unlogged = r->unlogged;
    r->unlogged = 0;
    r->every_ns =
        !r->failing ? AGENT_ZMON_FIRST_NS : ww_backoff_double(r->every_ns, AGENT_ZMON_MAX_NS);
    if (!r->failing) {
        r->spell = 1;
    }
    r->failing = true;
    r->next_ns = now_ns + r->every_ns;
    return true;
}

uint64_t agent_zmon_rate_clear(agent_zmon_rate_t *r)
{
    uint64_t n = r->failing ? r->spell : 0;
    r->failing = false;
    r->unlogged = 0;
    r->spell = 0;
    return n;
}

/* " (3 more since the last report, 12 in all)" or "". */
static void s_more(char *buf, size_t cap, uint64_t unlogged, uint64_t spell)
{
    if (unlogged > 0) {
        snprintf(buf, cap, " (%llu more since the last report, %llu in all)",
                 (unsigned long long)unlogged, (unsigned long long)spell);
    } else {
        buf[0] = '\0';
    }
}

/* What a protocol failure's value (ZMQ_PROTOCOL_ERROR_*) means, for the log. */
static const char *s_protocol_text(uint32_t value)
{
    switch (value) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "security mechanism mismatch (one side has CURVE off)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic error";
    default:
        return "protocol error";
    }
}

static void s_handshake_failed(agent_zmon_t *self, uint16_t event, uint32_t value,
                               const char *endpoint, int64_t now_ns)
{
    uint64_t unlogged = 0;
    if (!agent_zmon_rate_take(&self->rate[AGENT_ZMON_HANDSHAKE], now_ns, &unlogged)) {
        return;
    }
    char more[96];
    s_more(more, sizeof more, unlogged, self->rate[AGENT_ZMON_HANDSHAKE].spell);
    const char *hint = self->curve ? ": not enrolled, or the wrong collector key?" : "";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        WW_WARN("handshake with %s failed: the collector refused this agent's key (status "
                "%u)%s%s",
                endpoint, (unsigned)value, hint, more);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        WW_WARN("handshake with %s failed: %s%s%s", endpoint, s_protocol_text(value), hint, more);
    } else {
        WW_WARN("handshake with %s failed: the collector closed the connection during the "
                "handshake%s%s",
                endpoint, hint, more);
    }
}

bool agent_zmon_note(agent_zmon_t *self, uint16_t event, uint32_t value, const char *endpoint,
                     int64_t now_ns)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED: {
        self->reached = true;
        self->handshaken = false;
        uint64_t c = agent_zmon_rate_clear(&self->rate[AGENT_ZMON_CONNECT]);
        if (c > 0) {
            WW_INFO("reached %s after %llu failed connects", endpoint, (unsigned long long)c);
        }
        return false;
    }
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: {
        self->handshaken = true;
        uint64_t h = agent_zmon_rate_clear(&self->rate[AGENT_ZMON_HANDSHAKE]);
        if (h > 0) {
            WW_INFO("handshake with %s succeeded after %llu failed ones", endpoint,
                    (unsigned long long)h);
        }
        return false;
    }
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        s_handshake_failed(self, event, value, endpoint, now_ns);
        return true;
    case ZMQ_EVENT_DISCONNECTED: {
        bool had_link = self->handshaken;
        self->handshaken = false;
        return !had_link; /* a handshake failure said it already */
    }
    case ZMQ_EVENT_CLOSED:
        return true; /* RETRIED follows: a failed connect is counted once, there */
    case ZMQ_EVENT_CONNECT_RETRIED: {
        if (self->reached) {
            /* A connection existed and ended: its DISCONNECTED or handshake failure said
             * so. This retry is not a failed connect. */
            self->reached = false;
            return true;
        }
        uint64_t unlogged = 0;
        if (agent_zmon_rate_take(&self->rate[AGENT_ZMON_CONNECT], now_ns, &unlogged)) {
            char more[96];
            s_more(more, sizeof more, unlogged, self->rate[AGENT_ZMON_CONNECT].spell);
            WW_WARN("cannot connect to %s (is the collector running and reachable?); "
                    "retrying every %u ms%s",
                    endpoint, (unsigned)value, more);
        }
        return true;
    }
    default:
        return false;
    }
}
