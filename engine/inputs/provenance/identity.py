"""Signer identity: the explicit crypto-only policy and the Fulcio certificate reader.

Identity *trust* is not decided here. sigstore-python's ``Verifier`` asks a
``VerificationPolicy`` to judge the leaf certificate at step (3) of its verification; we
pass :class:`RecordIdentityOnly`, which checks only that the certificate *carries* an
identity (an OIDC issuer extension and at least one SAN) and accepts any value. Every
cryptographic step runs regardless of the policy (see ``verifier.py``). The identity is
then read from the verified leaf by :func:`signer_facts` and judged in Rego
(``releasegate.provenance``, reason ``identity_mismatch``).

Fulcio extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md):
``1.3.6.1.4.1.57264.1.1`` issuer (legacy, raw bytes) and ``.1.8`` issuer (DER UTF8String);
``.1.9`` build signer URI, ``.1.11`` runner environment, ``.1.12`` source repository URI,
``.1.13`` source repository digest, ``.1.14`` source repository ref, ``.1.20`` build
trigger (DER UTF8String); legacy GitHub ``.1.2`` trigger, ``.1.3`` SHA and ``.1.6`` ref
(raw bytes) are used only when the newer ones are absent (legacy ``.1.5`` holds
``owner/repo``, not a URI, so it is not used for ``source_repository_uri``).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.x509 import ObjectIdentifier
from sigstore.errors import VerificationError

from engine.models.provenance import SignerFacts

_FULCIO = "1.3.6.1.4.1.57264.1."
ISSUER_LEGACY = ObjectIdentifier(_FULCIO + "1")
GITHUB_TRIGGER_LEGACY = ObjectIdentifier(_FULCIO + "2")
GITHUB_SHA_LEGACY = ObjectIdentifier(_FULCIO + "3")
GITHUB_REF_LEGACY = ObjectIdentifier(_FULCIO + "6")
OTHERNAME_USERNAME = ObjectIdentifier(_FULCIO + "7")
ISSUER = ObjectIdentifier(_FULCIO + "8")
BUILD_SIGNER_URI = ObjectIdentifier(_FULCIO + "9")
RUNNER_ENVIRONMENT = ObjectIdentifier(_FULCIO + "11")
SOURCE_REPOSITORY_URI = ObjectIdentifier(_FULCIO + "12")
SOURCE_REPOSITORY_DIGEST = ObjectIdentifier(_FULCIO + "13")
SOURCE_REPOSITORY_REF = ObjectIdentifier(_FULCIO + "14")
BUILD_TRIGGER = ObjectIdentifier(_FULCIO + "20")


class RecordIdentityOnly:
    """A ``VerificationPolicy`` that defers identity trust to Rego, explicitly.

    Unlike ``sigstore.verify.policy.UnsafeNoOp`` it is not silent and not empty: it
    rejects a certificate that carries no OIDC issuer or no SAN (nothing to judge), and
    accepts every *value*, because which issuers, SANs and workflows are trusted for a
    service is policy (``identity_mismatch`` in ``releasegate.provenance``). It has no
    effect on the cryptographic checks the verifier performs around it.
    """

    def verify(self, cert: x509.Certificate) -> None:
        """Raise ``VerificationError`` unless ``cert`` names an issuer and a subject."""
        if _issuer(cert) is None:
            raise VerificationError("certificate carries no OIDC issuer extension")
        if _san(cert) is None:
            raise VerificationError("certificate carries no subject alternative name")


def signer_facts(cert: x509.Certificate) -> SignerFacts:
    """Read the signer identity from a verified Fulcio leaf certificate."""
    return SignerFacts(
        issuer=_issuer(cert),
        san=_san(cert),
        source_repository_uri=_utf8(cert, SOURCE_REPOSITORY_URI),
        source_repository_ref=_utf8(cert, SOURCE_REPOSITORY_REF) or _raw(cert, GITHUB_REF_LEGACY),
        source_repository_digest=_utf8(cert, SOURCE_REPOSITORY_DIGEST)
        or _raw(cert, GITHUB_SHA_LEGACY),
        build_signer_uri=_utf8(cert, BUILD_SIGNER_URI),
        build_trigger=_utf8(cert, BUILD_TRIGGER) or _raw(cert, GITHUB_TRIGGER_LEGACY),
        runner_environment=_utf8(cert, RUNNER_ENVIRONMENT),
    )


def _issuer(cert: x509.Certificate) -> str | None:
    return _utf8(cert, ISSUER) or _raw(cert, ISSUER_LEGACY)


def _san(cert: x509.Certificate) -> str | None:
    """The first URI SAN, else e-mail, else Fulcio username OtherName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        return uri
    for email in san.get_values_for_type(x509.RFC822Name):
        return email
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_USERNAME:
            try:
                return str(asn1.decode_der(str, other.value))
            except ValueError:
                return None
    return None


def _extension_bytes(cert: x509.Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return ext.value if isinstance(ext, x509.UnrecognizedExtension) else None


def _utf8(cert: x509.Certificate, oid: ObjectIdentifier) -> str | None:
    """A DER UTF8String extension value; an undecodable value counts as absent."""
    raw = _extension_bytes(cert, oid)
    if raw is None:
        return None
    try:
        return str(asn1.decode_der(str, raw)) or None
    except ValueError:
        return None


def _raw(cert: x509.Certificate, oid: ObjectIdentifier) -> str | None:
    """A legacy extension whose value is the raw UTF-8 string (no DER framing)."""
    raw = _extension_bytes(cert, oid)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text or None
