#!/usr/bin/env bash
# Run the whole txratchet test suite, installing everything it needs first:
# a virtualenv with txratchet and the test tools, Node's `ws` for the
# interoperability tests and, as root on Debian, Chromium for the browser test.
# Then: ruff, mypy, the suite under trial, and the suite under pytest.
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

# Debian packages the tests drive for real: a browser, Node.js, Redis, nginx,
# and a C compiler for the load generator's smoke test.
pkgs=""
command -v chromium >/dev/null || pkgs="$pkgs chromium"
command -v chromedriver >/dev/null || pkgs="$pkgs chromium-driver"
command -v node >/dev/null || pkgs="$pkgs nodejs npm"
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null || pkgs="$pkgs redis-server"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || pkgs="$pkgs nginx"
command -v gcc >/dev/null || pkgs="$pkgs gcc libc6-dev"   # the benchmark smoke test
[ -f /usr/include/zlib.h ] || pkgs="$pkgs zlib1g-dev"     # its load generator links zlib
command -v pgrep >/dev/null || pkgs="$pkgs procps"
if [ -n "$pkgs" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Debian packages:$pkgs"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
        # The tests start their own servers on free ports; stop the packaged ones.
        for service in redis-server nginx; do
            command -v service >/dev/null && service "$service" stop >/dev/null 2>&1 || true
        done
    else
        echo "WARNING: missing$pkgs and cannot apt-get install them; tests needing them will fail" >&2
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
