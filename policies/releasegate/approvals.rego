# Human approvals: counting, roles, expiry, revocation and separation of duties.
#
# Approval records reach this policy as facts (input.approvals.records); nothing about
# their validity is decided in Python. An approval counts when it names this release id,
# artifact digest and environment, is not expired at input.now_ns, is not revoked, was
# given by someone holding an approver role, and its approver is not a requester.
package releasegate.approvals

import data.releasegate.lib

_conf := lib.setting("approvals", {})

# Knobs (policy data releasegate.config.approvals):
#   required: {"<env>": n, "*": n}     approvals needed (default: prod 1, otherwise 0)
#   stages: [...]                      stages that need them (default deploy, promote)
#   roles: [...]                       roles that may approve (default ["approver"])
#   break_glass_roles: [...]           roles whose break_glass approvals count (default ["approver"])
required := lib.per_env(object.get(_conf, "required", {"prod": 1}), 0)

stages := object.get(_conf, "stages", ["deploy", "promote"])

roles := object.get(_conf, "roles", ["approver"])

break_glass_roles := object.get(_conf, "break_glass_roles", ["approver"])

_records := object.get(input.approvals, "records", [])

# Records about exactly this release, artifact and environment.
_relevant contains a if {
	some a in _records
	a.release_id == input.release.id
	a.artifact_digest == input.artifact.digest
	a.environment == input.release.environment
}

revoked contains a.revokes if {
	some a in _records
	a.kind == "revoke"
	is_string(a.revokes)
}

_live(a) if {
	not a.id in revoked
	a.expires_ns > input.now_ns
}

_by_requester(a) if a.approver in lib.requesters

_has_role(a, allowed) if {
	some r in a.approver_roles
	r in allowed
}

valid_approvers contains a.approver if {
	some a in _relevant
	a.kind == "approve"
	_live(a)
	_has_role(a, roles)
	not _by_requester(a)
}

# A valid break-glass approval lets a release through a freeze or an exhausted budget.
break_glass if {
	some a in _relevant
	a.kind == "break_glass"
	_live(a)
	_has_role(a, break_glass_roles)
	not _by_requester(a)
}

_needed if {
	input.release.stage in stages
	required > 0
	count(valid_approvers) < required
}

findings contains f if {
	_needed
	f := {
		"code": "approval_missing",
		"verdict": "pause",
		"message": sprintf("%d of %d required approvals for release %s in %s", [count(valid_approvers), required, input.release.id, input.release.environment]),
	}
}

findings contains f if {
	_needed
	some a in _relevant
	a.kind in {"approve", "break_glass"}
	not a.id in revoked
	_by_requester(a)
	f := {
		"code": "approval_self",
		"verdict": "pause",
		"message": sprintf("approval %s by %s does not count: the approver requested this release", [a.id, a.approver]),
	}
}

findings contains f if {
	_needed
	some a in _relevant
	a.kind == "approve"
	not a.id in revoked
	a.expires_ns <= input.now_ns
	f := {
		"code": "approval_expired",
		"verdict": "pause",
		"message": sprintf("approval %s by %s expired at %s", [a.id, a.approver, time.format(a.expires_ns)]),
	}
}

findings contains f if {
	_needed
	some a in _relevant
	a.kind == "approve"
	_live(a)
	not _by_requester(a)
	not _has_role(a, roles)
	f := {
		"code": "approval_missing",
		"verdict": "pause",
		"message": sprintf("approval %s by %s does not count: none of the roles %v", [a.id, a.approver, roles]),
	}
}
