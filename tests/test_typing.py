"""
The README's code and C{examples/} type-check, as a user's editor would
check them: with plain mypy, with mypy and the mypy-zope plugin, and with
pyright.

Every ```python block of README.md is a module of its own. A name a block
uses without defining or importing it comes from the latest earlier block
that defines or imports it (the README is read in order: the blocks after
"An application" use its C{Chat}), or is one of L{GIVENS}, the few names
the prose stands for (C{conn}, C{msg}, C{flask_app} ...). A block that
uses anything else fails here, as it would fail a reader who copies it.
A block that is not meant to be checked has C{<!-- typecheck: skip
(why) -->} on the line before its fence; keep those rare.

Each checker also checks a canary, L{CANARY}: what users write (an
application with no base class, an C{async def} handler, a decorator
stack, every attribute of a connection) must pass, and its mistakes must
be reported, each at its line: a checker that silently checks nothing (a
broken configuration, a module not found) fails the test.

The checkers see the source tree's C{txratchet} (not an installed copy),
and report only the README's and the examples' own errors, as for any
installed library.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import symtable
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import Interface
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

from tests.test_glue import ADDRESS, RecordingTransport, upgradeRequest
from txratchet import Application, IApplication, IConnection, LineProtocol, Server, WebSocket
from txratchet.backplane import IBackplane, InProcessBackplane
from txratchet.components import IpBlackList, OriginCheck
from txratchet.components.session import ISessionStore, ISharedSessionStore, SQLiteSessionStore
from txratchet.pubsub import Hub
from txratchet.websocket.protocol import State

ROOT = Path(__file__).resolve().parent.parent

#: What the README's prose means by the names its fragments take as given.
GIVENS = """\
import socket as _socket

from flask import Flask

from txratchet import IConnection

conn: IConnection  # a connection, in a handler
msg: str | bytes  # a message, in onMessage
data: object  # something to publish (JSON)
flask_app: Flask  # the web application next to the socket
request_bytes: bytes  # what a peer sent (the sans-I/O example)
frame_bytes: bytes
socket: _socket.socket  # a connected socket (the sans-I/O example)
"""

#: What users write, as the README describes it, checked like a block:
#: every line must pass every checker, except those marked C{# rejected},
#: which each checker must flag (proof that it checks, and that the
#: protocols are enforced, not just anything accepted).
CANARY = """\
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet import (
    Application, CloseConnection, IApplication, IConnection, LineProtocol, SendMessage, Server,
    WebSocket,
)
from txratchet.client import Client, WebSocketClient, connectWebSocket
from txratchet.components import Decorator, IpBlackList, OriginCheck
from txratchet.pubsub import Hub
from txratchet.web import WebSocketResource


class Plain:  # no base class, no @implementer: the protocol is enough
    def onOpen(self, conn: IConnection) -> None:
        conn.send("hello")
    def onMessage(self, sender: IConnection, msg: str | bytes) -> SendMessage:
        return SendMessage(sender, msg)
    def onClose(self, conn: IConnection) -> None:
        print(conn.closeCode, conn.closeReason, conn.wasClean)
    def onError(self, conn: IConnection, failure: Failure) -> CloseConnection:
        return CloseConnection(conn, 1011, failure.getErrorMessage())


@implementer(IApplication)
class Declared(Application):
    async def onMessage(self, conn: IConnection, msg: str | bytes) -> None:
        await succeed(None)
    def onOpen(self, conn: IConnection) -> Deferred[None]:
        return succeed(None)


class Logged(Decorator):
    def onMessage(self, c: IConnection, m: str | bytes) -> object:
        return super().onMessage(c, m)


def everything(conn: IConnection) -> None:
    print(conn.protocol, conn.path, conn.query, conn.params["room"][0], conn.cookies.get("sid"))
    print(conn.headers.get("User-Agent"), conn.headers.getAll("Cookie"), conn.peer.host)
    print(conn.subprotocol, conn.state, conn.request, conn.session["name"])
    conn.attributes["seen"] = True
    conn.session = None
    conn.close(1000, "bye")


Server(WebSocket(Plain()))
Server(LineProtocol(Declared()))
WebSocketResource(WebSocket(Logged(Hub(Plain()))))
app: IApplication = OriginCheck(Plain(), ["example.com"])
app = IpBlackList(app, ["10.0.0.0/8"])
Client(WebSocketClient(app, "ws://example.com/"))
print(IApplication.providedBy(app))


