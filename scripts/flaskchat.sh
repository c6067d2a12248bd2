#!/usr/bin/env bash
# Run the Flask + chat example (examples/flaskchat.py): log in through Flask,
# chat over the WebSocket on the same port with the same session. A second
# user logs in at http://127.0.0.1:8080/ (tabs of http://localhost:8080/ share
# one session cookie) or in a private window.
# Makes .venv, installs txratchet and Flask into it. Extra arguments go to the
# example, e.g. scripts/flaskchat.sh --port 9000 --store sqlite:sessions.db
# (--origin https://chat.example.com lets pages from another origin open the chat).
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "==> installing txratchet and Flask into $VENV"
pip_install "$ROOT[redis]" flask
exec "$VENV/bin/python" examples/flaskchat.py "$@"
