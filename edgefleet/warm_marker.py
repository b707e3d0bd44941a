"""The marker a fleet's own warm requests carry, so an edge stores what the fleet prewarms on the first request.

An upload makes the origin publish a warm event; the balancer requests each path through HAProxy so it lands
on its owning edge. The edge's admission policy would make a large object wait for its second request, which
defeats the prewarm, so warm requests carry ``X-Edgefleet-Warm``: an HMAC of the request target under the
fleet's admin token. The edge admits a request that carries a valid marker without asking its policy.

Why an HMAC of the target and not the token itself: the marker travels on the data path (through HAProxy, in
access logs if someone logs headers), and a marker seen there is good for that one target only. It lets no one
purge, read admin endpoints or fill the cache with other keys. The balancer's data frontend also deletes any
``X-Edgefleet-Warm`` a client sends, so only the agent's own requests carry one.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Edgefleet-Warm"
_CONTEXT = b"edgefleet-warm\x00"


def warm_marker(token: str, target: str) -> str:
    """The marker for ``target`` (the request target exactly as sent: path and query)."""
    return hmac.new(token.encode(), _CONTEXT + target.encode("latin-1", "replace"), hashlib.sha256).hexdigest()


def is_trusted_warm(token: str | None, target: str, marker: str | None) -> bool:
    """Whether ``marker`` proves the request is the fleet's own warm request for ``target``."""
    if not token or not marker:
        return False
    return hmac.compare_digest(warm_marker(token, target), marker.strip())
