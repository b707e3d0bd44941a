"""The origin's exceptions: every failure a client can cause maps to one status and one-line reason.

Storage backends raise ``StorageError`` subclasses; the HTTP layer converts any ``OriginError`` into a
JSON error response at one boundary (``app.error_middleware``).
"""

from __future__ import annotations


class OriginError(Exception):
    """Base of every origin error; ``status`` is the HTTP status a client sees."""

    status: int = 500

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class BadRequest(OriginError):
    status = 400


class InvalidKey(BadRequest):
    """An object key that is not allowed (traversal, bad characters, too long)."""


class Unauthorized(OriginError):
    status = 401


class Forbidden(OriginError):
    status = 403


class NotFound(OriginError):
    status = 404


class Conflict(OriginError):
    status = 409


class PayloadTooLarge(OriginError):
    status = 413


class RangeNotSatisfiable(OriginError):
    status = 416

    def __init__(self, reason: str, *, size: int) -> None:
        super().__init__(reason)
        self.size = size


class UnprocessableImage(OriginError):
    """An image that cannot be turned into a variant (corrupt, unsupported, a decompression bomb)."""

    status = 422


class NotImplementedHere(OriginError):
    status = 501


class StorageError(OriginError):
    """The storage backend failed; not the client's fault. ``operation`` labels the error metric."""

    status = 503

    def __init__(self, reason: str, *, operation: str) -> None:
        super().__init__(reason)
        self.operation = operation


class ObjectChanged(OriginError):
    """The object changed between reading its metadata and its bytes; the request is retried."""

    status = 503

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} changed while it was being read; retry")


class ObjectNotFound(NotFound):
    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r}")
        self.key = key


class ConfigError(Exception):
    """Settings that cannot work (bad storage URL, unreadable secret file); reported at start-up."""
