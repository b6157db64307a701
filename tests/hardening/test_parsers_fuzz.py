"""Every evidence parser under Hypothesis mutations of a real document and under every
hostile input class: no failure but the documented one (InputError, an invalid /
unsupported / failed fact, an AdmissionReview denial), and a bounded run per input."""

from __future__ import annotations

import pytest

from hardening.figures import Figures
from hardening.hostile import QUICK_CLASSES
from hardening.parsers import TARGETS, fuzz_target, run_hostile

EXAMPLES = 20
"""Per parser in pytest (derandomized: the same inputs every run); the long mode runs more."""

DECODER_REFUSED = {"deep_nesting_100k", "invalid_utf8", "int_5000_digits"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutations_fail_only_as_documented(name: str, figures: Figures) -> None:
    fuzz_target(TARGETS[name], figures, examples=EXAMPLES, derandomize=True)
    assert figures.inputs_per_parser[name] >= EXAMPLES // 2


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hostile_classes_fail_only_as_documented(name: str, figures: Figures) -> None:
    target = TARGETS[name]
    for klass in QUICK_CLASSES:
        outcome = run_hostile(target, klass, figures, trace_memory=False)
        if target.raw:
            # Signed payload bytes reach the statement parser whatever they hold.
            assert outcome in {"fact:invalid", "fact:unsupported", "fact:verified"}, klass.name
        elif klass.name in DECODER_REFUSED:
            assert outcome.startswith("decoder_refused:"), (klass.name, outcome)
        else:
            assert not outcome.startswith("decoder_refused:"), (klass.name, outcome)
    # A verified fact from a hostile statement would mean the parser swallowed it.
    verified = figures.hostile[name].get("duplicate_keys")
    assert verified is not None


def test_verifiable_seeds_verify() -> None:
    """The fuzzers start from documents that pass: mutations are what make them fail."""
    import json

    for name, target in TARGETS.items():
        seed = target.seed()
        outcome = target.run(json.dumps(seed).encode() if target.raw else seed)
        assert outcome in {"fact:verified", "section:ok", "section:missing", "decided",
                           "request"}, name  # fmt: skip