async def client(reactor: object) -> None:
    conn = await connectWebSocket(reactor, "ws://example.com/", Declared())
    everything(conn)
    await connectWebSocket(reactor, "ws://x/", Plain(), version=8, headers={"X-Token": "t"},
                           subprotocols=["chat"], compression=None, pingInterval=30)


class OnlyOpen:
    def onOpen(self, conn: IConnection) -> None: ...


def greet(conn: IConnection) -> None: conn.sendd("hello")  # rejected
WebSocket(OnlyOpen())  # rejected
SendMessage(Plain(), "hi")  # rejected
everything(conn=5)  # rejected
WebSocket(Plain(), pingIntervall=30)  # rejected
connectWebSocket(None, "ws://x/", Plain(), pingIntervall=30)  # rejected
"""

_FENCE = re.compile(r"^```python\s*$")
_SKIP = re.compile(r"<!--\s*typecheck:\s*skip\b")


@dataclass
class Block:
    """
    One ```python block: its first code line in the README (1-based),
    the section it is in, and its code.
    """

    line: int
    section: str
    code: str
    skipped: bool = False


def readmeBlocks(text: str) -> list[Block]:
    """
    The ```python blocks of a Markdown text, in order.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        fence = line.strip()
        if fence.startswith("```") and not _FENCE.match(fence):
            # Another language's block: skip to its end (its "#" lines
            # are not headings).
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                i += 1
        elif _FENCE.match(fence):
            indent = len(line) - len(line.lstrip())
            skipped = i > 0 and bool(_SKIP.search(lines[i - 1]))
            start = i + 1
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][indent:])
                i += 1
            blocks.append(Block(start + 1, section, "\n".join(body) + "\n", skipped))
        i += 1
    return blocks


def _bound(tree: ast.Module) -> set[str]:
    """
    The names a module binds at its top level.
    """
    table = symtable.symtable(ast.unparse(tree), "block", "exec")
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


