"""The e-commerce workload: seeded, skewed like real shops, and shaped by its phases."""

from __future__ import annotations

from collections import Counter
from itertools import islice

from edgefleet.loadgen.workload import Catalogue, Phase, Workload


def paths(workload: Workload, n: int) -> list[str]:
    return [r.path for r in islice(workload, n)]


def test_workload_with_the_same_seed_sends_the_same_requests() -> None:
    catalogue = Catalogue(products=50)
    assert paths(Workload(catalogue, seed=7), 500) == paths(Workload(catalogue, seed=7), 500)
    assert paths(Workload(catalogue, seed=7), 500) != paths(Workload(catalogue, seed=8), 500)


def test_workload_popularity_is_skewed_towards_a_few_products() -> None:
    workload = Workload(Catalogue(products=200), seed=1, static_share=0.0)
    counts = Counter(p.split("?")[0] for p in paths(workload, 20_000))
    top_ten = sum(c for _, c in counts.most_common(10))
    assert top_ten > 0.25 * 20_000, "Zipf(0.9) over 200 items puts well over a quarter of views on the top 10"


def test_flash_sale_concentrates_traffic_on_sale_items() -> None:
    workload = Workload(Catalogue(products=200, flash_sale_items=5), seed=1, phase=Phase.FLASH_SALE)
    sale = [p for p in paths(workload, 2000) if "/sale-" in p]
    assert len(sale) > 0.5 * 2000
    assert not [p for p in paths(Workload(Catalogue(products=200), seed=1), 2000) if "/sale-" in p]


def test_crawler_phase_walks_the_catalogue_touching_items_once() -> None:
    workload = Workload(Catalogue(products=1000), seed=1, phase=Phase.CRAWLER)
    crawled = [r.path for r in islice(workload, 1000) if r.phase is Phase.CRAWLER]
    assert len(crawled) == len(set(crawled)), "each crawler request is a one-hit wonder"


def test_image_requests_vary_width_and_accept() -> None:
    requests = list(islice(Workload(Catalogue(products=20), seed=3, static_share=0.0), 300))
    assert {r.path.rsplit("w=", 1)[1] for r in requests} == {"320", "640", "1280"}
    assert len({r.accept for r in requests}) == 3
