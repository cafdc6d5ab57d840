"""Structured Field Values for HTTP (RFC 9651): the List and Dictionary parsing
that the RateLimit fields need (brace.pushback reads them).

Any syntax error makes the whole field malformed, as the RFC requires; the
parser then returns None and the field is ignored.
"""

from __future__ import annotations

import re
from typing import TypeAlias

__all__ = ["Bare", "Params", "StructuredField", "Value"]

Bare: TypeAlias = "int | float | str | bytes | bool"
Params: TypeAlias = "dict[str, Bare]"
Value: TypeAlias = "Bare | list[tuple[Bare, Params]]"

_SF_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*", re.ASCII)
_SF_NUMBER = re.compile(r"-?([0-9]{1,15})(\.[0-9]{1,3})?", re.ASCII)
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"', re.ASCII)
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~:/A-Za-z0-9-]*", re.ASCII)
_SF_BYTES = re.compile(r":([A-Za-z0-9+/=]*):", re.ASCII)
_SF_BOOLEAN = re.compile(r"\?([01])", re.ASCII)
_SF_UNESCAPE = re.compile(r"\\(.)")


class _Malformed(Exception):
    """A structured field that does not parse."""


class StructuredField:
    """A parser over one field value (all its lines joined with ", ")."""

    __slots__ = ("_text", "_pos")

    def __init__(self, text: str) -> None:
        self._text = text.strip(" \t")
        self._pos = 0

    def parse_list(self) -> list[tuple[Value, Params]] | None:
        """The members of a List, or None if the text is not one."""
        members: list[tuple[Value, Params]] = []
        try:
            while not self._at_end():
                members.append(self._member())
                if not self._next_member():
                    break
        except _Malformed:
            return None
        return members

    def parse_dictionary(self) -> dict[str, tuple[Value, Params]] | None:
        """The members of a Dictionary by key, or None if the text is not one."""
        members: dict[str, tuple[Value, Params]] = {}
        try:
            while not self._at_end():
                key = self._key()
                if self._peek() == "=":
                    self._pos += 1
                    members[key] = self._member()
                else:
                    members[key] = (True, self._params())
                if not self._next_member():
                    break
        except _Malformed:
            return None
        return members

    def _at_end(self) -> bool:
        return self._pos >= len(self._text)

    def _peek(self) -> str:
        return self._text[self._pos : self._pos + 1]

    def _skip(self, characters: str) -> None:
        while self._peek() and self._peek() in characters:
            self._pos += 1

    def _next_member(self) -> bool:
        """Consumes the separator after a member: False at the end of the text."""
        self._skip(" \t")
        if self._at_end():
            return False
        if self._peek() != ",":
            raise _Malformed
        self._pos += 1
        self._skip(" \t")
        if self._at_end():
            raise _Malformed  # a trailing comma
        return True

    def _member(self) -> tuple[Value, Params]:
        if self._peek() != "(":
            return self._item()
        self._pos += 1
        inner: list[tuple[Bare, Params]] = []
        while True:
            self._skip(" ")
            if self._peek() == ")":
                self._pos += 1
                return inner, self._params()
            inner.append(self._item())
            if self._peek() not in (" ", ")"):
                raise _Malformed

    def _item(self) -> tuple[Bare, Params]:
        return self._bare(), self._params()

    def _params(self) -> Params:
        params: Params = {}
        while self._peek() == ";":
            self._pos += 1
            self._skip(" ")
            key = self._key()
            value: Bare = True
            if self._peek() == "=":
                self._pos += 1
                value = self._bare()
            params[key] = value
        return params

    def _key(self) -> str:
        return self._match(_SF_KEY)[0]

    def _bare(self) -> Bare:
        first = self._peek()
        if first == "-" or "0" <= first <= "9":
            match = self._match(_SF_NUMBER)
            if match[2] is None:
                return int(match[0])
            if len(match[1]) > 12:  # RFC 9651: a Decimal has at most 12 integer digits
                raise _Malformed
            return float(match[0])
        if first == '"':
            return _SF_UNESCAPE.sub(r"\1", self._match(_SF_STRING)[1])
        if first == ":":
            return self._match(_SF_BYTES)[1].encode("ascii")
        if first == "?":
            return self._match(_SF_BOOLEAN)[1] == "1"
        return self._match(_SF_TOKEN)[0]

    def _match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        match = pattern.match(self._text, self._pos)
        if match is None:
            raise _Malformed
        self._pos = match.end()
        return match
