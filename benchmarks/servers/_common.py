"""Shared command line and logging setup for the benchmark servers."""

import argparse
import sys


def parse_args(apps=("echo", "broadcast"), compression=True):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", choices=apps, default="echo")
    parser.add_argument("--backlog", type=int, default=1024)
    if compression:
        parser.add_argument(
            "--compression",
            action="store_true",
            help="accept permessage-deflate with the library's usual settings (default: off)",
        )
    return parser.parse_args()


def install_epoll_reactor():
    """The epoll reactor, installed before anything imports the reactor."""
    from twisted.internet import epollreactor

    epollreactor.install()


def log_warnings_to_stderr():
    """Twisted log events of level warn and above go to stderr (the runner keeps it)."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def ready(port):
    print(f"listening on 127.0.0.1:{port}", flush=True)
