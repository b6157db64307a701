package releasegate.main_test

import data.releasegate
import data.releasegate.fixtures_test as fx

test_clean_release_is_allowed if {
	d := releasegate.decision with input as fx.input_doc with data.releasegate.config as fx.config
	d.verdict == "allow"
	d.reasons == []
	d.warnings == []
}

critical := fx.with_section("vulnerabilities", object.union(fx.input_doc.vulnerabilities, {
	"findings": [fx.vuln("CVE-2019-14697", "CRITICAL", ["1.1.20-r5"])],
}))

test_rollback_wins_over_pause if {
	doc := object.union(critical, {"approvals": {"status": "ok", "records": []}})
	d := releasegate.decision with input as doc with data.releasegate.config as fx.config
	d.verdict == "rollback"
	d.reasons[0].verdict == "rollback"
	d.reasons[count(d.reasons) - 1].code == "approval_missing"
}

test_pause_without_rollback if {
	doc := fx.with_section("approvals", {"status": "ok", "records": []})
	d := releasegate.decision with input as doc with data.releasegate.config as fx.config
	d.verdict == "pause"
	[r.code | some r in d.reasons] == ["approval_missing"]
	d.reasons[0].policy == "releasegate.approvals"
}

test_warn_mode_adds_warning_not_verdict if {
	conf := object.union(fx.config, {"enforcement": {"vulnerabilities": {"prod": "warn"}}})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "allow"
	d.warnings[0].code == "vuln_critical"
	startswith(d.warnings[0].message, "(warn mode)")
}

test_off_mode_drops_finding if {
	conf := object.union(fx.config, {"enforcement": {"vulnerabilities": {"*": "off"}}})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "allow"
	d.warnings == []
}

test_unknown_mode_fails_closed if {
	conf := object.union(fx.config, {"enforcement": {"vulnerabilities": {"*": "audit"}}})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "rollback"
}

test_verdict_override if {
	conf := object.union(fx.config, {"verdicts": {"vuln_critical": "pause"}})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "pause"
	d.reasons[0].verdict == "pause"
}

exc := {
	"id": "EXC-1", "reason": "vuln_critical", "services": ["payments"],
	"ticket": "SEC-42", "approved_by": "carol@example.com", "expires": "2026-12-01T00:00:00Z",
}

test_exception_waives_finding if {
	conf := object.union(fx.config, {"exceptions": [exc]})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "allow"
	d.warnings[0].code == "exception_applied"
	contains(d.warnings[0].message, "EXC-1")
	contains(d.warnings[0].message, "SEC-42")
	contains(d.warnings[0].message, "until 2026-12-01T00:00:00Z")
}

test_exception_by_vulnerability_alias if {
	e := {"id": "EXC-2", "vulnerabilities": ["GHSA-xxxx"], "ticket": "SEC-43", "approved_by": "carol"}
	v := object.union(fx.vuln("CVE-2019-14697", "CRITICAL", []), {"aliases": ["GHSA-xxxx"]})
	doc := fx.with_section("vulnerabilities", object.union(fx.input_doc.vulnerabilities, {"findings": [v]}))
	conf := object.union(fx.config, {"exceptions": [e]})
	d := releasegate.decision with input as doc with data.releasegate.config as conf
	d.verdict == "allow"
	d.warnings[0].code == "exception_applied"
	not contains(d.warnings[0].message, "until")
}

test_expired_exception_is_enforced_and_warned if {
	e := object.union(exc, {"expires": "2026-11-01T00:00:00Z"})
	conf := object.union(fx.config, {"exceptions": [e]})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "rollback"
	d.warnings[0].code == "exception_expired"
	contains(d.warnings[0].message, "EXC-1")
}

test_exception_without_expiry_refused_when_required if {
	e := object.remove(exc, ["expires"])
	conf := object.union(fx.config, {"exceptions": [e], "exceptions_require_expiry": true})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "rollback"
	d.warnings == []
}

test_exception_out_of_scope if {
	e := object.union(exc, {"environments": ["staging"]})
	conf := object.union(fx.config, {"exceptions": [e]})
	d := releasegate.decision with input as critical with data.releasegate.config as conf
	d.verdict == "rollback"
}

test_no_config_uses_defaults if {
	d := releasegate.decision with input as fx.input_doc with data.releasegate.config as {}
	# default trusted identities are empty: the signer is not trusted.
	d.verdict == "rollback"
	"identity_mismatch" in {r.code | some r in d.reasons}
}

test_freeze_pauses_through_decision if {
	conf := object.union(fx.config, {"freeze": {"windows": [{"name": "f", "start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}]}})
	d := releasegate.decision with input as fx.input_doc with data.releasegate.config as conf
	d.verdict == "pause"
	d.reasons[0].code == "change_freeze"
	d.reasons[0].policy == "releasegate.freeze"
}

test_rollout_hooks_skip_evidence_areas if {
	doc := object.union(critical, {"adapter": "flagger", "provenance": {"status": "missing", "attestations": []}})
	d := releasegate.decision with input as doc with data.releasegate.config as fx.config
	d.verdict == "allow"
}

test_unknown_adapter_gets_cli_areas if {
	doc := object.union(critical, {"adapter": "something-new"})
	d := releasegate.decision with input as doc with data.releasegate.config as fx.config
	d.verdict == "rollback"
}
