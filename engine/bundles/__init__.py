"""OPA policy bundles: build, sign, verify, check freshness.

A bundle is what OPA loads: a gzip tarball with ``.manifest``, the policies, ``data.json``
files, and ``.signatures.json`` holding one JWS over every file's digest (OPA's bundle
signing format). The real OPA is the reference for every check in this package; see
``tests/bundles``.
"""

from __future__ import annotations

from engine.bundles.build import DEFAULT_KEY_ID, DEFAULT_ROOTS, build_bundle, collect_sources
from engine.bundles.keys import SigningAlg, generate_signing_key
from engine.bundles.models import BundleFile, BundleInfo
from engine.bundles.verify import bundle_is_fresh, read_bundle_info, verify_bundle

__all__ = [
    "DEFAULT_KEY_ID",
    "DEFAULT_ROOTS",
    "BundleFile",
    "BundleInfo",
    "SigningAlg",
    "build_bundle",
    "bundle_is_fresh",
    "collect_sources",
    "generate_signing_key",
    "read_bundle_info",
    "verify_bundle",
]
