-- waferwatch schema, version 22: readings a source did not measure (issue 19: a host measures
-- power and temperatures, not coolant flow, the batch queue or throttling).
--
-- NodeSample.not_measured (field 30) marks the readings a node's source left out at a tick;
-- they are stored as NULL, never as 0. So every reading column of node_samples becomes
-- nullable (humidity_pct was already), and so do the tier columns built from them: a node
-- that never measures a reading has NULL sums, extremes and last values for it (its mean is
-- NULL, not 0), and energy_j / tokens are NULL for a node without power / token readings.
-- The site tiers get one count per mean they hold: the samples that had the reading, the
-- divisor of its mean over a site or phase where some nodes do not measure it; and
-- energy_j_tokened, the energy of the samples that also had a token rate, the numerator of
-- J/token (a node that measures power but not tokens must not inflate it). Rows written
-- before this version had every reading: their counts are the samples (the defaults of the
-- new columns are 0; the repeatable tier functions rebuild every bucket they touch, and
-- this migration fills the old rows once below).
--
-- DROP NOT NULL is a catalog change: instant on a partitioned table of any size.

ALTER TABLE node_samples
    ALTER COLUMN power_w DROP NOT NULL,
    ALTER COLUMN inlet_c DROP NOT NULL,
    ALTER COLUMN outlet_c DROP NOT NULL,
    ALTER COLUMN flow_lpm DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c DROP NOT NULL,
    ALTER COLUMN utilization DROP NOT NULL,
    ALTER COLUMN tokens_per_s DROP NOT NULL,
    ALTER COLUMN requests_queued DROP NOT NULL,
    ALTER COLUMN requests_in_flight DROP NOT NULL,
    ALTER COLUMN requests_completed DROP NOT NULL,
    ALTER COLUMN throttled DROP NOT NULL,
    ALTER COLUMN throttle_factor DROP NOT NULL;
-- The tiers: the same columns of the minute and hour tables of each kind.
DO $$
DECLARE
    t text;
    c text;
BEGIN
    FOREACH t IN ARRAY ARRAY['node_rollup_1m', 'node_rollup_1h'] LOOP
        FOREACH c IN ARRAY ARRAY[
        'energy_j', 'tokens', 'throttled_s', 'requests_completed', 'power_w_sum',
        'inlet_c_sum', 'outlet_c_sum', 'flow_lpm_sum', 'wafer_hotspot_c_sum',
        'utilization_sum', 'tokens_per_s_sum', 'throttle_factor_sum',
        'requests_queued_sum', 'requests_in_flight_sum', 'power_w_min', 'power_w_max',
        'power_w_last', 'inlet_c_min', 'inlet_c_max', 'inlet_c_last', 'outlet_c_min',
        'outlet_c_max', 'outlet_c_last', 'flow_lpm_min', 'flow_lpm_max', 'flow_lpm_last',
        'wafer_hotspot_c_min', 'wafer_hotspot_c_max', 'wafer_hotspot_c_last',
        'utilization_min', 'utilization_max', 'utilization_last', 'tokens_per_s_min',
        'tokens_per_s_max', 'tokens_per_s_last', 'throttle_factor_min',
        'throttle_factor_max', 'throttle_factor_last', 'requests_queued_min',
        'requests_queued_max', 'requests_queued_last', 'requests_in_flight_min',
        'requests_in_flight_max', 'requests_in_flight_last'] LOOP
            EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', t, c);
        END LOOP;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['site_rollup_1m', 'site_rollup_1h'] LOOP
        FOREACH c IN ARRAY ARRAY[
        'energy_j', 'tokens', 'throttled_s', 'requests_completed', 'inlet_c_sum',
        'outlet_c_sum', 'flow_lpm_sum', 'wafer_hotspot_c_sum', 'utilization_sum',
        'power_w_max', 'inlet_c_max', 'outlet_c_max', 'flow_lpm_min', 'wafer_hotspot_c_max'] LOOP
            EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', t, c);
        END LOOP;
        FOREACH c IN ARRAY ARRAY['inlet_c_samples', 'outlet_c_samples', 'flow_lpm_samples',
                                 'wafer_hotspot_c_samples', 'utilization_samples'] LOOP
            EXECUTE format('ALTER TABLE %I ADD COLUMN %I bigint NOT NULL DEFAULT 0', t, c);
        END LOOP;
        EXECUTE format('ALTER TABLE %I ADD COLUMN energy_j_tokened double precision', t);
        -- Rows written before had every reading: one pass over the table sets them all.
        EXECUTE format('UPDATE %I SET inlet_c_samples = samples, outlet_c_samples = samples,'
                       ' flow_lpm_samples = samples, wafer_hotspot_c_samples = samples,'
                       ' utilization_samples = samples, energy_j_tokened = energy_j', t);
    END LOOP;
END $$;
COMMENT ON COLUMN node_samples.power_w IS 'IT power draw (W); NULL: not measured.';
COMMENT ON COLUMN site_rollup_1m.energy_j_tokened IS
    'Energy (J) of the samples that also had a token rate: J/token = energy_j_tokened / tokens.';
