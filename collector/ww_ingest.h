/* ingest: the collector's receive loop. A ZeroMQ ROUTER takes Envelopes from agents;
 * each is decoded and validated; what is ready is written as one group per transaction
 * (store_pg) by one of ingest.writers writers, each with its own connection and thread (an
 * agent's messages always by the same one, in order); Acks go out only after COMMIT, Nacks
 * for refused messages. While PostgreSQL
 * is unavailable the group is kept and retried with capped backoff, and no new input is
 * read, so backpressure reaches the agents' queues. */
#ifndef WW_INGEST_H
#define WW_INGEST_H

#include "ww_cmetrics.h"
#include "ww_collector_conf.h"

#include <signal.h>

/* Runs until *stop becomes non-zero; re-reads the allowlist whenever *reload is set (and
 * clears it). Publishes its counters to metrics (NULL: none). Returns 0 on a clean stop,
 * a negative errno when it cannot start (bind failure, migration failure), logged. */
int ww_ingest_run(const ww_collector_conf_t *conf, ww_cmetrics_t *metrics,
                  volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

#endif
