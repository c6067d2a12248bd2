"""
Independent, blocking WebSocket *client* implementations for end-to-end tests.

These clients deliberately share no code with txratchet: they are written
directly from draft-hixie-thewebsocketprotocol-76 and RFC 6455 using only the
standard library, so that they can act as an external check on the server.

Everything here is plain blocking socket code; tests are expected to run it
inside ``twisted.internet.threads.deferToThread``.  Every receive is bounded
by a socket timeout and raises L{RecvTimeout} when it expires.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time

__all__ = [
    "ACCEPT_GUID",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ConnectionClosed",
    "HandshakeError",
    "Hixie76Client",
    "HybiClient",
    "ProtocolViolation",
    "RecvTimeout",
    "accept_key",
    "apply_mask",
    "build_close_payload",
    "build_frame",
    "generate_hixie76_key",
    "hixie76_challenge_answer",
    "hixie76_key_value",
    "parse_close_payload",
    "parse_frame",
    "parse_response_head",
    "raw_request",
]

ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
_CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

_MAX_HEAD = 64 * 1024


# ---------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------


class HandshakeError(Exception):
    """
    The opening handshake failed or the server's response was invalid.

    @ivar status: The HTTP status code of the response, or L{None} if no
        status line could be parsed.
    @ivar response: The raw response head (everything up to and including the
        blank line, or whatever was received before the failure).
    """

    def __init__(
        self, message: str, status: int | None = None, response: bytes = b""
    ) -> None:
        super().__init__(f"{message} (status={status!r}, response={response!r})")
        self.message = message
        self.status = status
        self.response = response


class ProtocolViolation(Exception):
    """The server sent something the WebSocket protocol forbids."""


class ConnectionClosed(Exception):
    """The server closed the TCP connection when more data was expected."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


