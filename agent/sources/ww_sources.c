/* ww_sources: see ww_sources.h. */
#define WW_LOG_MODULE "agent"
#include "ww_sources.h"

#include "ww_host_source.h"
#include "ww_log.h"
#include "ww_nvml_source.h"
#include "ww_reqlog_source.h"
#include "ww_sim.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The simulator runs the configured model mix. */
static unsigned s_sim_models(const ww_agent_conf_t *c)
{
    return (unsigned)c->sim.n_models;
}

/* The request log learns its models from the records: room for as many as it can name. */
static unsigned s_reqlog_models(const ww_agent_conf_t *c)
{
    (void)c;
    return WW_REQLOG_MAX_MODELS;
}

/* --check-config with the request log: the socket's directory must exist and be writable.
 * The socket itself is not bound: a running agent holds it. */
static int s_reqlog_check(const ww_agent_conf_t *c)
{
    char *path = strdup(c->reqlog.path);
    if (!path) {
        return -ENOMEM;
    }
    const char *dir = dirname(path);
    int rc = access(dir, W_OK | X_OK) == 0 ? 0 : -errno;
    if (rc < 0) {
        WW_ERROR("source.socket %s: its directory %s cannot be used: %s", c->reqlog.path, dir,
                 strerror(-rc));
    }
    free(path);
    return rc;
}

/* The registry, one line per source: X(name, function table, its field of
 * ww_agent_conf_t, max nodes per agent (0: any), model slots, --check-config check). */
#define WW_SOURCES_LIST(X)                                                                         \
    X("sim", ww_sim_source, sim, 0, s_sim_models, NULL)                                            \
    X("reqlog", ww_reqlog_source, reqlog, 1, s_reqlog_models, s_reqlog_check)                      \
    X("host", ww_host_source, host, 1, s_sim_models, NULL)                                         \
    X("nvml", ww_nvml_source, nvml, 1, s_sim_models, NULL)

#define S_ENTRY(name, ops, field, nodes, models, check)                                            \
    {name, &ops, offsetof(ww_agent_conf_t, field), nodes, models, check},
#define S_NAME(name, ops, field, nodes, models, check) name,

static const ww_sources_entry_t s_sources[] = {WW_SOURCES_LIST(S_ENTRY)};

const char *const ww_sources_names[] = {WW_SOURCES_LIST(S_NAME) NULL};

size_t ww_sources_count(void)
{
    return sizeof s_sources / sizeof s_sources[0];
}

const ww_sources_entry_t *ww_sources_get(int i)
{
    return i >= 0 && (size_t)i < ww_sources_count() ? &s_sources[i] : NULL;
}

const ww_sources_entry_t *ww_sources_find(const char *name)
{
    for (size_t i = 0; name && i < ww_sources_count(); i++) {
        if (strcmp(s_sources[i].name, name) == 0) {
            return &s_sources[i];
        }
    }
    return NULL;
}

const void *ww_sources_conf(const ww_sources_entry_t *e, const ww_agent_conf_t *c)
{
    return (const char *)c + e->conf_offset;
}
