package releasegate.slo_test

import data.releasegate.slo

_now := 1790000000000000000

_digest := "sha256:0000000000000000000000000000000000000000000000000000000000000001"

fact(v) := {"value": v, "query": "sum(rate(x[1h]))", "range": "1h", "evaluated_at": "2026-09-21T12:53:20Z", "points": 1}

no_data := {"value": null, "query": "sum(rate(x[5m]))", "range": "5m", "evaluated_at": "2026-09-21T12:53:20Z", "points": 0}

pair(sev, factor, long, short) := {
	"severity": sev, "factor": factor, "long_window": "1h", "short_window": "5m",
	"long": long, "short": short,
}

quiet_pairs := [pair("fast", 14.4, fact(0.5), fact(0.2)), pair("slow", 1, fact(0.5), fact(0.9))]

ok_section(overrides) := object.union(
	{
		"status": "ok", "message": null, "objective": 0.999, "window": "30d",
		"budget_remaining": fact(0.4), "burn_rates": quiet_pairs, "canary": null,
	},
	overrides,
)

canary(c_ratio, s_ratio, c_req, s_req) := {
	"canary_error_ratio": c_ratio, "stable_error_ratio": s_ratio,
	"canary_requests": c_req, "stable_requests": s_req, "min_requests": 500,
}

healthy_canary := canary(fact(0.001), fact(0.001), fact(3000), fact(30000))

doc(stage, env, section, records) := {
	"now_ns": _now,
	"release": {
		"id": "payments-1.4.2", "service": "payments", "environment": env, "stage": stage,
		"caller": "ci-bot", "requested_by": "alice@example.com",
	},
	"artifact": {"digest": _digest},
	"slo": section,
	"approvals": {"status": "ok", "records": records},
}

# [code, verdict] pairs found for a document, with the default configuration.
found(d) := {[f.code, f.verdict] | some f in slo.findings with input as d with data.releasegate.config as {}}

# The same with an slo configuration.
found_conf(d, conf) := {[f.code, f.verdict] | some f in slo.findings with input as d with data.releasegate.config as {"slo": conf}}

messages(d) := {f.message | some f in slo.findings with input as d with data.releasegate.config as {}}

break_glass(overrides) := object.union(
	{
		"id": "bg-1", "kind": "break_glass", "approver": "bob@example.com", "approver_roles": ["approver"],
		"release_id": "payments-1.4.2", "artifact_digest": _digest, "environment": "prod",
		"revokes": null, "created_ns": _now - 1000, "expires_ns": _now + 3600000000000,
	},
	overrides,
)

# --- stages and section status ---

test_healthy_section_has_no_findings if {
	found(doc("canary", "prod", ok_section({"canary": healthy_canary}), [])) == set()
}

test_build_stage_has_no_slo_rules if {
	found(doc("build", "prod", {"status": "unavailable", "message": "down"}, [])) == set()
	found(doc("build", "prod", ok_section({"budget_remaining": fact(-1)}), [])) == set()
}

test_unavailable_pauses if {
	d := doc("deploy", "prod", {"status": "unavailable", "message": "connection refused"}, [])
	found(d) == {["slo_unavailable", "pause"]}
	messages(d) == {"SLO state for payments is unavailable: connection refused"}
}

test_invalid_and_unknown_status_pause if {
	found(doc("canary", "dev", {"status": "invalid", "message": "2 series"}, [])) == {["slo_unavailable", "pause"]}
	found(doc("promote", "dev", {"status": "weird"}, [])) == {["slo_unavailable", "pause"]}
}

test_unavailable_without_message if {
	messages(doc("deploy", "prod", {"status": "unavailable", "message": null}, [])) == {"SLO state for payments is unavailable: no detail"}
}

test_absent_section_fails_closed if {
	d := json.remove(doc("deploy", "prod", {}, []), ["slo"])
	found(d) == {["slo_unavailable", "pause"]}
}

test_missing_not_required_is_silent if {
	found(doc("deploy", "prod", {"status": "missing"}, [])) == set()
}

test_missing_required_is_no_data if {
	d := doc("deploy", "prod", {"status": "missing"}, [])
	found_conf(d, {"required": {"prod": true}}) == {["slo_no_data", "pause"]}
	found_conf(d, {"required": {"*": true}}) == {["slo_no_data", "pause"]}
	found_conf(d, {"required": {"staging": true, "*": false}}) == set()
}

