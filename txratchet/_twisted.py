"""
The fence: the only module of txratchet that reads Twisted's private state.

Two things need more than Twisted's public API:

  - B{Write-through.} C{transport.write} always queues and writes on the
    next reactor turn (two C{epoll_ctl} calls and a loop iteration per
    answer). On plain TCP (and UNIX) sockets, txratchet hands its bytes to
    the kernel at once when Twisted holds nothing queued for that socket,
    and gives Twisted only what the kernel would not take. Knowing "nothing
    is queued" means reading C{FileDescriptor._tempDataBuffer},
    C{dataBuffer}, C{offset} and C{_writeDisconnected}, and the socket means
    C{tcp.Connection.socket} and C{TLS}.
  - B{Taking a connection over from twisted.web} (L{txratchet.web}): the
    bytes C{HTTPChannel} received after the upgrade request's head but did
    not parse are in its private C{_dataBuffer} (and in C{LineReceiver}'s
    buffer, which C{clearLineBuffer} returns publicly), and the transport's
    protocol is re-pointed at the WebSocket.

Each use is checked at first use against the installed Twisted (does the
object have what is read, with the expected types?). When it does not, one
warning is logged and Twisted's public path is used instead: write-through
is off (everything goes through C{transport.write}); a taken-over channel
gives only its public line buffer, and its data is forwarded through the
channel instead of re-pointing the transport. C{tests/test_fence.py} fails
when the installed Twisted lacks what this module reads, so an upgrade that
renames something fails CI instead of silently running slower.

Write-through can be turned off: C{TXRATCHET_WRITE_THROUGH=0} in the
environment, or L{setWriteThrough}C{(False)} (for connections open and
future ones).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet import tcp
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper

log = Logger()

#: The environment variable that turns write-through off when "0".
WRITE_THROUGH_ENV = "TXRATCHET_WRITE_THROUGH"


def _enabledByEnvironment() -> bool:
    value = os.environ.get(WRITE_THROUGH_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


#: Is write-through on? (See L{setWriteThrough}.)
writeThrough: bool = _enabledByEnvironment()

# Transport classes checked so far: class -> what they lack (empty: usable).
_checked: dict[type, tuple[str, ...]] = {}
# What was already warned about, so each problem is one log line.
_warned: set[str] = set()


def setWriteThrough(enabled: bool) -> None:
    """
    Turn write-through on or off for the whole process. Off, every write
    goes through Twisted's C{transport.write}: open connections switch at
    their next write. A connection made while it was off keeps Twisted's
    path.
    """
    global writeThrough
    writeThrough = bool(enabled)


def _warnOnce(key: str, message: str, **fields: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warn(message, **fields)


# ---------------------------------------------------------------- write-through


#: What L{writable} and L{throughSocket} read of a C{tcp.Connection}, with
#: the types they must have.
TRANSPORT_INTERNALS: dict[str, type | tuple[type, ...]] = {
    "socket": socket.socket,
    "TLS": (bool, int),
    "_tempDataBuffer": list,
    "dataBuffer": (bytes, bytearray, memoryview),
    "offset": int,
    "_writeDisconnected": (bool, int),
    "connected": (bool, int),
    "disconnecting": (bool, int),
}


def missingTransportInternals(transport: object) -> tuple[str, ...]:
    """
    What of L{TRANSPORT_INTERNALS} C{transport} (a C{tcp.Connection})
    lacks or holds with an unexpected type, as readable strings; empty when
    write-through can use it.
    """
    problems = []
    for name, expected in TRANSPORT_INTERNALS.items():
        try:
            value = getattr(transport, name)
        except AttributeError:
            problems.append(f"no {name}")
            continue
        if not isinstance(value, expected):
            problems.append(f"{name} is {type(value).__name__}")
    return tuple(problems)


def throughSocket(transport: object) -> socket.socket | None:
    """
    The socket to write C{transport}'s bytes to directly, or C{None} to
    keep Twisted's path: write-through is off, the transport is not a
    plain C{tcp.Connection} (TLS started on it, a TLS wrapper, a test
    transport), or its class fails the capability check. The check runs
    once per transport class, at its first connection.
    """
    if not writeThrough or not isinstance(transport, tcp.Connection):
        return None
    cls = type(transport)
    problems = _checked.get(cls)
    if problems is None:
        problems = _checked[cls] = missingTransportInternals(transport)
        if problems:
            _warnOnce(
                "transport:" + cls.__qualname__,
                "txratchet write-through is off: this Twisted's {cls} does not have what it "
                "reads ({problems}); writing through transport.write instead",
                cls=f"{cls.__module__}.{cls.__qualname__}",
                problems=", ".join(problems),
            )
    if problems or transport.TLS:
        return None
    sock = transport.socket
    return sock if isinstance(sock, socket.socket) else None


def writable(transport: Any) -> bool:
    """
    May bytes for C{transport} go to its socket now, ahead of Twisted?
    Only when write-through is on, Twisted holds nothing queued for it
    (what it holds must leave first) and it is connected and not closing.

    C{transport} is one L{throughSocket} gave a socket for: the check is
    done. Called per write: attribute reads only.
    """
    return (
        writeThrough
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
    )


def holding(transport: Any) -> bool:
    """
    Does Twisted hold bytes it has not written yet for C{transport} (one
    L{throughSocket} gave a socket for)?
    """
    return bool(transport._tempDataBuffer) or transport.offset != len(transport.dataBuffer)


# ---------------------------------------------------------------- twisted.web


#: What L{takeUnreadBytes} reads of an C{HTTPChannel} that is not public:
#: the bytes received past a request while it is handled (a list of bytes).
CHANNEL_INTERNALS = ("_dataBuffer",)


def missingChannelInternals(channel: object) -> tuple[str, ...]:
    """
    What C{channel} lacks of what L{takeUnreadBytes} reads, as readable
    strings; empty when it can read it.
    """
    problems = []
    buffered = getattr(channel, "_dataBuffer", None)
    if not isinstance(buffered, list) or not all(type(part) is bytes for part in buffered):
        problems.append("_dataBuffer is not a list of bytes")
    if not callable(getattr(channel, "clearLineBuffer", None)):
        problems.append("no clearLineBuffer")
    return tuple(problems)


def takeUnreadBytes(channel: Any) -> bytes:
    """
    Remove and return the bytes C{channel} (a C{twisted.web} C{HTTPChannel})
    received after the current request's head and has not parsed: a
    Hixie-76 key, or frames a peer sent without waiting for the answer.

    When the capability check fails (one warning), what is missing is
    skipped: C{_dataBuffer} holds bytes only when the request had a body,
    which an upgrade request has not; the rest is in the public line
    buffer.
    """
    problems = missingChannelInternals(channel)
    if problems:
        _warnOnce(
            "channel:" + type(channel).__qualname__,
            "txratchet: this Twisted's {cls} does not have what WebSocketResource reads "
            "({problems}); bytes it buffered past the request head may be lost",
            cls=type(channel).__qualname__,
            problems=", ".join(problems),
        )
    data = b""
    buffered = getattr(channel, "_dataBuffer", None)
    if isinstance(buffered, list) and all(type(part) is bytes for part in buffered):
        data = b"".join(buffered)
        channel._dataBuffer = []
    clear = getattr(channel, "clearLineBuffer", None)
    if callable(clear):
        data += bytes(clear())
    return data


def switchProtocol(transport: Any, old: Any, new: Any) -> None:
    """
    Make C{transport} deliver to C{new} what it delivered to C{old}, the
    C{twisted.web} channel (bytes and the connection's loss): re-point a
    TLS wrapper's C{wrappedProtocol} or a C{tcp.Connection}'s C{protocol}
    (which may be C{old} or C{Site}'s wrapper around it). Over a
    transport this module does not know, C{old} forwards to C{new}, as
    Twisted's own WebSocket support does.
    """
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = new
    elif isinstance(transport, tcp.Connection):
        transport.protocol = new
    else:
        _warnOnce(
            "switch:" + type(transport).__qualname__,
            "txratchet: a {cls} transport: forwarding through the HTTP channel",
            cls=type(transport).__qualname__,
        )
        old.dataReceived = new.dataReceived
        old.connectionLost = new.connectionLost


# ---------------------------------------------------------------- HTTP/2 (RFC 8441)


#: What L{txratchet.http2} overrides of Twisted's HTTP/2 channel
#: (C{twisted.web._http2.H2Connection}): where a request's stream is made,
#: and where a stream is let go; with their parameters after C{self}.
H2_CONNECTION_HOOKS: dict[str, int] = {"_requestReceived": 1, "_requestDone": 1}
#: What it calls on that channel (the methods Twisted's streams call).
H2_CONNECTION_METHODS = (
    "writeHeaders",
    "writeDataToStream",
    "endRequest",
    "abortRequest",
    "openStreamWindow",
    "remainingOutboundWindow",
)
#: What the channel calls on its streams, which a tunnel stream overrides
#: or inherits from C{H2Stream}.
H2_STREAM_METHODS = (
    "receiveDataChunk",
    "requestComplete",
    "connectionLost",
    "windowUpdated",
    "flowControlBlocked",
    "write",
    "loseConnection",
    "abortConnection",
    "isSecure",
)

#: What the fence calls on that channel when it can, with a public
#: fallback (L{resetStream}, L{writeControlData}); L{missingH2Extras} says
#: when the installed Twisted lacks it (C{tests/test_fence.py} fails then).
H2_CONNECTION_EXTRAS = ("_tryToWriteControlData",)

_h2Problems: tuple[str, ...] | None = None


def missingH2Extras() -> tuple[str, ...]:
    """
    What of L{H2_CONNECTION_EXTRAS} the installed Twisted's HTTP/2 channel
    lacks (each has a fallback: WebSockets over HTTP/2 still work).
    """
    try:
        from twisted.web._http2 import H2Connection
    except ImportError:
        return ()
    return tuple(
        f"no H2Connection.{name}"
        for name in H2_CONNECTION_EXTRAS
        if not callable(getattr(H2Connection, name, None))
    )


def missingH2Internals() -> tuple[str, ...]:
    """
    What L{txratchet.http2} needs of Twisted's HTTP/2 channel and h2 that
    the installed versions lack, as readable strings; empty when WebSockets
    over HTTP/2 can be served.
    """
    import inspect

    try:
        import h2.settings
        from twisted.internet.task import Clock
        from twisted.web._http2 import H2Connection, H2Stream
    except ImportError as e:
        return (f"no HTTP/2 support ({e}; pip install 'twisted[http2]')",)
    problems = []
    if not hasattr(h2.settings.SettingCodes, "ENABLE_CONNECT_PROTOCOL"):
        problems.append("h2 has no ENABLE_CONNECT_PROTOCOL (h2 >= 3.1 has)")
    for name, arity in H2_CONNECTION_HOOKS.items():
        method = getattr(H2Connection, name, None)
        if not callable(method):
            problems.append(f"no H2Connection.{name}")
            continue
        try:
            parameters = list(inspect.signature(method).parameters)[1:]
        except (TypeError, ValueError):
            continue
        if len(parameters) != arity:
            problems.append(f"H2Connection.{name} takes {parameters}")
    for name in H2_CONNECTION_METHODS:
        if not callable(getattr(H2Connection, name, None)):
            problems.append(f"no H2Connection.{name}")
    for name in H2_STREAM_METHODS:
        if not callable(getattr(H2Stream, name, None)):
            problems.append(f"no H2Stream.{name}")
    try:
        channel = H2Connection(Clock())
    except Exception as e:
        problems.append(f"H2Connection() failed: {e!r}")
    else:
        if not isinstance(getattr(channel, "streams", None), dict):
            problems.append("H2Connection.streams is not a dict")
        if not hasattr(getattr(channel, "priority", None), "block"):
            problems.append("H2Connection.priority has no block()")
        if not hasattr(getattr(channel, "conn", None), "local_settings"):
            problems.append("H2Connection.conn is not an h2 connection")
    return tuple(problems)


def http2Usable() -> bool:
    """
    Can WebSockets be served over HTTP/2 streams with the installed Twisted
    and h2? Checked once; when not, one warning says why (sites then speak
    HTTP/1.1 only).
    """
    global _h2Problems
    if _h2Problems is None:
        _h2Problems = missingH2Internals()
        if _h2Problems and not _h2Problems[0].startswith("no HTTP/2 support"):
            _warnOnce(
                "h2",
                "txratchet: WebSockets over HTTP/2 are off: this Twisted's HTTP/2 channel "
                "does not have what txratchet.http2 needs ({problems})",
                problems=", ".join(_h2Problems),
            )
    return not _h2Problems


def resetStream(channel: Any, streamID: int, errorCode: int) -> None:
    """
    Reset stream C{streamID} of C{channel} (Twisted's C{H2Connection}) with
    C{errorCode} (C{RST_STREAM}), and let it go. Twisted's public
    C{abortRequest} always says C{NO_ERROR}; a WebSocket that fails is
    reset with C{CANCEL} (RFC 8441 section 5, a TCP reset's twin), which
    needs the channel's private C{_tryToWriteControlData} (what
    C{abortRequest} calls). Without it (one warning): C{abortRequest}.
    """
    write = getattr(channel, "_tryToWriteControlData", None)
    if not callable(write):
        _warnOnce(
            "h2reset",
            "txratchet: this Twisted's HTTP/2 channel has no _tryToWriteControlData: "
            "failed WebSocket streams are reset with NO_ERROR instead of CANCEL",
        )
        channel.abortRequest(streamID)
        return
    channel.conn.reset_stream(streamID, error_code=errorCode)
    if write():
        channel._requestDone(streamID)


def writeControlData(channel: Any) -> None:
    """
    Send what C{channel}'s h2 connection has queued (a reset, a GOAWAY)
    as Twisted does, behind its buffered control frames; without the
    private method, straight to the transport.
    """
    write = getattr(channel, "_tryToWriteControlData", None)
    if callable(write):
        write()
        return
    data = channel.conn.data_to_send()
    if data and channel.transport is not None:
        channel.transport.write(data)
