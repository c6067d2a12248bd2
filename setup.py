"""
Packaging for txratchet. The twistd plugin lives in twisted/plugins/ (no
__init__.py there on purpose: it is Twisted's namespace for drop-ins).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The one version source, read as text: importing txratchet would need Twisted.
VERSION = re.search(
    r'^__version__ = "([^"]+)"$', (HERE / "txratchet" / "_version.py").read_text(), re.M
)
assert VERSION is not None, "txratchet/_version.py has no __version__"

setup(
    name="txratchet",
    version=VERSION.group(1),
    description="Real-time applications on Twisted: WebSockets of every version, the Ratchet way",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # Packages are found from the repository root, said explicitly: with it,
    # `pip install -e .` puts the root on sys.path (a .pth file) instead of
    # an import hook that knows only the package names, so twistd's plugin
    # discovery, which scans sys.path for twisted/plugins/, finds ours.
    package_dir={"": "."},
    packages=[*find_packages(include=["txratchet", "txratchet.*"]), "twisted.plugins"],
    package_data={"txratchet.demo": ["index.html"], "txratchet": ["py.typed"]},
    install_requires=[
        "twisted>=23.8",
        "pyopenssl",
        "service-identity",
        "zope.interface",
    ],
    extras_require={
        "redis": ["txredisapi"],
        # Compiled masking for large messages (websockets' C helper); optional.
        "speedups": ["websockets"],
        # HTTP/2 over TLS, WebSockets over HTTP/2 streams (RFC 8441): h2 and
        # priority, as Twisted's own HTTP/2 needs them (h2 >= 3.2).
        "http2": ["twisted[http2]"],
        # scripts/docs.sh: the API reference (pinned: its warnings fail CI).
        "docs": ["pydoctor==25.10.*"],
        # Prometheus metrics: txratchet.metrics, twistd --metrics.
        "metrics": ["prometheus_client>=0.17"],
        "test": [
            "twisted[http2]",
            "txredisapi",
            "flask",
            "pytest",
            "pytest-twisted",
            "hypothesis",
            "autobahn",
            "websockets",
            "websocket-client",
            "selenium",
            "ruff",
            "mypy>=2.4,<2.5",
            "mypy-zope",
            # tests/test_typing.py: the README's code under pyright too (the
            # wrapper fetches that pyright from npm at its first run; needs
            # Node.js). Pinned, as mypy is: a new release may find new errors.
            "pyright==1.1.414",
            "pydoctor==25.10.*",  # scripts/test.sh builds the API reference
            "build",  # scripts/check-dist.sh builds the sdist and the wheel
            "h2",  # with it twisted.web's Site offers h2 by ALPN (tests/test_web.py)
            "hypercorn",  # an independent RFC 8441 server (tests/test_http2_client.py)
            "prometheus_client>=0.17",  # txratchet.metrics, --metrics
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
