"""
The public surface: C{txratchet.__all__} is what users import (what the
README and the examples import from C{txratchet}), plumbing is not in it,
and every exception txratchet defines is a L{txratchet.errors.TxratchetError}.

Changing the surface is deliberate: edit L{EXPECTED} with it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import warnings
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

import txratchet
from txratchet import errors

ROOT = Path(__file__).resolve().parent.parent

#: txratchet.__all__, sorted.
EXPECTED = [
    "Application",
    "BinaryNotSupported",
    "CloseConnection",
    "Command",
    "Composite",
    "HandshakeError",
    "IApplication",
    "IConnection",
    "LineProtocol",
    "PerMessageDeflate",
    "SendMessage",
    "Server",
    "TxratchetError",
    "WebSocket",
    "WebSocketConnection",
]

#: Plumbing: layers and the framework use these, applications do not. No
#: package's __all__ may list them (they stay importable from their modules).
PLUMBING = {
    "ClientTransportConnection",
    "Connection",
    "Drain",
    "LowerConnection",
    "ServerProtocol",
    "TransportConnection",
    "checkMessage",
    "execute",
    "reportFailure",
}

#: Exception classes defined outside txratchet.errors, and why.
DEFINED_ELSEWHERE = {
    # Also a txredisapi.ConnectionError, and errors.py imports nothing (the
    # sans-I/O core uses it) while txredisapi is an optional dependency.
    # It never reaches an application anyway: RedisBackplane.publish
    # consumes it and reports the outage once.
    "txratchet._redis.NotConnected",
}

#: Modules that are programs, not libraries: importing one would run it.
NOT_IMPORTED = {"txratchet.client.__main__"}


def allModules() -> list[ModuleType]:
    """
    Every module of the txratchet package; one that needs an optional
    dependency that is missing is skipped.
    """
    modules = [txratchet]
    for info in pkgutil.walk_packages(txratchet.__path__, "txratchet."):
        if info.name in NOT_IMPORTED:
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ImportError as e:
            missing = getattr(e, "name", None) or ""  # ImportError's name: optional dependency
            if missing.startswith("txratchet"):
                raise
    return modules


def importsFromTxratchet(source: str) -> set[str]:
    """
    The names C{source} (Python) imports with C{from txratchet import ...}.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "txratchet" and not node.level:
            names.update(alias.name for alias in node.names)
    return names


def readmeBlocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)


class PublicSurfaceTests(SynchronousTestCase):
    def test_all(self) -> None:
        """
        C{txratchet.__all__} is exactly L{EXPECTED}, in order: a change to
        the public surface shows up here.
        """
        self.assertEqual(txratchet.__all__, EXPECTED)

    def test_importableAndDocumented(self) -> None:
        """
        Every public name exists and says what it is.
        """
        namespace: dict[str, object] = {}
        exec("from txratchet import *", namespace)
        self.assertEqual(sorted(k for k in namespace if k != "__builtins__"), EXPECTED)
        for name in txratchet.__all__:
            obj = namespace[name]
            self.assertTrue(inspect.getdoc(obj), f"txratchet.{name} has no docstring")

    def test_readmeAndExamples(self) -> None:
        """
        Every name the README's code (blocks, and inline C{from txratchet
        import ...}) and the examples import from C{txratchet} is public,
        and every other C{from txratchet.x import y} in the README works.
        """
        blocks = readmeBlocks()
        self.assertGreater(len(blocks), 3)
        used = set()
        for block in blocks:
            used |= importsFromTxratchet(block)
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("txratchet."):
                    module = importlib.import_module(node.module or "")
                    for alias in node.names:
                        self.assertTrue(
                            hasattr(module, alias.name), f"README: {node.module}.{alias.name}"
                        )
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        for inline in re.findall(r"`(from txratchet[\w.]* import [\w, ]+)`", readme):
            used |= importsFromTxratchet(inline)
            exec(inline, {})
        for example in sorted((ROOT / "examples").glob("*.py")):
            used |= importsFromTxratchet(example.read_text(encoding="utf-8"))
        used -= {m.name.rpartition(".")[2] for m in pkgutil.iter_modules(txratchet.__path__)}
        self.assertIn("WebSocket", used)
        self.assertEqual(used - set(txratchet.__all__), set())

    def test_noPlumbing(self) -> None:
        """
        No package (C{txratchet}, C{txratchet.components}, C{txratchet.client},
        ...: what users import from) exports plumbing in its C{__all__}; a
        module's C{__all__} may list what it defines. Every C{__all__} lists
        names that exist.
        """
        for module in allModules():
            exported = set(getattr(module, "__all__", ()))
            for name in exported:
                self.assertTrue(hasattr(module, name), f"{module.__name__}.{name}")
            if not hasattr(module, "__path__"):  # a module, not a package
                continue
            self.assertEqual(exported & PLUMBING, set(), module.__name__)

    def test_movedPlumbing(self) -> None:
        """
        What C{txratchet} used to export and no longer does still imports,
        with a warning naming its module.
        """
        from txratchet.commands import execute
        from txratchet.connection import TransportConnection

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertIs(txratchet.execute, execute)  # type: ignore[attr-defined]
            self.assertIs(txratchet.TransportConnection, TransportConnection)  # type: ignore[attr-defined]
        self.assertEqual([w.category for w in caught], [DeprecationWarning] * 2)
        self.assertIn("txratchet.commands", str(caught[0].message))
        with self.assertRaises(AttributeError):
            txratchet.NoSuchName  # type: ignore[attr-defined]  # noqa: B018

    def test_version(self) -> None:
        """
        The version is written once, in C{txratchet/_version.py}:
        C{txratchet.__version__} is it, and setup.py reads that file instead
        of declaring its own (C{scripts/check-dist.sh} checks that a built
        wheel carries it).
        """
        source = (ROOT / "txratchet" / "_version.py").read_text(encoding="utf-8")
        written = re.findall(r'^__version__ = "([^"]+)"$', source, re.M)
        self.assertEqual(written, [txratchet.__version__])
        setup = (ROOT / "setup.py").read_text(encoding="utf-8")
        self.assertIsNone(re.search(r"version=[\"']", setup))
        self.assertIn('"txratchet" / "_version.py"', setup)


