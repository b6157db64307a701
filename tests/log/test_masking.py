"""Masking of the stored input document (OPA mask.go style)."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.log.masking import REDACTED, MaskOp, MaskRule, apply_masks


def test_remove_and_upsert_with_wildcards_list_concrete_paths() -> None:
    doc = {
        "input": {
            "evidence": {"attestations": [{"a": 1}], "scans": []},
            "approvals": {
                "records": [
                    {"by": "bob", "comment": "lgtm"},
                    {"by": "eve"},
                    {"by": "al", "comment": "ok"},
                ]
            },
        }
    }
    rules = [
        MaskRule.parse("/input/evidence/attestations"),
        MaskRule.parse({"op": "upsert", "path": "/input/approvals/records/*/comment"}),
        MaskRule.parse("/input/does/not/exist"),
    ]
    out = apply_masks(doc, rules)
    assert out.erased == ["/input/evidence/attestations"]
    assert out.masked == [
        "/input/approvals/records/0/comment",
        "/input/approvals/records/2/comment",
    ]
    assert out.document["input"]["evidence"] == {"scans": []}
    assert [r.get("comment") for r in out.document["input"]["approvals"]["records"]] == [
        REDACTED,
        None,
        REDACTED,
    ]
    assert doc["input"]["evidence"]["attestations"] == [{"a": 1}]  # the original is untouched


def test_removing_array_elements_by_wildcard_keeps_indexes_honest() -> None:
    out = apply_masks({"input": {"xs": [1, 2, 3]}}, [MaskRule("/input/xs/*")])
    assert out.document == {"input": {"xs": []}}
    assert out.erased == ["/input/xs/0", "/input/xs/1", "/input/xs/2"]


def test_escaped_segments_and_custom_value() -> None:
    rule = MaskRule("/input/a~1b", MaskOp.UPSERT, value=0)
    out = apply_masks({"input": {"a/b": "secret"}}, [rule])
    assert out.document == {"input": {"a/b": 0}} and out.masked == ["/input/a~1b"]


@pytest.mark.parametrize("spec", ["input/x", "/", {"op": "explode", "path": "/x"}, 42])
def test_bad_rules_are_config_errors(spec: object) -> None:
    with pytest.raises(ConfigError):
        MaskRule.parse(spec)
