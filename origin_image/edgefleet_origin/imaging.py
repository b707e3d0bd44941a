"""Making one image variant: decode, apply EXIF orientation, shrink, strip metadata, encode.

Runs in a worker process (``image_pool.py``), so everything here takes and returns picklable values and
touches only the two paths it is given.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from edgefleet_origin.variants import ImageFormat

# Encoder settings; bump QUALITY_VERSION when changing them so cached variants are made again.
QUALITY_VERSION = "q1"
_SAVE_OPTIONS: dict[ImageFormat, dict[str, object]] = {
    ImageFormat.AVIF: {"quality": 60, "speed": 8},
    ImageFormat.WEBP: {"quality": 80, "method": 4},
    ImageFormat.JPEG: {"quality": 82, "optimize": True, "progressive": True},
    ImageFormat.PNG: {"optimize": False},
}


class ImageRejected(Exception):
    """The source cannot be made into a variant; ``reason`` is safe to show a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rendered:
    width: int
    height: int
    size: int


def render_variant(source: str, target: str, width: int | None, fmt: ImageFormat, max_pixels: int) -> Rendered:
    """Write the variant of ``source`` to ``target``: at most ``width`` pixels wide (never wider than the
    original), upright, without EXIF/XMP/ICC-other-than-colour metadata, encoded as ``fmt``."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) past its own limit; ours is checked explicitly below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                if opened.width * opened.height > max_pixels:
                    raise ImageRejected(f"image is {opened.width}x{opened.height}, more than {max_pixels} pixels")
                opened.draft("RGB", _draft_size(opened.size, width))
                image = ImageOps.exif_transpose(opened)
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image rejected as a decompression bomb: {without_paths(exc)}") from None
    except UnidentifiedImageError:
        raise ImageRejected("image could not be decoded: not an image format this origin reads") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"image could not be decoded: {without_paths(exc)}") from None
    if width is not None and width < image.width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    image = _for_format(image, fmt)
    # Saving without exif=/xmp= drops them; only the colour profile is kept, because dropping it would
    # change colours.
    options = dict(_SAVE_OPTIONS[fmt])
    icc = image.info.get("icc_profile")
    if icc:
        options["icc_profile"] = icc
    image.save(target, fmt.pillow_name, **options)
    return Rendered(image.width, image.height, Path(target).stat().st_size)


_PATH = re.compile(r"""(?<![\w.])['"]?(?:[A-Za-z]:)?[/\\][^\s'"]*['"]?""")


def without_paths(exc: BaseException) -> str:
    """The exception's message with file paths taken out: clients see why, never where on the server.

    Pillow and the OS name the file they read (``cannot identify image file '/srv/...'``).
    """
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror and exc.filename else str(exc)
    return _PATH.sub("(file)", text).strip() or type(exc).__name__


def _draft_size(size: tuple[int, int], width: int | None) -> tuple[int, int]:
    """JPEG draft mode decodes at 1/2, 1/4, 1/8 scale when that stays at least twice the target width,
    so the final LANCZOS resize keeps its quality. Scaling by the shorter side keeps the bound true
    when EXIF orientation later swaps width and height."""
    if width is None or width >= min(size):
        return size
    scale = min(size) / (width * 2)
    return (max(1, int(size[0] / scale)), max(1, int(size[1] / scale))) if scale > 1 else size


def _for_format(image: Image.Image, fmt: ImageFormat) -> Image.Image:
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
    if fmt is ImageFormat.JPEG:
        if has_alpha:
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image if image.mode in {"RGB", "L"} else image.convert("RGB")
    if image.mode not in {"RGB", "RGBA", "L", "LA"}:
        return image.convert("RGBA" if has_alpha else "RGB")
    return image
