"""
Packaging for txratchet. The twistd plugin lives in twisted/plugins/ (no
__init__.py there on purpose: it is Twisted's namespace for drop-ins).
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="txratchet",
    version="0.1.0",
    description="Real-time applications on Twisted: WebSockets of every version, the Ratchet way",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
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
        "test": [
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
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
