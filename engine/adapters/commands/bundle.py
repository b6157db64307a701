"""``releasegate bundle build|verify|check-fresh|info|keygen``: signed OPA policy bundles.

Exit codes: 0 ok (built / intact / fresh), 1 verification failed or bundle stale (the
message names the first bad file), 2 usage (bad flags, unreadable key or bundle file).
"""

from __future__ import annotations

__all__ = ["register"]

import argparse
import json
import sys
from pathlib import Path

from engine.bundles import (
    DEFAULT_KEY_ID,
    SigningAlg,
    build_bundle,
    bundle_is_fresh,
    generate_signing_key,
    read_bundle_info,
    verify_bundle,
)
from engine.bundles.keys import load_signing_key, public_key_pem

EXIT_OK = 0
EXIT_FAILED = 1


def _build(args: argparse.Namespace) -> int:
    info = build_bundle(
        args.src,
        args.out,
        signing_key=args.signing_key,
        revision=args.revision,
        key_id=args.key_id,
        scope=args.scope,
    )
    if args.public_out is not None:
        args.public_out.parent.mkdir(parents=True, exist_ok=True)
        args.public_out.write_bytes(public_key_pem(load_signing_key(args.signing_key)))
    print(
        f"built {args.out}: revision {info.revision} digest {info.digest} files {len(info.files)}"
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    info = verify_bundle(
        args.file, public_key=args.public_key, key_id=args.key_id, scope=args.scope
    )
    print(f"ok {args.file}: revision {info.revision} digest {info.digest} key {info.key_id}")
    return EXIT_OK


def _check_fresh(args: argparse.Namespace) -> int:
    ok, message = bundle_is_fresh(
        args.bundle, args.src, public_key=args.public_key, key_id=args.key_id
    )
    if ok:
        print(message)
        return EXIT_OK
    print(f"error: {message}", file=sys.stderr)
    print("hint: rebuild with scripts/build-bundle.sh and commit bundles/", file=sys.stderr)
    return EXIT_FAILED


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(read_bundle_info(args.file).as_dict(), indent=2))
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    generate_signing_key(args.out, args.public_out, alg=SigningAlg(args.alg), overwrite=args.force)
    print(f"wrote private key {args.out} (keep it secret) and public key {args.public_out}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bundle`` and its sub-commands to the CLI."""
    bundle = subparsers.add_parser("bundle", help="build, sign and verify OPA policy bundles")
    sub = bundle.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser("build", help="build a signed bundle from a policy directory")
    build.add_argument("src", type=Path, help="policy directory (e.g. policies/)")
    build.add_argument("--out", type=Path, required=True, help="bundle file to write")
    build.add_argument("--signing-key", type=Path, required=True, help="PEM private key")
    build.add_argument("--revision", help="manifest revision (default: sha256 of the content)")
    build.add_argument("--key-id", default=DEFAULT_KEY_ID, help="key id (default: %(default)s)")
    build.add_argument("--scope", help="optional signature scope (OPA --scope)")
    build.add_argument("--public-out", type=Path, help="also write the matching public key")
    build.set_defaults(func=_build)

    verify = sub.add_parser("verify", help="verify a bundle's signature and file digests")
    verify.add_argument("file", type=Path, help="bundle .tar.gz")
    verify.add_argument("--public-key", type=Path, required=True, help="PEM public key")
    verify.add_argument("--key-id", help="require this key id")
    verify.add_argument("--scope", help="require this signature scope")
    verify.set_defaults(func=_verify)

    fresh = sub.add_parser(
        "check-fresh", help="fail if a committed bundle is stale relative to its policies"
    )
    fresh.add_argument("bundle", type=Path, help="committed bundle .tar.gz")
    fresh.add_argument("src", type=Path, help="policy directory it was built from")
    fresh.add_argument("--public-key", type=Path, help="also verify the signature with this key")
    fresh.add_argument("--key-id", help="require this key id (with --public-key)")
    fresh.set_defaults(func=_check_fresh)

    info = sub.add_parser("info", help="print revision, digest and files (no verification)")
    info.add_argument("file", type=Path, help="bundle .tar.gz")
    info.set_defaults(func=_info)

    keygen = sub.add_parser("keygen", help="generate a bundle signing key pair")
    keygen.add_argument("--out", type=Path, required=True, help="private key to write (0600)")
    keygen.add_argument("--public-out", type=Path, required=True, help="public key to write")
    keygen.add_argument(
        "--alg", choices=[a.value for a in SigningAlg], default=SigningAlg.ES256.value
    )
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key")
    keygen.set_defaults(func=_keygen)
