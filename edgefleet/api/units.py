"""Kubernetes-style quantities (``512Mi``) and Go-style durations (``1m30s``).

The same regular expressions go into the CRD schema (``pattern``) and into the pydantic
validators, so the API server and ``edgefleet up`` reject exactly the same strings.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, Field

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "": 1}
_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


class UnitError(ValueError):
    """A quantity or duration string that does not parse."""


def parse_bytes(text: str) -> int:
    """Bytes in a Kubernetes quantity such as ``512Mi``, ``1G`` or ``1048576``."""
    match = _QUANTITY_RE.match(text.strip())
    if not match:
        raise UnitError(f"{text!r} is not a size (examples: 512Mi, 2Gi, 100M, 1048576)")
    suffix = match.group(2) or ""
    number = text.strip()[: len(text.strip()) - len(suffix)]
    try:
        value = Decimal(number) * (_BINARY.get(suffix) or _DECIMAL[suffix])
    except InvalidOperation as exc:  # pragma: no cover - the regex already guarantees a number
        raise UnitError(f"{text!r} is not a size") from exc
    return int(value)


def parse_seconds(text: str) -> float:
    """Seconds in a Go-style duration such as ``15s``, ``1m30s``, ``250ms`` or ``2h``."""
    stripped = text.strip()
    if not _DURATION_RE.match(stripped):
        raise UnitError(f"{text!r} is not a duration (examples: 250ms, 15s, 5m, 1h30m)")
    total = sum(Decimal(n) * _SECONDS[unit] for n, unit in _DURATION_PART_RE.findall(stripped))
    return float(total)


def format_seconds(seconds: float) -> str:
    """The shortest duration string for a whole number of seconds (``90`` -> ``1m30s``)."""
    whole = int(seconds)
    if whole != seconds:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _check_quantity(text: str) -> str:
    parse_bytes(text)
    return text


def _check_duration(text: str) -> str:
    parse_seconds(text)
    return text


Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN), AfterValidator(_check_quantity)]
"""A byte size in Kubernetes quantity notation, kept as the user wrote it."""

Duration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_check_duration)]
"""A non-negative duration in Go notation, kept as the user wrote it."""
