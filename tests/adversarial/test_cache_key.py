"""One cache key and one format negotiation for edge and origin: requests the origin answers differently never
share a stored answer, and Accept poisoning cannot put one client's format under another's key (issue #19)."""

from __future__ import annotations

import itertools

import pytest
from edgefleet_edge.cachekey import primary_key
from edgefleet_origin.variants import ImageFormat, RoundWidths, VariantConfig, select_variant

from edgefleet.cache_key import accepted_image_types, image_format_class, split_target


def key(target: str) -> str:
    return primary_key(*split_target(target))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("/a%2Fb.jpg", "/a/b.jpg"),
        ("/a%3Bb.jpg", "/a;b.jpg"),
        ("/a%3Fb.jpg", "/a?b.jpg"),
        ("/a%23b.jpg", "/a"),
        ("/caf%C3%A9.jpg", "/caf%E9.jpg"),
        ("/bad%FF.jpg", "/bad%C3%BF.jpg"),
        ("/p.jpg?w=320&w=640", "/p.jpg?w=640&w=320"),
        ("/p.jpg?w=", "/p.jpg?w"),
        ("/p.jpg?w=320", "/p.jpg?W=320"),
        ("/p.jpg?w=320", "/p.jpg?w=320.0"),
        ("/p.jpg?format=webp", "/p.jpg?format=WEBP&x"),
        ("/p.jpg?a%26b=1", "/p.jpg?a&b=1"),
        ("/p.jpg?w=3%2B2", "/p.jpg?w=3+2"),
        ("/P.jpg", "/p.jpg"),
    ],
    ids=["encoded-slash", "encoded-semicolon", "encoded-question-mark", "encoded-hash", "utf8-vs-latin1",
         "invalid-utf8-escape", "repeated-parameter-order", "empty-value-vs-no-value", "parameter-name-case",
         "value-spelling", "extra-parameter", "encoded-ampersand", "encoded-plus", "path-case"],
)  # fmt: skip
def test_targets_the_origin_may_answer_differently_have_different_keys(one: str, other: str) -> None:
    assert key(one) != key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("/a%2Db.jpg", "/a-b.jpg"),
        ("/%7Euser/p.jpg", "/~user/p.jpg"),
        ("/a%2fb.jpg", "/a%2Fb.jpg"),
        ("/p.jpg?b=1&a=2", "/p.jpg?a=2&b=1"),
        ("/p.jpg?w=320&utm_source=mail&gclid=x", "/p.jpg?w=320"),
        ("/p.jpg?w=320&&", "/p.jpg?w=320"),
        ("/p.jpg?%77=320", "/p.jpg?w=320"),
    ],
    ids=["unreserved-escape", "tilde-escape", "hex-case", "different-parameters-reordered", "tracking-parameters",
         "empty-pieces", "unreserved-escape-in-query"],
)  # fmt: skip
def test_targets_that_mean_the_same_share_a_key(one: str, other: str) -> None:
    assert key(one) == key(other)


ACCEPTS = [
    None, "", "*/*", "image/*", "image/avif", "image/webp", "image/avif,image/webp,*/*", "image/avif;q=00.5",
    "image/avif;q=0", "image/avif;q=0.000", "image/avif;q=0.001", "image/avif;q=1.0", "image/avif;q=1.5",
    "image/avif;q=abc", "image/avif;q=0, image/avif", "image/avif, image/avif;q=0", "image/webp;q=0,image/avif",
    "IMAGE/AVIF", "image/avif ; q=0.5", "image/avif;Q=0", "image/jpeg,image/png", "text/html,image/webp;q=0.9",
    "image/avif;level=1;q=0.8", ",,image/webp,,",
]  # fmt: skip
CONFIGS = [
    VariantConfig(),
    VariantConfig(formats=(ImageFormat.WEBP, ImageFormat.AVIF, ImageFormat.JPEG)),
    VariantConfig(formats=(ImageFormat.WEBP, ImageFormat.JPEG)),
    VariantConfig(formats=(ImageFormat.AVIF, ImageFormat.JPEG), round_widths=RoundWidths.REJECT),
    VariantConfig(formats=(ImageFormat.JPEG,)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "webp-first", "no-avif", "no-webp", "none"])
def test_accepts_in_one_vary_class_get_one_format_from_the_origin(config: VariantConfig) -> None:
    for one, other in itertools.combinations(ACCEPTS, 2):
        if image_format_class(one) == image_format_class(other):
            first = select_variant(config, ImageFormat.JPEG, {}, one).format
            second = select_variant(config, ImageFormat.JPEG, {}, other).format
            assert first == second, f"{one!r} and {other!r} share a cache entry but get {first} and {second}"


@pytest.mark.parametrize(
    ("accept", "accepted"),
    [
        ("image/avif;q=00.5", set()),
        ("image/avif;q=0.5", {"image/avif"}),
        ("image/avif;q=0, image/avif", {"image/avif"}),
        ("image/avif;q=1.001", set()),
        ("image/webp, image/avif;q=abc", {"image/webp"}),
        ("*/*", set()),
    ],
    ids=["qvalue-with-two-leading-zeros-is-invalid", "valid-weight", "highest-weight-of-a-repeated-type",
         "weight-above-one-is-invalid", "invalid-member-ignored", "wildcards-promise-nothing"],
)  # fmt: skip
def test_accept_is_read_as_rfc_9110_says(accept: str, accepted: set[str]) -> None:
    assert accepted_image_types(accept) == accepted
