/* ww_source: the interface between the agent and whatever it measures.
 *
 * A source is a table of function pointers (collectd's plugin_register_read, Fluent Bit's
 * struct flb_input_plugin). The simulated wafer-scale driver (ww_sim) is one entry; the
 * request log (ww_reqlog: readings and completion records sent by the inference server, or
 * by the simulator run as its own process, over a Unix socket) is another; further host
 * sources (IPMI/Redfish power, coolant loop sensors) implement the same table. The agent
 * owns one source instance per node.
 *
 * Time is passed in, never read by the source, so a source can be driven faster than
 * real time in tests and a simulated one is deterministic for a seed.
 */
#ifndef WW_SOURCE_H
#define WW_SOURCE_H

#include "ww_reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ww_source ww_source_t;

/* Receives one completion record as the source makes it (see ww_source.set_sink). */
typedef void (*ww_req_sink_fn)(void *arg, const ww_request_t *r);

struct ww_source {
    const char *name;
    /* Opens the instance for node `node_index` of this agent (0-based); `conf` is the
     * source's own configuration struct; start_ns is the time of the first sample.
     * Returns 0 and sets *state, or a negative errno. */
    int (*open)(const void *conf, unsigned node_index, int64_t start_ns, void **state);
    /* Advances to now_ns and fills *out with the state at now_ns. now_ns never goes
     * backwards. Returns 0 or a negative errno. */
    int (*sample)(void *state, int64_t now_ns, ww_reading_t *out);
    /* Moves up to cap completion records finished at or before the last sampled time into
     * out[], in completion order (done_ns never decreases: the agent's latency windows
     * count an older record as late); returns how many (>= 0), or a negative errno. Call
     * until it returns < cap. */
    int (*poll_requests)(void *state, ww_request_t *out, size_t cap);
    /* Optional (NULL when the source has none): from now on, hands every completion record
     * to fn(arg, record) during sample(), in the order poll_requests would return them,
     * instead of keeping them for poll_requests (which then returns 0). Records already
     * waiting are handed over first. Saves the buffer of a tick's records (a node at 5,000
     * requests/s would hold a second of them) and copying each twice. fn NULL: back to
     * buffering. */
    void (*set_sink)(void *state, ww_req_sink_fn fn, void *arg);
    /* Optional (NULL for a source that only works inside sample()): a file descriptor the
     * agent polls between ticks, and what to do when it is readable. ready() takes what
     * arrived and may hand records to the sink (set_sink) then, as sample() does; it
     * returns 0 or a negative errno. A source driven by another process (the request log)
     * takes its records as they come instead of letting a second of them pile up. */
    int (*fd)(void *state);
    int (*ready)(void *state);
    /* Name of model index i, or NULL past the end. */
    const char *(*model_name)(void *state, unsigned i);
    /* Frees the instance and NULLs *state; safe on NULL. */
    void (*close)(void **state);
};

/* poll_requests of a source that has no requests of its own (readings only: they come from
 * elsewhere, agent.requests otlp): always 0. */
static inline int ww_source_no_requests(void *state, ww_request_t *out, size_t cap)
{
    (void)state;
    (void)out;
    (void)cap;
    return 0;
}

#endif
