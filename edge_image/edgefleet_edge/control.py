"""The control channel between the supervisor and one worker: JSON lines over a socketpair.

Either side may send a request (``{"id": n, "op": ...}``), which the other answers with
``{"reply": n, "result": ...}`` or ``{"reply": n, "error": "..."}``, or a notice (``{"op": ...}``, no id),
which gets no answer. The channel closing is meaningful: a worker whose channel closes has lost its
supervisor and exits; a supervisor whose channel closes has lost that worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Any]]

MAX_LINE = 16 * 2**20
"""A purge naming many paths is the largest message; anything bigger is a bug, not a purge."""


class ChannelClosed(ConnectionError):
    """The peer went away (exited, was killed, or closed its end)."""


class ControlChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    @classmethod
    async def open(cls, sock: socket.socket, handler: Handler) -> ControlChannel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
        return cls(reader, writer, handler)

    def _send(self, message: Message) -> None:
        if self._writer.is_closing():
            raise ChannelClosed("control channel closed")
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def notify(self, op: str, **fields: Any) -> None:
        self._send({"op": op, **fields})

    async def request(self, op: str, **fields: Any) -> Any:
        """Send a request and wait for its answer; raises ChannelClosed if the peer goes away first."""
        if self.closed.is_set():
            raise ChannelClosed("control channel closed")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._send({"id": request_id, "op": op, **fields})
            await self._writer.drain()
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def run(self) -> None:
        """Read and dispatch until the peer closes its end (then fail whatever is still waiting)."""
        try:
            while True:
                try:
                    line = await self._reader.readline()
                except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
                    logger.error("Control channel broke: %s", exc)
                    break
                if not line:
                    break
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    logger.error("Dropped an unreadable control message")
                    continue
                self._dispatch(message)
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ChannelClosed("control channel closed"))
            self._writer.close()

    def _dispatch(self, message: Message) -> None:
        if "reply" in message:
            future = self._pending.get(message["reply"])
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message.get("result"))
            return
        task = asyncio.get_running_loop().create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Message) -> None:
        request_id = message.get("id")
        try:
            result = await self._handler(message)
        except Exception as exc:  # the peer is told; the channel survives one bad request
            logger.exception("Control request %s failed", message.get("op"))
            if request_id is not None:
                with contextlib.suppress(ChannelClosed):
                    self._send({"reply": request_id, "error": f"{type(exc).__name__}: {exc}"})
            return
        if request_id is not None:
            with contextlib.suppress(ChannelClosed):
                self._send({"reply": request_id, "result": result})

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        for task in list(self._tasks):
            task.cancel()
