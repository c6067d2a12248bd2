"""Runnable examples: C{twistd -n txratchet --app examples.echo.Echo}."""
