"""Offline verification of Sigstore bundles and key-signed DSSE envelopes into facts.

How cryptographic soundness is enforced, independently of identity trust
------------------------------------------------------------------------
The verifier is ``sigstore.verify.Verifier(trusted_root=...)`` built from a *pinned*
``TrustedRoot`` file (package data ``engine/data/trusted_root.json`` or a configured
path). It is never ``Verifier.production()``, which refreshes/copies TUF metadata under
``~/.cache`` and trusts what it finds there; nothing here opens a socket or writes a file.

For every Sigstore bundle ``Verifier.verify_artifact`` / ``verify_dsse`` performs, in
this order, and raises on the first failure (sigstore-python 4.5.1, ``verifier.py``):

0. establishes the signing time from RFC 3161 timestamps signed by a TSA in the trusted
   root and/or the Rekor v1 integrated time *bound by a signed inclusion promise*;
1. builds the leaf certificate's chain to a Fulcio CA of the trusted root, valid at
   each of those times;
2. verifies the embedded SCT against the trusted root's CT log keys;
3. checks the Sigstore X.509 profile (digitalSignature, codeSigning EKU) and then
   calls the identity policy: ours is :class:`~.identity.RecordIdentityOnly`, which
   requires an issuer and a SAN to exist but accepts any value;
4. verifies the Rekor inclusion proof and its signed checkpoint with the trusted
   root's log keys; 5. verifies the SET (inclusion promise) when present;
6. checks the signing times fall inside the certificate's validity;
7. verifies the signature with the leaf key: over the artifact's SHA-256 (message
   signatures; the bundle's ``messageDigest`` must equal it) or over DSSE
   ``PAE(payloadType, payload)``;
8. checks the log entry body matches the bundle's signature, certificate and digest /
   payload hash (CVE-2022-36056 class).

Steps 0-2 and 4-8 do not depend on the policy object, so identity trust can be decided
later, in Rego (``identity_mismatch``), from the :class:`SignerFacts` read off the
*verified* leaf. Only the log entry kinds the library can check end to end are passed
to it (``hashedrekord`` 0.0.1/0.0.2, ``dsse`` 0.0.1); others are ``unsupported``.
Key-signed envelopes are verified in ``dsse_keys.py``. A fact is ``verified`` only after
all of the above and a well-formed statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm

from engine.errors import ConfigError
from engine.inputs.provenance.cache import CacheStats, SectionCache, VerificationCache
from engine.inputs.provenance.common import (
    Limits,
    Rejected,
    canonical_bytes,
    check_depth,
    sha256_prefixed,
)
from engine.inputs.provenance.common import field as get
from engine.inputs.provenance.dsse_keys import (
    TrustedKey,
    find_signing_key,
    load_public_key,
    parse_envelope,
)
from engine.inputs.provenance.identity import RecordIdentityOnly, signer_facts
from engine.inputs.provenance.intoto import parse_statement
from engine.inputs.provenance.slsa import slsa_facts, vsa_facts
from engine.models.provenance import AttestationFact, ProvenanceSection, VerificationOutcome
from engine.models.raw import EvidenceDocument, object_key, object_value

BUNDLE_MEDIA_TYPES = frozenset(str(t) for t in Bundle.BundleType)
SUPPORTED_ENTRIES = frozenset(
    {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1")}
)
_IDENTITY_POLICY = RecordIdentityOnly()
_MAX_EPOCH_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
# Everything the sigstore/cryptography verification path raises for bad or unverifiable
# material; anything else is a bug and propagates.
_VERIFY_ERRORS = (
    SigstoreError,
    ValueError,
    TypeError,
    x509.ExtensionNotFound,
    UnsupportedAlgorithm,
)


@contextmanager
def map_errors(outcome: VerificationOutcome, what: str) -> Iterator[None]:
    """Translate sigstore / cryptography errors raised in the block into ``Rejected``."""
    try:
        yield
    except _VERIFY_ERRORS as exc:
        raise Rejected(outcome, f"{what}: {exc}") from exc


class ProvenanceVerifier:
    """Verifies attestations offline against pinned trust material, with a result cache."""

    def __init__(
        self,
        trusted_root_path: Path,
        *,
        keys: Sequence[TrustedKey] = (),
        limits: Limits | None = None,
        cache: VerificationCache | None = None,
    ) -> None:
        """Build from a ``TrustedRoot`` JSON file and optional key-based verification keys."""
        try:
            root_bytes = Path(trusted_root_path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"trusted root {trusted_root_path}: {exc}") from exc
        with _config_errors(f"trusted root {trusted_root_path}"):
            root = TrustedRoot.from_file(str(trusted_root_path))
            self._verifier = Verifier(trusted_root=root)
        self._keys = tuple(keys)
        self.limits = limits or Limits()
        self._cache = cache if cache is not None else VerificationCache()
        self._sections = SectionCache(self._cache.max_size)
        material = [hashlib.sha256(root_bytes).hexdigest()]
        material += sorted(f"{k.name}={k.fingerprint}" for k in self._keys)
        self.trust_digest = sha256_prefixed("\n".join(material).encode())

    @classmethod
    def from_settings(
        cls,
        trusted_root_path: Path | None = None,
        public_keys: Mapping[str, Path] | None = None,
        *,
        limits: Limits | None = None,
        cache_size: int = 1024,
    ) -> ProvenanceVerifier:
        """The pinned public-good root (package data) unless a path is configured."""
        keys = [load_public_key(path, name=name) for name, path in (public_keys or {}).items()]
        cache = VerificationCache(cache_size)
        if trusted_root_path is not None:
            return cls(trusted_root_path, keys=keys, limits=limits, cache=cache)
        packaged = resources.files("engine").joinpath("data/trusted_root.json")
        with resources.as_file(packaged) as path:
            return cls(path, keys=keys, limits=limits, cache=cache)

    @property
    def cache_stats(self) -> CacheStats:
        """Cache hit/miss counters (exported as metrics by the service)."""
        return self._cache.stats()

    def evaluate(
        self, attestation: EvidenceDocument, *, artifact_digest: str, index: int = 0
    ) -> AttestationFact:
        """Verify one attestation for the artifact into a fact; every outcome is a fact.

        Never raises for bad input: malformed, failing and unsupported attestations come
        back with ``verification`` = ``invalid`` / ``failed`` / ``unsupported``. (A raw
        object whose text cannot be parsed is not an attestation yet: it raises
        :class:`engine.models.raw.UnreadableEvidence`, and its request is read eagerly.)
        """
        return self._evaluate(attestation, artifact_digest=artifact_digest, index=index)[0]

    def section(
        self, attestations: Sequence[EvidenceDocument], *, artifact_digest: str
    ) -> ProvenanceSection:
        """The ``ok`` section of one fact per attestation, in order (:meth:`evaluate`).

        When every fact is the verification cache's own object (a warm request), the section
        is the one made of those facts before (:class:`SectionCache`): no new model, and the
        same object for the pipeline to find its encoding by.
        """
        facts: list[AttestationFact] = []
        shared = True
        for i, attestation in enumerate(attestations):
            fact, cached = self._evaluate(attestation, artifact_digest=artifact_digest, index=i)
            facts.append(fact)
            shared = shared and cached
        return self._sections.section(facts, keep=shared)

    def _evaluate(
        self, attestation: EvidenceDocument, *, artifact_digest: str, index: int
    ) -> tuple[AttestationFact, bool]:
        """The fact, and whether it is the verification cache's own object."""
        # 1. Results are cached per (bundle, trust material, artifact). The key is a digest of
        # the bundle's text when it came as a raw object, else of its sorted-key JSON: equal
        # keys mean equal documents, so a hit skips the parse of a raw object, the depth walk
        # and the RFC 8785 encoding (all ran on the miss that filled it; a document nested
        # too deep is refused below and never cached).
        memo = object_key(attestation, sort_keys=True)
        key = (memo, self.trust_digest, artifact_digest) if memo is not None else None
        cached = self._cache.get(key) if key is not None else None
        if cached is None:
            document = object_value(attestation)
            try:
                # 2. Bound nesting before anything else looks into the document.
                check_depth(document, limits=self.limits, what="attestation")
            except Rejected as rejected:
                invalid = AttestationFact(
                    index=index,
                    bundle_digest="unknown",
                    verification="invalid",
                    error=rejected.message,
                )
                return invalid, False
            cached = self._evaluate_uncached(document, artifact_digest)
            if key is None or not self._cache.put(key, cached):
                return cached.model_copy(update={"index": index}), False
        if cached.index != index:
            return cached.model_copy(update={"index": index}), False
        # The cached fact itself (a frozen model, shared safely) when its index is right.
        return cached, True

    def _evaluate_uncached(
        self, attestation: Mapping[str, Any], artifact_digest: str
    ) -> AttestationFact:
        try:
            canonical = canonical_bytes(attestation, what="attestation")
        except Rejected as rejected:
            return AttestationFact(
                index=0, bundle_digest="unknown", verification="invalid", error=rejected.message
            )
        digest = sha256_prefixed(canonical)
        if len(canonical) > self.limits.max_bundle_bytes:
            return AttestationFact(
                index=0,
                bundle_digest=digest,
                verification="invalid",
                error=f"attestation: {len(canonical)} bytes exceeds {self.limits.max_bundle_bytes}",
            )
        return self._verify_uncached(attestation, canonical, digest, artifact_digest)

    def _verify_uncached(
        self, doc: Mapping[str, Any], canonical: bytes, digest: str, artifact_digest: str
    ) -> AttestationFact:
        draft: dict[str, Any] = {"index": 0, "bundle_digest": digest}
        try:
            if "mediaType" in doc:
                self._sigstore(doc, canonical, artifact_digest, draft)
            elif "payloadType" in doc or "signatures" in doc:
                self._keyed(doc, artifact_digest, draft)
            else:
                raise Rejected("invalid", "neither a Sigstore bundle nor a DSSE envelope")
        except Rejected as rejected:
            return AttestationFact(
                **_unverified(draft), verification=rejected.outcome, error=rejected.message
            )
        return AttestationFact(**draft, verification="verified")

    def _sigstore(
        self, doc: Mapping[str, Any], canonical: bytes, artifact: str, draft: dict[str, Any]
    ) -> None:
        # 1. Classify from the raw document; the library re-checks all of it.
        media_type = get(doc, "mediaType", str, where="bundle", required=True)
        draft.update(media_type=media_type, method="sigstore")
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise Rejected("unsupported", f"unknown bundle media type {media_type!r}")
        is_dsse = _content_kind(doc)
        draft["content"] = "dsse" if is_dsse else "message_signature"
        if is_dsse:
            # The library builds the envelope lazily, during verification; check its shape
            # (types, base64, exactly one signature) here so a malformed one is ``invalid``.
            envelope = parse_envelope(doc["dsseEnvelope"], where="bundle.dsseEnvelope")
            if len(envelope.signatures) != 1:
                raise Rejected("invalid", "bundle.dsseEnvelope.signatures: expected exactly one")
        kind, version, integrated = _log_entry(doc)
        if (kind, version) not in SUPPORTED_ENTRIES:
            raise Rejected("unsupported", f"transparency log entry type {kind}/{version}")
        # 2. Parse (certificates, base64, proofs) -> invalid on failure.
        with map_errors("invalid", "bundle"):
            bundle = Bundle.from_json(canonical)
        # 3. Cryptographic verification (module docstring, steps 0-8) -> failed.
        with map_errors("failed", "sigstore verification failed"):
            if is_dsse:
                payload_type, payload = self._verifier.verify_dsse(bundle, _IDENTITY_POLICY)
            else:
                hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=_digest_bytes(artifact))
                self._verifier.verify_artifact(hashed, bundle, _IDENTITY_POLICY)
        draft["signer"] = signer_facts(bundle.signing_certificate)
        if integrated is not None:
            draft["integrated_time"] = datetime.fromtimestamp(integrated, tz=UTC).isoformat()
        # 4. The signature covers the artifact digest itself, or a statement naming it.
        if is_dsse:
            self._statement(payload_type, payload, artifact, draft)
        else:
            draft.update(subject_digests=[artifact], subject_matches=True)

    def _keyed(self, doc: Mapping[str, Any], artifact: str, draft: dict[str, Any]) -> None:
        draft.update(content="dsse", method="key")
        envelope = parse_envelope(doc)
        draft["payload_type"] = envelope.payload_type
        trusted = find_signing_key(envelope, self._keys)
        draft["signer"] = {"key_id": trusted.name}
        self._statement(envelope.payload_type, envelope.payload, artifact, draft)

    def _statement(
        self, payload_type: str, payload: bytes, artifact: str, draft: dict[str, Any]
    ) -> None:
        draft["payload_type"] = payload_type
        statement = parse_statement(payload_type, payload, limits=self.limits)
        draft.update(
            statement_type=statement.statement_type,
            predicate_type=statement.predicate_type,
            subject_digests=list(statement.subject_sha256),
            subject_matches=artifact in statement.subject_sha256,
            slsa=slsa_facts(statement.predicate_type, statement.predicate),
            vsa=vsa_facts(statement.predicate_type, statement.predicate),
        )


