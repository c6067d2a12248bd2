"""
Commands: what a handler may return instead of acting itself.

Returning a command keeps handlers free of side effects (easy to test: look
at what they return) and lets the framework decide when and how each
connection's work is done. L{execute} runs a handler's result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import CoroutineType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from txratchet.interfaces import IConnection

log = Logger()


class Command:
    """
    Something to do to a connection; subclasses implement L{run}.
    """

    __slots__ = ()

    def run(self) -> None:
        raise NotImplementedError()

    @property
    def connections(self) -> Iterable[IConnection]:
        """
        The connections this command acts on (to report its failures).
        """
        return ()


class SendMessage(Command):
    """
    Send C{message} (C{str}: text, C{bytes}: binary) to C{conn}.
    """

    __slots__ = ("conn", "message")

    def __init__(self, conn: IConnection, message: str | bytes) -> None:
        self.conn = conn
        self.message = message

    def run(self) -> None:
        self.conn.send(self.message)

    @property
    def connections(self) -> Iterable[IConnection]:
        return (self.conn,)

    def __repr__(self) -> str:
        return f"SendMessage({self.conn!r}, {self.message!r})"


class CloseConnection(Command):
    """
    Close C{conn} with a close C{code} and C{reason} (where the protocol has
    them); everything sent before is delivered first.
    """

    __slots__ = ("code", "conn", "reason")

    def __init__(self, conn: IConnection, code: int = 1000, reason: str = "") -> None:
        self.conn = conn
        self.code = code
        self.reason = reason

    def run(self) -> None:
        self.conn.close(self.code, self.reason)

    @property
    def connections(self) -> Iterable[IConnection]:
        return (self.conn,)

    def __repr__(self) -> str:
        return f"CloseConnection({self.conn!r}, {self.code!r}, {self.reason!r})"


class Composite(Command):
    """
    An ordered queue of commands, run one after the other.

    A command that fails is reported to its connection's application
    (C{onError}) and the rest still run: one broken peer does not stop a
    broadcast.
    """

    __slots__ = ("_queue",)

    def __init__(self, commands: Iterable[Command | None] = ()) -> None:
        self._queue: deque[Command] = deque(c for c in commands if c is not None)

    def enqueue(self, command: Command | None) -> Composite:
        """
        Add C{command} at the end of the queue (C{None} is ignored).

        @return: C{self}, so calls can be chained.
        """
        if command is not None:
            self._queue.append(command)
        return self

    def __iter__(self) -> Iterator[Command]:
        return iter(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def run(self) -> None:
        for command in self._queue:
            if command.__class__ is SendMessage:
                # A broadcast's deliveries, without a call to execute each.
                try:
                    command.conn.send(command.message)  # type: ignore[attr-defined]
                except Exception:
                    reportFailure(command, Failure())
            else:
                execute(command)

    def __repr__(self) -> str:
        return f"Composite({list(self._queue)!r})"


def _reporter(conn: object) -> Callable[[Failure], None] | None:
    """
    What reports a failure to C{conn}'s application: the C{reportError} of
    txratchet's connections; C{None} for anything else (a test's stand-in,
    no connection at all), whose failures are logged.
    """
    # On failures only; txratchet.connection imports this module.
    from txratchet.connection import Connection

    return conn.reportError if isinstance(conn, Connection) else None


def reportFailure(command: Command, failure: Failure) -> None:
    """
    Hand C{failure} to the application of each connection C{command} acted
    on, or log it when no connection can take it.
    """
    reported = False
    for conn in command.connections:
        report = _reporter(conn)
        if report is not None:
            report(failure)
            reported = True
    if not reported:
        log.failure("Command {command!r} failed", failure, command=command)


def execute(result: object, conn: IConnection | None = None) -> None:
    """
    Carry out what a handler returned: a L{Command}, a L{Deferred} that
    fires with one, the coroutine of an C{async def} handler (whose result
    is carried out in turn), or C{None}.

    @param conn: the connection whose handler returned C{result}. A
        Deferred that fails is reported to it (logged, then given to the
        application's C{onError}, see L{txratchet.connection.Connection.reportError})
        exactly as the handler raising would have been; without one (an
        C{onClose} or C{onError} result) the failure is logged.
    """
    if result is None:
        return
    if result.__class__ is SendMessage:
        # The most common result, run without the generic dispatch.
        try:
            result.conn.send(result.message)  # type: ignore[attr-defined]
        except Exception:
            reportFailure(result, Failure())  # type: ignore[arg-type]
        return
    if isinstance(result, Composite):
        result.run()
    elif isinstance(result, Command):
        try:
            result.run()
        except Exception:
            reportFailure(result, Failure())
    elif isinstance(result, Deferred):
        result.addCallback(execute, conn)
        result.addErrback(_deferredFailed, conn)
    elif result.__class__ is CoroutineType:
        _startCoroutine(result, conn)  # type: ignore[arg-type]
    else:
        log.warn(
            "Ignored a handler's result that is not a command: {result!r}",
            result=result,
        )


def _startCoroutine(coroutine: Coroutine[Any, Any, object], conn: IConnection | None) -> None:
    """
    Run what an C{async def} handler returned. A connection of txratchet's
    runs it (keeping its messages in order, cancelling it when lost: see
    L{txratchet.connection.Connection.startHandler}); otherwise (C{onClose}
    and C{onError} results, a test's stand-in connection) it just runs, as
    a Deferred would.
    """
    from txratchet.connection import Connection

    if isinstance(conn, Connection):
        conn.startHandler(coroutine)
    else:
        execute(Deferred.fromCoroutine(coroutine), conn)


def _deferredFailed(failure: Failure, conn: IConnection | None) -> None:
    report = _reporter(conn)
    if report is not None:
        report(failure)
    else:
        log.failure("A handler's Deferred failed", failure, level=LogLevel.error)
