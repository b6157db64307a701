"""Read and write OPA bundle tarballs (gzip-compressed tar).

Writing is deterministic: entries sorted, mtime 0, uid/gid 0, no user names, mode 0644,
gzip header mtime 0 and no file name. The same files give the same bytes (for a given
zlib), so a rebuild of unchanged policies does not change the committed bundle.

Reading is strict where OPA is lenient: OPA silently ignores symlinks, devices and links
inside a bundle; releasegate refuses them, and refuses duplicate names, ``..`` segments
and archives that inflate beyond :data:`MAX_BUNDLE_BYTES` (gzip bombs).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
from collections.abc import Mapping
from pathlib import Path

from engine.errors import BundleError, InputError

__all__ = ["MAX_BUNDLE_BYTES", "read_entries", "read_bundle_bytes", "write_tarball"]

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
"""Upper bound on the inflated size of all files in a bundle."""

_READ_CHUNK = 1 << 16


def read_bundle_bytes(path: Path) -> bytes:
    """The bytes of a bundle file; a missing or unreadable file is an ``InputError``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read bundle {path}: {exc.strerror or exc}") from exc


def _normalize(name: str) -> str:
    # NOTE: OPA names a file in the signature by its tar name minus one leading "/".
    return name[1:] if name.startswith("/") else name


def _inflate(raw: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as gz:
            out = bytearray()
            while chunk := gz.read(_READ_CHUNK):
                out += chunk
                if len(out) > MAX_BUNDLE_BYTES + _READ_CHUNK * 16:
                    raise BundleError(f"bundle inflates beyond {MAX_BUNDLE_BYTES} bytes")
            return bytes(out)
    except (OSError, EOFError) as exc:
        raise BundleError(f"bundle is not a gzip archive: {exc}") from exc


def read_entries(raw: bytes) -> dict[str, bytes]:
    """Map each regular file's signature name (tar name minus a leading ``/``) to its bytes.

    Raises ``BundleError`` for anything OPA would load differently than it looks: links,
    devices, duplicates, ``..`` segments, empty names, or too much data.
    """
    tar_bytes = _inflate(raw)
    entries: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isreg():
                    raise BundleError(f"{member.name}: not a regular file (links are refused)")
                name = _normalize(member.name)
                parts = name.split("/")
                if not name or {"", ".", ".."} & set(parts):
                    raise BundleError(f"{member.name!r}: unsafe or non-canonical file name")
                if name in entries:
                    raise BundleError(f"{name}: appears more than once in the bundle")
                total += member.size
                if total > MAX_BUNDLE_BYTES:
                    raise BundleError(f"bundle files exceed {MAX_BUNDLE_BYTES} bytes")
                fh = tar.extractfile(member)
                if fh is None:  # pragma: no cover - isreg() members always have data
                    raise BundleError(f"{name}: cannot read")
                entries[name] = fh.read()
    except tarfile.TarError as exc:
        raise BundleError(f"bundle is not a tar archive: {exc}") from exc
    return entries


def write_tarball(files: Mapping[str, bytes], out: Path) -> bytes:
    """Write ``files`` (signature name -> bytes) as a deterministic bundle; returns its bytes.

    Names are stored with a leading ``/`` as ``opa build`` does. The file is replaced
    atomically so a server reading ``out`` never sees a half-written bundle.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            if posixpath.normpath(name) != name or name.startswith(("/", "../")):
                raise BundleError(f"{name!r}: not a canonical relative bundle path")
            data = files[name]
            info = tarfile.TarInfo(name=f"/{name}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=gz_buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(buf.getvalue())
    raw = gz_buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(raw)
        tmp.replace(out)
    except OSError as exc:
        raise BundleError(f"cannot write bundle {out}: {exc.strerror or exc}") from exc
    return raw
