"""Building, offline verification, ``read_bundle_info`` and ``bundle_is_fresh``."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from engine.bundles import (
    SigningAlg,
    build_bundle,
    bundle_is_fresh,
    generate_signing_key,
    read_bundle_info,
    verify_bundle,
)
from engine.bundles.build import content_revision, manifest_bytes, signature_payload
from engine.bundles.keys import load_signing_key
from engine.bundles.models import BundleFile
from engine.bundles.sign import sign_jws
from engine.errors import BundleError, InputError
from tests.bundles.support import (
    ALG,
    KEY_ID,
    POLICY_SRC,
    REPO,
    KeyPair,
    add_file,
    read_tar,
    rewrite,
    write_tar,
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A writable copy of the fixed policy dir."""
    return Path(shutil.copytree(POLICY_SRC, tmp_path / "src"))


@pytest.fixture
def pair(keys: dict[SigningAlg, KeyPair]) -> KeyPair:
    return keys[ALG]


def _build(src: Path, out: Path, pair: KeyPair, **kw: str) -> Path:
    build_bundle(src, out, signing_key=pair.private, key_id=KEY_ID, **kw)  # type: ignore[arg-type]
    return out


# --- build ------------------------------------------------------------------------------


def test_build_contents_manifest_and_exclusions(signed_bundle: Path, pair: KeyPair) -> None:
    info = verify_bundle(signed_bundle, public_key=pair.public, key_id=KEY_ID)
    names = [f.name for f in info.files]
    assert names == [".manifest", "releasegate/config/data.json", "releasegate/example.rego"]
    # *_test.rego and non-data JSON (schema/) stay out.
    members = {m.name: data for m, data in read_tar(signed_bundle)}
    assert sorted(members) == [
        "/.manifest",
        "/.signatures.json",
        "/releasegate/config/data.json",
        "/releasegate/example.rego",
    ]
    manifest = json.loads(members["/.manifest"])
    assert manifest == {"revision": info.revision, "roots": ["releasegate"], "rego_version": 1}
    assert info.revision.startswith("sha256:") and len(info.revision) == 7 + 64
    assert info.roots == ("releasegate",)
    assert info.key_id == KEY_ID and info.signed


def test_rebuild_of_unchanged_policy_is_byte_identical(
    src: Path, pair: KeyPair, tmp_path: Path
) -> None:
    a = _build(src, tmp_path / "a.tar.gz", pair)
    data = src / "releasegate" / "config" / "data.json"
    # Whitespace in JSON changes nothing that OPA signs (number literals must stay as is).
    data.write_text(data.read_text().replace(", ", ",").replace(": ", ":").replace("\n", ""))
    b = _build(src, tmp_path / "b.tar.gz", pair)
    assert a.read_bytes() != b.read_bytes()  # the file did change...
    assert read_bundle_info(a).revision == read_bundle_info(b).revision  # ...its meaning not
    c = _build(src, tmp_path / "c.tar.gz", pair)
    assert b.read_bytes() == c.read_bytes()
    # Archive metadata is fixed: no timestamps, owners or gzip file name leak in.
    raw = c.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw))) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)


def test_revision_follows_the_content(src: Path, pair: KeyPair, tmp_path: Path) -> None:
    before = _build(src, tmp_path / "a.tar.gz", pair)
    rego = src / "releasegate" / "example.rego"
    rego.write_text(rego.read_text() + "\n# changed\n")
    after = _build(src, tmp_path / "b.tar.gz", pair)
    assert read_bundle_info(before).revision != read_bundle_info(after).revision
    custom = _build(src, tmp_path / "c.tar.gz", pair, revision="v1.2.3")
    assert read_bundle_info(custom).revision == "v1.2.3"


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("other/x.rego", "package other\n\nx := 1\n", "package other is outside roots"),
        ("other/data.json", "{}", "data path /other is outside roots"),
        ("data.json", '{"other": 1}', "top-level keys must be bundle roots"),
        ("releasegate/data.yaml", "a: 1", "YAML data files are not supported"),
        ("releasegate/bad/data.json", "{nope", "releasegate/bad/data.json: not valid JSON"),
        ("releasegate/nopkg.rego", "x := 1\n", "releasegate/nopkg.rego: no package declaration"),
    ],
)
def test_build_refuses_what_opa_would_refuse(
    src: Path, pair: KeyPair, tmp_path: Path, path: str, content: str, message: str
) -> None:
    target = src / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    out = tmp_path / "out.tar.gz"
    with pytest.raises(BundleError, match=message):
        _build(src, out, pair)
    assert not out.exists()


