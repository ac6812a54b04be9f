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
ALTER TABLE node_rollup_1m
    ALTER COLUMN energy_j DROP NOT NULL,
    ALTER COLUMN tokens DROP NOT NULL,
    ALTER COLUMN throttled_s DROP NOT NULL,
    ALTER COLUMN requests_completed DROP NOT NULL,
    ALTER COLUMN power_w_sum DROP NOT NULL,
    ALTER COLUMN inlet_c_sum DROP NOT NULL,
    ALTER COLUMN outlet_c_sum DROP NOT NULL,
    ALTER COLUMN flow_lpm_sum DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_sum DROP NOT NULL,
    ALTER COLUMN utilization_sum DROP NOT NULL,
    ALTER COLUMN tokens_per_s_sum DROP NOT NULL,
    ALTER COLUMN throttle_factor_sum DROP NOT NULL,
    ALTER COLUMN requests_queued_sum DROP NOT NULL,
    ALTER COLUMN requests_in_flight_sum DROP NOT NULL,
    ALTER COLUMN power_w_min DROP NOT NULL,
    ALTER COLUMN power_w_max DROP NOT NULL,
    ALTER COLUMN power_w_last DROP NOT NULL,
    ALTER COLUMN inlet_c_min DROP NOT NULL,
    ALTER COLUMN inlet_c_max DROP NOT NULL,
    ALTER COLUMN inlet_c_last DROP NOT NULL,
    ALTER COLUMN outlet_c_min DROP NOT NULL,
    ALTER COLUMN outlet_c_max DROP NOT NULL,
    ALTER COLUMN outlet_c_last DROP NOT NULL,
    ALTER COLUMN flow_lpm_min DROP NOT NULL,
    ALTER COLUMN flow_lpm_max DROP NOT NULL,
    ALTER COLUMN flow_lpm_last DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_min DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_max DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_last DROP NOT NULL,
    ALTER COLUMN utilization_min DROP NOT NULL,
    ALTER COLUMN utilization_max DROP NOT NULL,
    ALTER COLUMN utilization_last DROP NOT NULL,
    ALTER COLUMN tokens_per_s_min DROP NOT NULL,
    ALTER COLUMN tokens_per_s_max DROP NOT NULL,
    ALTER COLUMN tokens_per_s_last DROP NOT NULL,
    ALTER COLUMN throttle_factor_min DROP NOT NULL,
    ALTER COLUMN throttle_factor_max DROP NOT NULL,
    ALTER COLUMN throttle_factor_last DROP NOT NULL,
    ALTER COLUMN requests_queued_min DROP NOT NULL,
    ALTER COLUMN requests_queued_max DROP NOT NULL,
    ALTER COLUMN requests_queued_last DROP NOT NULL,
    ALTER COLUMN requests_in_flight_min DROP NOT NULL,
    ALTER COLUMN requests_in_flight_max DROP NOT NULL,
    ALTER COLUMN requests_in_flight_last DROP NOT NULL;
ALTER TABLE node_rollup_1h
    ALTER COLUMN energy_j DROP NOT NULL,
    ALTER COLUMN tokens DROP NOT NULL,
    ALTER COLUMN throttled_s DROP NOT NULL,
    ALTER COLUMN requests_completed DROP NOT NULL,
    ALTER COLUMN power_w_sum DROP NOT NULL,
    ALTER COLUMN inlet_c_sum DROP NOT NULL,
    ALTER COLUMN outlet_c_sum DROP NOT NULL,
    ALTER COLUMN flow_lpm_sum DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_sum DROP NOT NULL,
    ALTER COLUMN utilization_sum DROP NOT NULL,
    ALTER COLUMN tokens_per_s_sum DROP NOT NULL,
    ALTER COLUMN throttle_factor_sum DROP NOT NULL,
    ALTER COLUMN requests_queued_sum DROP NOT NULL,
    ALTER COLUMN requests_in_flight_sum DROP NOT NULL,
    ALTER COLUMN power_w_min DROP NOT NULL,
    ALTER COLUMN power_w_max DROP NOT NULL,
    ALTER COLUMN power_w_last DROP NOT NULL,
    ALTER COLUMN inlet_c_min DROP NOT NULL,
    ALTER COLUMN inlet_c_max DROP NOT NULL,
    ALTER COLUMN inlet_c_last DROP NOT NULL,
    ALTER COLUMN outlet_c_min DROP NOT NULL,
    ALTER COLUMN outlet_c_max DROP NOT NULL,
    ALTER COLUMN outlet_c_last DROP NOT NULL,
    ALTER COLUMN flow_lpm_min DROP NOT NULL,
    ALTER COLUMN flow_lpm_max DROP NOT NULL,
    ALTER COLUMN flow_lpm_last DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_min DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_max DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_last DROP NOT NULL,
    ALTER COLUMN utilization_min DROP NOT NULL,
    ALTER COLUMN utilization_max DROP NOT NULL,
    ALTER COLUMN utilization_last DROP NOT NULL,
    ALTER COLUMN tokens_per_s_min DROP NOT NULL,
    ALTER COLUMN tokens_per_s_max DROP NOT NULL,
    ALTER COLUMN tokens_per_s_last DROP NOT NULL,
    ALTER COLUMN throttle_factor_min DROP NOT NULL,
    ALTER COLUMN throttle_factor_max DROP NOT NULL,
    ALTER COLUMN throttle_factor_last DROP NOT NULL,
    ALTER COLUMN requests_queued_min DROP NOT NULL,
    ALTER COLUMN requests_queued_max DROP NOT NULL,
    ALTER COLUMN requests_queued_last DROP NOT NULL,
    ALTER COLUMN requests_in_flight_min DROP NOT NULL,
    ALTER COLUMN requests_in_flight_max DROP NOT NULL,
    ALTER COLUMN requests_in_flight_last DROP NOT NULL;
