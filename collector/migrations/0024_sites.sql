-- waferwatch schema, version 24: sites feed one fleet database (issue 20, part 3).
--
-- Each site (a datacenter) runs its collectors and its PostgreSQL; the raw rows stay there.
-- A fleet database, migrated by the same collector, subscribes to every site through
-- PostgreSQL logical replication (docs/operations.md "Sites and a fleet database"): the
-- publication below carries the tiers the fleet's dashboards read and the figures its
-- SLO/capacity evaluation needs. What crosses must be keyed so that two sites never write
-- the same row: the node tiers are keyed by node_id (fleet-unique), the site tiers by the
-- nodes.site label, and from this version the phase latency tiers too, whose key (time,
-- phase, model) would collide on the fleet when a phase spreads over two sites (the
-- second site's apply would fail on a duplicate key and stop its subscription). The rule
-- that follows: a nodes.site label belongs to one site database.

-- The latency rollups per site label (that of the window's node; '' for rows written
-- before version 24 and for nodes that never said hello). The key keeps its old columns
-- first: every query by (time, phase, model) prefix keeps its index.
ALTER TABLE latency_rollup_1m ADD COLUMN site text NOT NULL DEFAULT '';
ALTER TABLE latency_rollup_1m DROP CONSTRAINT latency_rollup_1m_pkey,
    ADD CONSTRAINT latency_rollup_1m_pkey PRIMARY KEY (time, phase, model, site);
ALTER TABLE latency_rollup_1h ADD COLUMN site text NOT NULL DEFAULT '';
ALTER TABLE latency_rollup_1h DROP CONSTRAINT latency_rollup_1h_pkey,
    ADD CONSTRAINT latency_rollup_1h_pkey PRIMARY KEY (time, phase, model, site);
COMMENT ON COLUMN latency_rollup_1m.site IS
    'nodes.site of the windows'' node ('''' before version 24): a phase spread over sites '
    'has one row per site, merged by every reader.';
COMMENT ON COLUMN latency_rollup_1h.site IS
    'nodes.site of the windows'' node ('''' before version 24), as latency_rollup_1m.';

-- The capacity inputs of the fleet's evaluation: every evaluation of a site's evaluator
-- writes, per configured phase and site label with nodes of that phase, that label's
-- figures over the evaluation's capacity range, as numerators and denominators so that
-- the fleet adds sites exactly (ww_fleet_capacity). Rows per evaluation: labels x phases
-- (a site: 1 x 3 every 30 s, ~8,640 rows and ~1 MB a day).
CREATE TABLE site_capacity (
    time              timestamptz NOT NULL,       -- the evaluation (its range's end)
    site              text NOT NULL,              -- nodes.site
    phase             text NOT NULL,
    reporting_nodes   integer NOT NULL,           -- nodes with a sample in the range
    healthy_nodes     integer NOT NULL,           -- as ww_phase_capacity
    delivered_kw      double precision NOT NULL,  -- rated kW of the healthy nodes
    power_kw          double precision NOT NULL,  -- latest power of the reporting nodes
    hotspot_max_c     double precision,
    outlet_max_c      double precision,
    throttled_samples bigint NOT NULL,            -- samples throttled
    throttle_samples  bigint NOT NULL,            -- samples that measured throttling
    power_w_tokened   double precision,           -- sum of power_w of samples with both
    tokens_per_s      double precision,           -- sum of tokens_per_s of samples with both
    PRIMARY KEY (site, phase, time)
);
COMMENT ON TABLE site_capacity IS
    'Per SLO evaluation, configured phase and nodes.site label: the capacity figures of '
    'that label''s nodes (ww_phase_capacity_sites), published to the fleet database, which '
    'adds the newest row of every site (ww_fleet_capacity).';

-- Sites whose figures the fleet's evaluation carried from their last row because it is
-- older than fleet.stale_after (NULL: a site's own evaluation).
ALTER TABLE capacity_evaluations ADD COLUMN stale_sites text[];
COMMENT ON COLUMN capacity_evaluations.stale_sites IS
    'Fleet evaluation: the site labels whose newest site_capacity row was older than '
    'fleet.stale_after (their last figures counted, not lost); NULL at a site.';

-- The publication of every site. publish_via_partition_root: the fleet's partitions are its
-- own (it makes and drops them); rows arrive through the partitioned table. Without
-- wal_level = logical PostgreSQL only warns here; the subscription then fails, naming it.
CREATE PUBLICATION waferwatch_site
    FOR TABLE nodes, latency_rollup_1m, latency_rollup_1h, latency_node_1h,
              node_rollup_1m, node_rollup_1h, site_rollup_1m, site_rollup_1h, site_capacity
    WITH (publish_via_partition_root = true);
COMMENT ON PUBLICATION waferwatch_site IS
    'What a site sends the fleet database (docs/operations.md, Sites and a fleet database).';
