"""The figures the long mode prints (and the closing note of issue 10 reports)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ClassMeasure:
    """Worst case over every input of one hostile class for one target."""

    inputs: int = 0
    max_seconds: float = 0.0
    peak_bytes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, *, seconds: float, peak: int, outcome: str) -> None:
        """Fold one measured input in."""
        self.inputs += 1
        self.max_seconds = max(self.max_seconds, seconds)
        self.peak_bytes = max(self.peak_bytes, peak)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass
class Figures:
    """Counters of one run; every ``add_*`` is cumulative."""

    inputs_per_parser: dict[str, int] = field(default_factory=dict)
    outcomes_per_parser: dict[str, dict[str, int]] = field(default_factory=dict)
    hostile: dict[str, dict[str, ClassMeasure]] = field(default_factory=dict)
    api_cases: dict[str, int] = field(default_factory=dict)
    api_server_errors: int = 0
    api_invalid_allowed: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    decisions_checked: int = 0
    decisions_lost: int = 0
    fail_open: int = 0
    tamper_detected: int = 0
    tamper_cases: int = 0
    bypass_refused: int = 0
    bypass_cases: int = 0
    leaks_found: int = 0
    notes: list[str] = field(default_factory=list)

    def parser_input(self, parser: str, outcome: str) -> None:
        """Count one fuzzed input of ``parser`` and its outcome."""
        self.inputs_per_parser[parser] = self.inputs_per_parser.get(parser, 0) + 1
        outcomes = self.outcomes_per_parser.setdefault(parser, {})
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def hostile_input(
        self, target: str, klass: str, *, seconds: float, peak: int, outcome: str
    ) -> None:
        """Record one measured hostile input."""
        by_class = self.hostile.setdefault(target, {})
        by_class.setdefault(klass, ClassMeasure()).add(seconds=seconds, peak=peak, outcome=outcome)

    def fault(self, kind: str, count: int = 1) -> None:
        """Count injected faults of ``kind``."""
        self.faults_injected[kind] = self.faults_injected.get(kind, 0) + count

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every figure."""
        return asdict(self)

    def dumps(self) -> str:
        """Pretty JSON."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def render(self) -> str:
        """The human-readable report the long mode prints."""
        out = ["== parsers: inputs tried (outcomes) =="]
        for name in sorted(self.inputs_per_parser):
            outcomes = ", ".join(
                f"{k} {v}" for k, v in sorted(self.outcomes_per_parser[name].items())
            )
            out.append(f"  {name:<20} {self.inputs_per_parser[name]:>7}  ({outcomes})")
        out.append("== hostile inputs: worst time / peak traced memory per class (all targets) ==")
        by_class: dict[str, ClassMeasure] = {}
        for per_target in self.hostile.values():
            for klass, m in per_target.items():
                worst = by_class.setdefault(klass, ClassMeasure())
                worst.inputs += m.inputs
                worst.max_seconds = max(worst.max_seconds, m.max_seconds)
                worst.peak_bytes = max(worst.peak_bytes, m.peak_bytes)
                for outcome, n in m.outcomes.items():
                    worst.outcomes[outcome] = worst.outcomes.get(outcome, 0) + n
        for klass, m in sorted(by_class.items()):
            kinds = sorted({o.split(":")[0] for o in m.outcomes})
            out.append(
                f"  {klass:<20} n={m.inputs:<4} max {m.max_seconds * 1000:8.1f} ms  "
                f"peak {m.peak_bytes / 2**20:7.1f} MiB  -> {','.join(kinds)}"
            )
        out.append("== hostile inputs: per target (worst over its classes) ==")
        for name in sorted(self.hostile):
            ms = self.hostile[name].values()
            seconds = max(m.max_seconds for m in ms)
            peak = max(m.peak_bytes for m in ms)
            n = sum(m.inputs for m in ms)
            out.append(
                f"  {name:<30} n={n:<3} max {seconds * 1000:8.1f} ms  peak {peak / 2**20:7.1f} MiB"
            )
        out.append("== API (schemathesis): cases per operation (all roles, both modes) ==")
        per_op: dict[str, int] = {}
        for key, count in self.api_cases.items():
            op = key.split(" [")[0]
            per_op[op] = per_op.get(op, 0) + count
        for op, count in sorted(per_op.items()):
            out.append(f"  {op:<40} {count:>6}")
        out.append(f"  total {sum(per_op.values())} cases")
        out.append(f"  server errors (5xx): {self.api_server_errors}")
        out.append(f"  allow verdicts from invalid requests: {self.api_invalid_allowed}")
        out.append("== faults injected ==")
        for kind, count in sorted(self.faults_injected.items()):
            out.append(f"  {kind:<44} {count:>6}")
        out.append("== decisions ==")
        out.append(f"  checked against the log: {self.decisions_checked}")
        out.append(f"  lost (must be 0):        {self.decisions_lost}")
        out.append(f"  fail-open allows (must be 0): {self.fail_open}")
        out.append("== tamper / bypass ==")
        out.append(f"  tamper cases detected: {self.tamper_detected}/{self.tamper_cases}")
        out.append(f"  bundle bypass attempts refused: {self.bypass_refused}/{self.bypass_cases}")
        out.append(f"  secrets found in logs (must be 0): {self.leaks_found}")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)
