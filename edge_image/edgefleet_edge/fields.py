"""Reading HTTP field values as RFC 9110 lists: every field line of a name, split on commas outside quotes.

RFC 9110 §5.3: a recipient may combine field lines with the same name into one comma-separated list, and the
meaning must not change. So ``Cache-Control: max-age=60`` followed by ``Cache-Control: private`` is one field,
``max-age=60, private`` — a cache that reads only the first line would share a private answer. Everything
that decides caching reads header fields through this module, never with ``Mapping.get``.

Pure functions over headers as a multidict (``getall``) or a list of ``(name, value)`` pairs. Set-Cookie is the
exception RFC 9110 §5.3 names: it is never combined, and this module never reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, cast, overload


class MultiHeaders(Protocol):
    """What a multidict (aiohttp's ``CIMultiDict``) offers: every line of one case-insensitive name."""

    @overload
    def getall(self, key: str) -> list[str]: ...
    @overload
    def getall(self, key: str, default: list[str]) -> list[str]: ...
    def getall(self, key: str, default: list[str] = ...) -> list[str]: ...


Headers = MultiHeaders | Iterable[tuple[str, str]] | Mapping[str, str]


def field_lines(headers: Headers, name: str) -> list[str]:
    """Every field line of ``name``, in order (an empty list when absent)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        lines: list[str] = getall(name, [])
        return lines
    if isinstance(headers, Mapping):
        value = headers.get(name)
        return [] if value is None else [value]
    lowered = name.lower()
    pairs = cast(Iterable[tuple[str, str]], headers)
    return [value for key, value in pairs if key.lower() == lowered]


def combined(headers: Headers, name: str) -> str | None:
    """All lines of ``name`` as one comma-joined value (RFC 9110 §5.3), or None when there is none."""
    lines = field_lines(headers, name)
    if not lines:
        return None
    if len(lines) == 1:
        return lines[0]
    return ", ".join(lines)


def split_list(value: str) -> list[str]:
    """The members of a comma-separated list (RFC 9110 §5.6.1), empty members dropped, commas inside
    quoted strings (with backslash escapes) kept inside their member."""
    if '"' not in value:
        return [member for part in value.split(",") if (member := part.strip())]
    members: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            member = "".join(current).strip()
            if member:
                members.append(member)
            current = []
            continue
        current.append(char)
    member = "".join(current).strip()
    if member:
        members.append(member)
    return members


def list_members(headers: Headers, name: str) -> list[str]:
    """The list members of every line of ``name``."""
    members: list[str] = []
    for line in field_lines(headers, name):
        members.extend(split_list(line))
    return members


def tokens(headers: Headers, name: str) -> frozenset[str]:
    """The lower-cased members of a list of tokens (Vary, Connection, Pragma)."""
    return frozenset(member.lower() for member in list_members(headers, name))
