#!/usr/bin/env bash
# Run the whole txratchet test suite, installing everything it needs first:
# a virtualenv with txratchet and the test tools, Node's `ws` for the
# interoperability tests and, as root on Debian, Chromium for the browser test.
# Then: ruff, mypy, the suite under trial, and the suite under pytest.
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
    || ! command -v node >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Debian packages (chromium, chromium-driver, nodejs)"
        apt-get update -qq
        pkgs="chromium chromium-driver"
        command -v node >/dev/null || pkgs="$pkgs nodejs npm"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
    else
        echo "WARNING: chromium/chromedriver/node missing and cannot apt-get install them;" \
             "the browser and Node tests will fail" >&2
    fi
fi

echo "==> installing txratchet and test tools into $VENV"
pip_install "$ROOT[test]"
if [ -f tests/node/package-lock.json ]; then
    echo "==> installing Node test clients"
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

echo "==> ruff"
"$VENV/bin/ruff" check .
echo "==> mypy"
"$VENV/bin/mypy"
echo "==> trial"
"$VENV/bin/python" -m twisted.trial tests
echo "==> pytest"
exec "$VENV/bin/python" -m pytest -q tests "$@"
