package releasegate.freeze_test

import data.releasegate.fixtures_test as fx
import data.releasegate.freeze

absolute := {"name": "year-end", "environments": ["prod"], "start": "2026-11-20T00:00:00Z", "end": "2026-12-01T00:00:00Z"}

conf(windows) := object.union(fx.config, {"freeze": {"windows": windows}})

test_inside_absolute_window if {
	f := freeze.findings with input as fx.input_doc with data.releasegate.config as conf([absolute])
	fx.codes(f) == {"change_freeze"}
}

test_outside_absolute_window if {
	w := object.union(absolute, {"start": "2026-12-21T00:00:00Z", "end": "2027-01-04T00:00:00Z"})
	count(freeze.findings) == 0 with input as fx.input_doc with data.releasegate.config as conf([w])
}

test_end_is_exclusive if {
	w := object.union(absolute, {"end": "2026-11-26T12:00:00Z"})
	count(freeze.findings) == 0 with input as fx.input_doc with data.releasegate.config as conf([w])
}

test_other_environment_not_frozen if {
	doc := fx.with_release({"environment": "staging"})
	count(freeze.findings) == 0 with input as doc with data.releasegate.config as conf([absolute])
}

test_build_stage_not_frozen if {
	doc := fx.with_release({"stage": "build"})
	count(freeze.findings) == 0 with input as doc with data.releasegate.config as conf([absolute])
}

test_break_glass_lifts_freeze if {
	b := object.union(fx.approval, {"kind": "break_glass"})
	doc := fx.with_section("approvals", {"status": "ok", "records": [b]})
	count(freeze.findings) == 0 with input as doc with data.releasegate.config as conf([absolute])
}

# Thursdays 12:00-14:00 in Berlin (UTC+1 in November): 12:00Z is 13:00 local.
weekly(from, to, tz) := {"name": "weekly", "environments": ["prod"], "timezone": tz, "weekly": {"days": ["Thursday"], "from": from, "to": to}}

test_weekly_window_in_timezone if {
	f := freeze.findings with input as fx.input_doc with data.releasegate.config as conf([weekly("12:00", "14:00", "Europe/Berlin")])
	fx.codes(f) == {"change_freeze"}
}

test_weekly_window_timezone_edge if {
	# 13:00 local is the end of the window: not frozen. In UTC the same window would apply.
	count(freeze.findings) == 0 with input as fx.input_doc with data.releasegate.config as conf([weekly("11:00", "13:00", "Europe/Berlin")])
	f := freeze.findings with input as fx.input_doc with data.releasegate.config as conf([weekly("11:00", "13:00", "UTC")])
	fx.codes(f) == {"change_freeze"}
}

test_weekly_other_day if {
	w := object.union(weekly("00:00", "23:59", "UTC"), {"weekly": {"days": ["Friday"], "from": "00:00", "to": "23:59"}})
	count(freeze.findings) == 0 with input as fx.input_doc with data.releasegate.config as conf([w])
}

overnight := {"name": "weekend", "timezone": "UTC", "weekly": {"days": ["Friday"], "from": "18:00", "to": "06:00"}}

test_overnight_window_evening_part if {
	# Friday 2026-11-27 20:00Z
	doc := object.union(fx.input_doc, {"now_ns": 1795809600000000000})
	fx.codes(freeze.findings) == {"change_freeze"} with input as doc with data.releasegate.config as conf([overnight])
}

test_overnight_window_morning_part if {
	# Saturday 2026-11-28 02:00Z
	doc := object.union(fx.input_doc, {"now_ns": 1795831200000000000})
	fx.codes(freeze.findings) == {"change_freeze"} with input as doc with data.releasegate.config as conf([overnight])
}

test_overnight_window_outside if {
	count(freeze.findings) == 0 with input as fx.input_doc with data.releasegate.config as conf([overnight])
}
