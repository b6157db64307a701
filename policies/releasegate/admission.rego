# Admission: "verify once, reuse at admission".
#
# The webhook does not verify evidence again. A CI `check` verified it and left a signed
# `allow` in the decision log; the webhook looks that record up for every pinned image and
# hands what it found to this policy as facts (input.admission, filled by
# engine/adapters/admission.py):
#   kind, group, supported    the workload kind and whether the adapter knows where its pod
#                             template lives (unknown kinds fail closed)
#   images[]                  every container, init container and ephemeral container image:
#                             {container, kind, image, digest (null: not pinned),
#                              prior_decision_id, prior_decision_age_s}
#   max_prior_age_s           how old a prior `allow` may be (service setting)
#
# Knobs (policy data releasegate.config.admission):
#   exempt_namespaces: [...]          default ["kube-system", "releasegate"]
#   exempt_labels: {"<key>": "<v>"}   a workload carrying one of these labels is exempt
#                                     (default none; only grant labels that deployers cannot
#                                     set on their own workloads, e.g. via a separate policy)
package releasegate.admission

import data.releasegate.lib

_conf := lib.setting("admission", {})

default_exempt_namespaces := ["kube-system", "releasegate"]

exempt_namespaces := object.get(_conf, "exempt_namespaces", default_exempt_namespaces)

exempt_labels := object.get(_conf, "exempt_labels", {})

_facts := object.get(input, "admission", null)

_subject := sprintf("%s %s/%s", [_facts.kind, object.get(_facts, "namespace", ""), object.get(_facts, "name", "")])

exempt if _facts.namespace in exempt_namespaces

exempt if {
	some key, value in exempt_labels
	object.get(_facts.labels, key, null) == value
}

# No admission facts at all: the adapter could not describe the request. Fail closed.
findings contains f if {
	_facts == null
	f := {
		"code": "no_prior_decision",
		"verdict": "pause",
		"message": "no admission facts were supplied; cannot look for a prior decision",
	}
}

findings contains f if {
	_facts != null
	not exempt
	not _facts.supported
	f := {
		"code": "kind_unsupported",
		"verdict": "pause",
		"message": sprintf("%s: releasegate does not know where %s/%s keeps its pod template; add the kind to the adapter or exempt the namespace", [_subject, _facts.group, _facts.kind]),
	}
}

findings contains f if {
	_facts != null
	not exempt
	some img in _facts.images
	img.digest == null
	f := {
		"code": "image_not_pinned",
		"verdict": "rollback",
		"message": sprintf("%s: %s %q uses image %q without a digest; reference it as <image>@sha256:<digest>", [_subject, _container_kind(img), img.container, img.image]),
	}
}

findings contains f if {
	_facts != null
	not exempt
	some img in _facts.images
	is_string(img.digest)
	img.prior_decision_id == null
	f := {
		"code": "no_prior_decision",
		"verdict": "pause",
		"message": sprintf("%s: no signed allow for %s in %s within %s; run `releasegate check` for this digest first", [_subject, img.digest, input.release.environment, _age_text(_facts.max_prior_age_s)]),
	}
}

findings contains f if {
	_facts != null
	not exempt
	some img in _facts.images
	is_string(img.digest)
	is_string(img.prior_decision_id)
	_stale(img)
	f := {
		"code": "no_prior_decision",
		"verdict": "pause",
		"message": sprintf("%s: the allow %s for %s is %s old, over the limit of %s; run `releasegate check` again", [_subject, img.prior_decision_id, img.digest, _age_text(img.prior_decision_age_s), _age_text(_facts.max_prior_age_s)]),
	}
}

# A prior decision without an age, or older than allowed, does not count.
_stale(img) if not is_number(img.prior_decision_age_s)

_stale(img) if img.prior_decision_age_s > _facts.max_prior_age_s

_container_kind(img) := replace(img.kind, "_", " ")

_age_text(s) := sprintf("%vs", [round(s)]) if is_number(s)

_age_text(s) := "an unknown time" if not is_number(s)
