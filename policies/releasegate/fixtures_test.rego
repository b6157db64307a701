# Shared test fixtures: a complete, passing input document and the default configuration.
package releasegate.fixtures_test

# 2026-11-26T12:00:00Z, a Thursday.
now := 1795694400000000000

hour := 3600000000000

day := 24 * hour

digest := "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"

signer := {
	"issuer": "https://token.actions.githubusercontent.com",
	"san": "https://github.com/acme/payments/.github/workflows/release.yml@refs/tags/v1.4.2",
	"source_repository_uri": "https://github.com/acme/payments",
	"source_repository_ref": "refs/tags/v1.4.2",
	"build_signer_uri": "https://github.com/acme/payments/.github/workflows/release.yml@refs/tags/v1.4.2",
	"runner_environment": "github-hosted",
	"build_trigger": "push",
	"key_id": null,
}

attestation := {
	"index": 0,
	"bundle_digest": "sha256:00",
	"content": "dsse",
	"method": "sigstore",
	"verification": "verified",
	"error": null,
	"signer": signer,
	"subject_digests": [digest],
	"subject_matches": true,
	"predicate_type": "https://slsa.dev/provenance/v1",
	"slsa": {
		"version": "v1",
		"build_type": "https://actions.github.io/buildtypes/workflow/v1",
		"builder_id": "https://github.com/actions/runner/github-hosted",
		"source_repository": "https://github.com/acme/payments",
		"source_ref": "refs/tags/v1.4.2",
		"source_commit": "abc",
	},
	"vsa": null,
}

approval := {
	"id": "ap-1",
	"kind": "approve",
	"approver": "bob@example.com",
	"approver_roles": ["approver"],
	"release_id": "payments-1.4.2",
	"artifact_digest": digest,
	"environment": "prod",
	"revokes": null,
	"created_ns": now - hour,
	"expires_ns": now + day,
}

input_doc := {
	"schema_version": 1,
	"now_ns": now,
	"adapter": "cli",
	"release": {
		"id": "payments-1.4.2", "service": "payments", "environment": "prod",
		"stage": "deploy", "version": "1.4.2",
		"requested_by": "alice@example.com", "caller": "ci-pipeline",
	},
	"artifact": {"uri": "ghcr.io/acme/payments", "digest": digest},
	"provenance": {"status": "ok", "attestations": [attestation]},
	"vulnerabilities": {
		"status": "ok",
		"reports": [{"index": 0, "format": "trivy", "artifact_matches": true}],
		"findings": [],
		"counts": {},
	},
	"slo": {"status": "missing"},
	"approvals": {"status": "ok", "records": [approval]},
	"admission": null,
}

config := {
	"approvals": {"required": {"prod": 1, "*": 0}},
	"provenance": {
		"required": {"prod": true, "*": false},
		"trusted_identities": {"payments": [{
			"issuer": "https://token.actions.githubusercontent.com",
			"san": "https://github.com/acme/payments/.github/workflows/*",
			"source_repository": "https://github.com/acme/*",
		}]},
		"allowed_builders": ["https://github.com/actions/runner/github-hosted"],
	},
	"vulnerabilities": {"require_scan": {"prod": true}},
}

# with_release(patch) returns the base input with release fields replaced.
with_release(patch) := object.union(input_doc, {"release": object.union(input_doc.release, patch)})

with_section(name, value) := object.union(input_doc, {name: value})

codes(findings) := {f.code | some f in findings}

vuln(id, severity, fixed) := {
	"id": id, "aliases": [], "severity": severity, "cvss_score": null,
	"package_name": "musl", "installed_version": "1.1.20-r4", "purl": null,
	"fixed_versions": fixed, "fix_available": count(fixed) > 0,
	"suppressed": false, "suppressed_by": null, "vex_status": null,
}
