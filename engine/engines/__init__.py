"""Policy engines. OPA is the only evaluator; ``FakeEngine`` stands in for unit tests."""
