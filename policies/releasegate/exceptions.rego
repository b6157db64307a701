# Exceptions (waivers): a recorded, scoped, expiring permission to proceed despite a finding.
#
# Knobs (policy data releasegate.config.exceptions): a list of
#   {"id", "services"?, "environments"?, "stages"?, "reason"?: "<reason code>",
#    "vulnerabilities"?: ["CVE-...", ...], "ticket", "approved_by", "expires"?: "<RFC 3339>"}
# An exception covers a finding when its scope matches the release and it names the
# finding's reason code or one of the finding's vulnerability ids or aliases. An active
# exception turns the finding into an `exception_applied` warning; an expired one leaves the
# finding in force and adds an `exception_expired` warning. An exception without "expires"
# never expires unless releasegate.config.exceptions_require_expiry is true, in which case it
# is not applied at all.
package releasegate.exceptions

import data.releasegate.lib

exceptions := lib.setting("exceptions", [])

require_expiry := lib.setting("exceptions_require_expiry", false)

_names_finding(e, f) if e.reason == f.code

_names_finding(e, f) if {
	some id in object.get(e, "vulnerabilities", [])
	id in _finding_ids(f)
}

_finding_ids(f) := {id | some id in array.concat([object.get(f, "ref", "")], object.get(f, "aliases", []))}

covers(e, f) if {
	lib.in_scope(e)
	_names_finding(e, f)
}

expired(e) if time.parse_rfc3339_ns(e.expires) <= input.now_ns

_usable(e) if {
	"expires" in object.keys(e)
	not expired(e)
}

_usable(e) if {
	not "expires" in object.keys(e)
	not require_expiry
}

# The first usable exception (by id) that covers finding f; undefined when none does.
waiver_for(f) := min({e.id | some e in exceptions; covers(e, f); _usable(e)})

by_id[e.id] := e if some e in exceptions

applied_message(f, id) := sprintf("%s waived by exception %s (ticket %s, approved by %s%s): %s", [
	f.code, id, object.get(by_id[id], "ticket", "none"),
	object.get(by_id[id], "approved_by", "unknown"), _until(by_id[id]), f.message,
])

_until(e) := sprintf(", until %s", [e.expires]) if e.expires

_until(e) := "" if not "expires" in object.keys(e)

expired_for(f) := {e.id |
	some e in exceptions
	covers(e, f)
	"expires" in object.keys(e)
	expired(e)
}

expired_message(f, id) := sprintf("exception %s for %s expired at %s (ticket %s); the finding is enforced: %s", [
	id, f.code, by_id[id].expires, object.get(by_id[id], "ticket", "none"), f.message,
])
