/* collector_metrics: see ww_cmetrics.h. */
#define WW_LOG_MODULE "metrics"
#include "ww_cmetrics.h"

#include "ww_log.h"
#include "ww_metrics.h"
#include "ww_version.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

enum { R_MALFORMED, R_INVALID, R_FORBIDDEN, R_DATABASE };
enum { E_OK, E_ERROR };
enum { B_MINUTE, B_HOUR };

struct ww_cmetrics {
    ww_metrics_t *reg;
    ww_metrics_server_t *srv;
    ww_metric_t *received, *rejected, *rows, *windows, *duplicates, *gaps, *transactions, *retries,
        *write_s, *group, *pending, *pg_up, *slo_evals, *slo_s, *delay_s, *implausible, *handshakes,
        *pending_replies, *tier_runs, *tier_s, *tier_built, *tier_rebuilt, *tier_dropped,
        *tier_behind, *tier_leader, *late_buckets, *compacted, *compacted_samples, *cleared,
        *compact_behind, *slo_leader, *slo_term, *slo_takeovers, *fleet_stale;
    atomic_bool pg_auth_failed; /* the last connect was refused for its credentials */
};

#define C(field, name, help)                                                                       \
    (self->field = ww_metrics_counter(self->reg, "waferwatch_collector_" name, help))
#define G(field, name, help)                                                                       \
    (self->field = ww_metrics_gauge(self->reg, "waferwatch_collector_" name, help))

