# Change freezes: absolute windows and weekly recurring windows in an IANA timezone.
#
# Knobs (policy data releasegate.config.freeze):
#   windows: [{
#     "name": "...", "services": [...], "environments": [...], "stages": [...],
#     "start": "<RFC 3339>", "end": "<RFC 3339>"                      (absolute), or
#     "weekly": {"days": ["Friday", ...], "from": "HH:MM", "to": "HH:MM"},
#     "timezone": "Europe/Berlin"                                       (recurring)
#   }]
# A weekly window whose "to" is not after "from" runs overnight into the next day. Days are
# the local weekday at which the window starts. A valid break-glass approval lifts a freeze.
package releasegate.freeze

import data.releasegate.approvals
import data.releasegate.lib

windows := object.get(lib.setting("freeze", {}), "windows", [])

default_stages := ["deploy", "canary", "promote"]

_scoped(w) if lib.in_scope(object.union({"stages": default_stages}, w))

_minutes(hhmm) := (to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))

_local_minutes(ns, tz) := (c[0] * 60) + c[1] if c := time.clock([ns, tz])

_active(w) if {
	w.start
	time.parse_rfc3339_ns(w.start) <= input.now_ns
	input.now_ns < time.parse_rfc3339_ns(w.end)
}

# Same-day weekly window: from <= now < to on one of the listed days.
_active(w) if {
	tz := object.get(w, "timezone", "UTC")
	from := _minutes(w.weekly.from)
	to := _minutes(w.weekly.to)
	from < to
	time.weekday([input.now_ns, tz]) in w.weekly.days
	m := _local_minutes(input.now_ns, tz)
	from <= m
	m < to
}

# Overnight weekly window, evening part: on a listed day, at or after "from".
_active(w) if {
	tz := object.get(w, "timezone", "UTC")
	_minutes(w.weekly.to) <= _minutes(w.weekly.from)
	time.weekday([input.now_ns, tz]) in w.weekly.days
	_local_minutes(input.now_ns, tz) >= _minutes(w.weekly.from)
}

# Overnight weekly window, morning part: the day after a listed day, before "to".
_active(w) if {
	tz := object.get(w, "timezone", "UTC")
	_minutes(w.weekly.to) <= _minutes(w.weekly.from)
	yesterday := time.add_date(input.now_ns, 0, 0, -1)
	time.weekday([yesterday, tz]) in w.weekly.days
	_local_minutes(input.now_ns, tz) < _minutes(w.weekly.to)
}

active_windows contains w.name if {
	some w in windows
	_scoped(w)
	_active(w)
}

findings contains f if {
	some name in active_windows
	not approvals.break_glass
	f := {
		"code": "change_freeze",
		"verdict": "pause",
		"message": sprintf("change freeze %q is in effect for %s in %s; a break-glass approval lifts it", [name, input.release.service, input.release.environment]),
	}
}
