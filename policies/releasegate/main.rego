# The entrypoint: data.releasegate.decision = {verdict, reasons, warnings}.
#
# Each area package (provenance, vulnerabilities, slo, approvals, freeze, admission) yields
# findings {code, verdict, message}. This package applies, in order:
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

findings contains _tag("provenance", f) if some f in data.releasegate.provenance.findings

findings contains _tag("vulnerabilities", f) if some f in data.releasegate.vulnerabilities.findings

findings contains _tag("slo", f) if some f in data.releasegate.slo.findings

findings contains _tag("approvals", f) if some f in data.releasegate.approvals.findings

findings contains _tag("freeze", f) if some f in data.releasegate.freeze.findings

findings contains _tag("admission", f) if some f in data.releasegate.admission.findings

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
