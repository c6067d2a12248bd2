"""
The sans-I/O core: nothing under C{txratchet.websocket} imports Twisted
(or zope), directly or through the txratchet modules it imports.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import txratchet.websocket

_PACKAGE_DIR = Path(txratchet.__file__).parent

#: Runs in a fresh interpreter: the txratchet package is made without
#: running its __init__ (which serves the Twisted glue), any import of
#: Twisted or zope raises, then every module of the core is imported.
_CHECK = r"""
import importlib, importlib.abc, sys, types

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("twisted", "zope"):
            raise ImportError("the sans-I/O core imported " + name)
        return None

sys.meta_path.insert(0, Blocker())
package = types.ModuleType("txratchet")
package.__path__ = [PACKAGE_DIR]
sys.modules["txratchet"] = package
for name in MODULES:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.startswith("txratchet"))
print("\n".join(loaded))
"""


def coreModules() -> list[str]:
    """
    Every module of the C{txratchet.websocket} package.
    """
    names = ["txratchet.websocket"]
    for info in pkgutil.iter_modules(txratchet.websocket.__path__):
        names.append(f"txratchet.websocket.{info.name}")
    return names


class SansIOTests(SynchronousTestCase):
    """
    The protocol core runs without Twisted.
    """

    def test_noTwistedImport(self) -> None:
        """
        Every core module imports with Twisted and zope blocked; the
        txratchet modules it pulls in are only the core and C{errors}.
        """
        modules = coreModules()
        self.assertIn("txratchet.websocket.protocol", modules)
        script = _CHECK.replace("PACKAGE_DIR", repr(str(_PACKAGE_DIR))).replace(
            "MODULES", repr(modules)
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        loaded = set(result.stdout.split())
        outside = {
            m
            for m in loaded
            if m not in ("txratchet", "txratchet.errors")
            and not m.startswith("txratchet.websocket")
        }
        self.assertEqual(outside, set())
        self.assertTrue(set(modules) <= loaded)

    def test_blockerWorks(self) -> None:
        """
        The check fails for a module that does import Twisted (so the test
        above can fail).
        """
        script = _CHECK.replace("PACKAGE_DIR", repr(str(_PACKAGE_DIR))).replace(
            "MODULES", repr(["txratchet.connection"])
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("the sans-I/O core imported twisted", result.stderr)
