"""Connections that send nothing, or a request head byte by byte, are closed; new clients still get in."""

from __future__ import annotations

import asyncio
import contextlib

from edgefleet_balancer.haproxy_config import HAProxyLimits

from tests.balancer.harness import running

LIMITS = HAProxyLimits(check_interval=0.2, request_head_timeout=1.0, keep_alive_timeout=1.0)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), 20)


async def test_idle_and_slow_header_connections_are_closed() -> None:
    async with running(1, limits=LIMITS) as s:
        port = s.balancer.data_port
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"GET /assets/a.jpg HTTP/1.1\r\nHost: sh")

        async def dribble() -> None:
            # One byte now and then keeps the connection busy but never finishes the head.
            for _ in range(100):
                await asyncio.sleep(0.2)
                with contextlib.suppress(ConnectionError):
                    slow_writer.write(b"o")
                    await slow_writer.drain()

        dribbler = asyncio.create_task(dribble())
        try:
            idle_answer = await closed_by_server(idle_reader)
            slow_answer = await closed_by_server(slow_reader)
        finally:
            dribbler.cancel()
            idle_writer.close()
            slow_writer.close()
        assert idle_answer in {b""} or idle_answer.startswith(b"HTTP/1.1 408")
        assert slow_answer.startswith(b"HTTP/1.1 408"), slow_answer[:100]


async def test_a_flood_of_idle_sockets_does_not_lock_out_new_clients() -> None:
    limits = HAProxyLimits(check_interval=0.2, request_head_timeout=1.0, keep_alive_timeout=1.0, max_connections=100)
    async with running(1, limits=limits) as s:
        flood = []
        for _ in range(300):  # three times what HAProxy accepts at once
            flood.append(await asyncio.open_connection("127.0.0.1", s.balancer.data_port))
        try:
            status, edge = await asyncio.wait_for(s.get("/assets/after-the-flood.jpg"), 30)
            assert (status, edge) == (200, "edge-0")
        finally:
            for _, writer in flood:
                writer.close()
