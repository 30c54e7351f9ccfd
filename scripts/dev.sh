#!/usr/bin/env bash
# One entry point that prepares a fresh Debian machine (Python 3.11, root or
# sudo) and then runs the platform or the test suite:
#   bash scripts/dev.sh demo [options]   run everything locally (territoire demo)
#   bash scripts/dev.sh test [pytest options]
#   bash scripts/dev.sh setup            only install
# It is idempotent: what is already installed is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-demo}"
[ $# -gt 0 ] && shift

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

system_packages() {
    local missing=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
    if [ "$action" = test ]; then
        # Tests also need the InfluxDB 1.x server (to check the line-protocol sink).
        command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
        # ...and Debian's Chromium, driven by Playwright, for the dashboard tests.
        [ -x /usr/bin/chromium ] || missing+=(chromium)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing Debian packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

python_env() {
    local stamp=.venv/.territoire-lock
    local want
    want="$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv"
        python3 -m venv .venv
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "==> installing Python dependencies from requirements.lock"
        .venv/bin/python -m pip install -q --upgrade pip uv
        .venv/bin/uv pip install -q --python .venv/bin/python -r requirements.lock
        .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
        echo "$want" > "$stamp"
    fi
}

dependency_audit() {
    # Known-vulnerability check of the locked dependencies. It warns rather than
    # fails: the vulnerability service may be unreachable from CI machines.
    if ! timeout 300 .venv/bin/pip-audit -r requirements.lock --no-deps --disable-pip \
            --progress-spinner off > .venv/pip-audit.log 2>&1; then
        local unaudited
        unaudited="$(grep -c "could not be audited" .venv/pip-audit.log || true)"
        if grep -q "Found [0-9]* known vulnerabilit" .venv/pip-audit.log; then
            echo "==> WARNING: pip-audit found known vulnerabilities:"
            grep -E "^[A-Za-z0-9_.-]+ +[0-9]" .venv/pip-audit.log | head -20 || true
        else
            echo "==> warning: dependency audit incomplete ($unaudited packages could not be checked; service unreachable?)"
        fi
    else
        echo "==> dependency audit: no known vulnerabilities"
    fi
}

system_packages
python_env

case "$action" in
    setup) echo "==> ready: .venv/bin/territoire --help" ;;
    demo) exec .venv/bin/territoire demo "$@" ;;
    test) dependency_audit; exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: bash scripts/dev.sh demo|test|setup [options]" >&2; exit 2 ;;
esac
