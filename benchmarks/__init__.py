"""Benchmarks of the real releasegate service (issue 9): ``python -m benchmarks --help``.

The service runs as its own process (``releasegate serve``: uvicorn, managed OPA, SQLite or
PostgreSQL); a separate load-generator process drives it over loopback with bounded
closed-loop (or paced) load; baselines (bare OPA, OPA with console decision logs) are
measured in the same run. Performance is measured here, never by timed test assertions.
"""