ww_cmetrics_t *ww_cmetrics_new(void)
{
    static const char *const reasons[] = {"malformed", "invalid", "forbidden",
                                          "refused_by_database", NULL};
    static const char *const results[] = {"ok", "error", NULL};
    static const char *const buckets[] = {"minute", "hour", NULL}; /* enum B_MINUTE, B_HOUR */
    /* The order of ww_ingest_counts_t.handshake_failures (and of ww_zmon_reason_t). */
    static const char *const handshake_reasons[] = {"protocol", "auth", "no_detail", NULL};
    /* A group's transaction: ~1 ms for a few rows on a local server, seconds for 256 large
     * batches or a struggling one. */
    static const double write_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1,     2.5,  5,     10};
    static const double slo_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    /* Sample-to-commit: fine around the 1-2 s a 1 Hz fleet should see. */
    static const double delay_buckets[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1,  1.25, 1.5, 2,
                                           2.5,  3,   4,   5,   7.5, 10,   20, 30,   60,  300};
    ww_cmetrics_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    if (!(self->reg = ww_metrics_new()) ||
        ww_metrics_build_info(self->reg, "waferwatch", WW_VERSION, "collector") < 0 ||
        !C(received, "messages_received_total", "Messages read from agents.") ||
        !(self->rejected = ww_metrics_add(
              self->reg, WW_METRIC_COUNTER, "waferwatch_collector_messages_rejected_total",
              "Messages refused with a Nack and recorded in ingest_rejects, by reason.", "reason",
              reasons, NULL, 0)) ||
        !C(rows, "rows_written_total", "Node sample rows committed to node_samples.") ||
        !C(windows, "latency_windows_written_total",
           "Latency windows committed to latency_windows.") ||
        !C(duplicates, "batches_duplicate_total",
           "Batches received again after they were committed (acked, not written twice).") ||
        !C(implausible, "samples_implausible_total",
           "Samples refused alone for implausible readings (their batch written without "
           "them; recorded in ingest_rejects as implausible_sample).") ||
        !C(gaps, "sequence_gaps_total",
           "Batches missing from a stream's sequence (dropped by the agent's spool).") ||
        !C(transactions, "transactions_total", "PostgreSQL transactions committed.") ||
        !C(retries, "write_retries_total",
           "Group writes rolled back to be retried (PostgreSQL unavailable or failing).") ||
        !(self->write_s = ww_metrics_histogram(
              self->reg, "waferwatch_collector_postgresql_write_duration_seconds",
              "Time to write and commit one group of messages (committed groups only).",
              write_buckets, sizeof write_buckets / sizeof write_buckets[0])) ||
        !(self->delay_s = ww_metrics_histogram(
              self->reg, "waferwatch_collector_sample_to_commit_seconds",
              "Per written batch: from its samples' tick to the COMMIT that made them durable.",
              delay_buckets, sizeof delay_buckets / sizeof delay_buckets[0])) ||
        !G(group, "group_messages", "Messages in the last committed group (one transaction).") ||
        !(self->handshakes = ww_metrics_add(
              self->reg, WW_METRIC_COUNTER, "waferwatch_collector_handshake_failures_total",
              "Connections refused during the ZeroMQ handshake, by reason: protocol (no CURVE, "
              "another server key, malformed), auth (key not enrolled), no_detail (closed "
              "during the handshake).",
              "reason", handshake_reasons, NULL, 0)) ||
        !C(pending_replies, "pending_replies_total",
           "Pending answers sent: a batch held, not committed yet (PostgreSQL unavailable), "
           "or a resend of one held.") ||
        !G(pending, "pending_messages",
           "Messages received and not yet committed (held while PostgreSQL is retried).") ||
        !G(pg_up, "postgresql_up", "1 when PostgreSQL is connected, else 0.") ||
        !(self->slo_evals = ww_metrics_add(
              self->reg, WW_METRIC_COUNTER, "waferwatch_collector_slo_evaluations_total",
              "SLO evaluations run, by result (error: rolled back, see the log).", "result",
              results, NULL, 0)) ||
        !(self->slo_s = ww_metrics_histogram(
              self->reg, "waferwatch_collector_slo_evaluation_duration_seconds",
              "Time one SLO, capacity, power and thermal evaluation took.", slo_buckets,
              sizeof slo_buckets / sizeof slo_buckets[0])) ||
        !G(slo_leader, "slo_leader",
           "1 when this collector's SLO evaluator leads (holds the lease in slo_leader), else 0 "
           "(it follows, or this collector has no phases file).") ||
        !G(slo_term, "slo_term",
           "The slo_leader term (the fencing token) this collector's evaluator last saw: the one "
           "it holds when it leads.") ||
        !C(slo_takeovers, "slo_takeovers_total",
           "Times this collector's SLO evaluator took the lease over (became the leader).") ||
        !G(fleet_stale, "fleet_stale_sites",
           "collector.role fleet: the (site label, phase) pairs the last evaluation found "
           "stale (no site_capacity row newer than fleet.stale_after; their last figures "
           "counted). 0 at a site.") ||
        !(self->tier_runs = ww_metrics_add(
              self->reg, WW_METRIC_COUNTER, "waferwatch_collector_tier_runs_total",
              "Runs of the storage tier builder, by result (error: see the log; retried at the "
              "next run, nothing lost).",
              "result", results, NULL, 0)) ||
        !(self->tier_s = ww_metrics_histogram(
              self->reg, "waferwatch_collector_tier_run_duration_seconds",
              "Time one run of the tier builder took (moving the watermark, building, retention).",
              slo_buckets, sizeof slo_buckets / sizeof slo_buckets[0])) ||
        !(self->tier_built = ww_metrics_add(
              self->reg, WW_METRIC_COUNTER, "waferwatch_collector_tier_buckets_built_total",
              "Time buckets the tier builder built forward, by bucket: closed minutes (into "
              "node_rollup_1m, site_rollup_1m) and complete hours (node_rollup_1h, "
              "site_rollup_1h, latency_node_1h, latency_rollup_1h).",
              "bucket", buckets, NULL, 0)) ||
        !C(tier_rebuilt, "tier_late_buckets_rebuilt_total",
           "Node-minutes and node-hours of latency rebuilt because late data changed them.") ||
        !C(late_buckets, "tier_late_buckets_recorded_total",
           "Buckets this collector's writes recorded in ww_tier_dirty (samples older than the "
           "watermark, latency windows of a closed hour).") ||
        !C(tier_dropped, "tier_partitions_dropped_total",
           "Partitions of the per-node tiers dropped by their retention.") ||
        !G(tier_behind, "tier_behind_seconds",
           "How far the built minutes are behind the watermark after the last run (a backlog "
           "or history being built; 0 when caught up).") ||
        !G(tier_leader, "tier_builder",
           "1 when this collector builds the storage tiers (holds the builder's lock), else 0.") ||
        !C(compacted, "compaction_blocks_written_total",
           "Sample blocks written into node_samples_compact: one per node-hour compacted "
           "forward (re-compactions after late data: ww_tier_late_buckets_rebuilt_total).") ||
        !C(compacted_samples, "compaction_samples_total",
           "Samples in the node-hours compacted forward.") ||
        !C(cleared, "compaction_raw_truncations_total",
           "Days of raw node_samples emptied (TRUNCATE of the day's partition) once wholly "
           "compacted.") ||
        !G(compact_behind, "compaction_behind_seconds",
           "How far compaction is behind now - compaction.age after the last run (0 when "
           "caught up; absent while compaction is off).")) {
        ww_cmetrics_destroy(&self);
        return NULL;
    }
    return self;
}

#undef C
#undef G

static int s_health(void *arg, char *reason, size_t cap)
{
    const ww_cmetrics_t *self = arg;
    if (ww_metric_value(self->pg_up, 0) == 1) {
        return 0;
    }
    if (atomic_load(&self->pg_auth_failed)) {
        snprintf(reason, cap,
                 "PostgreSQL refuses the collector's credentials (pg.conninfo, PGPASSFILE, "
                 "pg_hba.conf); %.0f messages waiting",
                 ww_metric_value(self->pending, 0));
        return 1;
    }
    snprintf(reason, cap,
             "PostgreSQL not connected (retrying; see the collector's log); %.0f "
             "messages waiting",
             ww_metric_value(self->pending, 0));
    return 1;
}

const ww_metrics_t *ww_cmetrics_registry(const ww_cmetrics_t *self)
{
    return self ? self->reg : NULL;
}

