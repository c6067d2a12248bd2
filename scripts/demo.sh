#!/usr/bin/env bash
# Start the txratchet chat demo: http://localhost:8080/ (page and socket on one port).
# Makes .venv, installs txratchet into it with a plain `pip install .`, runs twistd.
# Extra arguments go to the plugin, e.g. scripts/demo.sh --port tcp:9000
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "==> installing txratchet into $VENV"
pip_install "$ROOT"
echo "==> chat demo on http://localhost:8080/ (Ctrl-C to stop)"
exec "$VENV/bin/twistd" -n --pidfile= txratchet "$@"
