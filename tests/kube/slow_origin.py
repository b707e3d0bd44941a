"""A deliberately slow origin for autoscaling tests: every response takes about 150 ms.

python tests/kube/slow_origin.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.15)
    return web.Response(body=b"x" * 2000, headers={"Cache-Control": "max-age=60"})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
