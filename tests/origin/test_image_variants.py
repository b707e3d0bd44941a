"""Image variants from real images made by Pillow, served over HTTP by a real origin (both backends)."""

from __future__ import annotations

import io

import aiohttp
import pytest
from edgefleet_origin.server import RunningOrigin
from edgefleet_origin.variants import RoundWidths, VariantConfig
from origin_testkit import generations, jpeg_bytes, png_bytes, upload
from PIL import Image

AVIF_WEBP = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"


async def fetch_image(
    http: aiohttp.ClientSession, origin: RunningOrigin, path: str, accept: str | None = None
) -> tuple[aiohttp.ClientResponse, Image.Image | None, bytes]:
    headers = {"Accept": accept} if accept else {}
    async with http.get(f"{origin.url}{path}", headers=headers) as response:
        body = await response.read()
    image = Image.open(io.BytesIO(body)) if response.status == 200 else None
    return response, image, body


@pytest.mark.parametrize(
    ("query", "width"),
    [("?w=320", 320), ("?w=640", 640), ("?w=500", 640), ("?w=1", 320), ("?w=5000", 1280)],
    ids=["allowed-320", "allowed-640", "rounded-up", "smallest", "clamped-to-largest"],
)
async def test_width_variant_has_the_allowed_width(
    origin: RunningOrigin, http: aiohttp.ClientSession, query: str, width: int
) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(2000, 1000))
    response, image, _ = await fetch_image(http, origin, f"/assets/p/shoe.jpg{query}&format=jpeg")
    assert response.status == 200
    assert image is not None and image.format == "JPEG"
    assert image.size == (width, width // 2)


@pytest.mark.parametrize(
    ("accept", "content_type", "pillow_format"),
    [
        (AVIF_WEBP, "image/avif", "AVIF"),
        ("image/webp,*/*", "image/webp", "WEBP"),
        ("image/avif;q=0,image/webp", "image/webp", "WEBP"),
        ("*/*", "image/jpeg", "JPEG"),
        (None, "image/jpeg", "JPEG"),
    ],
    ids=["avif-first", "webp", "avif-refused", "wildcard-gets-original", "no-accept"],
)
async def test_format_is_negotiated_from_accept(
    origin: RunningOrigin, http: aiohttp.ClientSession, accept: str | None, content_type: str, pillow_format: str
) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(800, 600))
    response, image, _ = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=320", accept)
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Vary"] == "Accept"
    assert response.headers["Surrogate-Key"].split()[0] == "path:/assets/p/shoe.jpg"
    assert image is not None and image.format == pillow_format


async def test_explicit_format_does_not_vary_on_accept(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(800, 600))
    response, image, _ = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=320&format=webp", AVIF_WEBP)
    assert response.headers["Content-Type"] == "image/webp"
    assert "Vary" not in response.headers
    assert image is not None and image.format == "WEBP"


async def test_variants_have_distinct_strong_etags(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(800, 600))
    etags = set()
    for path in ("/assets/p/shoe.jpg", "/assets/p/shoe.jpg?w=320", "/assets/p/shoe.jpg?w=320&format=webp"):
        response, _, _ = await fetch_image(http, origin, path)
        etags.add(response.headers["ETag"])
    assert len(etags) == 3


async def test_variant_is_never_upscaled(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/small.jpg", jpeg_bytes(400, 300))
    response, image, _ = await fetch_image(http, origin, "/assets/p/small.jpg?w=1280", "image/webp")
    assert response.status == 200
    assert image is not None and image.format == "WEBP" and image.size == (400, 300)


@pytest.mark.parametrize("orientation", [6, 8], ids=["rotated-cw", "rotated-ccw"])
async def test_variant_applies_exif_orientation_and_strips_metadata(
    origin: RunningOrigin, http: aiohttp.ClientSession, orientation: int
) -> None:
    # Stored 800x400 with "rotate 90°" in EXIF: upright it is 400x800.
    await upload(http, origin, "p/phone.jpg", jpeg_bytes(800, 400, orientation=orientation))
    response, image, body = await fetch_image(http, origin, "/assets/p/phone.jpg?w=320&format=jpeg")
    assert response.status == 200
    assert image is not None and image.size == (320, 640)
    assert not image.getexif()  # no Orientation left to apply twice, no camera Make
    assert b"edgefleet-test-camera" not in body
    # The blue marker was top-left as stored. Orientation 6 turns the picture clockwise to show it
    # upright (marker to the top right), 8 counter-clockwise (marker to the bottom left).
    rgb = image.convert("RGB")
    blue, red = ((300, 20), (20, 620)) if orientation == 6 else ((20, 620), (300, 20))
    assert _is_blue(rgb.getpixel(blue)) and not _is_blue(rgb.getpixel(red))


async def test_variant_is_generated_once(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(1000, 1000))
    first, _, first_body = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=640", "image/webp")
    second, _, second_body = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=640", "image/webp")
    assert (first.status, second.status) == (200, 200)
    assert first_body == second_body
    assert generations(origin, "webp") == 1


async def test_concurrent_requests_share_one_generation(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    import asyncio

    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(1000, 1000))
    results = await asyncio.gather(
        *(fetch_image(http, origin, "/assets/p/shoe.jpg?w=320", "image/avif") for _ in range(5))
    )
    assert {r[0].status for r in results} == {200}
    assert generations(origin, "avif") == 1


async def test_replacing_an_image_makes_new_variants(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(1000, 1000, color="red"))
    await fetch_image(http, origin, "/assets/p/shoe.jpg?w=320", "image/webp")
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(1000, 500, color="green"))
    _, image, _ = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=320", "image/webp")
    assert image is not None and image.size == (320, 160)
    assert generations(origin, "webp") == 2


async def test_png_with_alpha_becomes_jpeg_on_white(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/logo.png", png_bytes(700, 700))
    response, image, _ = await fetch_image(http, origin, "/assets/p/logo.png?w=320&format=jpeg")
    assert response.status == 200 and image is not None and image.mode == "RGB"
    response, image, _ = await fetch_image(http, origin, "/assets/p/logo.png?w=320")
    assert response.headers["Content-Type"] == "image/png" and image is not None and image.mode == "RGBA"


async def test_decompression_bomb_is_rejected(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    # 3000x3000 = 9 Mpx > the 4 Mpx limit of the test origin; a flat PNG compresses to a few KiB.
    bomb = io.BytesIO()
    Image.new("L", (3000, 3000), 0).save(bomb, "PNG", optimize=True)
    await upload(http, origin, "p/bomb.png", bomb.getvalue())
    response, _, body = await fetch_image(http, origin, "/assets/p/bomb.png?w=320", "image/webp")
    assert response.status == 422
    assert b"pixels" in body
    assert generations(origin, "webp") == 0


async def test_corrupt_image_is_rejected_clearly(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "p/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    response, _, body = await fetch_image(http, origin, "/assets/p/broken.jpg?w=320", "image/webp")
    assert response.status == 422
    assert b"could not be decoded" in body


async def test_width_off_the_list_is_rejected_when_configured(origin_factory, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    config = VariantConfig(widths=(320, 640), round_widths=RoundWidths.REJECT)
    async with origin_factory(variants=config) as origin:
        await upload(http, origin, "p/shoe.jpg", jpeg_bytes(800, 600))
        response, _, body = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=500")
        assert response.status == 400
        assert b"320, 640" in body
        response, _, _ = await fetch_image(http, origin, "/assets/p/shoe.jpg?w=640")
        assert response.status == 200


def _is_blue(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    return bool(pixel[2] > 200 and pixel[0] < 60)
