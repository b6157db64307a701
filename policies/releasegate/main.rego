# The entrypoint: data.releasegate.decision = {verdict, reasons, warnings}.
#
# Each area package (provenance, vulnerabilities, slo, approvals, freeze, admission) yields
# findings {code, verdict, message}; the adapter decides which areas apply (see below).
# This package applies, in order:
#   1. verdict overrides from policy data (releasegate.config.verdicts: {"<code>": verdict});
#   2. enforcement modes per area and environment (releasegate.config.enforcement:
#      {"<area>": {"<env>": "enforce"|"warn"|"off", "*": ...}}, default enforce): `off` drops
#      the finding, `warn` records it as a warning;
#   3. exceptions (package releasegate.exceptions): an enforced finding covered by an active
#      exception becomes an `exception_applied` warning;
# then takes the most severe verdict among the enforced reasons: rollback > pause > allow.
package releasegate

import data.releasegate.exceptions
import data.releasegate.lib

_verdict_overrides := lib.setting("verdicts", {})

mode(area) := m if {
	m := lib.per_env(object.get(lib.setting("enforcement", {}), area, {}), "enforce")
	m in {"enforce", "warn", "off"}
}

# An unknown mode string fails closed: the area is enforced.
mode(area) := "enforce" if {
	m := lib.per_env(object.get(lib.setting("enforcement", {}), area, {}), "enforce")
	not m in {"enforce", "warn", "off"}
}

_tag(area, f) := object.union(f, {
	"policy": sprintf("releasegate.%s", [area]),
	"verdict": object.get(_verdict_overrides, f.code, f.verdict),
})

# Which areas apply depends on the adapter that asks (releasegate.config.areas_by_adapter):
# CI checks verify evidence; admission reuses a prior signed decision ("verify once, reuse at
# admission"); rollout hooks judge the live state (SLO, approvals, freezes).
default_areas_by_adapter := {
	"cli": ["provenance", "vulnerabilities", "slo", "approvals", "freeze"],
	"api": ["provenance", "vulnerabilities", "slo", "approvals", "freeze"],
	"replay": ["provenance", "vulnerabilities", "slo", "approvals", "freeze"],
	"admission": ["admission"],
	"argo-rollouts": ["slo", "approvals", "freeze"],
	"flagger": ["slo", "approvals", "freeze"],
}

applicable_areas := object.get(
	object.union(default_areas_by_adapter, lib.setting("areas_by_adapter", {})),
	input.adapter,
	default_areas_by_adapter.cli,
)

_area_findings(area) := data.releasegate.provenance.findings if area == "provenance"

_area_findings(area) := data.releasegate.vulnerabilities.findings if area == "vulnerabilities"

_area_findings(area) := data.releasegate.slo.findings if area == "slo"

_area_findings(area) := data.releasegate.approvals.findings if area == "approvals"

_area_findings(area) := data.releasegate.freeze.findings if area == "freeze"

_area_findings(area) := data.releasegate.admission.findings if area == "admission"

findings contains _tag(area, f) if {
	some area in applicable_areas
	some f in _area_findings(area)
}

_enforced contains f if {
	some f in findings
	mode(_area(f)) == "enforce"
}

_area(f) := substring(f.policy, count("releasegate."), -1)

_waived contains f if {
	some f in _enforced
	exceptions.waiver_for(f)
}

reasons_set contains r if {
	some f in _enforced
	not f in _waived
	r := {"code": f.code, "verdict": f.verdict, "policy": f.policy, "message": f.message}
}

warnings_set contains w if {
	some f in findings
	mode(_area(f)) == "warn"
	w := {"code": f.code, "policy": f.policy, "message": sprintf("(warn mode) %s", [f.message])}
}

warnings_set contains w if {
	some f in _waived
	id := exceptions.waiver_for(f)
	w := {"code": "exception_applied", "policy": "releasegate.exceptions", "message": exceptions.applied_message(f, id)}
}

warnings_set contains w if {
	some f in _enforced
	not f in _waived
	some id in exceptions.expired_for(f)
	w := {"code": "exception_expired", "policy": "releasegate.exceptions", "message": exceptions.expired_message(f, id)}
}

default verdict := "allow"

verdict := "pause" if {
	some r in reasons_set
	r.verdict == "pause"
	not _any_rollback
}

verdict := "rollback" if _any_rollback

_any_rollback if {
	some r in reasons_set
	r.verdict == "rollback"
}

# Most severe first, then by code and message (sets iterate in sorted order).
reasons := array.concat(
	[r | some r in reasons_set; r.verdict == "rollback"],
	[r | some r in reasons_set; r.verdict == "pause"],
)

warnings := [w | some w in warnings_set]

decision := {"verdict": verdict, "reasons": reasons, "warnings": warnings}
