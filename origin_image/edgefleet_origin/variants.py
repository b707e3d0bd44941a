"""Which image variant a request asks for: width from ``?w=``, format from ``?format=`` or ``Accept``.

Pure decisions only; making the variant is ``imaging.py``'s job and caching it ``variant_cache.py``'s.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from edgefleet.cache_key import accepted_image_types
from edgefleet_origin.errors import BadRequest


class ImageFormat(enum.Enum):
    AVIF = "avif"
    WEBP = "webp"
    JPEG = "jpeg"
    PNG = "png"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def pillow_name(self) -> str:
        return self.value.upper()


class RoundWidths(enum.Enum):
    UP = "up"
    REJECT = "reject"


# Formats a client must announce in Accept to get them by negotiation (others are never negotiated:
# a client without AVIF or WebP gets the original's format).
NEGOTIATED = (ImageFormat.AVIF, ImageFormat.WEBP)
SOURCE_TYPES: Mapping[str, ImageFormat] = {
    "image/jpeg": ImageFormat.JPEG,
    "image/jpg": ImageFormat.JPEG,
    "image/pjpeg": ImageFormat.JPEG,
    "image/png": ImageFormat.PNG,
    "image/webp": ImageFormat.WEBP,
    "image/avif": ImageFormat.AVIF,
}
MAX_WIDTH = 16384


@dataclass(frozen=True)
class VariantConfig:
    widths: tuple[int, ...] = (320, 640, 1280)
    formats: tuple[ImageFormat, ...] = (ImageFormat.AVIF, ImageFormat.WEBP, ImageFormat.JPEG)
    round_widths: RoundWidths = RoundWidths.UP


@dataclass(frozen=True)
class VariantSpec:
    """The representation to serve. ``width`` None keeps the original width; ``negotiated`` means the
    format came from Accept, so the response varies on Accept."""

    width: int | None
    format: ImageFormat
    negotiated: bool

    def is_original(self, source: ImageFormat) -> bool:
        return self.width is None and self.format is source

    def tag(self) -> str:
        """A short name for the variant, unique per (width, format), used in ETags and file names."""
        return f"w{self.width or 0}.{self.format.value}"


def source_format(content_type: str) -> ImageFormat | None:
    """The image format of an original, or None when the object is not an image we transform."""
    return SOURCE_TYPES.get(content_type.split(";")[0].strip().lower())


def select_variant(
    config: VariantConfig, source: ImageFormat, query: Mapping[str, str], accept: str | None
) -> VariantSpec:
    width = _width(config, query.get("w"))
    explicit = query.get("format")
    if explicit is not None:
        return VariantSpec(width, _explicit_format(config, source, explicit), negotiated=False)
    # Preference is the configured order ("best first"); the default puts AVIF before WebP.
    negotiable = [f for f in config.formats if f in NEGOTIATED]
    if not negotiable:
        return VariantSpec(width, source, negotiated=False)
    accepted = accepted_image_types(accept)  # the edge puts requests in Vary classes with this same function
    for fmt in negotiable:
        if fmt.content_type in accepted:
            return VariantSpec(width, fmt, negotiated=True)
    return VariantSpec(width, source, negotiated=True)


def variant_key(object_key: str, source_etag: str, spec: VariantSpec, quality_version: str) -> str:
    """A stable name for one variant of one version of an object."""
    material = f"{object_key}\n{source_etag}\n{spec.tag()}\n{quality_version}"
    return hashlib.sha256(material.encode()).hexdigest()


def _width(config: VariantConfig, raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) <= MAX_WIDTH:
        raise BadRequest(f"w={raw!r} is not a width in pixels (1..{MAX_WIDTH})")
    wanted = int(raw)
    allowed = sorted(config.widths)
    if wanted in allowed:
        return wanted
    if config.round_widths is RoundWidths.REJECT:
        raise BadRequest(f"w={wanted} is not an allowed width ({', '.join(map(str, allowed))})")
    # Round up so the client never gets less than it asked for; past the largest, serve the largest.
    return next((w for w in allowed if w >= wanted), allowed[-1])


def _explicit_format(config: VariantConfig, source: ImageFormat, raw: str) -> ImageFormat:
    name = raw.strip().lower()
    name = "jpeg" if name == "jpg" else name
    try:
        fmt = ImageFormat(name)
    except ValueError:
        raise BadRequest(f"format={raw!r} is not an image format") from None
    if fmt is not source and fmt not in config.formats:
        allowed = ", ".join(f.value for f in config.formats)
        raise BadRequest(f"format={raw!r} is not enabled (enabled: {allowed})")
    return fmt
