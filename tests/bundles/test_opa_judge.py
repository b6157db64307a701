"""The real OPA is the judge: it accepts what releasegate builds and refuses what
``releasegate bundle verify`` refuses, for the same reasons."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bundles import SigningAlg, build_bundle, verify_bundle
from engine.bundles.hashing import file_digest
from engine.bundles.sign import b64url_decode
from engine.errors import BundleError
from tests.bundles.support import (
    ALG,
    KEY_ID,
    POLICY_SRC,
    REPO,
    KeyPair,
    add_file,
    drop_signatures,
    flip_rego_byte,
    opa_server,
    opa_verify_flags,
    read_tar,
    rewrite,
    wait_healthy,
)

pytestmark = pytest.mark.opa


@pytest.mark.parametrize("alg", list(SigningAlg), ids=lambda a: a.value)
def test_opa_accepts_the_built_bundle(
    opa_bin: Path, keys: dict[SigningAlg, KeyPair], tmp_path: Path, alg: SigningAlg
) -> None:
    pair = keys[alg]
    bundle = tmp_path / "bundle.tar.gz"
    info = build_bundle(POLICY_SRC, bundle, signing_key=pair.private, key_id=KEY_ID)

    assert verify_bundle(bundle, public_key=pair.public, key_id=KEY_ID) == info
    with opa_server(
        opa_bin, ["--bundle", *opa_verify_flags(pair.public, alg), str(bundle)], tmp_path
    ) as opa:
        assert wait_healthy(opa), opa.logs()
        allow = opa.client.post(
            "/v1/data/releasegate/example/allow",
            json={"input": {"environment": "prod", "score": 2}},
        )
        deny = opa.client.post(
            "/v1/data/releasegate/example/allow", json={"input": {"environment": "dev", "score": 2}}
        )
        config = opa.client.get("/v1/data/releasegate/config").json()["result"]
        bundles = opa.client.get("/v1/data/system/bundles").json()["result"]

    assert allow.json()["result"] is True
    assert deny.json()["result"] is False
    # The tricky data.json (HTML, U+2028, control chars, 1.50, emoji) arrived intact.
    assert config["min_score"] == 1.5
    assert config["notes"]["line_sep"] == "a\u2028b\u2029c"
    assert config["notes"]["unicode"] == "café ✓ 😀"
    (manifest,) = (b["manifest"] for b in bundles.values())
    assert manifest["revision"] == info.revision
    assert manifest["roots"] == ["releasegate"]


def _tampered(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, flip_rego_byte)


def _unsigned(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, drop_signatures)


def _extra_file(src: Path, dst: Path) -> Path:
    return rewrite(
        src, dst, add_file("/releasegate/extra.rego", b"package releasegate.extra\n\nx := 1\n")
    )


def _missing_file(src: Path, dst: Path) -> Path:
    return rewrite(
        src, dst, lambda ms: [(i, d) for i, d in ms if not i.name.endswith("example.rego")]
    )


def _edited_manifest(src: Path, dst: Path) -> Path:
    def edit(ms: list[tuple[object, bytes]]) -> list[tuple[object, bytes]]:
        out = []
        for info, data in ms:
            if getattr(info, "name", "") == "/.manifest":
                doc = json.loads(data)
                doc["revision"] = "attacker"
                data = json.dumps(doc).encode()
            out.append((info, data))
        return out

    return rewrite(src, dst, edit)  # type: ignore[arg-type]


Variant = Callable[[Path, Path], Path]

# (variant, what releasegate's message names, what OPA's error says)
REJECTIONS: dict[str, tuple[Variant, str, str]] = {
    "tampered": (_tampered, "releasegate/example.rego: digest mismatch", "digest mismatch"),
    "unsigned": (_unsigned, "bundle is unsigned", "missing .signatures.json"),
    "extra-unsigned-file": (
        _extra_file,
        "releasegate/extra.rego: file not included in the bundle signature",
        "not included in bundle signature",
    ),
    "missing-file": (
        _missing_file,
        "releasegate/example.rego: listed in the bundle signature but missing",
        "not found in the target bundle",
    ),
    "edited-manifest": (_edited_manifest, ".manifest: digest mismatch", "digest mismatch"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_opa_and_releasegate_refuse_a_bad_bundle(
    opa_bin: Path,
    keys: dict[SigningAlg, KeyPair],
    signed_bundle: Path,
    tmp_path: Path,
    case: str,
) -> None:
    variant, ours, theirs = REJECTIONS[case]
    pair = keys[ALG]
    bad = variant(signed_bundle, tmp_path / f"{case}.tar.gz")
    flags = opa_verify_flags(pair.public, ALG)

    with pytest.raises(BundleError) as err:
        verify_bundle(bad, public_key=pair.public, key_id=KEY_ID)
    assert ours in str(err.value)

    with opa_server(opa_bin, ["--bundle", *flags, str(bad)], tmp_path) as opa:
        assert not wait_healthy(opa), "OPA accepted a bad bundle"
        assert opa.proc.wait() != 0
        assert theirs in opa.logs()

    built = subprocess.run(
        [str(opa_bin), "build", "-b", str(bad), *flags, "-o", str(tmp_path / "rebuilt.tar.gz")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode != 0
    assert theirs in built.stdout + built.stderr


def test_opa_refuses_a_bundle_signed_by_another_key(
    opa_bin: Path, keys: dict[SigningAlg, KeyPair], other_key: KeyPair, tmp_path: Path
) -> None:
    trusted = keys[ALG]
    bad = tmp_path / "other.tar.gz"
    build_bundle(POLICY_SRC, bad, signing_key=other_key.private, key_id=KEY_ID)
    # Sanity: the bundle itself is fine, with the key that made it.
    verify_bundle(bad, public_key=other_key.public, key_id=KEY_ID)

    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(bad, public_key=trusted.public, key_id=KEY_ID)
    flags = opa_verify_flags(trusted.public, ALG)
    with opa_server(opa_bin, ["--bundle", *flags, str(bad)], tmp_path) as opa:
        assert not wait_healthy(opa), "OPA accepted a bundle signed by an untrusted key"
        assert opa.proc.wait() != 0
        assert "verification error" in opa.logs() or "failed to verify" in opa.logs()


def test_opa_build_accepts_the_bundle_and_hashes_like_us(
    opa_bin: Path, keys: dict[SigningAlg, KeyPair], signed_bundle: Path, tmp_path: Path
) -> None:
    """``opa build`` verifies our bundle, then re-signs it: its digests equal ours."""
    pair = keys[ALG]
    out = tmp_path / "opa-built.tar.gz"
    subprocess.run(
        [
            str(opa_bin), "build", "-b", str(signed_bundle),
            *opa_verify_flags(pair.public, ALG),
            "--signing-key", str(pair.private), "-o", str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    entries = {i.name.lstrip("/"): d for i, d in read_tar(out)}
    (token,) = json.loads(entries.pop(".signatures.json"))["signatures"]
    payload = json.loads(b64url_decode(token.split(".")[1], what="payload"))
    opa_hashes = {f["name"]: f["hash"] for f in payload["files"]}
    # OPA's digests of its own output (re-marshalled data.json, its manifest, the policy
    # under a path prefix) are exactly what our hashing computes for the same bytes.
    assert sorted(opa_hashes) == sorted(entries)
    for name, data in entries.items():
        assert file_digest(name, data) == opa_hashes[name], name
    # The policy is carried byte-for-byte, so its digest is also the one we signed.
    ours = {f.name: f.hash for f in verify_bundle(signed_bundle, public_key=pair.public).files}
    (rego,) = (n for n in opa_hashes if n.endswith("/releasegate/example.rego"))
    assert opa_hashes[rego] == ours["releasegate/example.rego"]
    # And OPA's own signed bundle passes our verifier with the same key.
    verify_bundle(out, public_key=pair.public, key_id=KEY_ID)


def test_the_real_policies_directory_builds_and_loads(
    opa_bin: Path, keys: dict[SigningAlg, KeyPair], tmp_path: Path
) -> None:
    pair = keys[ALG]
    bundle = tmp_path / "releasegate.tar.gz"
    info = build_bundle(REPO / "policies", bundle, signing_key=pair.private, key_id=KEY_ID)
    assert any(f.name.endswith(".rego") for f in info.files)
    assert not any(f.name.endswith("_test.rego") for f in info.files)

    flags = opa_verify_flags(pair.public, ALG)
    with opa_server(opa_bin, ["--bundle", *flags, str(bundle)], tmp_path) as opa:
        assert wait_healthy(opa), opa.logs()
        answer = opa.client.post("/v1/data/releasegate", json={"input": {}})
    assert answer.status_code == 200, answer.text
    assert "result" in answer.json()