class ErrorHierarchyTests(SynchronousTestCase):
    def test_errorsModule(self) -> None:
        """
        txratchet.errors lists every exception it defines, and each is a
        L{txratchet.TxratchetError}.
        """
        defined = {
            name
            for name, obj in vars(errors).items()
            if isinstance(obj, type)
            and issubclass(obj, BaseException)
            and obj.__module__ == errors.__name__
        }
        self.assertEqual(set(errors.__all__), defined)
        for name in defined:
            self.assertTrue(issubclass(getattr(errors, name), errors.TxratchetError), name)
        self.assertIs(txratchet.TxratchetError, errors.TxratchetError)

    def test_everyException(self) -> None:
        """
        Every exception class defined anywhere in txratchet derives from
        L{txratchet.TxratchetError}, and lives in txratchet.errors unless
        L{DEFINED_ELSEWHERE} says why not; the names other modules
        re-export are the same classes.
        """
        seen = set()
        for module in allModules():
            for name, obj in vars(module).items():
                if not (isinstance(obj, type) and issubclass(obj, BaseException)):
                    continue
                if not obj.__module__.startswith("txratchet"):
                    continue
                where = f"{obj.__module__}.{obj.__qualname__}"
                seen.add(where)
                self.assertTrue(issubclass(obj, errors.TxratchetError), where)
                if obj.__module__ != errors.__name__:
                    self.assertIn(where, DEFINED_ELSEWHERE)
                else:
                    self.assertIs(getattr(errors, obj.__name__), obj, f"{module.__name__}.{name}")
        self.assertIn("txratchet.errors.HandshakeError", seen)
        # An allow-list entry for a class that is gone is stale.
        for where in DEFINED_ELSEWHERE:
            self.assertIn(where, seen)


class DeclaredHooksTests(SynchronousTestCase):
    """
    The optional hooks (L{txratchet.interfaces.IRequestHandler},
    L{txratchet.interfaces.IReconnectHandler}) are found once, when an
    application is wrapped, and decorators forward them explicitly.
    """

    def test_hooksOf(self) -> None:
        from txratchet import Application
        from txratchet.interfaces import Hooks, hooksOf

        class Plain(Application):
            pass

        class Full(Application):
            subprotocols = ["chat.v2", "chat.v1"]

            def onRequest(self, conn: object, request: object) -> object:
                return "request"

            def onReconnect(self, conn: object) -> object:
                return "again"

        self.assertEqual(hooksOf(Plain()), Hooks(None, (), None))
        full = Full()
        hooks = hooksOf(full)
        self.assertEqual(hooks.subprotocols, ("chat.v2", "chat.v1"))
        self.assertEqual(hooks.onRequest, full.onRequest)
        self.assertEqual(hooks.onReconnect, full.onReconnect)

    def test_decoratorForwards(self) -> None:
        from zope.interface.verify import verifyObject

        from txratchet import Application
        from txratchet.components import Decorator, OriginCheck
        from txratchet.interfaces import IApplication, IReconnectHandler, IRequestHandler
        from txratchet.websocket.handshake import Headers, Request

        calls = []

        class Full(Application):
            subprotocols = ("chat",)

            def onRequest(self, conn: object, request: object) -> object:
                calls.append(("request", conn, request))
                return "accepted"

            def onReconnect(self, conn: object) -> object:
                calls.append(("reconnect", conn))
                return "again"

        # Two layers deep, through a decorator that overrides onRequest.
        outer = Decorator(OriginCheck(Full(), ["example.com"]))
        for interface in (IApplication, IRequestHandler, IReconnectHandler):
            self.assertTrue(verifyObject(interface, outer))
        self.assertEqual(outer.subprotocols, ("chat",))
        self.assertEqual(outer.onReconnect("conn"), "again")  # type: ignore[arg-type]
        request = Request("GET", "/", "HTTP/1.1", Headers([("Origin", "http://example.com")]))
        self.assertEqual(outer.onRequest("conn", request), "accepted")  # type: ignore[arg-type]
        self.assertEqual(calls, [("reconnect", "conn"), ("request", "conn", request)])

        # Around an application without hooks: there, and doing nothing.
        bare = Decorator(Application())
        self.assertEqual(tuple(bare.subprotocols), ())
        self.assertIsNone(bare.onRequest("conn", "request"))  # type: ignore[arg-type]
        self.assertIsNone(bare.onReconnect("conn"))  # type: ignore[arg-type]
