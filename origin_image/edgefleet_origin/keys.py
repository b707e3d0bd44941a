"""Object keys: the one place that decides which names may reach storage.

A key is a relative, slash-separated path such as ``products/shoe-123/front.jpg``. The rules close
path traversal for the filesystem backend and keep keys usable verbatim in URLs and in
``Surrogate-Key`` headers (no spaces, no characters that need percent-encoding):

- 1..115 characters, no empty segments (no leading, trailing or double ``/``);
- characters ``A-Z a-z 0-9 . _ - /`` only, so no NUL, backslash, ``%`` or whitespace;
- no segment starts with ``.``: that rules out ``.`` and ``..`` and keeps the filesystem backend's own
  ``.meta`` and ``.staging`` directories out of the key space.

The length and character limits come from the purge bus: the surrogate key derived from a key
(``path:/assets/<key>``, see ``caching.py``) must be a valid bus tag, ``[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}``.
"""

from __future__ import annotations

import re

from edgefleet_origin.errors import InvalidKey

MAX_KEY_BYTES = 128 - len("path:/assets/")
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged when it is allowed, else raise ``InvalidKey`` saying why."""
    if not key:
        raise InvalidKey("empty object key")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key longer than {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise InvalidKey("object key contains NUL")
    if "\\" in key:
        raise InvalidKey("object key contains a backslash")
    if key.startswith("/"):
        raise InvalidKey("object key must be relative (no leading '/')")
    for segment in key.split("/"):
        if not segment:
            raise InvalidKey("object key has an empty path segment")
        if segment in {".", ".."}:
            raise InvalidKey("object key contains a '.' or '..' segment")
        if segment.startswith("."):
            raise InvalidKey("object key segments must not start with '.'")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey("object key may contain only A-Z a-z 0-9 . _ - and '/'")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-like string that may end with ``/``."""
    if not prefix:
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
