"""A seeded e-commerce request trace as CSV ``timestamp,key,size``.

Zipf popularity over product photos, each fetched in several width variants and formats (sizes grow
with width), static assets, a flash sale that makes new items hot at once, and a crawler that walks the
long tail touching one-hit wonders. Same arguments, same trace.

    python bench/ecommerce_trace.py --requests 200000 --products 20000 --seed 1 > trace.csv
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import random
import sys
from collections.abc import Iterator
from typing import NamedTuple

WIDTHS = {320: 18_000, 640: 55_000, 1280: 180_000}
FORMATS = {"avif": 0.6, "webp": 0.8, "jpeg": 1.0}


class Request(NamedTuple):
    timestamp: float
    key: str
    size: int


def generate(requests: int, products: int, seed: int, alpha: float = 0.9, rate: float = 500.0) -> Iterator[Request]:
    rng = random.Random(seed)
    order = list(range(products))
    rng.shuffle(order)
    cdf = list(itertools.accumulate(1.0 / (k + 1) ** alpha for k in range(products)))
    total = cdf[-1]
    sale_items = [f"sale-{i:03d}" for i in range(50)]
    crawl = itertools.count()
    # Sizes vary per product (some photos compress better), fixed per (product, width, format).
    size_jitter = {p: 0.5 + rng.random() for p in range(products)}

    def photo(product: str, jitter: float) -> tuple[str, int]:
        width = rng.choices(list(WIDTHS), weights=(5, 3, 2))[0]
        fmt = rng.choices(list(FORMATS), weights=(6, 3, 1))[0]
        return f"/assets/products/{product}.jpg?w={width}&f={fmt}", int(WIDTHS[width] * FORMATS[fmt] * jitter)

    for i in range(requests):
        phase = i / requests
        now = i / rate
        roll = rng.random()
        if 0.55 <= phase < 0.8 and roll < 0.5:
            key, size = photo(rng.choice(sale_items), 1.0)
        elif phase >= 0.8 and roll < 0.4:
            product = next(crawl) % products
            key, size = f"/assets/products/sku-{product:06d}.jpg?w=1280&f=jpeg&crawl", int(WIDTHS[1280] * 1.2)
        elif roll > 0.93:
            key, size = rng.choice([("/assets/static/app.js", 90_000), ("/assets/static/app.css", 30_000)])
        else:
            rank = bisect.bisect_left(cdf, rng.random() * total)
            product = order[rank]
            key, size = photo(f"sku-{product:06d}", size_jitter[product])
        yield Request(round(now, 4), key, size)


def read_trace(path: str) -> Iterator[Request]:
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0] == "timestamp":
                continue
            yield Request(float(row[0]), row[1], int(row[2]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    writer = csv.writer(sys.stdout)
    writer.writerow(["timestamp", "key", "size"])
    for request in generate(args.requests, args.products, args.seed):
        writer.writerow(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
