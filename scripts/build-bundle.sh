#!/usr/bin/env bash
# Rebuild the committed default policy bundle: bundles/releasegate.tar.gz (+ its public key).
#
# The signing key is NEVER committed. It is read from $RELEASEGATE_BUNDLE_SIGNING_KEY, else
# from .releasegate/bundle-signing-key.pem (gitignored). If neither exists, a new ECDSA
# P-256 (ES256) dev key is generated there, and bundles/releasegate.pub.pem is rewritten to match: commit
# both files together. The build is deterministic: unchanged policies give the same bytes.
#
# CI checks freshness without any key:
#   releasegate bundle check-fresh bundles/releasegate.tar.gz policies/ \
#     --public-key bundles/releasegate.pub.pem --key-id releasegate
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

key="${RELEASEGATE_BUNDLE_SIGNING_KEY:-.releasegate/bundle-signing-key.pem}"
key_id="${RELEASEGATE_BUNDLE_KEY_ID:-releasegate}"
out="bundles/releasegate.tar.gz"
pub="bundles/releasegate.pub.pem"

if [ -x .venv/bin/releasegate ]; then
  releasegate=(.venv/bin/releasegate)
elif command -v releasegate >/dev/null 2>&1; then
  releasegate=(releasegate)
else
  releasegate=(python -m engine.adapters.cli)
fi

if [ ! -f "$key" ]; then
  echo "no signing key at $key: generating a new ES256 dev key;" \
    "$pub will change - commit it together with $out" >&2
  "${releasegate[@]}" bundle keygen --out "$key" --public-out "$pub.new"
  rm -f "$pub.new"
fi

"${releasegate[@]}" bundle build policies/ --out "$out" --signing-key "$key" \
  --key-id "$key_id" --public-out "$pub"
"${releasegate[@]}" bundle verify "$out" --public-key "$pub" --key-id "$key_id"
"${releasegate[@]}" bundle check-fresh "$out" policies/ --public-key "$pub" --key-id "$key_id"
