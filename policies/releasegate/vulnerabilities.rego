# Vulnerabilities from scanner reports, after VEX suppressions (input.vulnerabilities).
#
# Knobs (policy data releasegate.config.vulnerabilities):
#   require_scan: {"<env>": bool, "*": bool}      a scan report is needed (default prod, staging)
#   critical: {"<env>": bool, "*": bool}          unsuppressed CRITICAL rolls back (default all)
#   high_fixable: {"<env>": bool, "*": bool}      unsuppressed HIGH with a fix rolls back (default prod)
#   ignore_unfixed_critical: bool                 CRITICALs without any fix do not block (default false)
# A report that names a different artifact digest does not count as a scan of this artifact,
# and neither does an OpenVEX document.
package releasegate.vulnerabilities

import data.releasegate.lib

_conf := lib.setting("vulnerabilities", {})

require_scan := lib.per_env(object.get(_conf, "require_scan", {"prod": true, "staging": true}), false)

critical_blocks := lib.per_env(object.get(_conf, "critical", {"*": true}), true)

high_fixable_blocks := lib.per_env(object.get(_conf, "high_fixable", {"prod": true}), false)

ignore_unfixed_critical := object.get(_conf, "ignore_unfixed_critical", false)

_reports := object.get(input.vulnerabilities, "reports", [])

# Reports that scanned this artifact (or do not say which artifact they scanned). A VEX
# document only suppresses findings: it is not a scan.
covering_reports contains r.index if {
	some r in _reports
	object.get(r, "artifact_matches", null) != false
	r.format != "openvex"
}

findings contains f if {
	require_scan
	count(covering_reports) == 0
	f := {
		"code": "scan_missing",
		"verdict": "pause",
		"message": _scan_missing_message,
	}
}

_scan_missing_message := sprintf("no vulnerability scan of %s (%d reports name other artifacts)", [input.artifact.digest, count(_reports)]) if count(_reports) > 0

_scan_missing_message := sprintf("no vulnerability scan report for %s in %s", [input.artifact.digest, input.release.environment]) if count(_reports) == 0

_open contains v if {
	some v in object.get(input.vulnerabilities, "findings", [])
	not v.suppressed
}

_describe(v) := sprintf("%s in %s %s (%s, fixed in %s)", [v.id, _pkg(v), _ver(v), v.severity, concat(", ", v.fixed_versions)]) if v.fix_available

_describe(v) := sprintf("%s in %s %s (%s, no fix available)", [v.id, _pkg(v), _ver(v), v.severity]) if not v.fix_available

_pkg(v) := object.get(v, "package_name", "unknown package") if object.get(v, "package_name", null) != null

_pkg(v) := "unknown package" if object.get(v, "package_name", null) == null

_ver(v) := object.get(v, "installed_version", null) if is_string(object.get(v, "installed_version", null))

_ver(v) := "(version unknown)" if not is_string(object.get(v, "installed_version", null))

findings contains f if {
	critical_blocks
	some v in _open
	v.severity == "CRITICAL"
	not _unfixed_ignored(v)
	f := {"code": "vuln_critical", "verdict": "rollback", "message": _describe(v), "ref": v.id, "aliases": v.aliases}
}

_unfixed_ignored(v) if {
	ignore_unfixed_critical
	not v.fix_available
}

findings contains f if {
	high_fixable_blocks
	some v in _open
	v.severity == "HIGH"
	v.fix_available
	f := {"code": "vuln_high_fixable", "verdict": "rollback", "message": _describe(v), "ref": v.id, "aliases": v.aliases}
}
