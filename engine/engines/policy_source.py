"""Where the policy comes from: a signed bundle tarball, or a policy directory in development."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from engine.errors import BundleError
from engine.models.decision import PolicyInfo


@dataclass(frozen=True)
class PolicySource:
    """A policy bundle (``.tar.gz``) or directory, and how OPA must verify it.

    With ``public_key`` set, OPA itself verifies the bundle signature (``--verification-key``)
    and refuses to start on an unsigned, tampered or foreign-signed bundle.
    """

    path: Path
    public_key: Path | None = None
    key_id: str = "releasegate"
    signing_alg: str = "ES256"

    def opa_args(self) -> list[str]:
        """The ``opa run`` arguments that load (and verify) this source."""
        if not self.path.exists():
            raise BundleError(f"policy bundle {self.path} does not exist")
        args = ["--bundle", str(self.path)]
        if self.public_key is not None and self.path.is_file():
            self._verify_tarball(self.public_key)
        if self.public_key is not None:
            args += [
                "--verification-key", str(self.public_key),
                "--verification-key-id", self.key_id,
                "--signing-alg", self.signing_alg,
            ]  # fmt: skip
        return args

    def _verify_tarball(self, public_key: Path) -> None:
        # NOTE(hardening): OPA verifies the signature too, but with the key given on its
        # command line it ignores the token's key id; releasegate's verifier (the one
        # `bundle verify` runs) also checks the key id, and runs first.
        from engine.bundles import verify_bundle
        from engine.errors import InputError

        try:
            verify_bundle(self.path, public_key=public_key, key_id=self.key_id)
        except (BundleError, InputError) as exc:
            raise BundleError(f"policy bundle {self.path} refused: {exc}") from exc

    @cached_property
    def info(self) -> PolicyInfo:
        """Revision (from the bundle manifest) and digest (of the bundle bytes)."""
        return policy_info(self.path)


def policy_info(path: Path) -> PolicyInfo:
    """Revision and ``sha256:`` digest of a bundle tarball or a policy directory."""
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        hexdigest = digest.hexdigest()
        return PolicyInfo(revision=f"dir-{hexdigest[:12]}", digest=f"sha256:{hexdigest}")
    from engine.bundles import read_bundle_info
    from engine.errors import InputError

    try:
        bundle = read_bundle_info(path)
    except InputError as exc:
        raise BundleError(f"cannot read policy bundle {path}: {exc}") from exc
    return PolicyInfo(revision=bundle.revision or "unknown", digest=bundle.digest)
