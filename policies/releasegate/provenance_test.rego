package releasegate.provenance_test

import data.releasegate.fixtures_test as fx
import data.releasegate.provenance

with_attestations(list) := fx.with_section("provenance", {"status": "ok", "attestations": list})

att(patch) := object.union(fx.attestation, patch)

with_signer(s) := object.union(object.remove(fx.attestation, ["signer"]), {"method": "key", "signer": s})

findings_for(list) := f if {
	f := provenance.findings with input as with_attestations(list) with data.releasegate.config as fx.config
}

test_trusted_verified_attestation_passes if {
	count(findings_for([fx.attestation])) == 0
}

test_no_attestation_is_missing if {
	fx.codes(findings_for([])) == {"provenance_missing"}
	f := provenance.findings with input as fx.with_section("provenance", {"status": "missing", "attestations": []}) with data.releasegate.config as fx.config
	fx.codes(f) == {"provenance_missing"}
}

test_not_required_outside_prod if {
	doc := object.union(with_attestations([]), {"release": object.union(fx.input_doc.release, {"environment": "dev"})})
	count(provenance.findings) == 0 with input as doc with data.releasegate.config as fx.config
}

test_failed_verification_is_signature_invalid if {
	f := findings_for([att({"verification": "failed", "error": "DSSE: invalid signature", "signer": null})])
	fx.codes(f) == {"signature_invalid", "provenance_missing"}
	some x in f
	x.code == "signature_invalid"
	contains(x.message, "DSSE: invalid signature")
}

test_invalid_bundle_is_signature_invalid if {
	"signature_invalid" in fx.codes(findings_for([att({"verification": "invalid", "error": "not a bundle"})]))
}

test_unsupported_entry if {
	f := findings_for([fx.attestation, att({"index": 1, "verification": "unsupported", "error": "intoto/0.0.2"})])
	fx.codes(f) == {"attestation_unsupported"}
}

test_untrusted_identity if {
	s := object.union(fx.signer, {"san": "https://github.com/evil/payments/.github/workflows/release.yml@refs/heads/main"})
	fx.codes(findings_for([att({"signer": s})])) == {"identity_mismatch", "provenance_missing"}
}

test_wrong_issuer if {
	s := object.union(fx.signer, {"issuer": "https://token.actions.githubusercontent.com/hammer-time"})
	"identity_mismatch" in fx.codes(findings_for([att({"signer": s})]))
}

test_identity_field_missing_in_certificate_fails_closed if {
	s := object.union(fx.signer, {"source_repository_uri": null})
	"identity_mismatch" in fx.codes(findings_for([att({"signer": s})]))
}

test_key_identity if {
	conf := object.union(fx.config, {"provenance": object.union(fx.config.provenance, {"trusted_identities": {"payments": [{"key_id": "vsa-key"}]}})})
	keyed := with_signer({"key_id": "vsa-key"})
	count(provenance.findings) == 0 with input as with_attestations([keyed]) with data.releasegate.config as conf
	other := with_signer({"key_id": "other"})
	f := provenance.findings with input as with_attestations([other]) with data.releasegate.config as conf
	some x in f
	x.code == "identity_mismatch"
	contains(x.message, "key other")
	anon := with_signer({"key_id": null, "san": null})
	g := provenance.findings with input as with_attestations([anon]) with data.releasegate.config as conf
	some y in g
	contains(y.message, "unknown")
}

test_subject_mismatch if {
	f := findings_for([att({"subject_matches": false, "subject_digests": ["sha256:ff"]})])
	fx.codes(f) == {"subject_mismatch", "provenance_missing"}
}

test_untrusted_builder if {
	slsa := object.union(fx.attestation.slsa, {"builder_id": "https://evil.example/builder"})
	fx.codes(findings_for([att({"slsa": slsa})])) == {"provenance_untrusted_builder"}
}

test_builder_any_when_list_empty if {
	conf := object.union(fx.config, {"provenance": object.union(fx.config.provenance, {"allowed_builders": []})})
	slsa := object.union(fx.attestation.slsa, {"builder_id": "https://evil.example/builder"})
	count(provenance.findings) == 0 with input as with_attestations([att({"slsa": slsa})]) with data.releasegate.config as conf
}

test_source_repository_and_ref_allow_lists if {
	p := object.union(fx.config.provenance, {
		"allowed_source_repositories": {"payments": ["https://github.com/acme/payments"]},
		"allowed_source_refs": {"*": ["refs/tags/v*"]},
	})
	conf := object.union(fx.config, {"provenance": p})
	count(provenance.findings) == 0 with input as with_attestations([fx.attestation]) with data.releasegate.config as conf
	other := att({"slsa": object.union(fx.attestation.slsa, {"source_repository": "https://github.com/acme/fork", "source_ref": "refs/heads/dev"})})
	f := provenance.findings with input as with_attestations([other]) with data.releasegate.config as conf
	count([x | some x in f; x.code == "provenance_untrusted_builder"]) == 2
}
