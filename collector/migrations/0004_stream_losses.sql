-- Batches a stream skipped, counted by the collector from the holes in the sequence
-- numbers it committed, in the same transaction: the exact number of batches that never
-- reached PostgreSQL (each was dropped by the agent's spool policy).
ALTER TABLE streams ADD COLUMN lost_batches bigint NOT NULL DEFAULT 0;

-- What agents lost on purpose or by damage, per stream (agent run): batches dropped by
-- the spool's drop_oldest policy, spool records cut as corrupt at recovery, ticks not
-- sampled. Cumulative counters reported with every batch after a loss; the collector
-- keeps the highest value seen, in the transaction that writes the batch. A batch that
-- the spool dropped after it had already been sent (in flight, not yet acked) may still
-- have arrived: dropped_batches is what the agent gave up on, streams.lost_batches what
-- PostgreSQL never received.
CREATE TABLE stream_losses (
    agent_id        text NOT NULL,
    epoch           bigint NOT NULL,
    dropped_batches bigint NOT NULL DEFAULT 0,
    corrupt_records bigint NOT NULL DEFAULT 0,
    skipped_ticks   bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch)
);
