#!/usr/bin/env bash
# Install the real services the tests run against, from Debian's packages:
# Prometheus (with promtool) and PostgreSQL; valgrind for `benchmarks.instructions`.
# Idempotent; needs root (CI runs as root).
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing with apt-get: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  # NOTE(lead): Debian's packages start system services; the tests run their own instances
  # on loopback ports, so stop the packaged ones where a service manager started them.
  (service prometheus stop || true) >/dev/null 2>&1
  (service postgresql stop || true) >/dev/null 2>&1
fi
echo "prometheus: $(prometheus --version 2>&1 | sed -n 1p)"
echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sed -n 1p)"
echo "valgrind: $(valgrind --version)"