test_custom_stages if {
	d := doc("build", "prod", {"status": "unavailable"}, [])
	found_conf(d, {"stages": ["build"]}) == {["slo_unavailable", "pause"]}
}

# --- error budget ---

test_budget_exhausted_pauses_prod_deploy if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [])
	found(d) == {["error_budget_exhausted", "pause"]}
	messages(d) == {"error budget of payments is exhausted: -25% left in 30d (objective 0.999); a break-glass approval lifts this"}
}

test_budget_exactly_zero_is_exhausted if {
	found(doc("canary", "prod", ok_section({"budget_remaining": fact(0)}), [])) == {["error_budget_exhausted", "pause"]}
}

test_budget_left_passes if {
	found(doc("deploy", "prod", ok_section({"budget_remaining": fact(0.01)}), [])) == set()
}

test_budget_not_gated_outside_prod if {
	found(doc("deploy", "staging", ok_section({"budget_remaining": fact(-1)}), [])) == set()
	found(doc("deploy", "staging", ok_section({"budget_remaining": no_data}), [])) == set()
}

test_budget_gate_and_threshold_configurable if {
	d := doc("deploy", "staging", ok_section({"budget_remaining": fact(0.05)}), [])
	found_conf(d, {"budget_gate": {"*": true}, "min_budget_remaining": 0.1}) == {["error_budget_exhausted", "pause"]}
	found_conf(d, {"budget_gate": {"*": true}}) == set()
}

test_break_glass_lifts_budget if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [break_glass({})])
	found(d) == set()
}

test_break_glass_by_requester_does_not_count if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [break_glass({"approver": "alice@example.com"})])
	found(d) == {["error_budget_exhausted", "pause"]}
	d2 := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [break_glass({"approver": "ci-bot"})])
	found(d2) == {["error_budget_exhausted", "pause"]}
}

test_expired_break_glass_does_not_count if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [break_glass({"expires_ns": _now})])
	found(d) == {["error_budget_exhausted", "pause"]}
}

test_revoked_break_glass_does_not_count if {
	revoke := break_glass({"id": "rv-1", "kind": "revoke", "revokes": "bg-1"})
	d := doc("deploy", "prod", ok_section({"budget_remaining": fact(-0.25)}), [break_glass({}), revoke])
	found(d) == {["error_budget_exhausted", "pause"]}
}

test_break_glass_for_other_release_does_not_count if {
	section := ok_section({"budget_remaining": fact(-0.25)})
	found(doc("deploy", "prod", section, [break_glass({"release_id": "payments-1.4.1"})])) == {["error_budget_exhausted", "pause"]}
	other := "sha256:0000000000000000000000000000000000000000000000000000000000000002"
	found(doc("deploy", "prod", section, [break_glass({"artifact_digest": other})])) == {["error_budget_exhausted", "pause"]}
	found(doc("deploy", "prod", section, [break_glass({"environment": "staging"})])) == {["error_budget_exhausted", "pause"]}
	found(doc("deploy", "prod", section, [break_glass({"kind": "approve"})])) == {["error_budget_exhausted", "pause"]}
}

test_unknown_budget_is_no_data_never_a_pass if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": no_data}), [])
	found(d) == {["slo_no_data", "pause"]}
	messages(d) == {"error budget of payments is unknown (no data): sum(rate(x[5m])) over 5m"}
}

test_uncollected_budget_is_no_data if {
	d := doc("deploy", "prod", ok_section({"budget_remaining": null}), [])
	found(d) == {["slo_no_data", "pause"]}
	messages(d) == {"error budget of payments is unknown (no data): not collected"}
}

test_break_glass_lifts_unknown_budget if {
	found(doc("deploy", "prod", ok_section({"budget_remaining": no_data}), [break_glass({})])) == set()
}

# --- burn rates ---

test_fast_burn_rolls_back_during_canary_and_promote if {
	section := ok_section({"burn_rates": [pair("fast", 14.4, fact(20), fact(15))]})
	found(doc("canary", "prod", section, [])) == {["slo_fast_burn", "rollback"]}
	found(doc("promote", "staging", section, [])) == {["slo_fast_burn", "rollback"]}
	messages(doc("canary", "prod", section, [])) == {"payments burns its error budget fast: 14.4x over 1h (20) and 5m (15)"}
}

