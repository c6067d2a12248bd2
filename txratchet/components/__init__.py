"""
Decorators that stack around any application (and each other), in any
order: L{OriginCheck}, L{IpBlackList}, L{SessionProvider} (with its
session stores), and L{Decorator} to write your own.
"""

from txratchet.components.base import Decorator
from txratchet.components.blacklist import IpBlackList
from txratchet.components.origin import OriginCheck
from txratchet.components.session import (
    FlaskCookieSessions,
    RedisSessionStore,
    SessionProvider,
    SQLiteSessionStore,
    TwistedWebSessions,
)

__all__ = [
    "Decorator",
    "FlaskCookieSessions",
    "IpBlackList",
    "OriginCheck",
    "RedisSessionStore",
    "SQLiteSessionStore",
    "SessionProvider",
    "TwistedWebSessions",
]
