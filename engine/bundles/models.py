"""Values describing a built or loaded bundle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BundleFile", "BundleInfo"]


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: its signature name and OPA-style digest."""

    name: str
    hash: str
    algorithm: str = "SHA-256"

    def as_dict(self) -> dict[str, str]:
        """The ``files[]`` member of a signature payload."""
        return {"name": self.name, "hash": self.hash, "algorithm": self.algorithm}


@dataclass(frozen=True)
class BundleInfo:
    """What the service reports about a bundle (``policy.revision`` / ``policy.digest``).

    ``digest`` is ``sha256:`` of the tarball bytes, ``files`` excludes ``.signatures.json``
    and is sorted by name; ``signed`` says a
    signature is present (not that it verified) and ``key_id`` names its key.
    """

    revision: str
    digest: str
    roots: tuple[str, ...]
    files: tuple[BundleFile, ...]
    signed: bool = False
    key_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the ``bundle info`` output)."""
        return {
            "revision": self.revision,
            "digest": self.digest,
            "roots": list(self.roots),
            "signed": self.signed,
            "key_id": self.key_id,
            "files": [f.as_dict() for f in self.files],
        }
