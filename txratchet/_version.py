"""
The version of txratchet, in one place: C{setup.py} reads this file
without importing the package (which needs Twisted), and
C{txratchet.__version__} is this value.

Releasing: change it here, and give C{CHANGELOG.md}'s "Unreleased" section
this version and the date.
"""

__version__ = "0.1.0"
