# SLO and error-budget rules on facts read from Prometheus (input.slo).
#
# Python only reads numbers; every number is a MetricFact {value, query, range, evaluated_at,
# points}. A null value means the query returned no data or NaN: it is never read as zero,
# never a pass and never a failure, but slo_no_data (pause) wherever the rule needs it.
#
# Stage awareness (defaults; the stage lists are knobs):
#   build            no SLO rules: nothing is being rolled out.
#   deploy           fast burn -> pause (nothing new is live yet, so there is nothing to roll
#                    back; but do not deploy into a burning service); slow burn -> pause;
#                    exhausted budget -> pause in budget-gated environments (prod) unless a
#                    valid break-glass approval exists; canary facts are ignored (no canary yet).
#   canary, promote  fast burn -> rollback; slow burn -> pause; exhausted budget as for deploy;
#                    canary error ratio much worse than stable -> rollback (canary_regression);
#                    a canary or stable cohort below the minimum request count -> slo_no_data.
# Section status: unavailable / invalid / anything unknown -> slo_unavailable (pause);
# missing (no SLO configured for the service) -> nothing, unless `required` for the environment
# says so (then slo_no_data).
# No data in a burn-rate pair gives slo_no_data only when the missing value could change the
# outcome: a pair whose known window is at or below its factor cannot fire, whatever the other.
# A valid break-glass approval (data.releasegate.approvals.break_glass) lifts the budget gate,
# including an unknown budget; it never lifts burn-rate or canary findings.
#
# Knobs (policy data releasegate.config.slo):
#   stages: [...]                       stages with SLO rules (default deploy, canary, promote)
#   rollback_stages: [...]              stages where a fast burn rolls back (default canary, promote)
#   canary_stages: [...]                stages that compare canary to stable (default canary, promote)
#   required: {"<env>": bool, "*": bool}  a service without SLO config pauses (default false)
#   budget_gate: {"<env>": bool, "*": bool}  gate on the error budget (default prod only)
#   min_budget_remaining: number        budget fraction at or below which it is exhausted (default 0)
#   canary: {"max_ratio": 2, "min_margin": 0.001, "min_requests": 0}
#     regression when canary ratio > stable ratio * max_ratio and > stable ratio + min_margin;
#     min_requests raises (never lowers) the per-cohort minimum carried by the facts.
package releasegate.slo

import data.releasegate.approvals
import data.releasegate.lib

_conf := lib.setting("slo", {})

stages := object.get(_conf, "stages", ["deploy", "canary", "promote"])

rollback_stages := object.get(_conf, "rollback_stages", ["canary", "promote"])

canary_stages := object.get(_conf, "canary_stages", ["canary", "promote"])

required := lib.per_env(object.get(_conf, "required", {}), false)

budget_gate := lib.per_env(object.get(_conf, "budget_gate", {"prod": true}), false)

min_budget_remaining := object.get(_conf, "min_budget_remaining", 0)

_canary_conf := object.get(_conf, "canary", {})

canary_max_ratio := object.get(_canary_conf, "max_ratio", 2)

canary_min_margin := object.get(_canary_conf, "min_margin", 0.001)

# An input without an slo section was not gathered: fail closed (unavailable).
_slo := object.get(input, "slo", {})

_status := object.get(_slo, "status", "unavailable")

_service := input.release.service

_gated if input.release.stage in stages

_ok if {
	_gated
	_status == "ok"
}

# _num(fact) is the fact's value when it is a number; undefined for null, NaN-as-null or junk.
_num(fact) := fact.value if {
	is_object(fact)
	is_number(fact.value)
}

_fmt(x) := sprintf("%v", [round(x * 100) / 100])

_pct(x) := sprintf("%v%%", [round(x * 10000) / 100])

_show(fact) := _fmt(_num(fact)) if _num(fact)

_show(fact) := "no data" if not _num(fact)

_where(fact) := sprintf("%v over %v", [fact.query, object.get(fact, "range", "?")]) if is_object(fact)

_where(fact) := "not collected" if not is_object(fact)

_detail := m if {
	m := object.get(_slo, "message", null)
	is_string(m)
} else := "no detail"

# 1. The section could not be read.
findings contains f if {
	_gated
	not _status in {"ok", "missing"}
	f := {
		"code": "slo_unavailable",
		"verdict": "pause",
		"message": sprintf("SLO state for %s is %v: %s", [_service, _status, _detail]),
	}
}

# 2. No SLO configured where one is required.
findings contains f if {
	_gated
	_status == "missing"
	required == true
	f := {
		"code": "slo_no_data",
		"verdict": "pause",
		"message": sprintf("no SLO is configured for %s, but %s requires one", [_service, input.release.environment]),
	}
}

