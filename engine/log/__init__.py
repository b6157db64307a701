"""The signed, tamper-evident decision log.

Every decision becomes a record: the contract's Decision, the (masked) input document and
the request metadata, canonicalized with RFC 8785, hashed with SHA-256, chained to the
previous record by ``log.prev_hash``, signed with Ed25519 and appended as a leaf of an
RFC 9162 Merkle tree whose heads are published as C2SP ``tlog-checkpoint`` signed notes.

Public entry points: :class:`DecisionLog` (append, query, proofs, checkpoints, export),
:func:`verify_export` (offline audit), :func:`build_vsa_envelope` (SLSA VSA in DSSE).
"""

from __future__ import annotations

from engine.log.checkpoint import SignedCheckpoint
from engine.log.decision_log import DecisionLog, QueryPage, open_decision_log
from engine.log.masking import MaskRule
from engine.log.record import DecisionRecordV1, RequestMeta
from engine.log.signing import Ed25519Signer, KeyRing, Signer
from engine.log.store import RecordStore
from engine.log.verify import ExportVerificationError, VerifyReport, verify_export
from engine.log.vsa import build_vsa_envelope

__all__ = [
    "DecisionLog",
    "DecisionRecordV1",
    "Ed25519Signer",
    "ExportVerificationError",
    "KeyRing",
    "MaskRule",
    "QueryPage",
    "RecordStore",
    "RequestMeta",
    "SignedCheckpoint",
    "Signer",
    "VerifyReport",
    "build_vsa_envelope",
    "open_decision_log",
    "verify_export",
]
