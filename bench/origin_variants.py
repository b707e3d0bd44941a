"""Image variant generation: throughput (images/s) and p95 per variant, from a 2000x2000 JPEG.

Runs the origin's own code path (``edgefleet_origin.imaging.render_variant``) in a process pool sized to
the CPU, exactly as the origin does, for widths 320/640/1280 to WebP and AVIF.

    .venv/bin/python bench/origin_variants.py [--rounds 12] [--workers N] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from edgefleet_origin.imaging import render_variant
from edgefleet_origin.variant_cache import image_pool
from edgefleet_origin.variants import ImageFormat
from PIL import Image

WIDTHS = (320, 640, 1280)
FORMATS = (ImageFormat.WEBP, ImageFormat.AVIF)
MAX_PIXELS = 40_000_000


def photo_like_jpeg(path: Path, side: int = 2000) -> None:
    """Noise over gradients: compresses like a product photo, not like a flat test card."""
    gradient = Image.linear_gradient("L").resize((side, side))
    noise = Image.effect_noise((side, side), 48)
    rotated = gradient.rotate(90)
    Image.merge("RGB", (gradient, noise, rotated)).save(path, "JPEG", quality=90)


def timed_render(source: str, target: str, width: int, fmt: ImageFormat) -> float:
    started = time.perf_counter()
    render_variant(source, target, width, fmt, MAX_PIXELS)
    return time.perf_counter() - started


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def run(rounds: int, workers: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch, image_pool(workers) as pool:
        source = Path(scratch) / "source.jpg"
        photo_like_jpeg(source)
        warm_up(pool, str(source), scratch, workers)
        for fmt in FORMATS:
            for width in WIDTHS:
                jobs = rounds * workers
                started = time.perf_counter()
                futures = [
                    pool.submit(timed_render, str(source), f"{scratch}/{fmt.value}-{width}-{i}", width, fmt)
                    for i in range(jobs)
                ]
                latencies = [f.result() for f in futures]
                elapsed = time.perf_counter() - started
                results.append(
                    {
                        "format": fmt.value,
                        "width": width,
                        "images": jobs,
                        "images_per_second": round(jobs / elapsed, 2),
                        "p50_ms": round(statistics.median(latencies) * 1000, 1),
                        "p95_ms": round(p95(latencies) * 1000, 1),
                    }
                )
    return results


def warm_up(pool: ProcessPoolExecutor, source: str, scratch: str, workers: int) -> None:
    """Start every worker and load the codecs before measuring."""
    futures = [pool.submit(timed_render, source, f"{scratch}/warm-{i}", 320, ImageFormat.AVIF) for i in range(workers)]
    for future in futures:
        future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="images per worker per (width, format)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.rounds, args.workers)
    print(f"variants from a 2000x2000 JPEG, {args.workers} worker processes, {args.rounds} rounds")
    print(f"{'format':<6} {'width':>5} {'images':>6} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for row in results:
        print(
            f"{row['format']:<6} {row['width']:>5} {row['images']:>6} {row['images_per_second']:>9}"
            f" {row['p50_ms']:>8} {row['p95_ms']:>8}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
