"""Bearer tokens for the upload API and the bucket-notification webhook. Secure by default: with no
token configured the endpoints refuse everything."""

from __future__ import annotations

import hmac

from aiohttp import web

from edgefleet_origin.errors import Forbidden, Unauthorized


def require_bearer(request: web.Request, expected: str | None, what: str) -> None:
    if expected is None:
        raise Forbidden(f"the {what} is disabled: no token configured on this origin")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(f"the {what} needs 'Authorization: Bearer <token>'")
    # Constant-time, so response timing does not reveal how much of a guess was right.
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Forbidden(f"wrong token for the {what}")
