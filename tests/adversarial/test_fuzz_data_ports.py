"""A bounded, seeded raw-socket fuzzer for the data ports: the edge's and the origin's (real processes on loopback).

Valid requests are mutated (bytes flipped, inserted, deleted, lines repeated or cut, odd methods and versions,
CR/LF where they do not belong) and sent one per connection, each connection half-closed after its request so
every exchange ends without waiting for a timeout. Checked: the process never dies, a valid request is still
answered after every batch, and the peak resident memory stays bounded. The counts and peak RSS are printed
(``pytest -s``) for the issue note.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from edgefleet.embedded_redis import free_port

REQUESTS_PER_PORT = 3000
BATCH = 250
SEED = 20261201
PEAK_RSS_LIMIT = 400 * 2**20

VALID = [
    b"GET /assets/p.jpg HTTP/1.1\r\nHost: shop\r\nAccept: image/avif,image/webp,*/*\r\nConnection: close\r\n\r\n",
    b"GET /assets/p.jpg?w=320&utm_source=x HTTP/1.1\r\nHost: shop\r\nAccept-Encoding: gzip, br\r\n\r\n",
    b'HEAD /assets/p.jpg HTTP/1.1\r\nHost: shop\r\nRange: bytes=0-10,5-20\r\nIf-None-Match: "x"\r\n\r\n',
    b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"PUT /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /assets/p.jpg HTTP/1.1\r\nHost: shop\r\n\r\nGET /assets/p.jpg HTTP/1.1\r\nHost: shop\r\n\r\n",
]
NOISE = [b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"%", b"%00", b"\xff", b"HTTP/9.9", b"Content-Length: 99\r\n",
         b"Transfer-Encoding: chunked\r\n", b"Host: other\r\n", b"Range: bytes=" + b"0-," * 200 + b"\r\n",
         b"X-" + b"A" * 9000 + b": v\r\n", b"CONNECT", b"M-SEARCH", b"*", b"http://evil/",
         b"../../etc/passwd"]  # fmt: skip


def mutate(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(VALID))
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = rng.choice(NOISE)
        elif kind == 2:
            del data[at : at + rng.randint(1, 20)]
        elif kind == 3:
            lines = bytes(data).split(b"\r\n")
            line = rng.choice(lines)
            data = bytearray(b"\r\n".join([*lines[:2], line, *lines[2:]]))
        elif kind == 4:
            data = data[:at]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(data)


async def send(port: int, payload: bytes, *, half_close: bool = True, wait: float = 20.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(1 << 20), timeout=wait)
    except TimeoutError:
        return b""  # still waiting for the rest of a cut request: no answer is the right answer
    except (ConnectionError, OSError):
        return b""  # the port may close on us mid-write: that is an answer too
    finally:
        writer.close()


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@dataclass
class Target:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    valid: bytes
    half_close: bool = True
    """Half-close after each request so it ends at once; aiohttp's server (the origin) drops a half-closed
    client's request unanswered, so the origin is fuzzed without it, each read waiting at most a few seconds."""


async def fuzz(target: Target) -> None:
    rng = random.Random(SEED)
    statuses: dict[bytes, int] = {}
    for start in range(0, REQUESTS_PER_PORT, BATCH):
        answers = await asyncio.gather(
            *(send(target.port, mutate(rng), half_close=target.half_close, wait=20.0 if target.half_close else 3.0)
              for _ in range(BATCH))
        )  # fmt: skip
        for answer in answers:
            status = answer[9:12] if answer.startswith(b"HTTP/1.") else b"---"
            statuses[status] = statuses.get(status, 0) + 1
        assert target.process.poll() is None, f"{target.name} died after {start + BATCH} requests"
        still = await send(target.port, target.valid, half_close=False)
        assert still.startswith(b"HTTP/1.1 200"), f"{target.name} stopped serving valid requests: {still[:200]!r}"
    rss = peak_rss(target.process.pid)
    summary = ", ".join(f"{status.decode()}: {count}" for status, count in sorted(statuses.items()))
    print(f"\n[fuzz {target.name}] {REQUESTS_PER_PORT} requests, crashes 0, peak RSS {rss / 2**20:.0f} MiB; {summary}")
    assert rss < PEAK_RSS_LIMIT


async def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    pytest.fail(f"port {port} never opened:\n{log.read_text()}")


@pytest.fixture
async def origin_stub() -> AsyncIterator[int]:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"x" * 2048, headers={"Cache-Control": "max-age=60", "ETag": '"x"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


async def test_the_edge_survives_mutated_requests(origin_stub: int, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    log = tmp_path / "edge.log"
    process = start([sys.executable, "-m", "edgefleet.cli", "edge", "--listen", f"127.0.0.1:{port}",
                     "--admin-listen", f"127.0.0.1:{admin}", "--origin", f"http://127.0.0.1:{origin_stub}",
                     "--memory", "64Mi", "--access-log", "off"], log)  # fmt: skip
    try:
        await wait_port(port, process, log)
        await fuzz(Target("edge", process, port, VALID[0]))
    finally:
        process.terminate()
        process.wait(timeout=20)


async def test_the_origin_survives_mutated_requests(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    (assets / "assets").mkdir(parents=True)
    (assets / "assets" / "p.jpg").write_bytes(b"\xff\xd8" + os.urandom(4096))
    port = free_port()
    log = tmp_path / "origin.log"
    process = start([sys.executable, "-m", "edgefleet.cli", "origin", "--listen", f"127.0.0.1:{port}",
                     "--storage", f"file://{assets}"], log)  # fmt: skip
    try:
        await wait_port(port, process, log)
        valid = b"GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n"
        await fuzz(Target("origin", process, port, valid, half_close=False))
    finally:
        process.terminate()
        process.wait(timeout=20)
