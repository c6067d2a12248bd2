"""
Property-based tests: arbitrary bytes fed to every sans-I/O parser, in any
chunking, never raise anything but the protocol's own errors, and the
events do not depend on how the bytes were cut. FUZZ_EXAMPLES=5000 in the
environment searches harder (300 examples per property by default).
"""

from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txratchet.websocket import deflate, hixie76, rfc6455
from txratchet.websocket.handshake import (
    ClientHandshake,
    HandshakeError,
    HandshakeFailed,
    RequestParser,
    negotiate,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Bytes with a bias towards what parsers look for.
noise = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\r\n", b"\r\n\r\n", b" ", b":", b"\x00", b"\xff", b"\x81\x85",
                         b"\x88\x80", b"\x01", b"\x7e", b"\x7f", b"GET / HTTP/1.1\r\n",
                         b"Upgrade: websocket\r\n", b"Sec-WebSocket-Key1: 1 2\r\n"]),
    ),
    max_size=20,
).map(b"".join)


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def frames(reader_factory, chunks):
    reader = reader_factory()
    events = []
    for chunk in chunks:
        events.extend(reader.receive(chunk))
    return events


class FrameReaderFuzz(SynchronousTestCase):
    @SETTINGS
    @given(noise, st.lists(st.integers(0, 2000), max_size=8))
    def test_rfc6455(self, data, points):
        def make():
            return rfc6455.FrameReader(maxMessageSize=4096)

        whole = frames(make, [data])
        self.assertEqual(frames(make, cuts(data, points)), whole)
        # Only the last event may be a failure.
        for event in whole[:-1]:
            self.assertNotIsInstance(event, rfc6455.Failed)

    @SETTINGS
    @given(noise, st.lists(st.integers(0, 2000), max_size=8))
    def test_rfc6455WithInflater(self, data, points):
        params = deflate.DeflateParams(False, False, 15, 15).agreement("server")

        def make():
            return rfc6455.FrameReader(
                maxMessageSize=4096, inflater=deflate.Inflater(params, 4096)
            )

        self.assertEqual(frames(make, cuts(data, points)), frames(make, [data]))

    @SETTINGS
    @given(noise, st.lists(st.integers(0, 2000), max_size=8))
    def test_hixie76(self, data, points):
        def make():
            return hixie76.FrameReader(maxMessageSize=4096)

        self.assertEqual(frames(make, cuts(data, points)), frames(make, [data]))

    @SETTINGS
    @given(st.lists(st.binary(max_size=40), max_size=10), st.binary(min_size=4, max_size=4))
    def test_maskedRoundTrip(self, payloads, key):
        """Whatever the messages, what is framed is what is read back."""
        data = b"".join(
            rfc6455.encodeFrame(rfc6455.BINARY, p, maskKey=key) for p in payloads
        )
        self.assertEqual(frames(rfc6455.FrameReader, [data]), payloads)


class HandshakeFuzz(SynchronousTestCase):
    @SETTINGS
    @given(noise, st.lists(st.integers(0, 2000), max_size=8))
    def test_requestParser(self, data, points):
        def parse(chunks):
            parser = RequestParser(maxSize=1024, maxHeaders=20)
            try:
                for chunk in chunks:
                    request = parser.feed(chunk)
                    if request is not None:
                        try:
                            negotiate(request)
                        except HandshakeError as e:
                            return ("refused", e.status)
                        return ("request", request.method, request.target)
            except HandshakeError as e:
                return ("error", e.status)
            return ("incomplete",)

        result = parse([data])
        # A cut may only make the verdict come earlier or later, never differ,
        # except that bytes not yet complete are "incomplete".
        chunked = parse(cuts(data, points))
        self.assertEqual(chunked, result)

    @SETTINGS
    @given(noise)
    def test_clientResponseParser(self, data):
        handshake = ClientHandshake("ws://127.0.0.1:9/", key=os.urandom(16))
        try:
            handshake.receive(data)
        except HandshakeFailed:
            pass
