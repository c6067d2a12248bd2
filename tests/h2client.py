"""
A small blocking HTTP/2 client on h2 (python-hyper), for tests: TLS with
ALPN h2, several streams on one connection, WebSockets over extended CONNECT
(RFC 8441) with hand-made RFC 6455 frames (masked, as a client's must be).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from collections import defaultdict
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def maskedFrame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """
    One client frame (masked).
    """
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def parseFrames(data: bytearray) -> list[tuple[int, bytes]]:
    """
    Take the whole (unmasked, server) frames off the front of C{data}.
    """
    frames = []
    while len(data) >= 2:
        opcode = data[0] & 0x0F
        n = data[1] & 0x7F
        offset = 2
        if n == 126:
            if len(data) < 4:
                break
            n = struct.unpack(">H", data[2:4])[0]
            offset = 4
        elif n == 127:
            if len(data) < 10:
                break
            n = struct.unpack(">Q", data[2:10])[0]
            offset = 10
        if len(data) < offset + n:
            break
        frames.append((opcode, bytes(data[offset:offset + n])))
        del data[:offset + n]
    return frames


class H2Client:
    """
    One HTTP/2 connection over TLS to 127.0.0.1.

    @ivar headers: response headers by stream, as a dict.
    @ivar data: received DATA by stream.
    @ivar ended: streams the server ended (END_STREAM).
    @ivar reset: streams the server reset, with the error code.
    """

    def __init__(self, port: int, cafile: str, host: str = "localhost", read: bool = True) -> None:
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(["h2", "http/1.1"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        # As browsers do: without it, a DATA frame's tail waits for the ACK of
        # the previous segment (Nagle), some 40 ms per flow-control window.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.alpn = self.sock.selected_alpn_protocol()
        self.authority = f"{host}:{port}"
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        # A browser's connection window (Chromium: 15 MB), so a stream that
        # is not read holds only its own window.
        self.conn.increment_flow_control_window(15 * 1024 * 1024)
        self.flush()
        self.read = read  # acknowledge received DATA (False: a peer that stops reading)
        self.unread: set[int] = set()  # streams whose DATA is not acknowledged
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        self.settings: dict[Any, int] = {}
        self.goaway: Any = None
        self.pongs: list[bytes] = []  # PING acknowledgements received

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, until: Any, limit: float = 10.0) -> None:
        """
        Read and handle frames until C{until()} is true.
        """
        self.sock.settimeout(limit)
        while not until():
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            for event in self.conn.receive_data(chunk):
                self._event(event)
            self.flush()

    def _event(self, event: Any) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.settings[code] = change.new_value
        elif isinstance(event, h2.events.ResponseReceived):
            self.headers[event.stream_id] = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.data[event.stream_id] += event.data
            if self.read and event.stream_id not in self.unread:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.reset[event.stream_id] = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.PingAckReceived):
            self.pongs.append(event.ping_data)

    def step(self, timeout: float) -> None:
        """
        Read once (at most C{timeout} seconds) and handle the frames read.

        @raise TimeoutError: nothing arrived in time.
        @raise ConnectionError: the server closed the connection.
        """
        self.sock.settimeout(max(timeout, 0.001))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(chunk):
            self._event(event)
        self.flush()

    def alive(self, limit: float = 2.0) -> bool:
        """
        Does the connection still answer a PING (within C{limit} seconds)?
        """
        data = os.urandom(8)
        try:
            self.conn.ping(data)
            self.flush()
            self.pump(lambda: data in self.pongs or self.goaway is not None, limit)
        except (OSError, ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            return False
        return self.goaway is None

    def streamSocket(self, sid: int, timeout: float = 10.0) -> StreamSocket:
        """
        A socket-like pipe over the open WebSocket stream C{sid}.
        """
        return StreamSocket(self, sid, timeout)

    def connectProtocolEnabled(self) -> bool:
        """
        Wait for the server's SETTINGS; did it send ENABLE_CONNECT_PROTOCOL=1?
        """
        code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
        self.pump(lambda: self.settings)
        return self.settings.get(code) == 1

    def get(self, path: str) -> int:
        """
        Start a GET on a new stream; returns its id.
        """
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (b":method", b"GET"), (b":scheme", b"https"),
            (b":authority", self.authority.encode()), (b":path", path.encode()),
        ], end_stream=True)
        self.flush()
        return sid

    def websocket(
        self, path: str, protocol: bytes = b"websocket", extra: list[tuple[bytes, bytes]] = ()
    ) -> int:
        """
        Start an extended CONNECT (RFC 8441) on a new stream; returns its id.
        """
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", b"https"),
            (b":authority", self.authority.encode()), (b":path", path.encode()),
            (b"sec-websocket-version", b"13"), *extra,
        ])
        self.flush()
        return sid

    def response(self, sid: int) -> dict[bytes, bytes]:
        self.pump(lambda: sid in self.headers or sid in self.reset)
        return self.headers.get(sid, {})

    def sendFrame(self, sid: int, opcode: int, payload: bytes, end: bool = False) -> None:
        self.conn.send_data(sid, maskedFrame(opcode, payload), end_stream=end)
        self.flush()

    def frames(self, sid: int, count: int = 1) -> list[tuple[int, bytes]]:
        """
        Wait for C{count} whole frames on stream C{sid}.
        """
        got: list[tuple[int, bytes]] = []

        def enough() -> bool:
            got.extend(parseFrames(self.data[sid]))
            return len(got) >= count or sid in self.reset

        self.pump(enough)
        return got

    def body(self, sid: int) -> bytes:
        self.pump(lambda: sid in self.ended or sid in self.reset)
        return bytes(self.data[sid])

    def resetStream(self, sid: int) -> None:
        self.conn.reset_stream(sid, error_code=0x8)  # CANCEL
        self.flush()

    def endStream(self, sid: int) -> None:
        self.conn.end_stream(sid)
        self.flush()

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.flush()
        finally:
            self.sock.close()


class StreamSocket:
    """
    The blocking socket calls a raw WebSocket client makes (C{sendall},
    C{recv}, C{settimeout}, C{setsockopt}, C{close}), over one extended
    CONNECT stream of an L{H2Client}: bytes sent go out as DATA frames
    (within the peer's flow-control windows and frame size), C{recv} returns
    the stream's DATA, and end of file is the server ending (END_STREAM) or
    resetting the stream, or closing the connection: what closing TCP is to
    a WebSocket over HTTP/1.1.

    @ivar timeout: seconds a C{recv} (or a C{sendall} waiting for window)
        waits before L{TimeoutError}.
    """

    def __init__(self, client: H2Client, sid: int, timeout: float = 10.0) -> None:
        self.client = client
        self.sid = sid
        self.timeout = timeout
        self.lost = False  # the server closed the connection

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = 3600.0 if timeout is None else timeout

    def setsockopt(self, *args: Any) -> None:
        """Socket options (TCP_NODELAY) mean nothing to a stream."""

    def ended(self) -> bool:
        """Did the server end or reset the stream, or close the connection?"""
        return self.lost or self.sid in self.client.ended or self.sid in self.client.reset

    def _wait(self, until: Any) -> None:
        deadline = time.monotonic() + self.timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"nothing on stream {self.sid} for {self.timeout}s")
            try:
                self.client.step(remaining)
            except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
                self.lost = True

    def recv(self, size: int) -> bytes:
        """
        Up to C{size} bytes of the stream, b"" once the server ended it.

        @raise TimeoutError: nothing arrived within L{timeout}.
        """
        data = self.client.data[self.sid]
        self._wait(lambda: data or self.ended())
        chunk = bytes(data[:size])
        del data[:size]
        return chunk

    def sendall(self, data: bytes) -> None:
        """
        Send C{data} on the stream, waiting for flow-control window.

        @raise BrokenPipeError: the stream was reset or the connection lost.
        """
        conn = self.client.conn
        view = memoryview(data)
        try:
            while view:
                if self.lost or self.sid in self.client.reset:
                    raise BrokenPipeError(f"stream {self.sid} is gone")
                room = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
                if room <= 0:
                    self.client.flush()
                    self._wait(lambda: self.lost or self.sid in self.client.reset
                               or conn.local_flow_control_window(self.sid) > 0)
                    continue
                conn.send_data(self.sid, bytes(view[:room]))
                view = view[room:]
            self.client.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as e:
            raise BrokenPipeError(str(e)) from e

    def close(self) -> None:
        """Close the whole connection (one connection per stream socket here)."""
        try:
            self.client.close()
        except (OSError, h2.exceptions.ProtocolError):
            pass