int ww_cmetrics_serve(ww_cmetrics_t *self, const char *address, char *why, size_t why_cap)
{
    self->srv = ww_metrics_server_new(self->reg, address, s_health, self, why, why_cap);
    return self->srv ? 0 : -EINVAL;
}

void ww_cmetrics_destroy(ww_cmetrics_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_cmetrics_t *self = *self_p;
    ww_metrics_server_destroy(&self->srv); /* first: its thread reads the registry */
    ww_metrics_destroy(&self->reg);
    free(self);
    *self_p = NULL;
}

void ww_cmetrics_publish(ww_cmetrics_t *self, const ww_ingest_counts_t *c,
                         const ww_store_stats_t *st)
{
    if (!self) {
        return;
    }
    ww_metric_set(self->received, 0, (double)c->received);
    ww_metric_set(self->rejected, R_MALFORMED, (double)c->malformed);
    ww_metric_set(self->rejected, R_INVALID, (double)c->invalid);
    ww_metric_set(self->rejected, R_FORBIDDEN, (double)c->forbidden);
    ww_metric_set(self->rejected, R_DATABASE, (double)c->refused_by_database);
    ww_metric_set(self->pending, 0, (double)c->pending);
    atomic_store(&self->pg_auth_failed, st->pg_auth_failed);
    ww_metric_set(self->pending_replies, 0, (double)c->pending_replies);
    for (size_t r = 0; r < 3; r++) {
        ww_metric_set(self->handshakes, r, (double)c->handshake_failures[r]);
    }
    ww_metric_set(self->rows, 0, (double)st->rows);
    ww_metric_set(self->windows, 0, (double)st->windows);
    ww_metric_set(self->duplicates, 0, (double)st->duplicates);
    ww_metric_set(self->gaps, 0, (double)st->gaps);
    ww_metric_set(self->implausible, 0, (double)st->implausible_samples);
    ww_metric_set(self->transactions, 0, (double)st->transactions);
    ww_metric_set(self->retries, 0, (double)st->retries);
    ww_metric_set(self->late_buckets, 0, (double)st->late_buckets);
}

void ww_cmetrics_write(ww_cmetrics_t *self, ww_store_rc_t rc, size_t n, double seconds)
{
    if (!self) {
        return;
    }
    if (rc == WW_STORE_OK) {
        ww_metric_observe(self->write_s, 0, seconds);
        ww_metric_set(self->group, 0, (double)n);
    }
    ww_metric_set(self->pg_up, 0, rc == WW_STORE_RETRY ? 0 : 1);
}

void ww_cmetrics_delay(ww_cmetrics_t *self, double seconds)
{
    if (self) {
        ww_metric_observe(self->delay_s, 0, seconds);
    }
}

void ww_cmetrics_pg_up(ww_cmetrics_t *self, bool up)
{
    if (self) {
        ww_metric_set(self->pg_up, 0, up ? 1 : 0);
    }
}

void ww_cmetrics_tiers(ww_cmetrics_t *self, const ww_tiers_cycle_t *c)
{
    if (!self) {
        return;
    }
    ww_metric_add(self->tier_runs, c->ok ? E_OK : E_ERROR, 1);
    ww_metric_observe(self->tier_s, 0, c->seconds);
    ww_metric_add(self->tier_built, B_MINUTE, (double)c->minutes);
    ww_metric_add(self->tier_built, B_HOUR, (double)c->hours);
    ww_metric_add(self->tier_rebuilt, 0, (double)c->rebuilt);
    ww_metric_add(self->tier_dropped, 0, (double)c->dropped);
    ww_metric_set(self->tier_leader, 0, c->leader ? 1 : 0);
    ww_metric_add(self->compacted, 0, (double)c->compacted);
    ww_metric_add(self->compacted_samples, 0, (double)c->compacted_samples);
    ww_metric_add(self->cleared, 0, (double)c->cleared);
    if (c->leader && c->ok) {
        ww_metric_set(self->tier_behind, 0, c->behind_s);
        if (c->compacting) {
            ww_metric_set(self->compact_behind, 0, c->compact_behind_s);
        }
    }
}

void ww_cmetrics_slo_evaluated(ww_cmetrics_t *self, bool ok, double seconds)
{
    if (!self) {
        return;
    }
    ww_metric_add(self->slo_evals, ok ? E_OK : E_ERROR, 1);
    ww_metric_observe(self->slo_s, 0, seconds);
}

void ww_cmetrics_fleet_stale(ww_cmetrics_t *self, int64_t pairs)
{
    if (self) {
        ww_metric_set(self->fleet_stale, 0, (double)pairs);
    }
}

void ww_cmetrics_slo_leader(ww_cmetrics_t *self, bool leader, int64_t term, bool took_over)
{
    if (!self) {
        return;
    }
    ww_metric_set(self->slo_leader, 0, leader ? 1 : 0);
    ww_metric_set(self->slo_term, 0, (double)term);
    if (took_over) {
        ww_metric_add(self->slo_takeovers, 0, 1);
    }
}
