"""releasegate hardening: fuzzing, fault injection, crash durability and security checks.

The pytest suite (``tests/hardening``) runs a bounded share of every check; the long mode,
``python -m hardening [--quick] [--json FILE]``, runs more examples and repetitions and
prints the figures (inputs tried per parser, faults injected, decisions checked and lost,
tamper and bypass cases detected). See ``docs/hardening.md``.

Modules:

* :mod:`hardening.seeds`     real corpus documents every parser fuzzer starts from;
* :mod:`hardening.hostile`   hostile input classes (deep nesting, huge arrays, ...), measured;
* :mod:`hardening.parsers`   each evidence parser as a fuzz target, and the Hypothesis runs;
* :mod:`hardening.apifuzz`   schemathesis against the served OpenAPI, every route and role;
* :mod:`hardening.service`   ``releasegate serve`` subprocesses, tokens, client receipts;
* :mod:`hardening.faults`    OPA killed / hanging, Prometheus down / slow, database faults;
* :mod:`hardening.durability` ``kill -9`` under load; several services on one PostgreSQL;
* :mod:`hardening.security`  secrets in logs, bundle-signature bypass attempts;
* :mod:`hardening.figures`   the counters the long mode prints.
"""

from __future__ import annotations

from hardening.figures import Figures

__all__ = ["Figures"]