def test_build_refuses_symlinks_and_empty_dirs(src: Path, pair: KeyPair, tmp_path: Path) -> None:
    (src / "releasegate" / "link.rego").symlink_to(src / "releasegate" / "example.rego")
    with pytest.raises(BundleError, match="symlinks are not allowed"):
        _build(src, tmp_path / "a.tar.gz", pair)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="no policy"):
        _build(empty, tmp_path / "b.tar.gz", pair)
    with pytest.raises(InputError, match="does not exist"):
        _build(tmp_path / "missing", tmp_path / "c.tar.gz", pair)


def test_build_refuses_unusable_keys(src: Path, pair: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        build_bundle(src, tmp_path / "a.tar.gz", signing_key=pair.public, key_id=KEY_ID)
    with pytest.raises(InputError, match="cannot read signing key"):
        build_bundle(src, tmp_path / "a.tar.gz", signing_key=tmp_path / "nope.pem", key_id=KEY_ID)
    with pytest.raises(InputError, match="refusing to overwrite"):
        generate_signing_key(pair.private, tmp_path / "pub.pem")


# --- verify -----------------------------------------------------------------------------


def _resign(entries: dict[str, bytes], pair: KeyPair, out: Path, **payload_kw: object) -> Path:
    """A bundle of ``entries`` signed with ``pair``; ``files`` may be overridden."""
    from engine.bundles.hashing import file_digest

    files = payload_kw.pop("files", None) or [
        BundleFile(n, file_digest(n, d)) for n, d in sorted(entries.items())
    ]
    payload = signature_payload(files, key_id=KEY_ID)  # type: ignore[arg-type]
    payload.update(payload_kw)
    token = sign_jws(payload, key=load_signing_key(pair.private), key_id=KEY_ID)
    members = [(tarfile.TarInfo(f"/{n}"), d) for n, d in entries.items()]
    members.append(
        (tarfile.TarInfo("/.signatures.json"), json.dumps({"signatures": [token]}).encode())
    )
    return write_tar(out, members)


def _entries() -> dict[str, bytes]:
    rego = (POLICY_SRC / "releasegate" / "example.rego").read_bytes()
    files = {"releasegate/example.rego": rego}
    files[".manifest"] = manifest_bytes(content_revision(files))
    return files


def test_verify_key_id_and_scope(signed_bundle: Path, pair: KeyPair, tmp_path: Path) -> None:
    assert verify_bundle(signed_bundle, public_key=pair.public).key_id == KEY_ID
    with pytest.raises(BundleError, match="key id 'test-key' does not match 'prod'"):
        verify_bundle(signed_bundle, public_key=pair.public, key_id="prod")
    with pytest.raises(BundleError, match="scope None does not match"):
        verify_bundle(signed_bundle, public_key=pair.public, scope="write")
    scoped = _resign(_entries(), pair, tmp_path / "s.tar.gz", scope="write")
    verify_bundle(scoped, public_key=pair.public, scope="write")
    with pytest.raises(BundleError, match="scope 'write' does not match"):
        verify_bundle(scoped, public_key=pair.public)


def test_a_manifestless_bundle_has_an_empty_revision(pair: KeyPair, tmp_path: Path) -> None:
    entries = _entries()
    del entries[".manifest"]
    info = verify_bundle(_resign(entries, pair, tmp_path / "b.tar.gz"), public_key=pair.public)
    assert (info.revision, info.roots) == ("", ("",))


def test_weak_digest_algorithms_are_refused(pair: KeyPair, tmp_path: Path) -> None:
    entries = _entries()
    weak = [BundleFile(n, "00", "MD5") for n in sorted(entries)]
    bad = _resign(entries, pair, tmp_path / "b.tar.gz", files=weak)
    with pytest.raises(BundleError, match="unsupported hash algorithm 'MD5'"):
        verify_bundle(bad, public_key=pair.public)


def _two_signatures(ms: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for info, data in ms:
        if info.name == "/.signatures.json":
            doc = json.loads(data)
            data = json.dumps({"signatures": doc["signatures"] * 2}).encode()
        out.append((info, data))
    return out


def _symlink(ms: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    link = tarfile.TarInfo("/releasegate/link.rego")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return [*ms, (link, b"")]


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (_two_signatures, "expected exactly one JWT, found 2"),
        (add_file("/releasegate/signatures.json", b"{}"), "unexpected signatures file"),
        (_symlink, "not a regular file"),
        (lambda ms: [*ms, ms[-1]], "appears more than once"),
        (add_file("../evil.rego", b"package releasegate.x"), "unsafe or non-canonical"),
        (add_file("./releasegate/x.rego", b"package releasegate.x"), "unsafe or non-canonical"),
        (add_file("/releasegate/README.md", b"hi"), "README.md: file not included"),
    ],
    ids=["two-jwts", "stray-signatures", "symlink", "duplicate", "dotdot", "dot", "extra-file"],
)
def test_verify_is_strict_about_the_archive(
    signed_bundle: Path, pair: KeyPair, tmp_path: Path, transform: object, message: str
) -> None:
    bad = rewrite(signed_bundle, tmp_path / "bad.tar.gz", transform)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match=message):
        verify_bundle(bad, public_key=pair.public)


