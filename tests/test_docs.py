"""
The guide (docs/*.md) and the README say what is true.

* Every relative link of README.md and docs/*.md leads to a file that
  exists, and its C{#anchor} to a heading of that file (GitHub's anchors).
* Every ```python block of docs/ compiles. A block after
  C{<!-- file: PATH -->} is that file, whole and verbatim (any language:
  the systemd unit, the nginx configuration too); one after
  C{<!-- excerpt: PATH -->} is a verbatim part of it (possibly indented
  there, a method of a class). A block that is a whole program (it runs
  the reactor, or has a C{__main__} guard) must be a C{file:} block, so
  what the guide shows is what the examples' tests run; blocks of other
  libraries (the Autobahn side of a comparison) say
  C{<!-- another library -->}.
* Every C{--option} the guide gives C{twistd txratchet} (in commands and
  in prose) is one of its options, or one of twistd's own, or an option of
  the few other tools the guide shows; docs/deployment.md names every
  option C{twistd txratchet --help} lists.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from txratchet.tap import Options

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(file|excerpt):\s*(\S+)\s*-->\s*$|^<!--\s*(another library)\s*-->\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]`]|`[^`]*`)*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")

#: The options of other tools the guide shows (useradd, pip, pytest, nginx ...).
OTHER_TOOLS = {
    "system", "home-dir", "shell",  # useradd
    "config-settings", "version",  # pip; python --version
    "now",  # systemctl enable --now
}

#: twistd txratchet options used only between a --workers master and its
#: children, and those every twistd command has.
INTERNAL = {"inherit-fd", "inherit-line-fd", "master-fd", "help", "version"}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: tuple[str, str] | None  # ("file", path), ("excerpt", path), ("another library", "")


def parse(page: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """
    The fenced blocks of C{page}, and its other lines (numbered), where
    links and headings live.
    """
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        ticks, language = fence.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks), None)
        if end is None:
            raise AssertionError(f"{page.name}:{i + 1}: a code fence that never closes")
        marker = None
        previous = lines[i - 1] if i else ""
        found = _MARKER.match(previous)
        if found:
            marker = (found.group(1), found.group(2)) if found.group(1) else ("another library", "")
        blocks.append(Block(page, i + 1, language, "\n".join(lines[i + 1:end]), marker))
        i = end + 1
    return blocks, prose


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, line in parse(page)[1]:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def txratchetOptions() -> set[str]:
    return {name.rstrip("=") for name in Options().longOpt}


def twistdOptions() -> set[str]:
    return {name.rstrip("=") for name in ServerOptions().longOpt}


class LinkTests(SynchronousTestCase):
    def test_relativeLinksResolve(self) -> None:
        broken = []
        for page in PAGES:
            for number, line in parse(page)[1]:
                for target in _LINK.findall(_INLINE_CODE.sub("``", line)):
                    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                        continue  # https:, mailto:
                    path, _, anchor = target.partition("#")
                    where = (page.parent / path).resolve() if path else page
                    if not where.exists():
                        broken.append(f"{page.name}:{number}: {target}: no {where}")
                    elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                        broken.append(f"{page.name}:{number}: {target}: no heading #{anchor}")
        self.assertEqual(broken, [])

    def test_everyPageLinked(self) -> None:
        """Each page of the guide is on the index, and the index in the README."""
        index = (DOCS / "index.md").read_text()
        missing = [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and f"({p.name})" not in index]
        self.assertEqual(missing, [])
        self.assertTrue("(docs/index.md)" in (ROOT / "README.md").read_text(), "README: no link to the guide")

    def test_slugs(self) -> None:
        self.assertEqual(slug("`WebSocket(app, ...)` options"), "websocketapp--options")
        self.assertEqual(slug("Sessions: who is this peer?"), "sessions-who-is-this-peer")
        self.assertEqual(slug("4. Logins"), "4-logins")


class CodeBlockTests(SynchronousTestCase):
    def blocks(self) -> list[Block]:
        return [b for page in sorted(DOCS.glob("*.md")) for b in parse(page)[0]]

    def test_pythonCompiles(self) -> None:
        python = [b for b in self.blocks() if b.language == "python"]
        self.assertGreater(len(python), 10)
        for block in python:
            try:
                compile(textwrap.dedent(block.code), f"{block.page.name}:{block.line}", "exec")
            except SyntaxError as e:
                self.fail(f"{block.page.name}:{block.line}: {e}")

    def test_filesAndExcerpts(self) -> None:
        checked = 0
        for block in self.blocks():
            if block.marker is None or block.marker[0] == "another library":
                continue
            kind, name = block.marker
            where = f"{block.page.name}:{block.line}"
            text = (ROOT / name).read_text(encoding="utf-8")
            if kind == "file":
                self.assertEqual(block.code + "\n", text, f"{where} is not {name}")
            else:
                self.assertTrue(
                    any(textwrap.indent(block.code, " " * n) in text for n in (0, 4, 8)),
                    f"{where} is not an excerpt of {name}",
                )
            checked += 1
        self.assertGreater(checked, 10)

    def test_wholeProgramsAreExamples(self) -> None:
        for block in self.blocks():
            if block.language != "python" or block.marker is not None:
                continue
            whole = "reactor.run()" in block.code or "__main__" in block.code
            self.assertFalse(
                whole,
                f"{block.page.name}:{block.line} is a whole program: make it a file under "
                "examples/ and show it with <!-- file: examples/NAME.py -->",
            )

    def test_nginxAsTested(self) -> None:
        """
        The nginx location of the guide is the one tests/test_nginx.py runs
        (tests.services.NGINX_LOCATION, the README's), at the rooms' path.
        """
        from tests.services import NGINX_LOCATION, NGINX_MAP

        conf = (ROOT / "examples" / "deploy" / "nginx.conf").read_text()
        strip = lambda text: [line.strip() for line in text.strip().splitlines()]  # noqa: E731
        location = strip(NGINX_LOCATION.format(upstream=8080).replace("location /ws", "location /rooms/"))
        lines = strip(conf)
        self.assertTrue(
            any(lines[i:i + len(location)] == location for i in range(len(lines))),
            "examples/deploy/nginx.conf's location is not the tested one",
        )
        self.assertIn(NGINX_MAP, conf)


class OptionTests(SynchronousTestCase):
    def test_optionsExist(self) -> None:
        """
        Every --option in the guide, in commands or in prose, is one of
        twistd txratchet's, one of twistd's own, or one of the other tools
        the guide shows.
        """
        known = txratchetOptions() | twistdOptions() | OTHER_TOOLS
        unknown = []
        for page in sorted(DOCS.glob("*.md")):
            blocks, prose = parse(page)
            texts = [(n, line) for n, line in prose]
            texts += [(b.line, b.code) for b in blocks if b.language in ("sh", "text", "")]
            for number, text in texts:
                for name in _OPTION.findall(text):
                    if name not in known:
                        unknown.append(f"{page.name}:{number}: --{name}")
        self.assertEqual(unknown, [])

    def test_twistdCommandsParse(self) -> None:
        """
        Each C{twistd ... txratchet ...} command of the guide parses, as
        twistd parses it (nothing is started).
        """
        import os
        import tempfile

        from tests.tls import makeCertificate

        # The guide's certificate files, for --tls-cert and ssl: to find.
        here = Path(tempfile.mkdtemp(prefix="txratchet-docs-"))
        key, cert = makeCertificate(here)
        for name, source in (("fullchain.pem", cert), ("privkey.pem", key)):
            (here / name).write_bytes(source.read_bytes())
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(here)
        commands = 0
        for page in sorted(DOCS.glob("*.md")):
            for block in parse(page)[0]:
                if block.language != "sh":
                    continue
                for line in block.code.replace("\\\n", " ").splitlines():
                    words = line.split("#")[0].split()
                    if "twistd" not in words or "txratchet" not in words:
                        continue
                    args = words[words.index("twistd") + 1:]
                    parsed = ServerOptions()
                    try:
                        parsed.parseOptions(args)
                    except SystemExit as e:  # twistd txratchet's one-line errors
                        self.fail(f"{page.name}:{block.line}: {line!r}: exit {e.code}")
                    commands += 1
        self.assertGreater(commands, 5)

    def test_deploymentNamesEveryOption(self) -> None:
        text = (DOCS / "deployment.md").read_text()
        missing = sorted(o for o in txratchetOptions() - INTERNAL if f"`--{o}`" not in text)
        self.assertEqual(missing, [])
