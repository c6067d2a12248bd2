#!/usr/bin/env bash
# Run the whole txratchet test suite, installing everything it needs first:
# a virtualenv with txratchet and the test tools, Node's `ws` for the
# interoperability tests and, as root on Debian, Chromium for the browser test.
# Then: ruff, mypy, the API reference (scripts/docs.sh), the sdist and wheel
# (scripts/check-dist.sh), and the suite under pytest (which runs the trial TestCases)
# twice: on the newest Twisted, and on the oldest one setup.py allows, in a
# second virtualenv under build/ (TXRATCHET_SKIP_OLDEST_TWISTED=1 skips that).
# Arguments go to both pytest runs.
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
# docs/deployment.md's systemd unit: systemd-analyze checks it, strace records
# the system calls its command makes (tests/test_deploy.py).
command -v systemd-analyze >/dev/null || pkgs="$pkgs systemd"
command -v strace >/dev/null || pkgs="$pkgs strace"
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
# The newest Twisted (nothing pins it; an upgrade that cannot be reached
# leaves the installed one, said below, rather than failing the run).
pip_install --upgrade twisted || echo "WARNING: could not upgrade Twisted" >&2
if [ -f tests/node/package-lock.json ]; then
    echo "==> installing Node test clients"
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

# The oldest Twisted setup.py allows ("twisted>=X.Y" -> X.Y.*), with the test
# tools that go with it. pyOpenSSL 26.2 and later break TLS servers on Twisted
# older than 26.4 (Twisted mutates a TLS context already in use; newer pyOpenSSL
# refuses), so that environment keeps pyOpenSSL 26.1.
OLDEST="$(sed -n 's/.*"twisted>=\([0-9.]*\)".*/\1/p' "$ROOT/setup.py")"
OLD_VENV="$ROOT/build/venv-twisted-$OLDEST"
if [ "${TXRATCHET_SKIP_OLDEST_TWISTED:-0}" != 1 ]; then
    [ -n "$OLDEST" ] || { echo "cannot read the Twisted bound from setup.py" >&2; exit 1; }
    echo "==> installing Twisted $OLDEST.* and test tools into $OLD_VENV"
    [ -x "$OLD_VENV/bin/python" ] || "$PYTHON" -m venv "$OLD_VENV"
    constraints="$OLD_VENV/constraints.txt"
    printf 'twisted==%s.*\npyopenssl==26.1.0\n' "$OLDEST" > "$constraints"
    VENV="$OLD_VENV" pip_install -c "$constraints" "$ROOT[test]"
    VENV="$OLD_VENV" pip_install --no-deps --force-reinstall "$ROOT"
fi

twistedVersion() { "$1/bin/python" -c "import twisted; print(twisted.__version__)"; }
echo "==> ruff"
"$VENV/bin/ruff" check .
echo "==> mypy"
"$VENV/bin/mypy"
status=0
# The API reference (a docstring warning fails it), then the sdist and the
# wheel, installed in a fresh virtualenv and tried there; under a minute each.
bash scripts/docs.sh || { status=$?; echo "FAILED: scripts/docs.sh" >&2; }
bash scripts/check-dist.sh || { status=$?; echo "FAILED: scripts/check-dist.sh" >&2; }
echo "==> pytest, Twisted $(twistedVersion "$VENV") (newest)"
"$VENV/bin/python" -m pytest -q tests "$@" || status=$?
if [ "${TXRATCHET_SKIP_OLDEST_TWISTED:-0}" != 1 ]; then
    echo "==> pytest, Twisted $(twistedVersion "$OLD_VENV") (oldest allowed)"
    "$OLD_VENV/bin/python" -m pytest -q tests "$@" || status=$?
fi
exit "$status"