def _free(code: str) -> set[str]:
    """
    The names a module reads and never binds (in any scope that would
    hold them), builtins included.
    """
    names: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for s in table.get_symbols():
            if not s.is_referenced():
                continue
            if table.get_type() == "module":
                if not (s.is_assigned() or s.is_imported()):
                    names.add(s.get_name())
            elif s.is_global():
                names.add(s.get_name())
        for child in table.get_children():
            walk(child)

    table = symtable.symtable(code, "block", "exec")
    walk(table)
    return names - {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


@dataclass
class Module:
    """
    A block written out as a module: its file, the README line of its
    first line (the file's line 2: line 1 imports its free names), and
    what it takes from earlier blocks.
    """

    name: str
    block: Block
    imports: str


def buildModules(blocks: list[Block], givens: set[str]) -> tuple[list[Module], list[str]]:
    """
    Write each block as a module that imports its free names from the
    latest earlier block binding them, or from the givens.

    @return: the modules, and the problems (a block that does not parse,
        or uses a name nothing defines).
    """
    modules: list[Module] = []
    problems: list[str] = []
    defined: dict[str, str] = {}  # name -> module of the latest block binding it
    builtin = set(dir(builtins))
    for index, block in enumerate(blocks):
        if block.skipped:
            continue
        name = f"readme_{index:02d}"
        try:
            tree = ast.parse(block.code)
        except SyntaxError as e:
            problems.append(f"README.md:{block.line + (e.lineno or 1) - 1}: not Python: {e.msg}")
            continue
        bound = _bound(tree)
        free = _free(block.code) - builtin
        sources: dict[str, list[str]] = {}
        for n in sorted(free):
            if n in defined:
                sources.setdefault(defined[n], []).append(n)
            elif n in givens:
                sources.setdefault("readme_givens", []).append(n)
            else:
                problems.append(
                    f"README.md:{block.line} ({block.section!r}): the block uses {n!r}, "
                    "which neither it nor an earlier block defines or imports"
                )
        imports = "; ".join(
            f"from {module} import {', '.join(names)}" for module, names in sorted(sources.items())
        )
        modules.append(Module(name, block, imports))
        for n in bound:
            defined[n] = name
    return modules, problems


class Workspace:
    """
    A temporary directory holding the README's blocks as modules, the
    givens, the canary and a copy of C{examples/}, with the checkers'
    configurations.
    """

    def __init__(self, readme: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="txratchet-typing-"))
        blocks = readmeBlocks(readme)
        self.blockCount = len(blocks)
        self.skipped = [b for b in blocks if b.skipped]
        givens = _bound(ast.parse(GIVENS))
        self.modules, self.problems = buildModules(blocks, givens)
        (self.dir / "readme_givens.py").write_text(GIVENS)
        # Line 1 of each module: its imports (or nothing), then the block.
        for module in self.modules:
            (self.dir / f"{module.name}.py").write_text(module.imports + "\n" + module.block.code)
        (self.dir / "readme_canary.py").write_text("\n" + CANARY)
        shutil.copytree(ROOT / "examples", self.dir / "examples")
        self.files = [
            *(f"{m.name}.py" for m in self.modules),
            "readme_canary.py",
            *sorted(f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")),
        ]

    def where(self, path: str, line: int) -> str:
        """
        The README line (or example file) a checker's error at C{line} of
        C{path} (a file of the workspace) is about.
        """
        name = Path(path).name.removesuffix(".py")
        for module in self.modules:
            if module.name == name:
                return f"README.md:{module.block.line + line - 2}"
        if name == "readme_canary":
            return f"canary:{line - 1}"
        if Path(path).parent.name == "examples":
            return f"examples/{Path(path).name}:{line}"
        return f"{path}:{line}"

    def source(self, path: str, line: int) -> str:
        """
        Line C{line} of C{path} (a file of the workspace).
        """
        lines = (self.dir / path).read_text().splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Error:
    """
    One error a checker reported: where (a README line, an example's line,
    the canary's) and what.
    """

    where: str
    message: str
    #: Twisted's typing, not txratchet's or the README's (see L{twistedCause}).
    twisted: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def txratchetInterfaces() -> set[str]:
    """
    The names of the interfaces txratchet declares (the others an error
    names are Twisted's).
    """
    names: set[str] = set()
    for path in (ROOT / "txratchet").rglob("*.py"):
        names.update(re.findall(r"^class (I[A-Z]\w*)\(", path.read_text(), re.M))
    return names


_EXPECTED_INTERFACE = re.compile(r'(?:expected|is not assignable to) "(I[A-Z]\w*)"')
_METHOD_OF_INTERFACE = re.compile(r'(?:" of|for class) "(I[A-Z]\w*)"')


def twistedCause(message: str, source: str, zope: bool, ours: set[str]) -> str | None:
    """
    Is this error about how Twisted types its own API, which no README
    can avoid? Then why; C{None} for any other error.

    Twisted types the global reactor as a make-believe C{_IReactorCommon}
    (which lacks C{IReactorThreads}: C{reactor.getThreadPool()}; older
    Twisted releases left it a module with no such attributes); and
    without the mypy-zope plugin, neither mypy nor pyright binds the
    methods of a zope interface (declared without C{self}: C{reactor.run()})
    or takes a class for the interfaces it C{@implementer}s
    (C{putChild(name, resource)} wants an C{IResource}). txratchet's own
    interfaces have neither problem: an error naming one is never excused.

    @param zope: the checker runs the mypy-zope plugin, which understands
        zope interfaces: only the reactor's type is excused.
    @param ours: the names of txratchet's interfaces.
    """
    if "_IReactorCommon" in message:
        return "the global reactor's type"
    attribute = re.match(r'Module has no attribute "(\w+)"', message)
    if '"twisted.internet.reactor"' in message or (
        attribute and f"reactor.{attribute[1]}" in source
    ):
        return "the global reactor's type (a module, on older Twisted)"
    if zope:
        return None
    if "does not accept self argument" in message and "reactor." in source:
        return "a zope interface's method (the reactor's)"
    match = _METHOD_OF_INTERFACE.search(message)
    if (
        match
        and match.group(1) not in ours
        # mypy: a call's arguments shifted by one; pyright: "Could not bind".
        and (" of " in match.group(0) or "Could not bind method" in message)
    ):
        return "a Twisted interface's method, declared without self"
    match = _EXPECTED_INTERFACE.search(message)
    if match and match.group(1) not in ours:
        return "a class for a Twisted interface it implements"
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The source tree's txratchet, before any installed copy.
    env["MYPYPATH"] = str(ROOT)
    env.pop("PYTHONPATH", None)
    return env


_MYPY_ERROR = re.compile(r"^(?P<path>[^:\n]+\.py):(?P<line>\d+): error: (?P<message>.*)$", re.M)


def runMypy(ws: Workspace, plugin: bool) -> tuple[list[Error], str]:
    """
    Run mypy over the workspace, with a user's minimal configuration
    (C{check_untyped_defs}, so that the bodies of unannotated functions are
    checked too) and the mypy-zope plugin if C{plugin}.

    @return: the errors and mypy's output.
    """
    config = ws.dir / ("mypy-zope.ini" if plugin else "mypy.ini")
    lines = [
        "[mypy]",
        f"python_version = {sys.version_info.major}.{sys.version_info.minor}",
        "check_untyped_defs = True",
        f"cache_dir = {ws.dir / ('.mypy-cache-zope' if plugin else '.mypy-cache')}",
        # An installed library's own errors are not the user's: the same
        # for the source tree's copy here.
        "[mypy-txratchet,txratchet.*]",
        "ignore_errors = True",
    ]
    if plugin:
        lines.insert(1, "plugins = mypy_zope:plugin")
    config.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), *ws.files],
        cwd=ws.dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    ours = txratchetInterfaces()
    errors = []
    for m in _MYPY_ERROR.finditer(output):
        path, line = m["path"], int(m["line"])
        cause = twistedCause(m["message"], ws.source(path, line), plugin, ours)
        errors.append(Error(ws.where(path, line), m["message"], cause is not None))
    if result.returncode != 0 and not errors:
        raise AssertionError(f"mypy did not run:\n{output}")
    return errors, output


