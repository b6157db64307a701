#!/usr/bin/env bash
# Install the pinned OPA release into the project-local tools folder (.tools/bin/opa).
# Builds from the Go module with `go install` where Go exists; otherwise downloads the
# official static binary and checks its pinned SHA-256. Idempotent: a cached binary of the
# pinned version is reused.
set -euo pipefail

OPA_VERSION="${OPA_VERSION:-v1.22.3}"
# SHA-256 of the official opa_linux_amd64_static binary for OPA_VERSION (fallback path only).
OPA_STATIC_SHA256="${OPA_STATIC_SHA256:-}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${RELEASEGATE_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin"
opa="$bin/opa"
mkdir -p "$bin"

# The version is read into a variable before matching: `opa version | grep -q` under
# pipefail fails at random when grep exits early and opa dies of SIGPIPE.
installed_version() { "$opa" version 2>/dev/null | sed -n 's/^Version: //p' || true; }

if [ -x "$opa" ] && [ "$(installed_version)" = "${OPA_VERSION#v}" ]; then
  echo "opa ${OPA_VERSION} already installed at $opa"
  exit 0
fi

if command -v go >/dev/null 2>&1; then
  echo "building opa ${OPA_VERSION} from its Go module (go install) ..."
  GOBIN="$bin" CGO_ENABLED=0 go install "github.com/open-policy-agent/opa@${OPA_VERSION}"
else
  if [ -z "$OPA_STATIC_SHA256" ]; then
    echo "error: Go is not installed and OPA_STATIC_SHA256 is not set; install Go or pin the static binary's digest" >&2
    exit 1
  fi
  url="https://github.com/open-policy-agent/opa/releases/download/${OPA_VERSION}/opa_linux_amd64_static"
  echo "downloading $url ..."
  curl -fsSL -o "$opa.tmp" "$url"
  echo "${OPA_STATIC_SHA256}  $opa.tmp" | sha256sum -c -
  chmod 0755 "$opa.tmp"
  mv "$opa.tmp" "$opa"
fi

got="$(installed_version)"
echo "Version: $got"
[ "$got" = "${OPA_VERSION#v}" ] || { echo "error: installed opa is $got, not ${OPA_VERSION}" >&2; exit 1; }
echo "opa installed at $opa"
