"""
Decorators that stack around any application (and each other), in any
order: L{OriginCheck}, L{IpBlackList}, L{Decorator} to write your own.
"""

from txratchet.components.base import Decorator
from txratchet.components.blacklist import IpBlackList
from txratchet.components.origin import OriginCheck

__all__ = ["Decorator", "IpBlackList", "OriginCheck"]
