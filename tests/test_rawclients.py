"""
Offline checks for the independent test clients in L{rawclients}, plus a few
loopback checks against tiny stdlib socket servers run in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

try:
    from tests import rawclients
except ImportError:  # pragma: no cover - when tests/ itself is on sys.path
    import rawclients  # type: ignore[no-redef]

HixieKey1 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8"
# The draft's Key2 ends in "` 0" (digits 1733470270, 10 spaces); a variant
# ending in "` 8" circulates but is invalid (1733470278 % 10 != 0).
HixieKey2 = "1_ tx7X d  <  nw  334J702) 7]o}` 0"
HixieKey3 = b"Tm[K T2u"
HixieAnswer = b"fQJ,fN/4F4!~K~MH"


class HixieHelperTests(SynchronousTestCase):
    """Hixie-76 key generation and challenge computation."""

    def test_key_values_of_draft_example(self) -> None:
        self.assertEqual(rawclients.hixie76_key_value(HixieKey1), 1868545188 // 12)
        self.assertEqual(rawclients.hixie76_key_value(HixieKey2), 1733470270 // 10)

    def test_challenge_answer_of_draft_example(self) -> None:
        self.assertEqual(
            rawclients.hixie76_challenge_answer(HixieKey1, HixieKey2, HixieKey3),
            HixieAnswer,
        )

    def test_invalid_keys(self) -> None:
        for bad in ["12345", "   ", "1 2 3", "1_ tx7X d  <  nw  334J702) 7]o}` 8"]:
            self.assertRaises(ValueError, rawclients.hixie76_key_value, bad)
        self.assertRaises(
            ValueError,
            rawclients.hixie76_challenge_answer,
            HixieKey1,
            HixieKey2,
            b"short",
        )

    def test_generated_keys(self) -> None:
        allowed = {chr(c) for c in range(0x21, 0x7F)} | {" "}
        for _ in range(500):
            key, number = rawclients.generate_hixie76_key()
            self.assertEqual(rawclients.hixie76_key_value(key), number)
            self.assertTrue(0 <= number <= 0xFFFFFFFF)
            self.assertTrue(1 <= key.count(" ") <= 12, key)
            self.assertFalse(key.startswith(" ") or key.endswith(" "), key)
            self.assertTrue(set(key) <= allowed, key)
            self.assertTrue(any(not c.isdigit() and c != " " for c in key), key)


class HybiHelperTests(SynchronousTestCase):
    """RFC 6455 accept key, framing and close payloads."""

    def test_accept_key_rfc_example(self) -> None:
        self.assertEqual(
            rawclients.accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        )

    def test_rfc_single_frame_examples(self) -> None:
        # RFC 6455 section 5.7 examples.
        self.assertEqual(
            rawclients.build_frame(rawclients.OP_TEXT, b"Hello", mask=False),
            b"\x81\x05\x48\x65\x6c\x6c\x6f",
        )
        self.assertEqual(
            rawclients.build_frame(
                rawclients.OP_TEXT, b"Hello", mask_key=b"\x37\xfa\x21\x3d"
            ),
            b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        )

    def test_lengths_roundtrip(self) -> None:
        expected_header = {0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10}
        for length, header in expected_header.items():
            payload = bytes(i % 251 for i in range(length))
            for mask in (False, True):
                frame = rawclients.build_frame(rawclients.OP_BINARY, payload, mask=mask)
                self.assertEqual(len(frame), header + (4 if mask else 0) + length)
                self.assertEqual(frame[1] & 0x80, 0x80 if mask else 0)
                parsed = rawclients.parse_frame(frame + b"extra", strict=True)
                self.assertEqual(
                    parsed, (rawclients.OP_BINARY, True, 0, payload, len(frame))
                )
                # Every strict prefix is incomplete.
                for cut in {0, 1, header - 1, header, len(frame) - 1}:
                    if 0 <= cut < len(frame):
                        self.assertIsNone(rawclients.parse_frame(frame[:cut]))

    def test_length_encodings(self) -> None:
        f = rawclients.build_frame(2, b"x" * 126, mask=False)
        self.assertEqual(f[1], 126)
        self.assertEqual(struct.unpack(">H", f[2:4])[0], 126)
        f = rawclients.build_frame(2, b"x" * 65536, mask=False)
        self.assertEqual(f[1], 127)
        self.assertEqual(struct.unpack(">Q", f[2:10])[0], 65536)

    def test_fin_rsv_opcode_and_mask_key(self) -> None:
        frame = rawclients.build_frame(
            rawclients.OP_TEXT, b"abc", fin=False, rsv=5, mask_key=b"\x01\x02\x03\x04"
        )
        self.assertEqual(frame[0], 0x51)
        self.assertEqual(frame[2:6], b"\x01\x02\x03\x04")
        self.assertEqual(
            rawclients.parse_frame(frame),
            (rawclients.OP_TEXT, False, 5, b"abc", len(frame)),
        )

    def test_masked_rejected_when_not_allowed(self) -> None:
        frame = rawclients.build_frame(rawclients.OP_TEXT, b"abc")
        self.assertRaises(
            rawclients.ProtocolViolation,
            rawclients.parse_frame,
            frame,
            allow_masked=False,
        )

    def test_strict_violations(self) -> None:
        bad = [
            b"\x81\x7e\x00\x05hello",  # non-minimal 16-bit length
            b"\x82\x7f" + struct.pack(">Q", 5) + b"hello",  # non-minimal 64-bit
            b"\x83\x00",  # reserved opcode
            b"\x09\x00",  # fragmented ping
            b"\x89\x7e" + struct.pack(">H", 126) + b"x" * 126,  # big ping
        ]
        for frame in bad:
            self.assertIsNotNone(rawclients.parse_frame(frame))
            self.assertRaises(
                rawclients.ProtocolViolation,
                rawclients.parse_frame,
                frame,
                strict=True,
            )
        self.assertRaises(
            rawclients.ProtocolViolation,
            rawclients.parse_frame,
            b"\x82\x7f" + struct.pack(">Q", 1 << 63),
        )

    def test_close_payloads(self) -> None:
        self.assertEqual(rawclients.build_close_payload(None), b"")
        self.assertEqual(rawclients.build_close_payload(1000, "bye"), b"\x03\xe8bye")
        self.assertEqual(rawclients.parse_close_payload(b""), (None, ""))
        self.assertEqual(
            rawclients.parse_close_payload(b"\x03\xe9\xc3\xa9"), (1001, "\xe9")
        )
        for bad in [b"\x03", b"\x03\xe8\xff"]:
            self.assertRaises(
                rawclients.ProtocolViolation, rawclients.parse_close_payload, bad
            )

    def test_parse_response_head(self) -> None:
        status, reason, headers, header_list = rawclients.parse_response_head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"X-A: 1\r\nx-a: 2\r\n\r\n"
        )
        self.assertEqual((status, reason), (101, "Switching Protocols"))
        self.assertEqual(headers, {"upgrade": "websocket", "x-a": "1, 2"})
        self.assertEqual(header_list[0], ("Upgrade", "websocket"))
        self.assertIsNone(rawclients.parse_response_head(b"garbage\r\n\r\n")[0])


# ---------------------------------------------------------------------------
# Loopback checks against throwaway stdlib servers
# ---------------------------------------------------------------------------


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _headers(head: bytes) -> dict[str, str]:
    return rawclients.parse_response_head(head + b"\r\n\r\n")[2]


class _OneShotServer:
    """Accept one connection on a loopback port and run C{handler} on it."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(5)
            with conn:
                self.handler(conn)
        except BaseException as e:
            self.error = e
        finally:
            self.listener.close()

    def join(self) -> None:
        self.thread.join(10)
        if self.error is not None:
            raise self.error


