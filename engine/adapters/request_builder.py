"""Assemble a decision request from ``check`` flags or a request file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.models.parse import load_json_file, parse_request
from engine.models.request import DecisionRequestV1, ScanFormat

_FLAG_FIELDS = ("service", "environment", "stage", "release_id")


def _split_artifact(value: str) -> dict[str, str]:
    """``sha256:<hex>`` or ``<uri>@sha256:<hex>``."""
    if value.startswith("sha256:"):
        return {"digest": value}
    uri, sep, digest = value.rpartition("@")
    if not sep:
        raise InputError(
            f"--artifact {value!r}: expected sha256:<hex> or <uri>@sha256:<hex>",
        )
    return {"uri": uri, "digest": digest}


def _scan_entry(value: str) -> dict[str, Any]:
    """``FILE`` or ``FORMAT:FILE`` (format one of the ScanFormat values)."""
    fmt, sep, path = value.partition(":")
    if sep and fmt in {f.value for f in ScanFormat}:
        return {"format": fmt, "report": load_json_file(Path(path), what="scan report")}
    return {"format": "auto", "report": load_json_file(Path(value), what="scan report")}


def _attestations(paths: list[str]) -> list[dict[str, Any]]:
    from engine.inputs.provenance import load_attestation_file

    out: list[dict[str, Any]] = []
    for path in paths:
        out.extend(load_attestation_file(Path(path)))
    return out


def request_from_args(args: argparse.Namespace) -> DecisionRequestV1:
    """The request named by ``--request``, or assembled from the individual flags."""
    if args.request:
        if args.artifact or any(getattr(args, f) for f in _FLAG_FIELDS):
            raise InputError("--request cannot be combined with --artifact/--service/... flags")
        return parse_request(load_json_file(Path(args.request), what="decision request"))
    missing = [
        f"--{f.replace('_', '-')}" for f in ("artifact", *_FLAG_FIELDS) if not getattr(args, f)
    ]
    if missing:
        raise InputError(f"give --request FILE, or all of: {', '.join(missing)}")
    release: dict[str, Any] = {
        "id": args.release_id,
        "service": args.service,
        "environment": args.environment,
        "stage": args.stage,
    }
    if args.version:
        release["version"] = args.version
    if args.requested_by:
        release["requested_by"] = args.requested_by
    document = {
        "release": release,
        "artifact": _split_artifact(args.artifact),
        "evidence": {
            "attestations": _attestations(args.attestation or []),
            "scans": [_scan_entry(s) for s in args.scan or []],
        },
        "dry_run": bool(args.dry_run),
    }
    return parse_request(document)
