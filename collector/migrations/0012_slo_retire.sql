-- waferwatch schema, version 12: SLO changes retire what is no longer configured, and the
-- SLO evaluator leaves a heartbeat (issue 15, items 2 and 12).
--
-- A phase or an SLO removed from the phases file used to keep its slo_status row, its
-- phases row and its firing alerts for ever: `waferwatch slo` kept printing them and
-- exiting 1. The evaluator now resolves the alerts and marks the rows retired_at (on
-- start and on each reload); the rows stay as history, and readers of "current" state
-- skip them. The writer never deletes (0006), so retiring is an UPDATE.
--
-- `waferwatch slo` could not tell a current state from one left by an evaluator that
-- stopped: slo_evaluator holds the time of the last evaluation and the interval it runs
-- at, so the CLI can say how old the state is and when it is stale.

ALTER TABLE phases ADD COLUMN retired_at timestamptz;
COMMENT ON COLUMN phases.retired_at IS
    'When the evaluator found the phase no longer in its phases file (NULL: configured).';
ALTER TABLE slo_status ADD COLUMN retired_at timestamptz;
COMMENT ON COLUMN slo_status.retired_at IS
    'When the evaluator found the SLO (or its phase) no longer configured (NULL: configured).';

-- One row: the evaluator's last committed evaluation.
CREATE TABLE slo_evaluator (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    evaluated_at  timestamptz NOT NULL,        -- the evaluation's time (its transaction's now())
    interval_s    double precision NOT NULL,   -- evaluation.interval of that evaluator
    phases        integer NOT NULL,            -- configured phases
    slos          integer NOT NULL,            -- configured SLOs, all phases
    loaded_at     timestamptz NOT NULL,        -- when it loaded (or reloaded) the phases file
    host          text NOT NULL,               -- who evaluates: host name and pid
    pid           integer NOT NULL
);
COMMENT ON TABLE slo_evaluator IS
    'The SLO evaluator''s heartbeat: upserted by every committed evaluation. `waferwatch '
    'slo` reports its age and calls the state stale past max(3 intervals, 30 s).';

-- Current state only: retired phases and SLOs are history.
CREATE OR REPLACE VIEW ww_phase_capacity_latest AS
SELECT p.id AS phase, p.name, p.go_live, c.time, c.live, c.reporting_nodes,
       c.healthy_nodes, c.delivered_mw, c.contracted_mw, c.delivered_share,
       p.capacity_breach_share, c.power_mw, p.power_ceiling_mw, c.hotspot_max_c,
       p.hotspot_max_c AS hotspot_limit_c, c.outlet_max_c, p.outlet_max_c AS outlet_limit_c,
       c.throttled_share, c.j_per_token, c.breach
FROM phases p
LEFT JOIN LATERAL (SELECT *
                   FROM capacity_evaluations e
                   WHERE e.phase = p.id
                   ORDER BY e.time DESC
                   LIMIT 1) AS c ON true
WHERE p.retired_at IS NULL;

CREATE OR REPLACE VIEW ww_slo_budget AS
SELECT s.phase, p.name AS phase_name, s.slo, s.model, s.metric, s.objective, s.threshold_s,
       s.time, s.attainment, s.budget_remaining,
       (s.burn_rates ->> '5m')::double precision AS burn_5m,
       (s.burn_rates ->> '30m')::double precision AS burn_30m,
       (s.burn_rates ->> '1h')::double precision AS burn_1h,
       (s.burn_rates ->> '2h')::double precision AS burn_2h,
       (s.burn_rates ->> '6h')::double precision AS burn_6h,
       (s.burn_rates ->> '1d')::double precision AS burn_1d,
       (s.burn_rates ->> '3d')::double precision AS burn_3d,
       coalesce((SELECT string_agg(a.severity, ',' ORDER BY a.severity)
                 FROM alerts a
                 WHERE a.phase = s.phase AND a.slo = s.slo AND a.state = 'firing'), '') AS firing
FROM slo_status s
LEFT JOIN phases p ON p.id = s.phase
WHERE s.retired_at IS NULL;

ALTER FUNCTION ww_grant_roles() RENAME TO ww_grant_roles_0011;
CREATE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer := ww_grant_roles_0011();
BEGIN
    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        -- The heartbeat is upserted (ON CONFLICT reads the row), never deleted.
        GRANT SELECT, INSERT, UPDATE ON slo_evaluator TO waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON slo_evaluator FROM waferwatch_writer;
    END IF;
    IF to_regrole('waferwatch_reader') IS NOT NULL THEN
        GRANT SELECT ON slo_evaluator TO waferwatch_reader;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ww_grant_roles_0011() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the group roles if missing (and allowed) and grants them what they need on '
    'every object of the schema (0006''s grants, then those of later migrations). '
    'Idempotent; run by the owner. Returns the number of group roles that exist.';
SELECT ww_grant_roles();
