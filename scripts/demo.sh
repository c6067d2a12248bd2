#!/usr/bin/env bash
# Start the txratchet chat demo: http://localhost:8080/ (page and socket on one port).
# Makes .venv, installs txratchet into it with a plain `pip install .`, runs twistd.
# Extra arguments go to the plugin, e.g. scripts/demo.sh --port tcp:9000
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "==> installing txratchet into $VENV"
pip_install "$ROOT"
# twistd logs the address to open once it listens ("the chat demo is at
# http://localhost:8080/"), from the port it really got: --port tcp:9000,
# an interface or --tls-cert all show there.
echo "==> starting the chat demo; open the address it logs (Ctrl-C to stop)"
exec "$VENV/bin/twistd" -n --pidfile= txratchet "$@"
