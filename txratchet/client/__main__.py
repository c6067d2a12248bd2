"""
A small command-line WebSocket client::

    python -m txratchet.client ws://localhost:8080/chat

Each line read from standard input is sent as a message (text; binary with
C{--send-binary}); each message that arrives is printed on its own line
(binary ones as C{--binary} says). It exits when the server closes the
connection, or, once standard input ends, after closing it (1000) and
receiving what the server still had to send. The exit status is 0 after a
clean close, 1 otherwise (a refused handshake, a dropped connection).
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, stdio, task
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.application import Application
from txratchet.client.connect import connectWebSocket
from txratchet.websocket.deflate import DEFAULT_OFFER
from txratchet.websocket.handshake import parseURL

BINARY_FORMATS = ("repr", "hex", "base64", "raw")


def redactedURL(url: str) -> str:
    """
    C{url} with the password of its C{user:password@} part shown as
    C{***}: what this command prints about the URL (a terminal, a log or a
    CI transcript is no place for it).
    """
    userinfo = _userinfo(url)
    user, colon, password = userinfo.partition(":")
    if not (colon and password):
        return url
    return url.replace(f"{userinfo}@", f"{user}:***@", 1)


def _userinfo(url: str) -> str:
    # By hand: urlsplit raises on some malformed URLs, which get messages too.
    authority = url.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    return authority.rpartition("@")[0]


def redact(text: str, url: str) -> str:
    """
    C{text} (a message about C{url}) without the URL's password, in its
    raw and its quoted (C{repr}) form.
    """
    safe = redactedURL(url)
    if safe == url:
        return text
    for raw, shown in ((url, safe), (repr(url)[1:-1], repr(safe)[1:-1])):
        text = text.replace(raw, shown)
    password = _userinfo(url).partition(":")[2]
    for form in {password, repr(password)[1:-1]}:
        text = text.replace(f":{form}@", ":***@")
    return text


def parseArguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m txratchet.client",
        description=(
            "Connect to a WebSocket server, send each line of standard input "
            "as a message and print the messages that arrive."
        ),
    )
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument(
        "-p", "--subprotocol", action="append", default=[], metavar="NAME",
        help="offer this subprotocol (repeat for several, in order of preference)",
    )
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    parser.add_argument(
        "-c", "--cookie", action="append", default=[], metavar="NAME=VALUE",
        help="send a cookie (repeatable)",
    )
    parser.add_argument("-o", "--origin", help="the Origin header to send")
    parser.add_argument(
        "-V", "--version", default="13", choices=("13", "8", "7", "hixie-76"),
        help="protocol version (default: 13, RFC 6455)",
    )
    parser.add_argument(
        "-b", "--binary", default="repr", choices=BINARY_FORMATS,
        help="how to print binary messages (default: Python bytes repr)",
    )
    parser.add_argument(
        "--send-binary", action="store_true", help="send each line as a binary message"
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    parser.add_argument(
        "--cacert", action="append", metavar="PEM",
        help="for wss://, trust this CA certificate file instead of the system's",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS",
        help="how long the server has to answer the handshake (default: 10)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="do not report the connection and its close on standard error",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log Twisted's events on standard error"
    )
    args = parser.parse_args(argv)
    try:
        parseURL(args.url)
    except ValueError as e:
        parser.error(redact(str(e), args.url))
    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            parser.error(f"--header {header!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    args.headers = headers
    cookies = []
    for cookie in args.cookie:
        name, sep, value = cookie.partition("=")
        if not sep or not name.strip():
            parser.error(f"--cookie {cookie!r}: expected name=value")
        cookies.append((name.strip(), value.strip()))
    args.cookies = cookies
    if args.send_binary and args.version == "hixie-76":
        parser.error("Hixie-76 cannot carry binary messages")
    return args


def formatMessage(message: str | bytes, binary: str = "repr") -> bytes:
    """
    How a message is printed: text as UTF-8, binary as C{binary} says; a
    newline after each, except for raw binary.
    """
    if isinstance(message, str):
        return message.encode("utf-8", "surrogateescape") + b"\n"
    if binary == "hex":
        return message.hex().encode("ascii") + b"\n"
    if binary == "base64":
        return base64.b64encode(message) + b"\n"
    if binary == "raw":
        return message
    return repr(message).encode("ascii") + b"\n"


class Printer(Application):
    """
    Prints every message; fires L{closed} with the connection once it is
    gone.
    """

    def __init__(self, write: Any, binary: str, url: str = "") -> None:
        self.write = write
        self.binary = binary
        self.url = url
        self.closed: defer.Deferred[Any] = defer.Deferred()

    def onMessage(self, conn: Any, message: str | bytes) -> None:
        self.write(formatMessage(message, self.binary))

    def onClose(self, conn: Any) -> None:
        if not self.closed.called:
            self.closed.callback(conn)

    def onError(self, conn: Any, failure: Failure) -> None:
        sys.stderr.write(f"error: {redact(failure.getErrorMessage(), self.url)}\n")
        conn.close(1011, "Internal error")


@implementer(IHalfCloseableProtocol)
class StdinLines(LineReceiver):
    """
    Sends each line of standard input; closes the WebSocket when input ends.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, sendBinary: bool) -> None:
        self.sendBinary = sendBinary
        self.conn: Any = None
        self.gone: defer.Deferred[None] = defer.Deferred()

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self._send(line)

    def _send(self, line: bytes) -> None:
        if self.conn is None:
            return
        if self.sendBinary:
            self.conn.send(line)
        else:
            self.conn.send(line.decode("utf-8", "replace"))

    def lineLengthExceeded(self, line: bytes) -> None:
        self._send(line)

    def readConnectionLost(self) -> None:
        rest = self.clearLineBuffer()
        if rest:
            self._send(rest)
        if self.conn is not None:
            self.conn.close(1000)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.gone.called:
            self.gone.callback(None)


async def run(reactor: Any, args: argparse.Namespace) -> None:
    lines = StdinLines(args.send_binary)
    stdioTransport = stdio.StandardIO(lines, reactor=reactor)
    stdioTransport.pauseProducing()  # no input before the connection is open
    printer = Printer(stdioTransport.write, args.binary, args.url)
    try:
        conn = await connectWebSocket(
            reactor,
            args.url,
            printer,
            version=args.version,
            subprotocols=args.subprotocol,
            headers=args.headers,
            cookies=args.cookies or None,
            origin=args.origin,
            compression=None if args.no_compression else DEFAULT_OFFER,
            caCertificates=args.cacert,
            handshakeTimeout=args.timeout,
        )
    except Exception as e:
        sys.stderr.write(redact(f"Could not connect to {args.url}: {e}\n", args.url))
        stdioTransport.loseConnection()
        await lines.gone
        raise SystemExit(1) from None
    if not args.quiet:
        extra = f", subprotocol {conn.subprotocol}" if conn.subprotocol else ""
        sys.stderr.write(redact(f"Connected to {conn.url} ({conn.protocol}{extra})\n", args.url))
    lines.conn = conn
    stdioTransport.resumeProducing()
    closed = await printer.closed
    stdioTransport.loseConnection()  # after what is still to be printed
    await lines.gone
    if not args.quiet:
        code = "" if closed.closeCode is None else f" {closed.closeCode}"
        reason = f" {closed.closeReason}" if closed.closeReason else ""
        how = "closed" if closed.wasClean else "dropped"
        sys.stderr.write(redact(f"Connection {how}{code}{reason}\n", args.url))
    if not closed.wasClean:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    args = parseArguments(argv)
    if args.verbose:
        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