test_fast_burn_pauses_before_deploy if {
	section := ok_section({"burn_rates": [pair("fast", 14.4, fact(20), fact(15))]})
	found(doc("deploy", "prod", section, [])) == {["slo_fast_burn", "pause"]}
}

test_fast_burn_rollback_stages_configurable if {
	section := ok_section({"burn_rates": [pair("fast", 14.4, fact(20), fact(15))]})
	found_conf(doc("deploy", "prod", section, []), {"rollback_stages": ["deploy"]}) == {["slo_fast_burn", "rollback"]}
}

test_unknown_severity_counts_as_fast if {
	section := ok_section({"burn_rates": [pair("page", 14.4, fact(20), fact(15))]})
	found(doc("canary", "prod", section, [])) == {["slo_fast_burn", "rollback"]}
}

test_burn_needs_both_windows if {
	long_only := ok_section({"burn_rates": [pair("fast", 14.4, fact(20), fact(1))]})
	found(doc("canary", "prod", long_only, [])) == set()
	short_only := ok_section({"burn_rates": [pair("fast", 14.4, fact(1), fact(20))]})
	found(doc("canary", "prod", short_only, [])) == set()
	at_factor := ok_section({"burn_rates": [pair("slow", 3, fact(3), fact(3))]})
	found(doc("canary", "prod", at_factor, [])) == set()
	long_at_factor := ok_section({"burn_rates": [pair("slow", 3, fact(3), fact(4))]})
	found(doc("canary", "prod", long_at_factor, [])) == set()
	short_at_factor := ok_section({"burn_rates": [pair("slow", 3, fact(4), fact(3))]})
	found(doc("canary", "prod", short_at_factor, [])) == set()
}

test_slow_burn_pauses if {
	section := ok_section({"burn_rates": [pair("slow", 1, fact(1.1512), fact(3.7705))]})
	found(doc("canary", "prod", section, [])) == {["slo_slow_burn", "pause"]}
	found(doc("deploy", "dev", section, [])) == {["slo_slow_burn", "pause"]}
	messages(doc("deploy", "dev", section, [])) == {"payments burns its error budget slowly: 1x over 1h (1.15) and 5m (3.77)"}
}

test_burn_no_data_when_it_could_fire if {
	long_missing := ok_section({"burn_rates": [pair("fast", 14.4, no_data, fact(20))]})
	found(doc("canary", "prod", long_missing, [])) == {["slo_no_data", "pause"]}
	short_missing := ok_section({"burn_rates": [pair("fast", 14.4, fact(20), no_data)]})
	found(doc("canary", "prod", short_missing, [])) == {["slo_no_data", "pause"]}
	both := ok_section({"burn_rates": [pair("slow", 1, no_data, no_data)]})
	found(doc("deploy", "prod", both, [])) == {["slo_no_data", "pause"]}
	messages(doc("deploy", "prod", both, [])) == {"burn rate of payments cannot be decided (no data): 1x over 1h (no data) and 5m (no data)"}
}

test_burn_no_data_ignored_when_it_cannot_fire if {
	section := ok_section({"burn_rates": [pair("fast", 14.4, fact(2), no_data), pair("fast", 6, no_data, fact(0))]})
	found(doc("canary", "prod", section, [])) == set()
}

test_burn_rules_need_ok_section if {
	section := object.union(ok_section({"burn_rates": [pair("fast", 14.4, fact(20), fact(15))]}), {"status": "missing"})
	found(doc("canary", "prod", section, [])) == set()
}

# --- canary vs stable ---

test_canary_regression_rolls_back if {
	section := ok_section({"canary": canary(fact(0.03), fact(0.008), fact(3000), fact(30000))})
	found(doc("canary", "prod", section, [])) == {["canary_regression", "rollback"]}
	found(doc("promote", "prod", section, [])) == {["canary_regression", "rollback"]}
	messages(doc("canary", "prod", section, [])) == {"canary of payments errs at 3% against 0.8% for stable (limit: 2x stable and +0.1%)"}
}

