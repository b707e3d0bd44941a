"""A stub edge as its own process (so a test can SIGKILL it): ``python stub_edge_main.py NAME PORT``."""

from __future__ import annotations

import sys

from aiohttp import web


def main() -> None:
    name, port = sys.argv[1], int(sys.argv[2])

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=f"served by {name}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
