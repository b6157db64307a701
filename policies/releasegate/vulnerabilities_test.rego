package releasegate.vulnerabilities_test

import data.releasegate.fixtures_test as fx
import data.releasegate.vulnerabilities

with_vulns(findings, reports) := fx.with_section("vulnerabilities", {"status": "ok", "reports": reports, "findings": findings, "counts": {}})

report := {"index": 0, "format": "trivy", "artifact_matches": true}

findings_for(vs) := f if {
	f := vulnerabilities.findings with input as with_vulns(vs, [report]) with data.releasegate.config as fx.config
}

test_clean_scan_passes if {
	count(findings_for([fx.vuln("CVE-1", "MEDIUM", ["2"])])) == 0
}

test_scan_missing if {
	f := vulnerabilities.findings with input as with_vulns([], []) with data.releasegate.config as fx.config
	some x in f
	x.code == "scan_missing"
	contains(x.message, "no vulnerability scan report")
}

test_scan_of_other_artifact_is_missing if {
	r := object.union(report, {"artifact_matches": false})
	f := vulnerabilities.findings with input as with_vulns([], [r]) with data.releasegate.config as fx.config
	some x in f
	x.code == "scan_missing"
	contains(x.message, "name other artifacts")
}

test_report_without_artifact_counts if {
	r := object.union(report, {"artifact_matches": null})
	count(vulnerabilities.findings) == 0 with input as with_vulns([], [r]) with data.releasegate.config as fx.config
}

test_scan_not_required_in_dev if {
	doc := object.union(with_vulns([], []), {"release": object.union(fx.input_doc.release, {"environment": "dev"})})
	count(vulnerabilities.findings) == 0 with input as doc with data.releasegate.config as fx.config
}

test_critical_with_fix if {
	f := findings_for([fx.vuln("CVE-2019-14697", "CRITICAL", ["1.1.20-r5"])])
	some x in f
	x.code == "vuln_critical"
	x.message == "CVE-2019-14697 in musl 1.1.20-r4 (CRITICAL, fixed in 1.1.20-r5)"
	x.ref == "CVE-2019-14697"
}

test_critical_without_fix if {
	v := object.union(fx.vuln("CVE-9", "CRITICAL", []), {"package_name": null, "installed_version": null})
	f := findings_for([v])
	some x in f
	x.message == "CVE-9 in unknown package (version unknown) (CRITICAL, no fix available)"
}

test_ignore_unfixed_critical if {
	conf := object.union(fx.config, {"vulnerabilities": {"require_scan": {"prod": true}, "ignore_unfixed_critical": true}})
	count(vulnerabilities.findings) == 0 with input as with_vulns([fx.vuln("CVE-9", "CRITICAL", [])], [report]) with data.releasegate.config as conf
	fx.codes(vulnerabilities.findings) == {"vuln_critical"} with input as with_vulns([fx.vuln("CVE-9", "CRITICAL", ["2"])], [report]) with data.releasegate.config as conf
}

test_suppressed_critical_passes if {
	v := object.union(fx.vuln("CVE-2019-14697", "CRITICAL", ["1.1.20-r5"]), {"suppressed": true, "suppressed_by": "openvex:0#0"})
	count(findings_for([v])) == 0
}

test_high_fixable_in_prod_only if {
	fx.codes(findings_for([fx.vuln("CVE-7", "HIGH", ["2"])])) == {"vuln_high_fixable"}
	count(findings_for([fx.vuln("CVE-7", "HIGH", [])])) == 0
	doc := object.union(with_vulns([fx.vuln("CVE-7", "HIGH", ["2"])], [report]), {"release": object.union(fx.input_doc.release, {"environment": "staging"})})
	count(vulnerabilities.findings) == 0 with input as doc with data.releasegate.config as fx.config
}

test_openvex_is_not_a_scan if {
	r := {"index": 0, "format": "openvex", "artifact_matches": null}
	fx.codes(vulnerabilities.findings) == {"scan_missing"} with input as with_vulns([], [r]) with data.releasegate.config as fx.config
}
