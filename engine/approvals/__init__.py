"""Human approvals: an append-only store that feeds the ``approvals`` facts to Rego."""

from __future__ import annotations

from engine.approvals.store import ApprovalInput, ApprovalStore

__all__ = ["ApprovalInput", "ApprovalStore"]
