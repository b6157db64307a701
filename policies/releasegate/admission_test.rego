package releasegate.admission_test

import data.releasegate
import data.releasegate.admission
import data.releasegate.fixtures_test as fx

pinned := {
	"container": "app", "kind": "container",
	"image": sprintf("ghcr.io/acme/payments@%s", [fx.digest]), "digest": fx.digest,
	"prior_decision_id": "0193-prior", "prior_decision_age_s": 3600,
}

facts := {
	"operation": "CREATE", "kind": "Deployment", "group": "apps", "supported": true,
	"namespace": "payments", "name": "payments", "labels": {"app.kubernetes.io/name": "payments"},
	"namespace_labels": {}, "dry_run": false, "images": [pinned], "max_prior_age_s": 86400,
}

doc(patch) := object.union(fx.input_doc, {
	"adapter": "admission",
	"release": object.union(fx.input_doc.release, {"id": "payments/Deployment/payments"}),
	"admission": object.union(facts, patch),
})

image(patch) := object.union(pinned, patch)

codes(d) := c if {
	f := admission.findings with input as d
	c := fx.codes(f)
}

test_prior_allow_admits if {
	d := releasegate.decision with input as doc({}) with data.releasegate.config as fx.config
	d.verdict == "allow"
	d.reasons == []
}

test_only_admission_area_applies if {
	# The fixture's release would need approvals etc.; admission looks only at prior decisions.
	d := doc({})
	no_approvals := object.union(d, {"approvals": {"status": "ok", "records": []}})
	r := releasegate.decision with input as no_approvals with data.releasegate.config as fx.config
	r.verdict == "allow"
}

test_tag_is_not_pinned if {
	img := image({"image": "ghcr.io/acme/payments:1.4.2", "digest": null, "prior_decision_id": null, "prior_decision_age_s": null})
	d := releasegate.decision with input as doc({"images": [img]}) with data.releasegate.config as fx.config
	d.verdict == "rollback"
	[r.code | some r in d.reasons] == ["image_not_pinned"]
	d.reasons[0].policy == "releasegate.admission"
	contains(d.reasons[0].message, "ghcr.io/acme/payments:1.4.2")
}

test_init_container_message_names_kind if {
	img := image({"container": "migrate", "kind": "init_container", "image": "busybox", "digest": null, "prior_decision_id": null})
	some f in admission.findings with input as doc({"images": [img]})
	contains(f.message, "init container \"migrate\"")
}

test_no_prior_decision_pauses if {
	img := image({"prior_decision_id": null, "prior_decision_age_s": null})
	d := releasegate.decision with input as doc({"images": [img]}) with data.releasegate.config as fx.config
	d.verdict == "pause"
	[r.code | some r in d.reasons] == ["no_prior_decision"]
	contains(d.reasons[0].message, fx.digest)
}

test_stale_prior_decision_pauses if {
	img := image({"prior_decision_age_s": 90000})
	codes(doc({"images": [img]})) == {"no_prior_decision"}
	some f in admission.findings with input as doc({"images": [img]})
	contains(f.message, "90000s old")
}

test_prior_decision_without_age_does_not_count if {
	img := image({"prior_decision_age_s": null})
	codes(doc({"images": [img]})) == {"no_prior_decision"}
}

test_age_at_limit_still_counts if {
	codes(doc({"images": [image({"prior_decision_age_s": 86400})]})) == set()
}

test_every_image_is_judged if {
	tagged := image({"container": "sidecar", "image": "envoy:v1", "digest": null, "prior_decision_id": null})
	unknown := image({"container": "debug", "kind": "ephemeral_container", "prior_decision_id": null})
	d := releasegate.decision with input as doc({"images": [pinned, tagged, unknown]}) with data.releasegate.config as fx.config
	d.verdict == "rollback"
	{r.code | some r in d.reasons} == {"image_not_pinned", "no_prior_decision"}
}

test_unknown_kind_fails_closed if {
	d := releasegate.decision with input as doc({"kind": "Widget", "group": "example.com", "supported": false, "images": []}) with data.releasegate.config as fx.config
	d.verdict == "pause"
	d.reasons[0].code == "kind_unsupported"
	contains(d.reasons[0].message, "example.com/Widget")
}

test_no_images_is_allowed if {
	codes(doc({"operation": "DELETE", "images": []})) == set()
}

test_default_exempt_namespaces if {
	tagged := image({"digest": null, "prior_decision_id": null})
	codes(doc({"namespace": "kube-system", "images": [tagged]})) == set()
	codes(doc({"namespace": "releasegate", "kind": "Widget", "supported": false})) == set()
}

test_exempt_namespaces_from_data if {
	tagged := image({"digest": null, "prior_decision_id": null})
	conf := {"admission": {"exempt_namespaces": ["sandbox"]}}
	count(admission.findings) == 0 with input as doc({"namespace": "sandbox", "images": [tagged]}) with data.releasegate.config as conf

	# Replacing the list drops the defaults.
	count(admission.findings) == 1 with input as doc({"namespace": "kube-system", "images": [tagged]}) with data.releasegate.config as conf
}

test_exempt_labels_from_data if {
	tagged := image({"digest": null, "prior_decision_id": null})
	conf := {"admission": {"exempt_labels": {"releasegate.dev/exempt": "true"}}}
	labelled := doc({"labels": {"releasegate.dev/exempt": "true"}, "images": [tagged]})
	count(admission.findings) == 0 with input as labelled with data.releasegate.config as conf
	other := doc({"labels": {"releasegate.dev/exempt": "yes"}, "images": [tagged]})
	count(admission.findings) == 1 with input as other with data.releasegate.config as conf
}

test_missing_admission_facts_fail_closed if {
	d := releasegate.decision with input as object.union(doc({}), {"admission": null}) with data.releasegate.config as fx.config
	d.verdict == "pause"
	d.reasons[0].code == "no_prior_decision"
}

test_warn_mode_for_admission if {
	tagged := image({"digest": null, "prior_decision_id": null})
	conf := object.union(fx.config, {"enforcement": {"admission": {"prod": "warn"}}})
	d := releasegate.decision with input as doc({"images": [tagged]}) with data.releasegate.config as conf
	d.verdict == "allow"
	d.warnings[0].code == "image_not_pinned"
}
