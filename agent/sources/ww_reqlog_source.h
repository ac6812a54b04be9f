/* ww_reqlog_source: the request log as an agent source. The agent binds a Unix datagram
 * socket (source.socket) and takes the datagrams of proto/ww_reqlog.h that the inference
 * server, or waferwatch-sim, sends to it: readings and completion records.
 */
#ifndef WW_REQLOG_SOURCE_H
#define WW_REQLOG_SOURCE_H

#include "ww_reqlog.h"
#include "ww_source.h"

typedef struct {
    const char *path;   /* the socket's path (bound by the agent) */
    unsigned mode;      /* its permission bits, e.g. 0660 */
    int64_t max_age_ns; /* a reading older than this at a tick is no reading */
} ww_reqlog_conf_t;

/* The request-log source's function table. One node per agent (node_index 0). */
extern const ww_source_t ww_reqlog_source;

#endif
