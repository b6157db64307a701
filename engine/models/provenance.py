"""Facts about attestations: what was verified, who signed, what the provenance says."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.models.common import SectionStatus, StrictModel

VerificationOutcome = Literal["verified", "failed", "unsupported", "invalid"]
"""``verified``: cryptographically sound; ``failed``: a check failed (``signature_invalid``);
``unsupported``: a format the verifier cannot check (``attestation_unsupported``);
``invalid``: not parseable as what it claims to be (``signature_invalid``)."""


class SignerFacts(StrictModel):
    """The signer identity read from the verified signing certificate (or the key id)."""

    issuer: str | None = None
    san: str | None = None
    source_repository_uri: str | None = None
    source_repository_ref: str | None = None
    source_repository_digest: str | None = None
    build_signer_uri: str | None = None
    build_trigger: str | None = None
    runner_environment: str | None = None
    key_id: str | None = None


class SlsaFacts(StrictModel):
    """SLSA provenance (v0.2 or v1) from a verified in-toto Statement."""

    version: Literal["v0.2", "v1"]
    build_type: str | None = None
    builder_id: str | None = None
    source_repository: str | None = None
    source_ref: str | None = None
    source_commit: str | None = None
    started_on: str | None = None
    finished_on: str | None = None


class VsaFacts(StrictModel):
    """A SLSA Verification Summary Attestation v1."""

    verifier_id: str | None = None
    time_verified: str | None = None
    resource_uri: str | None = None
    verification_result: str | None = None
    verified_levels: list[str] = Field(default_factory=list)
    policy_uri: str | None = None


class AttestationFact(StrictModel):
    """One piece of attestation evidence after verification."""

    index: int
    bundle_digest: str
    media_type: str | None = None
    content: Literal["message_signature", "dsse", "unknown"] = "unknown"
    method: Literal["sigstore", "key"] | None = None
    verification: VerificationOutcome
    error: str | None = None
    signer: SignerFacts | None = None
    integrated_time: str | None = None
    payload_type: str | None = None
    statement_type: str | None = None
    predicate_type: str | None = None
    subject_digests: list[str] = Field(default_factory=list)
    subject_matches: bool = False
    slsa: SlsaFacts | None = None
    vsa: VsaFacts | None = None


class ProvenanceSection(StrictModel):
    """The ``provenance`` section of the input document."""

    status: SectionStatus
    message: str | None = None
    attestations: list[AttestationFact] = Field(default_factory=list)
