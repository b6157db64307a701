package releasegate.approvals_test

import data.releasegate.approvals
import data.releasegate.fixtures_test as fx

with_records(records) := fx.with_section("approvals", {"status": "ok", "records": records})

test_valid_approval_satisfies if {
	count(approvals.findings) == 0 with input as fx.input_doc with data.releasegate.config as fx.config
}

test_missing_approval if {
	f := approvals.findings with input as with_records([]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing"}
}

test_self_approval_by_requested_by_does_not_count if {
	a := object.union(fx.approval, {"approver": "alice@example.com"})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing", "approval_self"}
}

test_self_approval_by_caller_does_not_count if {
	a := object.union(fx.approval, {"approver": "ci-pipeline"})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing", "approval_self"}
}

test_expired_approval_does_not_count if {
	a := object.union(fx.approval, {"expires_ns": fx.now - 1})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing", "approval_expired"}
}

test_expiry_boundary_is_exclusive if {
	a := object.union(fx.approval, {"expires_ns": fx.now})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	"approval_expired" in fx.codes(f)
}

test_revoked_approval_does_not_count if {
	r := object.union(fx.approval, {"id": "ap-2", "kind": "revoke", "revokes": "ap-1"})
	f := approvals.findings with input as with_records([fx.approval, r]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing"}
}

test_approval_for_other_artifact_does_not_count if {
	a := object.union(fx.approval, {"artifact_digest": "sha256:bb"})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing"}
}

test_approval_without_role_does_not_count if {
	a := object.union(fx.approval, {"approver_roles": ["ci"]})
	f := approvals.findings with input as with_records([a]) with data.releasegate.config as fx.config
	fx.codes(f) == {"approval_missing"}
	count(f) == 2
}

test_two_required_distinct_approvers if {
	conf := object.union(fx.config, {"approvals": {"required": {"prod": 2}}})
	same := object.union(fx.approval, {"id": "ap-2"})
	f := approvals.findings with input as with_records([fx.approval, same]) with data.releasegate.config as conf
	fx.codes(f) == {"approval_missing"}
	other := object.union(fx.approval, {"id": "ap-3", "approver": "dave@example.com"})
	count(approvals.findings) == 0 with input as with_records([fx.approval, other]) with data.releasegate.config as conf
}

test_not_needed_outside_stages_or_envs if {
	count(approvals.findings) == 0 with input as object.union(with_records([]), {"release": object.union(fx.input_doc.release, {"stage": "build"})}) with data.releasegate.config as fx.config
	count(approvals.findings) == 0 with input as object.union(with_records([]), {"release": object.union(fx.input_doc.release, {"environment": "dev"})}) with data.releasegate.config as fx.config
}

test_break_glass if {
	b := object.union(fx.approval, {"kind": "break_glass"})
	approvals.break_glass with input as with_records([b]) with data.releasegate.config as fx.config
	self := object.union(b, {"approver": "alice@example.com"})
	not approvals.break_glass with input as with_records([self]) with data.releasegate.config as fx.config
}
