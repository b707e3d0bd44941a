"""Product photos for a demo shop, made with Pillow: a distinct, recognisable image per SKU."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator

from PIL import Image, ImageDraw

from .workload import Catalogue


def product_photo(key: str, size: int = 1600) -> bytes:
    """A JPEG of ``size`` x ``size`` pixels with shapes seeded by ``key`` (same key, same bytes)."""
    rng = random.Random(key)
    image = Image.new("RGB", (size, size), tuple(rng.randrange(180, 256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = x0 + rng.randrange(size // 8, size // 2), y0 + rng.randrange(size // 8, size // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    draw.text((size // 20, size // 20), key, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


STATIC_BODIES = {
    "static/app.css": b"body{font-family:sans-serif}.price{color:#c00}\n" * 40,
    "static/app.js": b"window.shop={cart:[]};\n" * 200,
}


def catalogue_objects(catalogue: Catalogue, size: int = 1600) -> Iterator[tuple[str, bytes, tuple[str, ...]]]:
    """(key, body, surrogate tags) for every object the workload can ask for."""
    for index, key in enumerate(catalogue.product_keys):
        yield key, product_photo(key, size), (f"sku-{index:05d}", "cat-products")
    for index, key in enumerate(catalogue.flash_keys):
        yield key, product_photo(key, size), (f"sale-{index:03d}", "cat-sale")
    for key, body in STATIC_BODIES.items():
        yield key, body, ("static",)
    logo = io.BytesIO()
    Image.new("RGB", (200, 80), (20, 60, 160)).save(logo, "PNG")
    yield "static/logo.png", logo.getvalue(), ("static",)