class RecvTimeout(TimeoutError):
    """
    Nothing (or not enough) arrived from the server before the timeout.

    @ivar data: Whatever was received (and buffered) before timing out.
    """

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def _rand_below(n: int) -> int:
    """Uniform random integer in [0, n) using os.urandom (rejection sampling)."""
    if n <= 0:
        raise ValueError("n must be positive")
    nbytes = (n.bit_length() + 7) // 8 + 1
    limit = (256**nbytes // n) * n
    while True:
        value = int.from_bytes(os.urandom(nbytes), "big")
        if value < limit:
            return value % n


def _rand_between(lo: int, hi: int) -> int:
    """Uniform random integer in [lo, hi] (inclusive)."""
    return lo + _rand_below(hi - lo + 1)


_HIXIE_KEY_NOISE = [chr(c) for c in range(0x21, 0x30)] + [
    chr(c) for c in range(0x3A, 0x7F)
]


def generate_hixie76_key() -> tuple[str, int]:
    """
    Generate a C{Sec-WebSocket-Key1}/C{Key2} value as the hixie-76 draft
    describes (section 4.1): a random number multiplied by a random count of
    spaces, with random non-digit characters and the spaces inserted.

    @return: C{(key, number)} where C{number} is the quotient the server must
        compute (the key's digits divided by its number of spaces).
    """
    spaces = _rand_between(1, 12)
    max_number = 4294967295 // spaces
    number = _rand_between(0, max_number)
    chars = list(str(number * spaces))
    for _ in range(_rand_between(1, 12)):
        noise = _HIXIE_KEY_NOISE[_rand_below(len(_HIXIE_KEY_NOISE))]
        chars.insert(_rand_between(0, len(chars)), noise)
    for _ in range(spaces):
        # Never at the very start or the very end of the string.
        chars.insert(_rand_between(1, len(chars) - 1), " ")
    return "".join(chars), number


def hixie76_key_value(key: str) -> int:
    """
    Compute the 32-bit value encoded in a hixie-76 C{Sec-WebSocket-Key1/2}:
    the digits read as a number, divided by the number of spaces.

    @raise ValueError: if the key has no spaces, no digits, the number is not
        an integral multiple of the spaces, or the result exceeds 32 bits.
    """
    digits = "".join(c for c in key if "0" <= c <= "9")
    spaces = key.count(" ")
    if not digits:
        raise ValueError(f"hixie-76 key has no digits: {key!r}")
    if spaces == 0:
        raise ValueError(f"hixie-76 key has no spaces: {key!r}")
    number = int(digits)
    if number % spaces:
        raise ValueError(f"hixie-76 key number is not a multiple of spaces: {key!r}")
    value = number // spaces
    if value > 0xFFFFFFFF:
        raise ValueError(f"hixie-76 key value exceeds 32 bits: {key!r}")
    return value


def hixie76_challenge_answer(key1: str, key2: str, key3: bytes) -> bytes:
    """
    The 16-byte answer a hixie-76 server must send after its response head:
    MD5 of big-endian-32(value(key1)) + big-endian-32(value(key2)) + key3.
    """
    if len(key3) != 8:
        raise ValueError("key3 must be exactly 8 bytes")
    challenge = (
        struct.pack(">I", hixie76_key_value(key1))
        + struct.pack(">I", hixie76_key_value(key2))
        + key3
    )
    return hashlib.md5(challenge).digest()


def accept_key(key: str) -> str:
    """RFC 6455 C{Sec-WebSocket-Accept} value for a C{Sec-WebSocket-Key}."""
    digest = hashlib.sha1((key + ACCEPT_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def apply_mask(payload: bytes, mask_key: bytes) -> bytes:
    """XOR C{payload} with the repeating 4-byte C{mask_key} (RFC 6455 5.3)."""
    if len(mask_key) != 4:
        raise ValueError("mask key must be exactly 4 bytes")
    n = len(payload)
    if n == 0:
        return b""
    repeated = (mask_key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(n, "big")


def build_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    mask_key: bytes | None = None,
) -> bytes:
    """
    Build one RFC 6455 frame.

    @param rsv: The three RSV bits as an integer 0-7 (RSV1 = 4, RSV2 = 2,
        RSV3 = 1).
    @param mask: Whether to mask the payload (clients must).
    @param mask_key: The 4-byte masking key; random if L{None}.
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode out of range: {opcode!r}")
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv out of range: {rsv!r}")
    payload = bytes(payload)
    head = bytearray()
    head.append((0x80 if fin else 0) | (rsv << 4) | opcode)
    mask_bit = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        head.append(mask_bit | length)
    elif length <= 0xFFFF:
        head.append(mask_bit | 126)
        head += struct.pack(">H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack(">Q", length)
    if mask:
        if mask_key is None:
            mask_key = os.urandom(4)
        if len(mask_key) != 4:
            raise ValueError("mask key must be exactly 4 bytes")
        head += mask_key
        payload = apply_mask(payload, mask_key)
    return bytes(head) + payload


def parse_frame(
    buf: bytes | bytearray, *, allow_masked: bool = True, strict: bool = False
) -> tuple[int, bool, int, bytes, int] | None:
    """
    Parse one RFC 6455 frame from the start of C{buf}.

    @param allow_masked: If false, a masked frame raises L{ProtocolViolation}
        (servers must not mask).
    @param strict: Also raise L{ProtocolViolation} for reserved opcodes,
        fragmented or oversized control frames and non-minimal length
        encodings.

    @return: C{(opcode, fin, rsv, payload, consumed)} with the payload
        unmasked, or L{None} if C{buf} does not yet hold a complete frame.
    """
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    fin = bool(b0 & 0x80)
    rsv = (b0 >> 4) & 0x7
    opcode = b0 & 0x0F
    masked = bool(b1 & 0x80)
    length = b1 & 0x7F
    offset = 2
    if length == 126:
        if len(buf) < offset + 2:
            return None
        (length,) = struct.unpack(">H", buf[offset : offset + 2])
        offset += 2
        if strict and length < 126:
            raise ProtocolViolation(f"non-minimal 16-bit length {length}")
    elif length == 127:
        if len(buf) < offset + 8:
            return None
        (length,) = struct.unpack(">Q", buf[offset : offset + 8])
        offset += 8
        if length & (1 << 63):
            raise ProtocolViolation("64-bit length has its most significant bit set")
        if strict and length <= 0xFFFF:
            raise ProtocolViolation(f"non-minimal 64-bit length {length}")
    if masked and not allow_masked:
        raise ProtocolViolation("server sent a masked frame")
    if strict:
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
            raise ProtocolViolation(f"reserved opcode {opcode:#x}")
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise ProtocolViolation(f"fragmented control frame {opcode:#x}")
            if length > 125:
                raise ProtocolViolation(
                    f"control frame {opcode:#x} payload too long ({length})"
                )
    mask_key = b""
    if masked:
        if len(buf) < offset + 4:
            return None
        mask_key = bytes(buf[offset : offset + 4])
        offset += 4
    if len(buf) < offset + length:
        return None
    payload = bytes(buf[offset : offset + length])
    if masked:
        payload = apply_mask(payload, mask_key)
    return opcode, fin, rsv, payload, offset + length


def build_close_payload(code: int | None = 1000, reason: str = "") -> bytes:
    """Payload of a close frame: empty if C{code} is None, else code + reason."""
    if code is None:
        if reason:
            raise ValueError("a close reason requires a code")
        return b""
    return struct.pack(">H", code) + reason.encode("utf-8")


def parse_close_payload(payload: bytes) -> tuple[int | None, str]:
    """
    Parse a close frame payload into C{(code, reason)}; C{(None, "")} for an
    empty payload.

    @raise ProtocolViolation: for a 1-byte payload or a non-UTF-8 reason.
    """
    if not payload:
        return None, ""
    if len(payload) < 2:
        raise ProtocolViolation(f"close payload of length 1: {payload!r}")
    (code,) = struct.unpack(">H", payload[:2])
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolViolation(f"close reason is not valid UTF-8: {payload!r}") from e
    return code, reason


def parse_response_head(
    head: bytes,
) -> tuple[int | None, str, dict[str, str], list[tuple[str, str]]]:
    """
    Parse an HTTP response head.

    @return: C{(status, reason, headers, header_list)} where C{headers} maps
        lower-cased names to values (repeated fields joined with C{", "}) and
        C{header_list} keeps the original names and order.  C{status} is
        L{None} if the status line cannot be parsed.
    """
    text = head.decode("iso-8859-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    status: int | None = None
    reason = ""
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    header_list: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        value = value.strip(" \t")
        header_list.append((name, value))
        key = name.strip().lower()
        if key in headers:
            headers[key] = headers[key] + ", " + value
        else:
            headers[key] = value
    return status, reason, headers, header_list


def _merge_headers(
    defaults: list[tuple[str, str]], overrides: dict[str, str | None] | None
) -> list[tuple[str, str]]:
    """
    Apply C{overrides} to the default request fields: a name matching a
    default (case-insensitively) replaces it, L{None} removes it, new names
    are appended.
    """
    result = list(defaults)
    for name, value in (overrides or {}).items():
        idx = next(
            (i for i, (n, _) in enumerate(result) if n.lower() == name.lower()), None
        )
        if value is None:
            if idx is not None:
                del result[idx]
        elif idx is not None:
            result[idx] = (name, value)
        else:
            result.append((name, value))
    return result


def _host_header(host: str, port: int) -> str:
    hostpart = f"[{host}]" if ":" in host else host
    return hostpart if port == 80 else f"{hostpart}:{port}"


def _build_request(path: str, fields: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1"] + [f"{n}: {v}" for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---------------------------------------------------------------------------
# Raw request
# ---------------------------------------------------------------------------


def raw_request(host: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """
    Send raw bytes, return everything the server sends until it closes the
    connection (or until C{timeout} seconds pass without it doing so).
    """
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except OSError:
            # The server may have closed early; still read what it sent.
            pass
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except (ConnectionResetError, ConnectionAbortedError):
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


# ---------------------------------------------------------------------------
# Shared blocking connection plumbing
# ---------------------------------------------------------------------------


class _BlockingConnection:
    """Socket plus receive buffer, with timeout-bounded reads."""

    sock: socket.socket

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._buf = bytearray()
        self._eof = False
        self.status: int | None = None
        self.response_head = b""
        self.response_headers: dict[str, str] = {}
        self.response_header_list: list[tuple[str, str]] = []
        self.trailing_data = b""

    def _open(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.settimeout(self.timeout)

    def _recv_more(self, what: str) -> bool:
        """
        Read more bytes into the buffer.  Returns False on EOF/reset.

        @raise RecvTimeout: if nothing arrives within the timeout.
        """
        if self._eof:
            return False
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            raise RecvTimeout(
                f"timed out after {self.timeout}s waiting for {what}",
                bytes(self._buf),
            ) from None
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _read_exactly(self, n: int, what: str) -> bytes:
        while len(self._buf) < n:
            if not self._recv_more(what):
                raise ConnectionClosed(
                    f"connection closed while waiting for {what} "
                    f"({len(self._buf)}/{n} bytes)",
                    bytes(self._buf),
                )
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_head(self) -> bytes:
        """Read the HTTP response head (through the blank line)."""
        while True:
            idx = self._buf.find(b"\r\n\r\n")
            if idx >= 0:
                head = bytes(self._buf[: idx + 4])
                del self._buf[: idx + 4]
                return head
            if len(self._buf) > _MAX_HEAD:
                raise HandshakeError(
                    "response head too large", None, bytes(self._buf[:_MAX_HEAD])
                )
            try:
                more = self._recv_more("the handshake response")
            except RecvTimeout:
                partial = bytes(self._buf)
                raise HandshakeError(
                    f"timed out after {self.timeout}s waiting for the "
                    "handshake response",
                    parse_response_head(partial)[0] if partial else None,
                    partial,
                ) from None
            if not more:
                partial = bytes(self._buf)
                raise HandshakeError(
                    "connection closed before the response head was complete",
                    parse_response_head(partial)[0] if partial else None,
                    partial,
                )

    def _store_head(self, head: bytes) -> None:
        status, reason, headers, header_list = parse_response_head(head)
        self.status = status
        self.status_reason = reason
        self.response_head = head
        self.response_headers = headers
        self.response_header_list = header_list

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes on the connection."""
        self.sock.sendall(data)

    def recv_raw_until_closed(self) -> bytes:
        """
        Return all buffered and newly received bytes up to the server closing
        the connection.

        @raise RecvTimeout: if the server does not close within the timeout
            (the bytes received so far are on the exception's C{data}).
        """
        deadline = time.monotonic() + self.timeout
        while not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RecvTimeout(
                    f"server did not close the connection within {self.timeout}s",
                    bytes(self._buf),
                )
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise RecvTimeout(
                    f"server did not close the connection within {self.timeout}s",
                    bytes(self._buf),
                ) from None
            except (ConnectionResetError, ConnectionAbortedError):
                data = b""
            if not data:
                self._eof = True
            else:
                self._buf += data
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def wait_tcp_closed(self, timeout: float = 5.0) -> bool:
        """
        Wait up to C{timeout} seconds for the server to close TCP (EOF or
        connection reset).  Any data received meanwhile is appended to
        C{self.trailing_data}.  Returns True if it closed.
        """
        if self._eof:
            return True
        deadline = time.monotonic() + timeout
        trailing = self.trailing_data
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.sock.settimeout(remaining)
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    return False
                except (ConnectionResetError, ConnectionAbortedError):
                    data = b""
                except OSError:
                    # Our own socket already closed, or similar.
                    return False
                if not data:
                    self._eof = True
                    return True
                trailing += data
        finally:
            self.trailing_data = trailing
            self.sock.settimeout(self.timeout)

    def _close_socket(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Hixie-76
# ---------------------------------------------------------------------------


class Hixie76Client(_BlockingConnection):
    """
    Blocking draft-hixie-thewebsocketprotocol-76 client.

    Request fields can be replaced via C{headers} (matching names are
    replaced case-insensitively; a value of L{None} removes the field).
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/",
        origin: str = "http://127.0.0.1",
        headers: dict[str, str | None] | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(host, port, timeout)
        self.path = path
        self.origin = origin
        self.headers = dict(headers or {})
        self.key1, self.number1 = generate_hixie76_key()
        self.key2, self.number2 = generate_hixie76_key()
        self.key3 = os.urandom(8)
        self.challenge_response = b""
        self.received_close_frame = False
        self.server_closed_tcp = False

    def _request_fields(self) -> list[tuple[str, str]]:
        defaults = [
            ("Upgrade", "WebSocket"),
            ("Connection", "Upgrade"),
            ("Host", _host_header(self.host, self.port)),
            ("Origin", self.origin),
            ("Sec-WebSocket-Key1", self.key1),
            ("Sec-WebSocket-Key2", self.key2),
        ]
        return _merge_headers(defaults, self.headers)

    def expected_location(self) -> str:
        """The C{Sec-WebSocket-Location} the server must answer with."""
        return f"ws://{_host_header(self.host, self.port)}{self.path}"

    def connect(self) -> None:
        """
        Perform the hixie-76 opening handshake.

        @raise HandshakeError: if the server's response is not a valid
            hixie-76 handshake response for this request.
        """
        fields = self._request_fields()
        sent = {n.lower(): v for n, v in fields}
        self._open()
        self.sock.sendall(_build_request(self.path, fields) + self.key3)
        head = self._read_head()
        self._store_head(head)
        status = self.status
        h = self.response_headers

        def fail(msg: str) -> HandshakeError:
            return HandshakeError(msg, status, head)

        if status != 101:
            raise fail(f"expected status 101, got {status!r}")
        if h.get("upgrade") != "WebSocket":
            raise fail(f"bad Upgrade header {h.get('upgrade')!r}")
        if h.get("connection", "").lower() != "upgrade":
            raise fail(f"bad Connection header {h.get('connection')!r}")
        expected_origin = sent.get("origin")
        if h.get("sec-websocket-origin") != expected_origin:
            raise fail(
                f"Sec-WebSocket-Origin {h.get('sec-websocket-origin')!r} != "
                f"{expected_origin!r}"
            )
        if h.get("sec-websocket-location") != self.expected_location():
            raise fail(
                f"Sec-WebSocket-Location {h.get('sec-websocket-location')!r} != "
                f"{self.expected_location()!r}"
            )
        requested_protocol = sent.get("sec-websocket-protocol")
        if (
            requested_protocol is not None
            and h.get("sec-websocket-protocol") != requested_protocol
        ):
            raise fail(
                f"Sec-WebSocket-Protocol {h.get('sec-websocket-protocol')!r} "
                f"!= {requested_protocol!r}"
            )
        try:
            answer = self._read_exactly(16, "the 16-byte hixie-76 challenge answer")
        except (ConnectionClosed, RecvTimeout) as e:
            raise HandshakeError(
                f"challenge answer not received: {e}", status, head + e.data
            ) from None
        self.challenge_response = answer
        try:
            expected = hixie76_challenge_answer(
                sent.get("sec-websocket-key1", ""),
                sent.get("sec-websocket-key2", ""),
                self.key3,
            )
        except ValueError as e:
            raise fail(f"server accepted invalid keys ({e})") from None
        if answer != expected:
            raise HandshakeError(
                f"wrong challenge answer {answer!r}, expected {expected!r}",
                status,
                head + answer,
            )

    def send_text(self, text: str) -> None:
        """Send a text frame: 0x00, UTF-8 bytes, 0xFF."""
        self.sock.sendall(b"\x00" + text.encode("utf-8") + b"\xff")

    def recv_message(self) -> str | None:
        """
        Return the next text frame's text, or L{None} if the server sent the
        closing frame (0xFF 0x00) or closed TCP.

        @raise ProtocolViolation: for any other frame type or invalid UTF-8.
        @raise RecvTimeout: if nothing arrives within the timeout.
        """
        while not self._buf:
            if not self._recv_more("a hixie-76 frame"):
                self.server_closed_tcp = True
                return None
        frame_type = self._buf[0]
        if frame_type == 0x00:
            scanned = 1
            while True:
                end = self._buf.find(b"\xff", scanned)
                if end >= 0:
                    break
                scanned = max(1, len(self._buf))
                if not self._recv_more("the end of a hixie-76 text frame"):
                    self.server_closed_tcp = True
                    raise ConnectionClosed(
                        "connection closed inside a text frame", bytes(self._buf)
                    )
            raw = bytes(self._buf[1:end])
            del self._buf[: end + 1]
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtocolViolation(f"text frame is not UTF-8: {raw!r}") from e
        if frame_type == 0xFF:
            while len(self._buf) < 2:
                if not self._recv_more("the second byte of a hixie-76 0xFF frame"):
                    self.server_closed_tcp = True
                    raise ConnectionClosed(
                        "connection closed inside a 0xFF frame", bytes(self._buf)
                    )
            if self._buf[1] == 0x00:
                del self._buf[:2]
                self.received_close_frame = True
                return None
        raise ProtocolViolation(
            f"unexpected hixie-76 frame starting {bytes(self._buf[:16])!r}"
        )

    def close(self) -> None:
        """
        Send the closing frame, wait (bounded by the timeout) for the
        server's closing frame or EOF, then close the socket.  Results are on
        C{received_close_frame} and C{server_closed_tcp}.
        """
        try:
            try:
                self.sock.sendall(b"\xff\x00")
            except OSError:
                pass
            deadline = time.monotonic() + self.timeout
            while not self.received_close_frame and not self._eof:
                if time.monotonic() >= deadline:
                    break
                try:
                    if self.recv_message() is None:
                        break
                except (RecvTimeout, ConnectionClosed, ProtocolViolation):
                    break
                except OSError:
                    break
            if self.received_close_frame and not self._eof:
                self.server_closed_tcp = self.wait_tcp_closed(self.timeout)
            elif self._eof:
                self.server_closed_tcp = True
        finally:
            self._close_socket()


# ---------------------------------------------------------------------------
# Hybi / RFC 6455
# ---------------------------------------------------------------------------


class HybiClient(_BlockingConnection):
    """
    Blocking hybi-07/08/RFC 6455 (version 13) client.

    Request fields can be replaced via C{headers} (matching names are
    replaced case-insensitively; a value of L{None} removes the field).  If
    C{Sec-WebSocket-Key} is overridden, the accept check uses the sent value.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/",
        version: int = 13,
        origin: str | None = "http://127.0.0.1",
        headers: dict[str, str | None] | None = None,
        subprotocols: list[str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(host, port, timeout)
        self.path = path
        self.version = version
        self.origin = origin
        self.headers = dict(headers or {})
        self.subprotocols = list(subprotocols or [])
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.subprotocol: str | None = None
        self.server_close: tuple[int | None, str] | None = None
        self.close_sent = False
        self.server_closed_tcp = False
        self._frag_opcode: int | None = None
        self._frag_parts: list[bytes] = []

    def _request_fields(self) -> list[tuple[str, str]]:
        defaults = [
            ("Host", _host_header(self.host, self.port)),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", str(self.version)),
        ]
        if self.origin is not None:
            name = "Origin" if self.version >= 13 else "Sec-WebSocket-Origin"
            defaults.append((name, self.origin))
        if self.subprotocols:
            defaults.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        return _merge_headers(defaults, self.headers)

    def connect(self) -> None:
        """
        Perform the opening handshake.  Bytes following the response head
        stay buffered for frame parsing.

        @raise HandshakeError: if the response is not a valid 101 upgrade
            for this request.
        """
        fields = self._request_fields()
        sent = {n.lower(): v for n, v in fields}
        self._open()
        self.sock.sendall(_build_request(self.path, fields))
        head = self._read_head()
        self._store_head(head)
        status = self.status
        h = self.response_headers

        def fail(msg: str) -> HandshakeError:
            return HandshakeError(msg, status, head)

        if status != 101:
            raise fail(f"expected status 101, got {status!r}")
        if h.get("upgrade", "").lower() != "websocket":
            raise fail(f"bad Upgrade header {h.get('upgrade')!r}")
        tokens = [t.strip().lower() for t in h.get("connection", "").split(",")]
        if "upgrade" not in tokens:
            raise fail(f"bad Connection header {h.get('connection')!r}")
        expected = accept_key(sent.get("sec-websocket-key", ""))
        if h.get("sec-websocket-accept") != expected:
            raise fail(
                f"Sec-WebSocket-Accept {h.get('sec-websocket-accept')!r} != "
                f"{expected!r}"
            )
        offered = [
            p.strip()
            for p in sent.get("sec-websocket-protocol", "").split(",")
            if p.strip()
        ]
        chosen = h.get("sec-websocket-protocol")
        if chosen is not None:
            if chosen not in offered:
                raise fail(f"server selected unoffered subprotocol {chosen!r}")
            self.subprotocol = chosen
        if "sec-websocket-extensions" in h and "sec-websocket-extensions" not in sent:
            raise fail(
                "server selected extensions that were not offered: "
                f"{h['sec-websocket-extensions']!r}"
            )

    # -- sending -----------------------------------------------------------

    def send_frame(
        self,
        opcode: int,
        payload: bytes,
        fin: bool = True,
        rsv: int = 0,
        mask: bool = True,
        mask_key: bytes | None = None,
    ) -> None:
        """Send a single frame built by L{build_frame}."""
        self.sock.sendall(build_frame(opcode, payload, fin, rsv, mask, mask_key))

    def send_text(self, text: str) -> None:
        """Send an unfragmented text message."""
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Send an unfragmented binary message."""
        self.send_frame(OP_BINARY, data)

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping frame."""
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Send a pong frame."""
        self.send_frame(OP_PONG, payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Send a close frame (empty payload if C{code} is None)."""
        self.close_sent = True
        self.send_frame(OP_CLOSE, build_close_payload(code, reason))

    # -- receiving ---------------------------------------------------------

    def recv_frame(self) -> tuple[int, bool, int, bytes]:
        """
        Receive one frame: C{(opcode, fin, rsv, payload)}.

        Close frames are also recorded on C{self.server_close}.

        @raise ProtocolViolation: if the frame is masked or otherwise invalid.
        @raise ConnectionClosed: if TCP closes before a full frame arrives.
        @raise RecvTimeout: if no full frame arrives within the timeout.
        """
        while True:
            parsed = parse_frame(self._buf, allow_masked=False, strict=True)
            if parsed is not None:
                break
            if not self._recv_more("a frame"):
                self.server_closed_tcp = True
                raise ConnectionClosed(
                    "connection closed before a complete frame arrived"
                    + (f" (have {bytes(self._buf)!r})" if self._buf else ""),
                    bytes(self._buf),
                )
        opcode, fin, rsv, payload, consumed = parsed
        del self._buf[:consumed]
        if opcode == OP_CLOSE:
            self.server_close = parse_close_payload(payload)
        return opcode, fin, rsv, payload

    def recv_message(self) -> tuple[int, bytes]:
        """
        Receive the next message: C{(opcode, payload)}.  Fragmented data
        messages are reassembled (opcode of the first frame); control frames
        (ping, pong, close) are returned on their own, even between
        fragments.  Pings are not answered automatically.
        """
        while True:
            opcode, fin, _rsv, payload = self.recv_frame()
            if opcode in _CONTROL_OPCODES:
                return opcode, payload
            if opcode == OP_CONTINUATION:
                if self._frag_opcode is None:
                    raise ProtocolViolation("continuation frame without a start")
                self._frag_parts.append(payload)
            else:
                if self._frag_opcode is not None:
                    raise ProtocolViolation(
                        f"new data frame {opcode:#x} inside a fragmented message"
                    )
                if fin:
                    return opcode, payload
                self._frag_opcode = opcode
                self._frag_parts = [payload]
                continue
            if fin:
                first = self._frag_opcode
                data = b"".join(self._frag_parts)
                self._frag_opcode = None
                self._frag_parts = []
                return first, data

    def recv_text(self) -> str:
        """Receive the next message, require it to be text, and decode it."""
        opcode, payload = self.recv_message()
        if opcode != OP_TEXT:
            raise AssertionError(
                f"expected a text message, got {opcode:#x}: {payload!r}"
            )
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolViolation(f"text message is not UTF-8: {payload!r}") from e

    def expect_close(self, reply: bool = True) -> tuple[int | None, str]:
        """
        Read frames (skipping anything else) until the server's close frame
        arrives and return its C{(code, reason)}.  If C{reply} is true, a
        close frame echoing the code is sent back (unless one was already
        sent), like a well-behaved client would.

        @raise ConnectionClosed: if TCP closes without a close frame.
        """
        while self.server_close is None:
            self.recv_frame()
        if reply and not self.close_sent:
            code = self.server_close[0]
            try:
                self.send_close(code if code not in (1005, 1006, 1015) else None)
            except OSError:
                pass
        return self.server_close

    def close(self, code: int = 1000, reason: str = "") -> tuple[int | None, str]:
        """
        Send a close frame, read frames until the server's close frame and
        return its C{(code, reason)}.  Then wait (bounded) for the server to
        close TCP, record C{self.server_closed_tcp}, and close the socket.

        @raise ConnectionClosed: if TCP closes without a close frame.
        """
        try:
            if not self.close_sent:
                try:
                    self.send_close(code, reason)
                except OSError:
                    # Server already gone; a close frame may still be buffered.
                    pass
            while self.server_close is None:
                self.recv_frame()
            self.server_closed_tcp = self.wait_tcp_closed(self.timeout)
            return self.server_close
        finally:
            self._close_socket()
