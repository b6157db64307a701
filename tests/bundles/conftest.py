"""Fixtures for the bundle tests: the OPA binary, key pairs, a signed bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bundles import SigningAlg, build_bundle, generate_signing_key
from tests.bundles.support import ALG, KEY_ID, POLICY_SRC, KeyPair, find_opa


@pytest.fixture(scope="session")
def opa_bin() -> Path:
    return find_opa()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[SigningAlg, KeyPair]:
    """One key pair per supported algorithm (RSA is the slow one: generated once)."""
    base = tmp_path_factory.mktemp("keys")
    pairs = {}
    for alg in SigningAlg:
        priv, pub = base / f"{alg.value}.pem", base / f"{alg.value}.pub.pem"
        generate_signing_key(priv, pub, alg=alg)
        pairs[alg] = KeyPair(priv, pub, alg)
    return pairs


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A key pair of the default algorithm that nobody trusts."""
    base = tmp_path_factory.mktemp("other-key")
    generate_signing_key(base / "other.pem", base / "other.pub.pem", alg=ALG)
    return KeyPair(base / "other.pem", base / "other.pub.pem", ALG)


@pytest.fixture(scope="session")
def signed_bundle(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[SigningAlg, KeyPair]
) -> Path:
    """The fixed policy dir built and signed with the default-algorithm test key."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    build_bundle(POLICY_SRC, out, signing_key=keys[ALG].private, key_id=KEY_ID)
    return out
