/* ww_test_router: a fake collector's socket for unit tests of the agent's link: a ZeroMQ
 * ROUTER bound to tcp://127.0.0.1:* (no CURVE) that the test drives by hand, receiving
 * what the link sends and replying with envelopes it builds. Header-only. */
#ifndef WW_TEST_ROUTER_H
#define WW_TEST_ROUTER_H

#include "ww_test.h"
#include "ww_wire.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    void *ctx, *router;
    char endpoint[64]; /* where it listens, for ww_link_conf_t.endpoints */
} ww_test_router_t;

static inline void ww_test_router_open(ww_test_router_t *r)
{
    memset(r, 0, sizeof *r);
    r->ctx = zmq_ctx_new();
    r->router = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(r->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof r->endpoint;
    assert_int_equal(zmq_getsockopt(r->router, ZMQ_LAST_ENDPOINT, r->endpoint, &len), 0);
}

static inline void ww_test_router_close(ww_test_router_t *r)
{
    zmq_close(r->router);
    zmq_ctx_term(r->ctx);
}

/* Sends reply to the peer whose routing id is id. */
static inline void ww_test_router_reply(ww_test_router_t *r, const void *id, size_t id_len,
                                        const ww_envelope_t *reply)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    long n = ww_wire_encode(reply, &buf, &cap);
    assert_true(n > 0);
    zmq_send(r->router, id, id_len, ZMQ_SNDMORE);
    zmq_send(r->router, buf, (size_t)n, 0);
    free(buf);
}

#endif
