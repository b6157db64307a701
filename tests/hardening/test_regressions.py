"""Regression tests for bugs the hardening suite found, named after the bug."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.inputs.scans import build_vulnerabilities_section
from engine.models.request import ScanEvidence
from hardening import seeds
from hardening.hostile import put


@pytest.mark.parametrize("parser", sorted(seeds.SCAN_SEEDS))
@pytest.mark.parametrize("where", ["value", "key"])
def test_lone_surrogate_in_scan_report_is_input_error_not_500(parser: str, where: str) -> None:
    """JSON may carry ``"\\ud800"``; UTF-8 cannot. check_report crashed with
    UnicodeEncodeError (HTTP 500) when it measured such a report; now it is an InputError
    naming the field."""
    fmt, _ = seeds.SCAN_SEEDS[parser]
    report = seeds.scan_report(parser)
    report = put(report, ("extra",), "a\ud800b") if where == "value" else {**report, "\udc00": 1}
    evidence = ScanEvidence.model_validate({"format": fmt, "report": report})
    with pytest.raises(InputError) as err:
        build_vulnerabilities_section([evidence], artifact_digest=seeds.ARTIFACT_DIGEST)
    assert "not valid Unicode" in str(err.value.errors[0].message)
    expected = "evidence.scans[0].report.extra" if where == "value" else "evidence.scans[0].report"
    assert err.value.errors[0].loc == expected
