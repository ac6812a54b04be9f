/* ww_sources: the registry of the agent's sources, one row per source: its name (the value
 * of agent.source), its function table (ww_source.h) and what the agent needs to drive it
 * (which part of the agent's configuration it opens with, how many nodes and models).
 *
 * The one place a source is listed: agent.source's allowed values are ww_sources_names
 * (the enum row in ww_agent_conf.c), and the agent opens its nodes through
 * ww_sources_get(conf.source). Adding a source is its own files and one line of the list
 * in ww_sources.c.
 */
#ifndef WW_SOURCES_H
#define WW_SOURCES_H

#include "ww_agent_conf.h"
#include "ww_source.h"

#include <stddef.h>

typedef struct {
    const char *name;       /* agent.source's value; the same as ops->name */
    const ww_source_t *ops; /* the function table */
    size_t conf_offset;     /* offsetof(ww_agent_conf_t, the source's own configuration): the
                               `conf` its open() takes (after ww_agent_conf_finish) */
    unsigned max_nodes;     /* nodes one agent may drive with it (sim.nodes); 0: any */
    /* The model slots of one node's latency windows for configuration c. */
    unsigned (*models)(const ww_agent_conf_t *c);
    /* For --check-config: checks what can be checked without taking what a running agent
     * holds (a bound socket), logging why it fails; returns 0 or a negative errno. NULL:
     * the check opens the source as a run would (it holds nothing). */
    int (*check)(const ww_agent_conf_t *c);
} ww_sources_entry_t;

/* The names of the registry's sources in its order, NULL-terminated: the allowed values
 * of agent.source, whose index is the source's. */
extern const char *const ww_sources_names[];

/* The number of registered sources. */
size_t ww_sources_count(void);

/* The source of index i (agent.source's value), or NULL when there is none. */
const ww_sources_entry_t *ww_sources_get(int i);

/* The source named `name`, or NULL. */
const ww_sources_entry_t *ww_sources_find(const char *name);

/* The configuration that c gives entry e's open(): c's field at e->conf_offset. */
const void *ww_sources_conf(const ww_sources_entry_t *e, const ww_agent_conf_t *c);

#endif
