"""Failures met while handling an object, mapped to kopf's retry semantics in one place.

Every call to the API server or the purge bus from a handler goes through ``mapped``: a missing object
becomes ``Gone`` (the caller decides whether that matters), a failure worth retrying becomes
``kopf.TemporaryError`` with a delay, a request the server will never accept becomes ``kopf.PermanentError``.
Outside kopf's handlers (the purge follower, the autoscaler) the same exceptions are caught by the loop,
logged, and retried on its next round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kopf
from kubernetes.client import ApiException

from edgefleet.bus import BusError

from .apply import ApplyError

RETRYABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({400, 422})
RETRY_DELAY = 5.0
"""Seconds before retrying a transient failure (a conflict, throttling, an API server or bus hiccup)."""
SLOW_RETRY_DELAY = 60.0
"""Seconds before retrying what needs a person (forbidden by RBAC, refused by admission)."""
REFERENCE_RETRY_DELAY = 15.0
"""Seconds before looking again for a Secret or PersistentVolumeClaim the spec names but that is missing."""


class Gone(RuntimeError):
    """The object is not there (any more): 404 from the API server."""


class Conflict(kopf.TemporaryError):
    """409: the object changed since the version a guarded write named. A writer that can re-read and recompute
    catches it; anywhere else it is retried like any ``kopf.TemporaryError``."""


def temporary(what: str, reason: str, *, retryable: bool = True) -> kopf.TemporaryError:
    return kopf.TemporaryError(f"{what}: {reason}", delay=RETRY_DELAY if retryable else SLOW_RETRY_DELAY)


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """``what`` names the operation for the message, e.g. "reading CdnCluster shop"."""
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise Gone(what) from exc
        if exc.status == 409:
            raise Conflict(f"{what}: {exc.status} {exc.reason}", delay=RETRY_DELAY) from exc
        if exc.status in PERMANENT_STATUSES:
            raise kopf.PermanentError(f"{what}: {exc.status} {exc.reason}") from exc
        retryable = exc.status is None or exc.status in RETRYABLE_STATUSES
        raise temporary(what, f"{exc.status} {exc.reason}", retryable=retryable) from exc
    except BusError as exc:
        raise temporary(what, f"purge bus: {exc}") from exc
    except ApplyError as exc:
        raise temporary(what, str(exc), retryable=exc.retryable) from exc