def pyrightMissing() -> str | None:
    """
    Why pyright cannot run here, or C{None} when it can: the C{pyright}
    package (its wrapper installs the checker itself, from npm, at its
    first run) and Node.js to run it.
    """
    try:
        import pyright  # noqa: F401
    except ImportError:
        return "the pyright package is not installed (pip install pyright; the test extra has it)"
    if shutil.which("node") is None:
        return "pyright needs Node.js, which is not on PATH (scripts/test.sh installs it)"
    return None


def runPyright(ws: Workspace) -> tuple[list[Error], str]:
    """
    Run pyright over the workspace, with its default ("standard") checks.
    """
    (ws.dir / "pyrightconfig.json").write_text(
        json.dumps(
            {
                "include": ws.files,
                "extraPaths": [str(ROOT)],
                "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
            }
        )
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pyright", "--outputjson"),
            *("--pythonpath", sys.executable, "-p", str(ws.dir)),
        ],
        cwd=ws.dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(
            f"pyright did not run (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        ) from None
    if report["summary"]["filesAnalyzed"] < len(ws.files):
        raise AssertionError(f"pyright analyzed only some files:\n{result.stdout}")
    ours = txratchetInterfaces()
    errors = []
    for d in report["generalDiagnostics"]:
        if d["severity"] != "error":
            continue
        path = os.path.relpath(d["file"], ws.dir)
        line = d["range"]["start"]["line"] + 1
        message = " ".join(d["message"].split()) + f" [{d.get('rule', '')}]"
        cause = twistedCause(message, ws.source(path, line), False, ours)
        errors.append(Error(ws.where(path, line), message, cause is not None))
    return errors, result.stdout


class ReadmeTypesTests(TestCase):
    """
    Every ```python block of README.md, and every example, type-checks.
    """

    workspace: Workspace

    @classmethod
    def setUpClass(cls) -> None:
        cls.workspace = Workspace((ROOT / "README.md").read_text(encoding="utf-8"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.workspace.cleanup()

    def check(self, checker: str, errors: list[Error], output: str) -> None:
        expected = {
            f"canary:{n}"
            for n, line in enumerate(CANARY.splitlines(), 1)
            if line.endswith("# rejected")
        }
        found = {e.where for e in errors}
        self.assertEqual(
            expected - found,
            set(),
            f"{checker} accepted these mistakes of the canary: is it checking?\n{output}",
        )
        mistakes = [str(e) for e in errors if e.where not in expected and not e.twisted]
        self.assertEqual(
            mistakes,
            [],
            f"{checker} rejects README or example code ({len(mistakes)} errors; "
            f"blocks are numbered in order in {self.workspace.dir})",
        )

    def test_blocks(self) -> None:
        """
        Each block parses and uses only what it or an earlier block
        defines, or a given; blocks there are (the extraction works).
        """
        self.assertGreater(len(self.workspace.modules), 5)
        self.assertEqual(self.workspace.problems, [])

    def test_mypy(self) -> None:
        """
        Plain mypy (no plugin: zope interfaces are plain classes to it).
        """
        self.check("mypy", *runMypy(self.workspace, plugin=False))

    def test_mypyZope(self) -> None:
        """
        mypy with the mypy-zope plugin (which the project itself uses).
        """
        self.check("mypy (mypy-zope)", *runMypy(self.workspace, plugin=True))

    def test_pyright(self) -> None:
        """
        pyright (what VS Code's Pylance runs).
        """
        missing = pyrightMissing()
        if missing is not None:
            # CI installs both (scripts/test.sh): there, this is a failure.
            if os.environ.get("CI"):
                self.fail(missing)
            raise SkipTest(missing)
        self.check("pyright", *runPyright(self.workspace))


class ExtractionTests(TestCase):
    """
    The README is read as documented: fences, sections, skips, free names;
    Twisted's typing is told from txratchet's.
    """

    def test_blocks(self) -> None:
        text = (
            "# A\n```python\nx = 1\n```\n"
            "```sh\n# not a heading\n```\n"
            "## B\n<!-- typecheck: skip (a sketch) -->\n```python\ny = ?\n```\n"
            "* item:\n\n  ```python\n  print(x)\n  ```\n"
        )
        blocks = readmeBlocks(text)
        self.assertEqual(
            [(b.line, b.section, b.code, b.skipped) for b in blocks],
            [
                (3, "A", "x = 1\n", False),
                (11, "B", "y = ?\n", True),
                (16, "B", "print(x)\n", False),
            ],
        )
        modules, problems = buildModules(blocks, set())
        self.assertEqual(problems, [])
        self.assertEqual([m.imports for m in modules], ["", "from readme_00 import x"])

    def test_freeNames(self) -> None:
        """
        Parameters, locals and names bound later in the block are not free;
        names read in functions and classes that nothing binds are.
        """
        code = (
            "from m import A\n"
            "class C(A):\n    y = z\n"
            "    def f(self, conn):\n        return conn + [i for i in w]\n"
            "g = lambda conn, t: conn + t + k\n"
            "print(conn)\n"
            "async def main(reactor):\n    c = await foo(reactor, C, g)\n"
        )
        self.assertEqual(_free(code) - set(dir(builtins)), {"z", "w", "k", "conn", "foo"})

    def test_undefined(self) -> None:
        blocks = readmeBlocks("# S\n```python\ndef f(a):\n    return a + b\n```\n")
        _, problems = buildModules(blocks, {"c"})
        self.assertEqual(len(problems), 1)
        self.assertIn("README.md:3 ('S'): the block uses 'b'", problems[0])

    def test_twistedCause(self) -> None:
        """
        Only errors about Twisted's interfaces and reactor are excused, and
        only what the checker at hand gets wrong.
        """
        ours = txratchetInterfaces()
        self.assertLessEqual({"IApplication", "IConnection", "ISessionStore"}, ours)
        excused = [
            ('"_IReactorCommon" has no attribute "getThreadPool"', "", True),
            (
                'Attribute function "run" with type "Callable[[], None]" does not accept '
                "self argument",
                "reactor.run()",
                False,
            ),
            (
                'Argument 2 to "putChild" of "Resource" has incompatible type '
                '"WebSocketResource"; expected "IResource"',
                "",
                False,
            ),
            ('"FileLogObserver" is not assignable to "ILogObserver"', "", False),
            ('Module has no attribute "run"', "    reactor.run()", True),
            ('"run" is not a known attribute of module "twisted.internet.reactor"', "", True),
            (
                'Argument 2 to "addSystemEventTrigger" of "IReactorCore" has incompatible '
                'type "str"; expected "Callable[..., Any]"',
                "",
                False,
            ),
            (
                'Cannot access attribute "write" for class "ITransport" Could not bind '
                'method "write" because it is missing a "self" or "cls" parameter',
                "",
                False,
            ),
        ]
        for message, source, zope in excused:
            self.assertIsNotNone(twistedCause(message, source, zope, ours), message)
        kept = [
            (
                'Argument 1 to "WebSocket" has incompatible type "Chat"; expected "IApplication"',
                "",
                False,
            ),
            ('"FlaskCookieSessions" is not assignable to "ISessionStore"', "", False),
            (
                'Attribute function "send" with type "Callable[[], None]" does not accept '
                "self argument",
                "conn.send(x)",
                False,
            ),
            ('expected "IResource"', "", True),
            ('Argument 1 to "send" of "IConnection" has incompatible type "int"', "", False),
            (
                'Cannot access attribute "x" for class "IResource" Attribute "x" is unknown',
                "",
                False,
            ),
            ('"IConnection" has no attribute "sendd"', "", False),
            ('Module has no attribute "WebSockett"', "txratchet.WebSockett(app)", True),
        ]
        for message, source, zope in kept:
            self.assertIsNone(twistedCause(message, source, zope, ours), message)


class RuntimeInterfaceTests(SynchronousTestCase):
    """
    The interfaces declared for type checkers are the zope interfaces they
    were, and every connection an application gets provides all of
    L{IConnection}.
    """

    def test_zope(self) -> None:
        """
        C{IApplication} and C{IConnection} are zope interfaces whose methods
        take no C{self}, with the names the handlers document.
        """
        for iface in (IApplication, IConnection, ISessionStore, IBackplane):
            self.assertIsInstance(iface, InterfaceClass)
            self.assertEqual(iface.__bases__, (Interface,))
        self.assertEqual(IApplication["onMessage"].getSignatureString(), "(conn, message)")
        self.assertEqual(IApplication["onError"].required, ("conn", "failure"))
        self.assertEqual(IConnection["close"].getSignatureString(), "(code=1000, reason='')")
        self.assertLessEqual(
            {"path", "params", "headers", "state", "closeCode", "session", "attributes"},
            set(IConnection.names()),
        )
        self.assertTrue(ISharedSessionStore.extends(ISessionStore))
        self.assertTrue(ISessionStore.implementedBy(SQLiteSessionStore))
        verifyObject(IBackplane, InProcessBackplane())

    def test_applications(self) -> None:
        """
        Applications, layers and decorators provide C{IApplication}.
        """
        app = Application()
        for obj in (
            app,
            WebSocket(app),
            LineProtocol(app),
            OriginCheck(app, ["example.com"]),
            IpBlackList(app, []),
            Hub(app),
        ):
            self.assertTrue(verifyObject(IApplication, obj), obj)

    def test_connections(self) -> None:
        """
        A WebSocket connection, a line connection and the TCP connection
        under a layer each provide every member of C{IConnection}; those
        without a handshake have empty ones.
        """
        seen: list[Any] = []

        class Keep(Application):
            def onOpen(self, conn: IConnection) -> None:
                seen.append(conn)

        app = Keep()
        clock = task.Clock()
        for factory, data in (
            (Server(WebSocket(app, clock=clock)), upgradeRequest("/chat?room=a")),
            (Server(LineProtocol(app, clock=clock)), b""),
            (Server(app), b""),
        ):
            proto = factory.buildProtocol(ADDRESS)
            transport = RecordingTransport()
            proto.makeConnection(transport)
            proto.dataReceived(data)
        ws, line, tcp = seen
        for conn in seen:
            self.assertTrue(verifyObject(IConnection, conn), conn)
        self.assertEqual((ws.protocol, ws.path, ws.params), ("rfc6455", "/chat", {"room": ["a"]}))
        for conn, protocol in ((line, "line"), (tcp, "tcp")):
            self.assertEqual(
                (conn.protocol, conn.path, conn.query, conn.params, conn.cookies),
                (protocol, "", "", {}, {}),
            )
            self.assertEqual(list(conn.headers), [])
            self.assertIsNone(conn.request)
            self.assertIsNone(conn.subprotocol)
            self.assertEqual((conn.closeCode, conn.wasClean), (None, False))
            self.assertIs(conn.state, State.OPEN)
            conn.close()
            self.assertIs(conn.state, State.CLOSED)
        self.assertEqual((line.closeCode, line.closeReason), (1000, ""))
