-- waferwatch schema, version 23: one SLO evaluator leads among several collectors (issue 20).
--
-- Every collector given a phases file runs the evaluator; exactly one of them evaluates at a
-- time: the one holding the lease in slo_leader (ww_slo_lease.h says how it is taken,
-- renewed and lost). A lease row rather than a session advisory lock, because a leader that
-- hangs (SIGSTOP, a frozen VM) keeps its session and its advisory lock alive; a lease
-- expires by the database's own clock whatever the holder does.
--
-- term is the fencing token: it grows by one at each takeover, and every alert write
-- carries the term of the evaluator that made it (alerts.term, alert_transitions.term).
-- The trigger below refuses a write whose term is not the one in slo_leader, taking the
-- lease row FOR SHARE: a takeover in progress (which updates the row) makes it wait, then
-- see the new term. So a deposed leader's late write is refused by the database even if
-- the client code that should have noticed its deposition were wrong; a leader renews its
-- lease first in each evaluation's transaction, which holds the row until COMMIT, so that a
-- takeover and an evaluation are serialised: whichever commits first wins.

CREATE TABLE slo_leader (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    term        bigint NOT NULL,       -- the fencing token: +1 at each takeover; 0: never led
    holder      text NOT NULL,         -- who leads: "host:pid" of its collector ('' : none yet)
    since       timestamptz NOT NULL,  -- when this term began
    renewed_at  timestamptz NOT NULL,  -- the holder's last renewal
    expires_at  timestamptz NOT NULL   -- past this, any collector may take the lease over
);
COMMENT ON TABLE slo_leader IS
    'The SLO evaluator''s lease, one row: the collector that holds it (holder) evaluates; '
    'term, +1 at each takeover, is written with every alert write and checked by '
    'ww_slo_fence(). Taken over once expires_at has passed (clock_timestamp() of the server).';
INSERT INTO slo_leader (term, holder, since, renewed_at, expires_at)
VALUES (0, '', now(), now(), '-infinity');

-- The term that wrote the row (NULL: written before version 23).
ALTER TABLE alerts ADD COLUMN term bigint;
ALTER TABLE alert_transitions ADD COLUMN term bigint;
COMMENT ON COLUMN alerts.term IS
    'The slo_leader term of the evaluator that last wrote the row (NULL: before version 23).';
COMMENT ON COLUMN alert_transitions.term IS
    'The slo_leader term of the evaluator that wrote the transition (NULL: before version 23).';

-- Defined here, not in collector/sql/: the triggers below need it when this migration runs,
-- before the repeatable files are applied.
CREATE FUNCTION ww_slo_fence() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
BEGIN
    -- FOR SHARE: waits for a takeover (or a renewal) in progress to commit, then reads it.
    SELECT term INTO cur FROM slo_leader WHERE id FOR SHARE;
    IF NEW.term IS DISTINCT FROM cur THEN
        RAISE EXCEPTION 'waferwatch: % written by SLO evaluator term %, but term % leads',
            TG_TABLE_NAME, coalesce(NEW.term::text, 'NULL'), cur
            USING ERRCODE = 'WW001',
                  HINT = 'a deposed evaluator''s write: see slo_leader (ww_slo_lease.h)';
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION ww_slo_fence() IS
    'Trigger of alerts and alert_transitions: refuses (SQLSTATE WW001) a row whose term is not '
    'slo_leader.term, so that only the evaluator holding the lease writes alerts.';

CREATE TRIGGER alerts_fence BEFORE INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION ww_slo_fence();
CREATE TRIGGER alert_transitions_fence BEFORE INSERT ON alert_transitions
    FOR EACH ROW EXECUTE FUNCTION ww_slo_fence();

-- Each evaluation sends Alertmanager the alerts resolved in the last minutes again
-- (ww_slo_eval.h): found by this index, not by reading every episode ever recorded.
CREATE INDEX alerts_resolved_idx ON alerts (resolved_at) WHERE state = 'resolved';
