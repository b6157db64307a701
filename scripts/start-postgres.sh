#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for tests and the benchmark, and print
# the SQLAlchemy URL to use (last line of stdout). Idempotent: if the cluster is already
# running, just prints the URL. Installs the server with apt-get when it is missing.
#
#   PGPORT_RG   port (default 55432)
#   PGDATA_RG   data directory (default /tmp/releasegate-pg-$PGPORT_RG)
#
# The cluster trusts loopback connections: it is for tests only, never for real data.
set -euo pipefail

port="${PGPORT_RG:-55432}"
data="${PGDATA_RG:-/tmp/releasegate-pg-${port}}"
url="postgresql+psycopg://postgres@127.0.0.1:${port}/postgres"

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
      echo "$d"
    fi
  done | sort -V | tail -n 1
}

bindir="$(find_bindir)"
if [[ -z "$bindir" ]]; then
  echo "installing postgresql with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir="$(find_bindir)"
fi
[[ -n "$bindir" ]] || { echo "postgresql server binaries not found" >&2; exit 1; }

# Run a command as the unprivileged 'postgres' user when we are root (initdb refuses root).
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if as_pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  echo "$url"
  exit 0
fi

if [[ ! -f "$data/PG_VERSION" ]]; then
  mkdir -p "$data"
  if [[ "$(id -u)" == 0 ]]; then chown postgres: "$data"; fi
  chmod 700 "$data"
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --no-locale >"$data.initdb.log" 2>&1 || { cat "$data.initdb.log" >&2; exit 1; }
fi

as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp -c max_connections=200 -c fsync=on" \
  start >&2 || { cat "$data/server.log" >&2; exit 1; }

for _ in $(seq 1 60); do
  if as_pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$url"
    exit 0
  fi
  sleep 0.5
done
echo "postgresql did not become ready on port $port" >&2
exit 1
