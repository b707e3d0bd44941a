"""The purge bus wire format: what a purge or warm event looks like inside a Redis Stream entry.

Pure: encoding and decoding only, no I/O. Every entry has three fields:

    v     the wire version ("1"); readers reject versions they do not know
    kind  "purge" or "warm"
    data  a JSON object validated by the models below

A reader that meets anything else raises ``MalformedMessage`` naming what is wrong, and nothing else:
not JSON's ``ValueError`` for an integer past Python's digit limit, not ``RecursionError`` for deep
nesting. Consumers record it in the dead-letter stream, skip the entry and go on, so one bad publisher
cannot stop purges for everyone.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

WIRE_VERSION = "1"
MAX_DATA_CHARS = 32 * 1024 * 1024
"""The largest ``data`` field read: a full warm message (10,000 paths of 2 KiB) with room to spare."""

_Path = Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=2048)]
_Tag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]


class MalformedMessage(ValueError):
    """A stream entry that is not a valid bus message (the reason says which part)."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: Annotated[str, Field(max_length=253)] = ""
    """Who published it (operator, origin, cli, edge name...), for logs and audits."""
    issued_at: float = Field(default_factory=time.time)
    """Unix time of publication; edges report purge lag against it."""


class PurgeMessage(_Message):
    """Remove (or, when ``soft``, mark stale) everything that matches any of the targets."""

    purge_id: Annotated[str, Field(min_length=1, max_length=253)]
    """The issuer's idempotency key (a PurgeRequest uid, a uuid4): published at most once."""
    paths: tuple[_Path, ...] = ()
    prefixes: tuple[_Path, ...] = ()
    tags: tuple[_Tag, ...] = ()
    all: bool = False
    soft: bool = False
    refetch: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.paths or self.prefixes or self.tags or self.all)


class WarmMessage(_Message):
    """Fetch these paths through their owner edges so they are cached before shoppers ask."""

    paths: Annotated[tuple[_Path, ...], Field(min_length=1, max_length=10_000)]


BusMessage = PurgeMessage | WarmMessage
Kind = Literal["purge", "warm"]


class BusEntry(NamedTuple):
    """A purge as read from the stream: its entry id orders it and names it for acknowledgements."""

    entry_id: str
    message: PurgeMessage


def encode(message: BusMessage) -> dict[str, str]:
    kind: Kind = "purge" if isinstance(message, PurgeMessage) else "warm"
    return {"v": WIRE_VERSION, "kind": kind, "data": message.model_dump_json()}


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def decode(fields: dict[Any, Any]) -> BusMessage:
    """The message in a stream entry's fields (bytes or str keys and values)."""
    entry = {_text(k): _text(v) for k, v in fields.items()}
    version = entry.get("v")
    if version != WIRE_VERSION:
        raise MalformedMessage(f"unknown wire version {version!r} (this reader knows {WIRE_VERSION!r})")
    kind = entry.get("kind")
    model: type[BusMessage]
    if kind == "purge":
        model = PurgeMessage
    elif kind == "warm":
        model = WarmMessage
    else:
        raise MalformedMessage(f"unknown message kind {kind!r}")
    text = entry.get("data", "")
    if len(text) > MAX_DATA_CHARS:
        raise MalformedMessage(f"data is {len(text)} characters long (at most {MAX_DATA_CHARS})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"data is not JSON: {exc.msg} at position {exc.pos}") from exc
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise MalformedMessage(f"data is not usable JSON: {_first_line(exc)}") from exc
    except RecursionError as exc:
        raise MalformedMessage("data is nested too deeply") from exc
    try:
        message = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise MalformedMessage(f"{kind} message field {where}: {first['msg']}") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"{kind} message is not valid: {_first_line(exc)}") from exc
    if isinstance(message, PurgeMessage) and message.is_empty:
        raise MalformedMessage("purge message names no target (paths, prefixes, tags or all)")
    return message
