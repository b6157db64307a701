# A tiny fixed policy for the bundle tests (independent of the real policies/).
package releasegate.example

default allow := false

allow if {
	input.environment in data.releasegate.config.environments
	input.score >= data.releasegate.config.min_score
}

findings contains {"code": "example_denied", "verdict": "pause", "message": msg} if {
	not allow
	msg := sprintf("environment %v is not allowed", [input.environment])
}