test_canary_ignored_before_deploy if {
	section := ok_section({"canary": canary(fact(0.03), fact(0.008), fact(3000), fact(30000))})
	found(doc("deploy", "prod", section, [])) == set()
}

test_canary_within_ratio_passes if {
	section := ok_section({"canary": canary(fact(0.015), fact(0.008), fact(3000), fact(30000))})
	found(doc("canary", "prod", section, [])) == set()
	at_limit := ok_section({"canary": canary(fact(0.016), fact(0.008), fact(3000), fact(30000))})
	found(doc("canary", "prod", at_limit, [])) == set()
}

test_canary_margin_boundary if {
	at_margin := ok_section({"canary": canary(fact(0.002), fact(0.001), fact(3000), fact(30000))})
	found_conf(doc("canary", "prod", at_margin, []), {"canary": {"max_ratio": 1}}) == set()
	past_margin := ok_section({"canary": canary(fact(0.0021), fact(0.001), fact(3000), fact(30000))})
	found_conf(doc("canary", "prod", past_margin, []), {"canary": {"max_ratio": 1}}) == {["canary_regression", "rollback"]}
}

test_canary_at_min_requests_is_enough if {
	section := ok_section({"canary": canary(fact(0.001), fact(0.001), fact(500), fact(500))})
	found(doc("canary", "prod", section, [])) == set()
}

test_canary_within_margin_passes if {
	# Twice nothing is still next to nothing: the absolute margin keeps noise from rolling back.
	section := ok_section({"canary": canary(fact(0.0005), fact(0), fact(3000), fact(30000))})
	found(doc("canary", "prod", section, [])) == set()
}

test_canary_thresholds_configurable if {
	section := ok_section({"canary": canary(fact(0.015), fact(0.008), fact(3000), fact(30000))})
	found_conf(doc("canary", "prod", section, []), {"canary": {"max_ratio": 1.5}}) == {["canary_regression", "rollback"]}
	found_conf(doc("canary", "prod", section, []), {"canary": {"max_ratio": 1.5, "min_margin": 0.01}}) == set()
}

test_thin_canary_is_no_data_never_pass_nor_failure if {
	section := ok_section({"canary": canary(fact(0.5), fact(0.001), fact(60), fact(30000))})
	d := doc("canary", "prod", section, [])
	found(d) == {["slo_no_data", "pause"]}
	messages(d) == {"canary cohort of payments has 60 requests, fewer than the 500 needed to compare canary and stable"}
}

test_thin_stable_is_no_data if {
	section := ok_section({"canary": canary(fact(0.5), no_data, fact(3000), fact(0))})
	found(doc("canary", "prod", section, [])) == {["slo_no_data", "pause"]}
}

test_unknown_request_count_is_no_data if {
	section := ok_section({"canary": canary(fact(0.5), fact(0.001), no_data, fact(30000))})
	d := doc("canary", "prod", section, [])
	found(d) == {["slo_no_data", "pause"]}
	messages(d) == {"canary cohort of payments has no data requests, fewer than the 500 needed to compare canary and stable"}
}

test_unknown_ratio_with_traffic_is_no_data if {
	section := ok_section({"canary": canary(no_data, fact(0.001), fact(3000), fact(30000))})
	d := doc("canary", "prod", section, [])
	found(d) == {["slo_no_data", "pause"]}
	messages(d) == {"canary error ratio of payments is unknown (no data): sum(rate(x[5m])) over 5m"}
}

test_min_requests_policy_floor if {
	section := ok_section({"canary": healthy_canary})
	found_conf(doc("canary", "prod", section, []), {"canary": {"min_requests": 5000}}) == {["slo_no_data", "pause"]}
	found_conf(doc("canary", "prod", section, []), {"canary": {"min_requests": 10}}) == set()
}

test_findings_combine if {
	section := ok_section({
		"budget_remaining": fact(-0.1),
		"burn_rates": [pair("fast", 14.4, fact(20), fact(15)), pair("slow", 1, fact(2), fact(2))],
		"canary": canary(fact(0.03), fact(0.008), fact(3000), fact(30000)),
	})
	found(doc("canary", "prod", section, [])) == {
		["error_budget_exhausted", "pause"],
		["slo_fast_burn", "rollback"],
		["slo_slow_burn", "pause"],
		["canary_regression", "rollback"],
	}
}