# 3. Error budget (budget-gated environments only).
_budget := object.get(_slo, "budget_remaining", null)

_budget_needed if {
	_ok
	budget_gate == true
	not approvals.break_glass
}

findings contains f if {
	_budget_needed
	_num(_budget) <= min_budget_remaining
	f := {
		"code": "error_budget_exhausted",
		"verdict": "pause",
		"message": sprintf("error budget of %s is exhausted: %s left in %v (objective %v); a break-glass approval lifts this", [_service, _pct(_num(_budget)), object.get(_slo, "window", "?"), object.get(_slo, "objective", "?")]),
	}
}

findings contains f if {
	_budget_needed
	not _num(_budget)
	f := {
		"code": "slo_no_data",
		"verdict": "pause",
		"message": sprintf("error budget of %s is unknown (no data): %s", [_service, _where(_budget)]),
	}
}

# 4. Multi-window, multi-burn-rate pairs: a pair fires when both windows exceed its factor.
_pairs := object.get(_slo, "burn_rates", [])

_fires(p) if {
	_num(p.long) > p.factor
	_num(p.short) > p.factor
}

_could_fire(fact, _) if not _num(fact)

_could_fire(fact, factor) if _num(fact) > factor

_undecided(p) if {
	_could_fire(p.long, p.factor)
	_could_fire(p.short, p.factor)
	not _fires(p)
}

_pair_text(p) := sprintf("%vx over %v (%s) and %v (%s)", [p.factor, p.long_window, _show(p.long), p.short_window, _show(p.short)])

_fast_verdict := "rollback" if input.release.stage in rollback_stages

_fast_verdict := "pause" if not input.release.stage in rollback_stages

# Any severity other than "slow" is treated as fast: an unknown label fails closed.
findings contains f if {
	_ok
	some p in _pairs
	p.severity != "slow"
	_fires(p)
	f := {
		"code": "slo_fast_burn",
		"verdict": _fast_verdict,
		"message": sprintf("%s burns its error budget fast: %s", [_service, _pair_text(p)]),
	}
}

findings contains f if {
	_ok
	some p in _pairs
	p.severity == "slow"
	_fires(p)
	f := {
		"code": "slo_slow_burn",
		"verdict": "pause",
		"message": sprintf("%s burns its error budget slowly: %s", [_service, _pair_text(p)]),
	}
}

findings contains f if {
	_ok
	some p in _pairs
	_undecided(p)
	f := {
		"code": "slo_no_data",
		"verdict": "pause",
		"message": sprintf("burn rate of %s cannot be decided (no data): %s", [_service, _pair_text(p)]),
	}
}

# 5. Canary vs stable, during canary and promote only.
_canary := object.get(_slo, "canary", null)

_canary_applies if {
	_ok
	input.release.stage in canary_stages
	is_object(_canary)
}

_min_requests := max([object.get(_canary, "min_requests", 0), object.get(_canary_conf, "min_requests", 0)])

_cohort_requests := {"canary": "canary_requests", "stable": "stable_requests"}

_cohort_ratio := {"canary": "canary_error_ratio", "stable": "stable_error_ratio"}

# Cohorts too thin to compare: unknown request count or fewer than the minimum.
thin_cohorts contains name if {
	_canary_applies
	some name, key in _cohort_requests
	not _num(_canary[key])
}

thin_cohorts contains name if {
	_canary_applies
	some name, key in _cohort_requests
	_num(_canary[key]) < _min_requests
}

findings contains f if {
	some name in thin_cohorts
	f := {
		"code": "slo_no_data",
		"verdict": "pause",
		"message": sprintf("%s cohort of %s has %s requests, fewer than the %v needed to compare canary and stable", [name, _service, _show(_canary[_cohort_requests[name]]), _min_requests]),
	}
}

_comparable if {
	_canary_applies
	count(thin_cohorts) == 0
}

findings contains f if {
	_comparable
	some name, key in _cohort_ratio
	not _num(_canary[key])
	f := {
		"code": "slo_no_data",
		"verdict": "pause",
		"message": sprintf("%s error ratio of %s is unknown (no data): %s", [name, _service, _where(_canary[key])]),
	}
}

findings contains f if {
	_comparable
	c := _num(_canary.canary_error_ratio)
	s := _num(_canary.stable_error_ratio)
	c > s * canary_max_ratio
	c > s + canary_min_margin
	f := {
		"code": "canary_regression",
		"verdict": "rollback",
		"message": sprintf("canary of %s errs at %s against %s for stable (limit: %vx stable and +%s)", [_service, _pct(c), _pct(s), canary_max_ratio, _pct(canary_min_margin)]),
	}
}