_VERIFIED_ONLY = frozenset(
    {"signer", "integrated_time", "subject_digests", "subject_matches", "slsa", "vsa"}
)


def _unverified(draft: Mapping[str, Any]) -> dict[str, Any]:
    """Drop what only a verified attestation may assert (signer, subjects, SLSA)."""
    return {k: v for k, v in draft.items() if k not in _VERIFIED_ONLY}


def _content_kind(doc: Mapping[str, Any]) -> bool:
    """``True`` for DSSE, ``False`` for a message signature; exactly one must be present."""
    dsse = get(doc, "dsseEnvelope", dict, where="bundle", required=False)
    message = get(doc, "messageSignature", dict, where="bundle", required=False)
    if (dsse is None) == (message is None):
        raise Rejected("invalid", "bundle: needs exactly one of dsseEnvelope / messageSignature")
    return dsse is not None


def _log_entry(doc: Mapping[str, Any]) -> tuple[str, str, int | None]:
    """(kind, version, integrated time) of the bundle's single transparency log entry.

    The integrated time is reported only when an inclusion promise (SET) signs it; the
    verifier checks that SET, so the reported time is never an unverified claim.
    """
    material = get(doc, "verificationMaterial", dict, where="bundle", required=True)
    entries = get(material, "tlogEntries", list, where="bundle.verificationMaterial", required=True)
    if len(entries) != 1 or not isinstance(entries[0], dict):
        raise Rejected("invalid", "bundle.verificationMaterial.tlogEntries: expected one entry")
    where = "bundle.verificationMaterial.tlogEntries[0]"
    kind_version = get(entries[0], "kindVersion", dict, where=where, required=True)
    kind = get(kind_version, "kind", str, where=f"{where}.kindVersion", required=True)
    version = get(kind_version, "version", str, where=f"{where}.kindVersion", required=True)
    raw_time = entries[0].get("integratedTime", "0")
    if isinstance(raw_time, bool) or not isinstance(raw_time, str | int):
        raise Rejected("invalid", f"{where}.integratedTime: expected an integer string")
    if not str(raw_time).isdigit() or int(raw_time) > _MAX_EPOCH_SECONDS:
        raise Rejected("invalid", f"{where}.integratedTime: expected an integer string")
    signed = isinstance(entries[0].get("inclusionPromise"), dict) and int(raw_time) > 0
    return kind, version, int(raw_time) if signed else None


def _digest_bytes(artifact_digest: str) -> bytes:
    return bytes.fromhex(artifact_digest.removeprefix("sha256:"))


@contextmanager
def _config_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _VERIFY_ERRORS as exc:
        raise ConfigError(f"{what}: {exc}") from exc
