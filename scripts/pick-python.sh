#!/usr/bin/env bash
# Prints the interpreter the virtualenv is made from (the Makefile's PYTHON).
#
# RELEASEGATE_PYTHON wins when set. Otherwise the distribution's own python3 (/usr/bin/python3),
# then python3 from PATH, whichever is first to be Python >= 3.11 and able to make a
# virtualenv with pip.
#
# Why the distribution's first: Debian, Ubuntu and Fedora build their python3, like the
# official python Docker images the Dockerfile starts from, with profile-guided and link-time
# optimization; version managers such as pyenv and a plain ./configure build without either
# unless asked. On this project's benchmark machine the same service on the same packages did
# 9-17 % more decisions/s on Debian's python3.11 than on a pyenv-built 3.11 found first on
# PATH (docs/benchmarks.md, round 15).
set -euo pipefail

usable() {
    "$1" - <<'EOF' >/dev/null 2>&1
import sys
import ensurepip, venv  # noqa: F401 - Debian ships these in python3-venv
sys.exit(0 if sys.version_info >= (3, 11) else 1)
EOF
}

if [[ -n "${RELEASEGATE_PYTHON:-}" ]]; then
    echo "$RELEASEGATE_PYTHON"
    exit 0
fi
for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && usable "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
echo "releasegate needs Python >= 3.11 with venv and ensurepip (Debian: apt-get install python3-venv)" >&2
echo python3
