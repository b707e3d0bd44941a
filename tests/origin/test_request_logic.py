"""The origin's pure decisions, without sockets: keys, ranges, preconditions, variant selection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from edgefleet_origin.caching import CachePolicy, path_surrogate_key
from edgefleet_origin.errors import BadRequest, InvalidKey, RangeNotSatisfiable
from edgefleet_origin.keys import MAX_KEY_BYTES, validate_key, validate_prefix
from edgefleet_origin.objects import ObjectInfo, ObjectMeta, parse_tags, parse_ttl
from edgefleet_origin.preconditions import Outcome, evaluate, range_applies
from edgefleet_origin.ranges import ByteRange, parse_range
from edgefleet_origin.variants import (
    ImageFormat,
    RoundWidths,
    VariantConfig,
    VariantSpec,
    select_variant,
)

MODIFIED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ETAG = '"abc"'


@pytest.mark.parametrize(
    "key",
    ["a.jpg", "products/shoe-123/front_1.webp", "A/B/C", "x" * MAX_KEY_BYTES],
    ids=["simple", "nested", "caps", "longest"],
)
def test_key_is_accepted_when_safe(key: str) -> None:
    assert validate_key(key) == key
    assert len(path_surrogate_key(key)) <= 128


@pytest.mark.parametrize(
    "key",
    ["", "../x", "a/../b", "a/./b", "/abs", "a\\b", "a\x00b", "a//b", "a/", ".hidden", "a/.meta", "a b",
     "a%2e", "ü.jpg", "x" * (MAX_KEY_BYTES + 1), "a:b"],
    ids=["empty", "dotdot", "inner-dotdot", "dot", "absolute", "backslash", "nul", "double-slash",
         "trailing-slash", "hidden", "hidden-inner", "space", "percent", "non-ascii", "too-long", "colon"],
)  # fmt: skip
def test_key_is_rejected_when_unsafe(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize(("prefix", "ok"), [("", True), ("p/", True), ("pro", True), ("/", False), ("../", False)],
                         ids=["empty", "dir", "partial", "root", "dotdot"])  # fmt: skip
def test_prefix_validation(prefix: str, ok: bool) -> None:
    if ok:
        assert validate_prefix(prefix) == prefix
    else:
        with pytest.raises(InvalidKey):
            validate_prefix(prefix)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=10-", ByteRange(10, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-1000", ByteRange(0, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-5", None),
        ("BYTES = 1-2", ByteRange(1, 2)),
    ],
    ids=["absent", "one-byte", "open", "suffix", "suffix-longer-than-object", "multi-ignored", "other-unit",
         "case-and-spaces"],
)  # fmt: skip
def test_range_parsing(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=x-1", "bytes=2-1", "bytes=100-", "bytes=0-1,z"],
                         ids=["garbage", "reversed", "past-end", "multi-with-garbage"])  # fmt: skip
def test_range_is_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


@pytest.mark.parametrize(
    ("method", "headers", "outcome"),
    [
        ("GET", {}, Outcome.PROCEED),
        ("GET", {"If-None-Match": ETAG}, Outcome.NOT_MODIFIED),
        ("GET", {"If-None-Match": 'W/"abc"'}, Outcome.NOT_MODIFIED),
        ("GET", {"If-None-Match": '"other", "abc"'}, Outcome.NOT_MODIFIED),
        ("GET", {"If-None-Match": "*"}, Outcome.NOT_MODIFIED),
        ("GET", {"If-None-Match": '"other"', "If-Modified-Since": "Fri, 02 Jan 2026 03:04:05 GMT"}, Outcome.PROCEED),
        ("GET", {"If-Modified-Since": "Fri, 02 Jan 2026 03:04:05 GMT"}, Outcome.NOT_MODIFIED),
        ("GET", {"If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"}, Outcome.PROCEED),
        ("GET", {"If-Modified-Since": "yesterday"}, Outcome.PROCEED),
        ("GET", {"If-Match": '"other"'}, Outcome.PRECONDITION_FAILED),
        ("GET", {"If-Match": 'W/"abc"'}, Outcome.PRECONDITION_FAILED),
        ("GET", {"If-Unmodified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"}, Outcome.PRECONDITION_FAILED),
        ("PUT", {"If-None-Match": ETAG}, Outcome.PRECONDITION_FAILED),
    ],
    ids=["none", "inm-match", "inm-weak-match", "inm-list", "inm-star", "inm-wins-over-ims", "ims-same",
         "ims-older", "ims-invalid-ignored", "im-mismatch", "im-weak-never", "ius-older", "put-inm"],
)  # fmt: skip
def test_preconditions(method: str, headers: dict[str, str], outcome: Outcome) -> None:
    assert evaluate(method, headers, ETAG, MODIFIED) is outcome


@pytest.mark.parametrize(
    ("if_range", "applies"),
    [(None, True), (ETAG, True), ('"old"', False), ('W/"abc"', False),
     ("Fri, 02 Jan 2026 03:04:05 GMT", True), ("Thu, 01 Jan 2026 00:00:00 GMT", False)],
    ids=["absent", "etag-match", "etag-stale", "weak", "date-match", "date-stale"],
)  # fmt: skip
def test_if_range(if_range: str | None, applies: bool) -> None:
    headers = {} if if_range is None else {"If-Range": if_range}
    assert range_applies(headers, ETAG, MODIFIED) is applies


CONFIG = VariantConfig(widths=(320, 640, 1280))


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ({}, None, VariantSpec(None, ImageFormat.JPEG, True)),
        ({"w": "320"}, "image/avif,image/webp", VariantSpec(320, ImageFormat.AVIF, True)),
        ({"w": "321"}, "image/webp", VariantSpec(640, ImageFormat.WEBP, True)),
        ({"w": "9000"}, "image/webp;q=0", VariantSpec(1280, ImageFormat.JPEG, True)),
        ({"format": "jpg"}, "image/avif", VariantSpec(None, ImageFormat.JPEG, False)),
        ({"format": "webp", "w": "640"}, None, VariantSpec(640, ImageFormat.WEBP, False)),
        ({}, "image/*", VariantSpec(None, ImageFormat.JPEG, True)),
    ],
    ids=["original", "avif-preferred", "round-up-webp", "clamp-webp-refused", "explicit-jpg", "explicit-webp",
         "wildcard-is-not-support"],
)  # fmt: skip
def test_variant_selection(query: dict[str, str], accept: str | None, expected: VariantSpec) -> None:
    assert select_variant(CONFIG, ImageFormat.JPEG, query, accept) == expected


def test_variant_selection_without_negotiable_formats_does_not_vary() -> None:
    config = VariantConfig(formats=(ImageFormat.JPEG,))
    spec = select_variant(config, ImageFormat.PNG, {"w": "320"}, "image/avif")
    assert spec == VariantSpec(320, ImageFormat.PNG, negotiated=False)


def test_variant_selection_rejects_off_list_width_when_configured() -> None:
    config = VariantConfig(widths=(320,), round_widths=RoundWidths.REJECT)
    with pytest.raises(BadRequest, match="not an allowed width"):
        select_variant(config, ImageFormat.JPEG, {"w": "300"}, None)


def test_disabled_format_is_rejected_unless_it_is_the_original() -> None:
    config = VariantConfig(formats=(ImageFormat.WEBP,))
    with pytest.raises(BadRequest, match="not enabled"):
        select_variant(config, ImageFormat.PNG, {"format": "avif"}, None)
    assert select_variant(config, ImageFormat.PNG, {"format": "png"}, None).format is ImageFormat.PNG


@pytest.mark.parametrize(("text", "seconds"), [("60", 60), ("1h", 3600), ("1m30s", 90), ("0", 0)],
                         ids=["seconds", "hours", "compound", "zero"])  # fmt: skip
def test_ttl_parsing(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


def test_tags_are_split_deduplicated_and_checked() -> None:
    assert parse_tags("sku-1, cat-shoes sku-1") == ("sku-1", "cat-shoes")
    with pytest.raises(BadRequest):
        parse_tags("path:/assets/x")


def test_cache_policy_caps_browser_ttl_and_lists_surrogate_keys() -> None:
    info = ObjectInfo("p/a.jpg", 1, "e", MODIFIED, ObjectMeta("image/jpeg", ttl=30, tags=("sku-1",)))
    assert CachePolicy(ttl=3600, browser_ttl=300).headers(info) == {
        "Cache-Control": "public, max-age=30",
        "CDN-Cache-Control": "max-age=30",
        "Surrogate-Key": "path:/assets/p/a.jpg sku-1",
    }


def test_object_metadata_from_foreign_tools_is_read_leniently() -> None:
    meta = ObjectMeta.from_user_metadata(
        "a.png",
        "binary/octet-stream",
        {
            "X-Amz-Meta-Cache-Max-Age": "600",
            "x-amz-meta-browser-max-age": "soon",
            "x-amz-meta-surrogate-key": "ok bad:1",
        },
    )
    assert meta == ObjectMeta("image/png", ttl=600, browser_ttl=None, tags=("ok",))


def test_negotiation_follows_the_configured_preference() -> None:
    config = VariantConfig(formats=(ImageFormat.WEBP, ImageFormat.AVIF))
    spec = select_variant(config, ImageFormat.JPEG, {}, "image/avif,image/webp")
    assert spec == VariantSpec(None, ImageFormat.WEBP, negotiated=True)
