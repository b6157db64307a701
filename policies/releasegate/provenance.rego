# Provenance and signatures.
#
# Python has already verified each attestation's cryptography (certificate chain at the log
# time, SCT, transparency-log inclusion, signature over the artifact or DSSE payload) and
# reports the outcome in input.provenance.attestations[].verification. This policy decides
# whether a verified signer is trusted for this service (from the certificate identity, never
# from the predicate's builder.id), whether the attestation covers this artifact digest, and
# whether the build platform and source repository are allowed.
#
# Knobs (policy data releasegate.config.provenance):
#   required: {"<env>": bool, "*": bool}       provenance needed (default prod and staging)
#   trusted_identities: {"<service>|*": [{issuer, san?, source_repository?, source_ref?,
#                        build_signer?, runner_environment?, key_id?}]}   globs except issuer
#   allowed_builders: [glob, ...]               SLSA builder.id (empty list: any)
#   allowed_source_repositories: {"<service>|*": [glob, ...]}   (absent: any)
#   allowed_source_refs: {"<service>|*": [glob, ...]}           (absent: any)
package releasegate.provenance

import data.releasegate.lib

_conf := lib.setting("provenance", {})

required := lib.per_env(object.get(_conf, "required", {"prod": true, "staging": true}), false)

_service_list(name) := object.get(object.get(_conf, name, {}), input.release.service, object.get(object.get(_conf, name, {}), "*", null))

trusted_identities := object.get(object.get(_conf, "trusted_identities", {}), input.release.service, object.get(object.get(_conf, "trusted_identities", {}), "*", []))

_attestations := object.get(input.provenance, "attestations", [])

_verified contains a if {
	some a in _attestations
	a.verification == "verified"
}

_field_ok(ident, key, _) if not key in object.keys(ident)

_field_ok(ident, key, value) if {
	is_string(value)
	glob.match(ident[key], null, value)
}

_identity_ok(signer, ident) if {
	ident.issuer == signer.issuer
	_field_ok(ident, "san", signer.san)
	_field_ok(ident, "source_repository", signer.source_repository_uri)
	_field_ok(ident, "source_ref", signer.source_repository_ref)
	_field_ok(ident, "build_signer", signer.build_signer_uri)
	_field_ok(ident, "runner_environment", signer.runner_environment)
	not "key_id" in object.keys(ident)
}

_identity_ok(signer, ident) if {
	is_string(signer.key_id)
	ident.key_id == signer.key_id
}

trusted(a) if {
	some ident in trusted_identities
	_identity_ok(a.signer, ident)
}

# An attestation covers the artifact when it verified, its signer is trusted and its subject
# is the artifact digest.
covering contains a.index if {
	some a in _verified
	trusted(a)
	a.subject_matches
}

findings contains f if {
	required
	count(covering) == 0
	f := {
		"code": "provenance_missing",
		"verdict": "pause",
		"message": sprintf("no verified attestation from a trusted signer covers %s (%d supplied)", [input.artifact.digest, count(_attestations)]),
	}
}

findings contains f if {
	some a in _attestations
	a.verification in {"failed", "invalid"}
	f := {
		"code": "signature_invalid",
		"verdict": "rollback",
		"message": sprintf("attestation %d does not verify: %s", [a.index, object.get(a, "error", "unknown error")]),
	}
}

findings contains f if {
	some a in _attestations
	a.verification == "unsupported"
	f := {
		"code": "attestation_unsupported",
		"verdict": "rollback",
		"message": sprintf("attestation %d cannot be checked: %s", [a.index, object.get(a, "error", "unsupported format")]),
	}
}

findings contains f if {
	some a in _verified
	not trusted(a)
	f := {
		"code": "identity_mismatch",
		"verdict": "rollback",
		"message": sprintf("attestation %d signer %s (issuer %s) is not trusted for service %s", [a.index, _signer_name(a.signer), object.get(a.signer, "issuer", "none"), input.release.service]),
	}
}

_signer_name(s) := object.get(s, "san", null) if is_string(object.get(s, "san", null))

_signer_name(s) := sprintf("key %s", [s.key_id]) if {
	not is_string(object.get(s, "san", null))
	is_string(object.get(s, "key_id", null))
}

_signer_name(s) := "unknown" if {
	not is_string(object.get(s, "san", null))
	not is_string(object.get(s, "key_id", null))
}

findings contains f if {
	some a in _verified
	not a.subject_matches
	f := {
		"code": "subject_mismatch",
		"verdict": "rollback",
		"message": sprintf("attestation %d subjects %v do not include the artifact digest %s", [a.index, a.subject_digests, input.artifact.digest]),
	}
}

_allowed_builders := object.get(_conf, "allowed_builders", [])

findings contains f if {
	some a in _verified
	a.slsa != null
	count(_allowed_builders) > 0
	not lib.glob_any(_allowed_builders, object.get(a.slsa, "builder_id", ""))
	f := {
		"code": "provenance_untrusted_builder",
		"verdict": "rollback",
		"message": sprintf("attestation %d builder %q is not an allowed builder", [a.index, object.get(a.slsa, "builder_id", "")]),
	}
}

findings contains f if {
	some a in _verified
	a.slsa != null
	repos := _service_list("allowed_source_repositories")
	repos != null
	not lib.glob_any(repos, object.get(a.slsa, "source_repository", ""))
	f := {
		"code": "provenance_untrusted_builder",
		"verdict": "rollback",
		"message": sprintf("attestation %d source repository %q is not allowed for %s", [a.index, object.get(a.slsa, "source_repository", ""), input.release.service]),
	}
}

findings contains f if {
	some a in _verified
	a.slsa != null
	refs := _service_list("allowed_source_refs")
	refs != null
	not lib.glob_any(refs, object.get(a.slsa, "source_ref", ""))
	f := {
		"code": "provenance_untrusted_builder",
		"verdict": "rollback",
		"message": sprintf("attestation %d source ref %q is not allowed for %s", [a.index, object.get(a.slsa, "source_ref", ""), input.release.service]),
	}
}
