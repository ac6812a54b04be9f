# Test scheduling, read by ctest (not cmake): tests/CMakeLists.txt names this file in the
# TEST_INCLUDE_FILES of the last directory it adds, so every test of the tree is defined
# when it runs and set_tests_properties reaches tests of any directory (at configure time
# CMake 3.25 only reaches the current directory's). Ordering only: no test's command,
# timeout or result depends on anything here. A name that is not defined (a renamed test,
# or one a build does not have, such as packaging in the sanitizer build) is ignored.
#
# Why: a fresh build directory (CI's) has no Testing/Temporary/CTestCostData.txt, so ctest
# runs the tests of a dependency level in the order they are defined, and the longest came
# last: with -j2 on 2 cores the plain build's ctest ended with packaging (114 s) running
# alone for its last ~100 s. ctest starts the most costly tests first; COST is that cost
# where no cost data exists yet (afterwards the measured averages replace it).

# ctest orders by dependency depth before COST: what the fixture cleanup pg_stop waits for
# (every test that requires pg) is one level deeper than a test nothing waits for, and runs
# first whatever its cost. pg_stop waiting for packaging too puts packaging at that level,
# where its COST starts it first; the throwaway PostgreSQL just stays up until it ends.
set_tests_properties(pg_stop PROPERTIES DEPENDS packaging)

# Seconds, as measured in the plain RelWithDebInfo build at d44ba10 (2 cores, ctest -j2):
# every test of 5 s or more. The sanitizer build's are in the same order.
set_tests_properties(packaging PROPERTIES COST 114)
set_tests_properties(test_slo.test_demo_phases_default_sim_quiet PROPERTIES COST 78)
set_tests_properties(test_slo.test_example_phases_default_sim_quiet PROPERTIES COST 78)
set_tests_properties(test_slo.test_pump_fault_pages_then_resolves_other_phase_green
                     PROPERTIES COST 53)
set_tests_properties(test_dashboards.test_every_panel_query_returns_rows PROPERTIES COST 24)
set_tests_properties(test_sites.test_two_sites_feed_the_fleet_cut_and_restored PROPERTIES COST 20)
set_tests_properties(test_slo.test_alert_names_its_rule_and_needs_min_requests
                     PROPERTIES COST 16)
set_tests_properties(test_tiers.test_compaction_keeps_every_sample PROPERTIES COST 16)
set_tests_properties(
    test_agent_ops.test_forbidden_batches_are_held_until_the_allowlist_admits_them
    PROPERTIES COST 15)
set_tests_properties(
    test_agent_ops.test_unreachable_collector_is_reported_at_a_growing_interval
    test_security.test_hostile_flood_leaves_valid_data_and_counts_every_bad_message
    test_slo_election.test_leader_killed_stopped_partitioned_nothing_lost_or_doubled
    PROPERTIES COST 14)
set_tests_properties(test_delivery.test_a_stalled_agent_skips_ticks_and_says_so
                     PROPERTIES COST 13)
set_tests_properties(test_security.test_allowlist_reload_on_sighup PROPERTIES COST 12)
set_tests_properties(
    test_delivery.test_postgres_down_longer_than_the_memory_window
    test_delivery.test_postgres_failover_to_a_lagging_standby_loses_nothing
    test_delivery.test_postgres_failover_with_remote_apply_needs_no_repair
    test_delivery.test_spool_full_drop_policy_loss_counted_exactly
    test_restart.test_clean_restart_inside_windows_merges_parts
    test_security.test_only_enrolled_keys_write
    PROPERTIES COST 10)
set_tests_properties(
    test_delivery.test_collector_sigkill_and_restart
    test_delivery.test_postgres_crash_restart_and_backend_terminated
    PROPERTIES COST 9)
set_tests_properties(
    test_delivery.test_failover_to_the_second_collector
    test_restart.test_sigkill_restart_records_a_crash_outage
    test_slo.test_removed_slo_and_phase_resolve_their_alerts
    PROPERTIES COST 8)
set_tests_properties(
    test_agent_ops.test_unenrolled_agent_says_so
    test_delivery.test_agent_sigkill_and_restart_replays_the_spool
    test_otlp.test_the_javascript_sdk_metrics_are_merged
    test_slo.test_capacity_breach_and_config_errors
    PROPERTIES COST 7)
set_tests_properties(
    test_metrics_http.test_pipeline_metrics_and_health
    test_otlp.test_spans_become_latency_windows_once
    test_otlp.test_the_javascript_sdk_exporter_is_understood
    test_reqlog_pipeline.test_records_behind_the_tick_keep_their_window
    test_roles.test_collector_as_writer_end_to_end
    test_tiers.test_tiers_equal_recomputation_after_late_data
    PROPERTIES COST 6)
set_tests_properties(
    test_agent_link.test_link_holds_forbidden_batches_until_accepted
    test_agent_link.test_link_keeps_held_batches_below_an_ack
    test_peers.test_failed_handshake_log_is_rate_limited
    test_peers.test_failed_handshakes_are_counted_and_logged
    test_reqlog_pipeline.test_sim_to_agent_to_postgres
    PROPERTIES COST 5)
