"""What shoppers ask for, as a pure, seeded plan: no I/O, so tests and benchmarks can replay it exactly.

The shape follows what shop CDNs see: a few products take most views (Zipf), each product photo is
fetched in a few widths and formats (responsive images, AVIF/WebP negotiation), a flash sale makes new
items hot at once, and crawlers walk the long tail touching items nobody else asks for.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

WIDTHS = (320, 640, 1280)
ACCEPTS = (
    "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",  # Chromium
    "image/webp,*/*",  # older Safari / Firefox
    "image/jpeg,*/*;q=0.5",  # anything else
)


class Phase(StrEnum):
    NORMAL = "normal"
    FLASH_SALE = "flash-sale"
    CRAWLER = "crawler"


@dataclass(frozen=True)
class Catalogue:
    """Product photo keys in the origin (``products/sku-00001.jpg``) plus a few static assets."""

    products: int = 200
    flash_sale_items: int = 10

    def product_key(self, index: int) -> str:
        return f"products/sku-{index:05d}.jpg"

    def flash_key(self, index: int) -> str:
        return f"products/sale-{index:03d}.jpg"

    @property
    def product_keys(self) -> list[str]:
        return [self.product_key(i) for i in range(self.products)]

    @property
    def flash_keys(self) -> list[str]:
        return [self.flash_key(i) for i in range(self.flash_sale_items)]

    static_keys: tuple[str, ...] = ("static/app.css", "static/app.js", "static/logo.png")


@dataclass(frozen=True)
class Request:
    path: str
    accept: str
    phase: Phase


class ZipfSampler:
    """Draws ranks 0..n-1 with P(rank k) proportional to 1/(k+1)^alpha (inverse CDF by bisection)."""

    def __init__(self, n: int, alpha: float, rng: random.Random) -> None:
        weights = [1.0 / (k + 1) ** alpha for k in range(n)]
        self._cdf = list(itertools.accumulate(weights))
        self._total = self._cdf[-1]
        self._rng = rng

    def __call__(self) -> int:
        return bisect.bisect_left(self._cdf, self._rng.random() * self._total)


@dataclass
class Workload:
    """An endless, seeded stream of requests; ``phase`` may be switched while it runs."""

    catalogue: Catalogue
    seed: int = 1
    alpha: float = 0.9
    phase: Phase = Phase.NORMAL
    flash_share: float = 0.6
    """Fraction of requests that go to the flash-sale items during the sale."""
    static_share: float = 0.1

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        # Popularity is a random permutation of the catalogue, so "hot" is not simply "low sku number".
        order = list(range(self.catalogue.products))
        self._rng.shuffle(order)
        self._by_rank = order
        self._zipf = ZipfSampler(self.catalogue.products, self.alpha, self._rng)
        self._crawl = itertools.count()

    def _image(self, key: str, phase: Phase) -> Request:
        width = self._rng.choice(WIDTHS)
        accept = self._rng.choices(ACCEPTS, weights=(6, 3, 1))[0]
        return Request(f"/assets/{key}?w={width}", accept, phase)

    def next(self) -> Request:
        rng = self._rng
        if self.phase is Phase.CRAWLER and rng.random() < 0.5:
            # A crawler walks the catalogue once, in an odd width nobody else uses: one-hit wonders.
            index = next(self._crawl) % self.catalogue.products
            return Request(f"/assets/{self.catalogue.product_key(index)}?w=1280", "*/*", Phase.CRAWLER)
        if self.phase is Phase.FLASH_SALE and rng.random() < self.flash_share:
            key = rng.choice(self.catalogue.flash_keys)
            return self._image(key, Phase.FLASH_SALE)
        # Shoppers keep shopping while crawlers crawl: their requests are labelled as normal traffic.
        shoppers = Phase.NORMAL if self.phase is Phase.CRAWLER else self.phase
        if rng.random() < self.static_share:
            return Request(f"/assets/{rng.choice(self.catalogue.static_keys)}", "*/*", shoppers)
        key = self.catalogue.product_key(self._by_rank[self._zipf()])
        return self._image(key, shoppers)

    def __iter__(self) -> Iterator[Request]:
        while True:
            yield self.next()
