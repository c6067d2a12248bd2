"""
The C{twistd txratchet} drop-in; the work is in L{txratchet.tap}.
"""

from twisted.application.service import ServiceMaker


class _Txratchet(ServiceMaker):
    """
    C{txratchet.tap}'s command-line flavour (a mistake is one line and exit
    status 1), imported only when the plugin is used: C{twistd --help} and
    other plugins do not pay for it.
    """

    @property
    def options(self):
        from txratchet.tap import TwistdOptions

        return TwistdOptions

    def makeService(self, options):
        from txratchet.tap import makeTwistdService

        return makeTwistdService(options)


txratchet = _Txratchet(
    "txratchet",
    "txratchet.tap",
    "Serve a txratchet application over WebSockets (all protocol versions)",
    "txratchet",
)
