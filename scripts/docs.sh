#!/usr/bin/env bash
# Build the API reference with pydoctor (Twisted's own tool; the docstrings are
# epytext) into docs/_build/api/ (open docs/_build/api/index.html).
#
# Any warning - a docstring pydoctor cannot parse, an L{link} to nothing - fails
# the build (exit status 3), after the pages are written; scripts/test.sh runs
# this, so it fails CI too. Links to Twisted go to its published API reference,
# found through an inventory made once per Twisted version from the installed
# Twisted (no download).
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

if ! "$VENV/bin/python" -c "import pydoctor" 2>/dev/null; then
    echo "==> installing pydoctor into $VENV"
    pip_install "$ROOT[docs]"
fi

OUT="$ROOT/docs/_build"
TWISTED_DIR="$("$VENV/bin/python" -c "import os, twisted; print(os.path.dirname(twisted.__file__))")"
TWISTED_VERSION="$("$VENV/bin/python" -c "import twisted; print(twisted.__version__)")"
TWISTED_INV="$OUT/twisted-$TWISTED_VERSION"
if [ ! -f "$TWISTED_INV/objects.inv" ]; then
    echo "==> indexing Twisted $TWISTED_VERSION's API for links (once per version)"
    "$VENV/bin/pydoctor" --quiet --make-intersphinx --project-name Twisted \
        --project-version "$TWISTED_VERSION" --html-output "$TWISTED_INV.tmp" \
        "$TWISTED_DIR" >/dev/null 2>&1 || true
    [ -f "$TWISTED_INV.tmp/objects.inv" ] || { echo "could not index Twisted" >&2; exit 1; }
    rm -rf "$TWISTED_INV" && mv "$TWISTED_INV.tmp" "$TWISTED_INV"
fi

VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' txratchet/_version.py)"
echo "==> API reference (pydoctor, warnings are errors) -> docs/_build/api/"
rm -rf "$OUT/api"
"$VENV/bin/pydoctor" \
    --quiet \
    --warnings-as-errors \
    --project-name txratchet \
    --project-version "$VERSION" \
    --project-base-dir "$ROOT" \
    --docformat epytext \
    --intersphinx-file "$TWISTED_INV/objects.inv::https://docs.twisted.org/en/stable/api" \
    --html-output "$OUT/api" \
    txratchet
