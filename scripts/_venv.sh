# Shared by demo.sh and test.sh: make (once) and use the project's virtualenv.
# TXRATCHET_VENV overrides where it lives (default: .venv in the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TXRATCHET_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV" || {
        echo "python3 -m venv failed; on Debian/Ubuntu: apt-get install -y python3-venv" >&2
        exit 1
    }
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
pip_install() {
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
        | grep -v "^WARNING: Location" || true
    return "${PIPESTATUS[0]}"
}
