"""Regression tests for bugs the hardening suite found, named after the bug."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError, InputError
from engine.inputs.scans import build_vulnerabilities_section
from engine.log.keystore import (
    PRIVATE_KEY_FILE,
    generate_signing_key,
    keys_dir,
    load_signing_key,
)
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


def test_lost_signing_key_is_not_silently_replaced_at_start(tmp_path: Path) -> None:
    """With a key ring on disk and the private key gone, ``serve`` (``create=True``) used to
    generate a new key and sign on; it now refuses, naming the key and the way out."""
    first, _ = load_signing_key(tmp_path, create=True)  # the first start creates it
    (keys_dir(tmp_path) / PRIVATE_KEY_FILE).unlink()
    with pytest.raises(ConfigError, match="missing, but the key ring lists 1 earlier key"):
        load_signing_key(tmp_path, create=True)
    assert not (keys_dir(tmp_path) / PRIVATE_KEY_FILE).exists()
    # A deliberate rotation is still possible, and keeps the old key verifiable.
    generate_signing_key(tmp_path)
    signer, ring = load_signing_key(tmp_path, create=True)
    assert signer.key_id != first.key_id and first.key_id in ring
