"""
HTTP/1.1 heads, sans I/O: header fields, tokens and cookies, for requests
(the server's side of the opening handshake) and responses (the client's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class Headers:
    """
    HTTP header fields in arrival order, looked up case-insensitively.
    """

    __slots__ = ("_indexed", "_list", "_packed")

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self._list: list[tuple[str, str]] | None = list(fields)
        self._packed = ""
        self._indexed: dict[str, list[str]] | None = None

    @property
    def _fields(self) -> list[tuple[str, str]]:
        fields = self._list
        if fields is None:
            fields = self._list = [
                (name, value)
                for name, _, value in (
                    line.partition(":") for line in self._packed.split("\n")
                )
            ]
            self._packed = ""
        return fields

    @property
    def _index(self) -> dict[str, list[str]]:
        index = self._indexed
        if index is None:
            index = self._indexed = {}
            for name, value in self._fields:
                index.setdefault(name.lower(), []).append(value)
        return index

    def compact(self) -> None:
        """
        Keep the fields as one string until they are next read: an open
        connection holds its request headers at a fraction of the cost of
        a list of pairs and a lookup index (both come back on demand).
        """
        self._indexed = None
        fields = self._list
        if not fields or any(
            ":" in name or "\n" in name or "\n" in value for name, value in fields
        ):
            return  # empty, or not safely packable: kept as they are
        self._packed = "\n".join([f"{name}:{value}" for name, value in fields])
        self._list = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """
        All values of C{name} joined by C{", "} (RFC 9110 5.3), or
        C{default}.
        """
        values = self._index.get(name.lower())
        if not values:
            return default
        return ", ".join(values)

    def getAll(self, name: str) -> list[str]:
        """
        Every value of C{name}, one per field line.
        """
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """
        The comma-separated, lower-cased tokens of C{name}.
        """
        return [
            t.strip().lower()
            for value in self._index.get(name.lower(), ())
            for t in value.split(",")
            if t.strip()
        ]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


def parseCookies(headers: Headers) -> dict[str, str]:
    """
    Parse every C{Cookie} header leniently (RFC 6265 5.4): malformed pairs
    are skipped, never fatal; the first occurrence of a name wins.
    """
    cookies: dict[str, str] = {}
    for value in headers.getAll("cookie"):
        for pair in value.split(";"):
            name, sep, val = pair.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            cookies.setdefault(name, val)
    return cookies