class LoopbackTests(SynchronousTestCase):
    """Exercise the clients against minimal hand-written servers."""

    def test_hybi_roundtrip(self) -> None:
        seen: dict[str, str] = {}

        def handler(conn: socket.socket) -> None:
            head, rest = _read_head(conn)
            h = _headers(head)
            seen.update(h)
            accept = base64.b64encode(
                hashlib.sha1(
                    (h["sec-websocket-key"] + rawclients.ACCEPT_GUID).encode()
                ).digest()
            )
            # Handshake response and a fragmented message in one segment.
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: "
                + accept
                + b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
                + b"\x01\x03abc\x89\x02hi\x80\x03def"
            )
            buf = rest
            while True:
                parsed = rawclients.parse_frame(buf)
                if parsed is not None:
                    opcode, _fin, _rsv, payload, consumed = parsed
                    buf = buf[consumed:]
                    if opcode == rawclients.OP_CLOSE:
                        conn.sendall(b"\x88\x02" + payload[:2])
                        return
                    conn.sendall(rawclients.build_frame(opcode, payload, mask=False))
                    continue
                data = conn.recv(65536)
                if not data:
                    return
                buf += data

        server = _OneShotServer(handler)
        client = rawclients.HybiClient(
            "127.0.0.1", server.port, "/chat", subprotocols=["chat", "superchat"]
        )
        client.connect()
        self.assertEqual(client.status, 101)
        self.assertEqual(client.subprotocol, "chat")
        self.assertEqual(seen["origin"], "http://127.0.0.1")
        self.assertEqual(seen["sec-websocket-version"], "13")
        self.assertEqual(seen["host"], f"127.0.0.1:{server.port}")
        self.assertEqual(client.recv_message(), (rawclients.OP_PING, b"hi"))
        self.assertEqual(client.recv_message(), (rawclients.OP_TEXT, b"abcdef"))
        big = b"z" * 70000
        client.send_binary(big)
        self.assertEqual(client.recv_message(), (rawclients.OP_BINARY, big))
        self.assertEqual(client.close(1001, "going"), (1001, ""))
        self.assertTrue(client.server_closed_tcp)
        server.join()

    def test_hybi_version8_origin_and_failure(self) -> None:
        seen: dict[str, str] = {}

        def handler(conn: socket.socket) -> None:
            head, _ = _read_head(conn)
            seen.update(_headers(head))
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        server = _OneShotServer(handler)
        client = rawclients.HybiClient(
            "127.0.0.1", server.port, version=8, headers={"X-Test": "1"}
        )
        e = self.assertRaises(rawclients.HandshakeError, client.connect)
        self.assertEqual(e.status, 400)
        self.assertTrue(e.response.startswith(b"HTTP/1.1 400"))
        server.join()
        self.assertEqual(seen["sec-websocket-origin"], "http://127.0.0.1")
        self.assertNotIn("origin", seen)
        self.assertEqual(seen["x-test"], "1")

    def test_hybi_masked_server_frame(self) -> None:
        def handler(conn: socket.socket) -> None:
            head, _ = _read_head(conn)
            key = _headers(head)["sec-websocket-key"]
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + rawclients.accept_key(key).encode()
                + b"\r\n\r\n"
                + rawclients.build_frame(rawclients.OP_TEXT, b"x")
            )
            conn.recv(10)

        server = _OneShotServer(handler)
        client = rawclients.HybiClient("127.0.0.1", server.port)
        client.connect()
        self.assertRaises(rawclients.ProtocolViolation, client.recv_frame)
        client.sock.close()
        server.join()

    def test_hybi_bad_accept(self) -> None:
        def handler(conn: socket.socket) -> None:
            _read_head(conn)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n"
            )

        server = _OneShotServer(handler)
        client = rawclients.HybiClient("127.0.0.1", server.port)
        e = self.assertRaises(rawclients.HandshakeError, client.connect)
        self.assertEqual(e.status, 101)
        client.sock.close()
        server.join()

    def test_hybi_timeout(self) -> None:
        done = threading.Event()

        def handler(conn: socket.socket) -> None:
            head, _ = _read_head(conn)
            key = _headers(head)["sec-websocket-key"]
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + rawclients.accept_key(key).encode()
                + b"\r\n\r\n"
            )
            done.wait(5)

        server = _OneShotServer(handler)
        client = rawclients.HybiClient("127.0.0.1", server.port, timeout=0.2)
        client.connect()
        self.assertRaises(rawclients.RecvTimeout, client.recv_message)
        self.assertFalse(client.wait_tcp_closed(0.1))
        done.set()
        self.assertTrue(client.wait_tcp_closed(5))
        client.sock.close()
        server.join()

    def test_hixie76_roundtrip(self) -> None:
        def handler(conn: socket.socket) -> None:
            head, rest = _read_head(conn)
            while len(rest) < 8:
                rest += conn.recv(8)
            h = _headers(head)
            answer = rawclients.hixie76_challenge_answer(
                h["sec-websocket-key1"], h["sec-websocket-key2"], rest[:8]
            )
            rest = rest[8:]
            conn.sendall(
                b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
                b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Origin: " + h["origin"].encode() + b"\r\n"
                b"Sec-WebSocket-Location: ws://" + h["host"].encode() + b"/x\r\n"
                b"\r\n" + answer + b"\x00hello\xff"
            )
            buf = rest
            while True:
                if buf.startswith(b"\xff\x00"):
                    conn.sendall(b"\xff\x00")
                    return
                end = buf.find(b"\xff")
                if buf.startswith(b"\x00") and end > 0:
                    conn.sendall(buf[: end + 1])
                    buf = buf[end + 1 :]
                    continue
                data = conn.recv(4096)
                if not data:
                    return
                buf += data

        server = _OneShotServer(handler)
        client = rawclients.Hixie76Client("127.0.0.1", server.port, "/x")
        client.connect()
        self.assertEqual(client.status, 101)
        self.assertEqual(client.response_headers["upgrade"], "WebSocket")
        self.assertEqual(client.recv_message(), "hello")
        client.send_text("h\xe9llo \u2603")
        self.assertEqual(client.recv_message(), "h\xe9llo \u2603")
        client.close()
        self.assertTrue(client.received_close_frame)
        self.assertTrue(client.server_closed_tcp)
        server.join()

    def test_hixie76_wrong_answer(self) -> None:
        def handler(conn: socket.socket) -> None:
            head, _ = _read_head(conn)
            h = _headers(head)
            conn.sendall(
                b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
                b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Origin: " + h["origin"].encode() + b"\r\n"
                b"Sec-WebSocket-Location: ws://" + h["host"].encode() + b"/\r\n"
                b"\r\n" + b"0123456789abcdef"
            )

        server = _OneShotServer(handler)
        client = rawclients.Hixie76Client("127.0.0.1", server.port)
        e = self.assertRaises(rawclients.HandshakeError, client.connect)
        self.assertEqual(e.status, 101)
        client.sock.close()
        server.join()

    def test_raw_request(self) -> None:
        def handler(conn: socket.socket) -> None:
            _read_head(conn)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\n\r\n")

        server = _OneShotServer(handler)
        response = rawclients.raw_request(
            "127.0.0.1", server.port, b"GET / HTTP/1.0\r\n\r\n"
        )
        self.assertEqual(response, b"HTTP/1.1 404 Not Found\r\n\r\n")
        server.join()
