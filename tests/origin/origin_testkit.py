"""Helpers for origin tests: authenticated uploads, real images made by Pillow, metric reads."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from edgefleet_origin.server import RunningOrigin
from PIL import Image

TOKEN = "test-upload-token"


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jpeg_bytes(width: int, height: int, *, orientation: int | None = None, color: str = "red") -> bytes:
    """A real JPEG; with ``orientation`` the EXIF Orientation tag is set (the pixels stay as drawn)."""
    image = Image.new("RGB", (width, height), color)
    # A marker in the top-left quarter shows where "up" is after orientation is applied.
    image.paste((0, 0, 255), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "edgefleet-test-camera"  # Make: metadata that must be stripped
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 10, 128)).save(out, "PNG")
    return out.getvalue()


async def upload(
    http: aiohttp.ClientSession,
    origin: RunningOrigin,
    key: str,
    body: bytes,
    *,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    sent = auth() | (headers or {})
    if content_type:
        sent["Content-Type"] = content_type
    async with http.put(f"{origin.url}/api/files/{key}", data=body, headers=sent) as response:
        assert response.status in {200, 201}, await response.text()
        result: dict[str, Any] = await response.json()
        return result


def generations(origin: RunningOrigin, fmt: str) -> float:
    value = origin.context.metrics.registry.get_sample_value(
        "edgefleet_origin_variant_generations_total", {"format": fmt}
    )
    return value or 0.0
