#!/usr/bin/env bash
# Build txratchet's sdist and wheel as a release would (python -m build: the
# sdist, then the wheel from that sdist), check what each contains, install the
# wheel in a fresh virtualenv and try it there as a user would: twistd finds
# the plugin, every module imports. Then the same virtualenv gets an editable
# install of this checkout (pip install -e .), and twistd must find the plugin
# from it too. Everything goes under build/dist-check/; about half a minute.
# scripts/test.sh runs this.
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

"$VENV/bin/python" -c "import build" 2>/dev/null || pip_install build
WORK="$ROOT/build/dist-check"
rm -rf "$WORK"
mkdir -p "$WORK/elsewhere"   # the fresh venv runs from here, not from the checkout

echo "==> building the sdist and the wheel into $WORK/dist"
"$VENV/bin/python" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    tail -30 "$WORK/build.log" >&2
    echo "check-dist: python -m build failed (whole log: $WORK/build.log)" >&2
    exit 1
}

echo "==> checking their contents"
# Every tracked file of the package and the plugin must ship (a module or page
# added without package data would otherwise be missing only once installed).
TRACKED=""
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    TRACKED="$(git -C "$ROOT" ls-files txratchet twisted)"
fi
TRACKED="$TRACKED" "$VENV/bin/python" - "$WORK/dist" "$ROOT/txratchet/_version.py" <<'EOF'
import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

dist, versionFile = Path(sys.argv[1]), Path(sys.argv[2])
version = re.search(r'^__version__ = "([^"]+)"$', versionFile.read_text(), re.M).group(1)
problems = []

sdists = list(dist.glob("txratchet-*.tar.gz"))
wheels = list(dist.glob("txratchet-*-py3-none-any.whl"))
if [p.name for p in sdists] != [f"txratchet-{version}.tar.gz"]:
    problems.append(f"expected one sdist of version {version}, found {[p.name for p in sdists]}")
if [p.name for p in wheels] != [f"txratchet-{version}-py3-none-any.whl"]:
    problems.append(f"expected one pure wheel of version {version}, found {[p.name for p in wheels]}")
if problems:
    sys.exit("check-dist: " + "\n".join(problems))

with tarfile.open(sdists[0]) as tar:
    prefix = f"txratchet-{version}/"
    sdist = {name[len(prefix):] for name in tar.getnames() if name.startswith(prefix)}
with zipfile.ZipFile(wheels[0]) as whl:
    wheel = set(whl.namelist())
    metadata = whl.read(f"txratchet-{version}.dist-info/METADATA").decode()

shipped = {
    "twisted/plugins/txratchet_plugin.py",
    "txratchet/__init__.py",
    "txratchet/_version.py",
    "txratchet/py.typed",
    "txratchet/demo/index.html",
}
shipped.update(line for line in os.environ.get("TRACKED", "").split("\n") if line)
for name in sorted(shipped | {"README.md", "LICENSE", "CHANGELOG.md", "setup.py", "pyproject.toml"}):
    if name not in sdist:
        problems.append(f"sdist lacks {name}")
for name in sorted(shipped | {f"txratchet-{version}.dist-info/licenses/LICENSE"}):
    if name not in wheel:
        problems.append(f"wheel lacks {name}")
# Twisted's own package files must never be shipped (installing them would
# replace Twisted's), nor a plugin cache, bytecode or the tests' node modules.
forbidden = re.compile(
    r"^twisted/(__init__\.py|plugins/__init__\.py)$|dropin\.cache$|__pycache__|\.py[co]$|node_modules"
)
for where, names in (("sdist", sdist), ("wheel", wheel)):
    for name in sorted(names):
        if forbidden.search(name):
            problems.append(f"{where} ships {name}")
tops = {name.split("/")[0] for name in wheel}
if tops != {"txratchet", "twisted", f"txratchet-{version}.dist-info"}:
    problems.append(f"wheel's top-level names: {sorted(tops)}")
if f"\nVersion: {version}\n" not in metadata or "License: MIT" not in metadata:
    problems.append("wheel METADATA lacks the version or the MIT licence")
if problems:
    sys.exit("check-dist:\n  " + "\n  ".join(problems))
print(f"    sdist: {len(sdist)} files, wheel: {len(wheel)} files, version {version}")
EOF

echo "==> installing the wheel in a fresh virtualenv ($WORK/venv)"
"$PYTHON" -m venv "$WORK/venv"
FRESH="$WORK/venv/bin"
VENV="$WORK/venv" pip_install "$WORK"/dist/txratchet-*.whl

# $1: what is being checked; $2: the directory txratchet must be imported from.
tryInstalled() {
    local what="$1" expected="$2" help
    (
        cd "$WORK/elsewhere"
        help="$("$FRESH/twistd" txratchet --help 2>&1)" || {
            echo "$help" | tail -5 >&2
            echo "check-dist: 'twistd txratchet --help' fails $what" >&2
            exit 1
        }
        case "$help" in
            *"Usage: twistd [options] txratchet"*--app=*) ;;
            *) echo "check-dist: 'twistd txratchet --help' $what does not show its options" >&2
               exit 1 ;;
        esac
        "$FRESH/python" - "$expected" <<'EOF'
import importlib
import pkgutil
import sys
from importlib import resources
from pathlib import Path

import txratchet

where = Path(txratchet.__file__).resolve().parent
if where != Path(sys.argv[1]).resolve():
    sys.exit(f"check-dist: txratchet imported from {where}, expected {sys.argv[1]}")
# Every module imports; one needing a missing optional extra (txredisapi, ...)
# may fail only by lacking that dependency.
count = 0
for info in pkgutil.walk_packages(txratchet.__path__, "txratchet."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as e:
        if (e.name or "").startswith("txratchet"):
            raise
    count += 1
if not resources.files("txratchet.demo").joinpath("index.html").is_file():
    sys.exit("check-dist: txratchet/demo/index.html is not installed")
if not resources.files("txratchet").joinpath("py.typed").is_file():
    sys.exit("check-dist: txratchet/py.typed is not installed")
print(f"    txratchet {txratchet.__version__} from {where}: {count} modules import")
EOF
    )
    echo "    twistd txratchet --help works $what"
}
tryInstalled "from the wheel" "$WORK/venv/lib/python$("$FRESH/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages/txratchet"

echo "==> the same virtualenv, with pip install -e . of this checkout instead"
"$FRESH/python" -m pip uninstall -q -y txratchet
VENV="$WORK/venv" pip_install --no-deps -e "$ROOT"
tryInstalled "from an editable install" "$ROOT/txratchet"
echo "==> check-dist: OK"