def test_not_a_bundle(pair: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(BundleError, match="not a gzip archive"):
        verify_bundle(tmp_path / "junk.tar.gz", public_key=pair.public)
    (tmp_path / "trunc.tar.gz").write_bytes(gzip.compress(b"x" * 1000)[:20])
    with pytest.raises(BundleError, match="not a gzip archive"):
        verify_bundle(tmp_path / "trunc.tar.gz", public_key=pair.public)
    with pytest.raises(InputError, match="cannot read bundle"):
        verify_bundle(tmp_path / "missing.tar.gz", public_key=pair.public)


def test_read_bundle_info_does_not_need_a_signature(signed_bundle: Path, tmp_path: Path) -> None:
    unsigned = rewrite(
        signed_bundle,
        tmp_path / "u.tar.gz",
        lambda ms: [(i, d) for i, d in ms if i.name != "/.signatures.json"],
    )
    info = read_bundle_info(unsigned)
    assert not info.signed and info.key_id is None
    assert info.revision == read_bundle_info(signed_bundle).revision
    assert info.digest != read_bundle_info(signed_bundle).digest
    assert read_bundle_info(signed_bundle).as_dict()["key_id"] == KEY_ID


# --- freshness --------------------------------------------------------------------------


def test_freshness(src: Path, pair: KeyPair, tmp_path: Path, other_key: KeyPair) -> None:
    bundle = _build(src, tmp_path / "b.tar.gz", pair)
    assert bundle_is_fresh(bundle, src) == (True, bundle_is_fresh(bundle, src)[1])
    ok, message = bundle_is_fresh(bundle, src, public_key=pair.public, key_id=KEY_ID)
    assert ok and message.startswith("fresh:")

    ok, message = bundle_is_fresh(bundle, src, public_key=other_key.public)
    assert not ok and "signature does not verify" in message

    rego = src / "releasegate" / "example.rego"
    rego.write_text(rego.read_text() + "\n# edited\n")
    assert bundle_is_fresh(bundle, src) == (
        False,
        f"stale: releasegate/example.rego differs between {src} and {bundle}",
    )
    bundle = _build(src, bundle, pair)
    (src / "releasegate" / "more.rego").write_text("package releasegate.more\n\nx := 1\n")
    ok, message = bundle_is_fresh(bundle, src)
    assert not ok and "releasegate/more.rego is in" in message

    custom = _build(src, tmp_path / "custom.tar.gz", pair, revision="v1")
    ok, message = bundle_is_fresh(custom, src)
    assert not ok and "revision v1 is not the content revision" in message


def test_the_committed_bundle_verifies_with_the_committed_key() -> None:
    info = verify_bundle(
        REPO / "bundles" / "releasegate.tar.gz",
        public_key=REPO / "bundles" / "releasegate.pub.pem",
        key_id="releasegate",
    )
    assert info.roots == ("releasegate",)