ALTER TABLE site_rollup_1m
    ALTER COLUMN energy_j DROP NOT NULL,
    ALTER COLUMN tokens DROP NOT NULL,
    ALTER COLUMN throttled_s DROP NOT NULL,
    ALTER COLUMN requests_completed DROP NOT NULL,
    ALTER COLUMN inlet_c_sum DROP NOT NULL,
    ALTER COLUMN outlet_c_sum DROP NOT NULL,
    ALTER COLUMN flow_lpm_sum DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_sum DROP NOT NULL,
    ALTER COLUMN utilization_sum DROP NOT NULL,
    ALTER COLUMN power_w_max DROP NOT NULL,
    ALTER COLUMN inlet_c_max DROP NOT NULL,
    ALTER COLUMN outlet_c_max DROP NOT NULL,
    ALTER COLUMN flow_lpm_min DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_max DROP NOT NULL;
ALTER TABLE site_rollup_1m
    ADD COLUMN inlet_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN outlet_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN flow_lpm_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN wafer_hotspot_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN utilization_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN energy_j_tokened double precision;
UPDATE site_rollup_1m SET inlet_c_samples = samples, outlet_c_samples = samples, flow_lpm_samples = samples, wafer_hotspot_c_samples = samples, utilization_samples = samples, energy_j_tokened = energy_j;
ALTER TABLE site_rollup_1h
    ALTER COLUMN energy_j DROP NOT NULL,
    ALTER COLUMN tokens DROP NOT NULL,
    ALTER COLUMN throttled_s DROP NOT NULL,
    ALTER COLUMN requests_completed DROP NOT NULL,
    ALTER COLUMN inlet_c_sum DROP NOT NULL,
    ALTER COLUMN outlet_c_sum DROP NOT NULL,
    ALTER COLUMN flow_lpm_sum DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_sum DROP NOT NULL,
    ALTER COLUMN utilization_sum DROP NOT NULL,
    ALTER COLUMN power_w_max DROP NOT NULL,
    ALTER COLUMN inlet_c_max DROP NOT NULL,
    ALTER COLUMN outlet_c_max DROP NOT NULL,
    ALTER COLUMN flow_lpm_min DROP NOT NULL,
    ALTER COLUMN wafer_hotspot_c_max DROP NOT NULL;
ALTER TABLE site_rollup_1h
    ADD COLUMN inlet_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN outlet_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN flow_lpm_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN wafer_hotspot_c_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN utilization_samples bigint NOT NULL DEFAULT 0,
    ADD COLUMN energy_j_tokened double precision;
UPDATE site_rollup_1h SET inlet_c_samples = samples, outlet_c_samples = samples, flow_lpm_samples = samples, wafer_hotspot_c_samples = samples, utilization_samples = samples, energy_j_tokened = energy_j;
COMMENT ON COLUMN node_samples.power_w IS 'IT power draw (W); NULL: not measured.';
COMMENT ON COLUMN site_rollup_1m.energy_j_tokened IS
    'Energy (J) of the samples that also had a token rate: J/token = energy_j_tokened / tokens.';
