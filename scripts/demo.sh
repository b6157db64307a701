#!/usr/bin/env bash
# The README's first command: decide each example request on the embedded default (managed
# OPA with the committed signed bundle, signed SQLite log in .releasegate-demo/), then verify
# the log offline as an auditor would.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rg=.venv/bin/releasegate
state=.releasegate-demo

for name in allow pause rollback; do
  echo "== releasegate check --local --request examples/requests/$name.json"
  $rg check --local --state-dir "$state" --request "examples/requests/$name.json"
  echo "-> exit code $? (0 allow, 3 pause, 4 rollback)"
  echo
done

echo "== the signed decision log, exported and verified offline"
$rg log export --state-dir "$state" --out "$state/export.jsonl"
$rg keys show --state-dir "$state" > "$state/keys.json"
$rg log verify --export "$state/export.jsonl" --keys "$state/keys.json"
