"""
The C{twistd txratchet} drop-in; the work is in L{txratchet.tap}.
"""

from twisted.application.service import ServiceMaker

txratchet = ServiceMaker(
    "txratchet",
    "txratchet.tap",
    "Serve a txratchet application over WebSockets (all protocol versions)",
    "txratchet",
)
