# Shared helpers for every policy area: configuration lookup, scope matching, requesters.
#
# Time comes only from input.now_ns (never time.now_ns()), so a stored input replays exactly.
package releasegate.lib

# The policy data document (policies/releasegate/config/data.json), empty when absent.
default cfg := {}

cfg := data.releasegate.config

# setting(path, default) reads a knob from the policy data, falling back to a default.
setting(path, fallback) := object.get(cfg, path, fallback)

# per_env(obj, fallback) picks the value for this environment, then "*", then the fallback.
per_env(obj, _) := obj[input.release.environment]

per_env(obj, fallback) := object.get(obj, "*", fallback) if not input.release.environment in object.keys(obj)

# glob_any(patterns, value) is true when one glob pattern (no delimiters) matches value.
glob_any(patterns, value) if {
	some p in patterns
	glob.match(p, null, value)
}

# in_scope(scope) is true when a scope object {services, environments, stages} covers this
# release. An absent list means "any".
in_scope(scope) if {
	glob_any(object.get(scope, "services", ["*"]), input.release.service)
	glob_any(object.get(scope, "environments", ["*"]), input.release.environment)
	glob_any(object.get(scope, "stages", ["*"]), input.release.stage)
}

# The people on whose behalf the release is asked for: the authenticated caller and the
# person the caller acts for. Neither may approve the release (separation of duties).
requesters contains r if {
	some key in ["caller", "requested_by"]
	r := object.get(input.release, key, null)
	is_string(r)
}
