"""The reuse decision as tables, with a fake clock and no sockets (``freshness``, ``decision``, ``fields``).

Each row is a response's field lines (repeated names as separate lines, as they arrive), what a shared cache must
conclude, and why (the RFC section in the row's id where it helps).
"""

from __future__ import annotations

import dataclasses
import email.utils
from dataclasses import dataclass

import pytest
from edgefleet_edge.decision import Reuse, decide, stale_on_error, vary_fields, vary_matches
from edgefleet_edge.fields import combined, list_members, split_list
from edgefleet_edge.freshness import initial_age, parse_http_date, response_policy

NOW = 1_750_000_000.0  # the fake clock: every table is computed at this instant
GRACE = 60.0


def date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@dataclass(frozen=True)
class Stored:
    """A stored response's facts, as the proxy keeps them in ``store.Entry``."""

    initial_age: float
    response_time: float
    lifetime: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    must_revalidate: bool = False
    grace_allowed: bool = True
    stale: bool = False


def stored(fields: list[tuple[str, str]], *, received: float = NOW, status: int = 200) -> Stored:
    policy = response_policy(status, fields, now=received)
    assert policy.storable, policy.reason
    return Stored(
        initial_age=initial_age(fields, received, received), response_time=received, lifetime=policy.lifetime,
        stale_while_revalidate=policy.stale_while_revalidate, stale_if_error=policy.stale_if_error,
        must_revalidate=policy.must_revalidate, grace_allowed=policy.grace_allowed,
    )  # fmt: skip


# ---- freshness lifetime (RFC 9111 §4.2.1) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "lifetime"),
    [
        ([("Cache-Control", "max-age=60")], 60),
        ([("Cache-Control", "max-age=60, s-maxage=300")], 300),
        ([("Cache-Control", "max-age=60"), ("Cache-Control", "s-maxage=300")], 300),
        ([("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "max-age=900")], 900),
        ([("Cache-Control", "max-age=0"), ("Surrogate-Control", "max-age=120")], 120),
        ([("Cache-Control", "max-age=60, max-age=10")], 60),
        ([("Cache-Control", 'max-age="60"')], 60),
        ([("Expires", date(3600)), ("Date", date(0))], 3600),
        ([("Expires", date(3600)), ("Date", date(0)), ("Cache-Control", "max-age=5")], 5),
        ([("Last-Modified", date(-100 * 3600)), ("Date", date(0))], 10 * 3600),
        ([("Last-Modified", date(-100 * 86400)), ("Date", date(0))], 86400),
        ([("Cache-Control", "no-cache"), ("ETag", '"e"')], 0),
        ([("Cache-Control", "max-age=99999999999")], 2**31),
    ],
    ids=["max-age", "s-maxage-wins", "s-maxage-on-second-line", "cdn-cache-control-wins", "surrogate-control",
         "first-repeated-directive-wins", "quoted-value", "expires-minus-date", "max-age-beats-expires",
         "heuristic-10-percent-of-last-modified", "heuristic-capped-at-a-day", "no-cache-is-stale-at-once",
         "huge-delta-is-2-to-the-31"],
)  # fmt: skip
def test_freshness_lifetime(fields: list[tuple[str, str]], lifetime: float) -> None:
    assert response_policy(200, fields, now=NOW).lifetime == lifetime


@pytest.mark.parametrize(
    "expires",
    [["0"], ["Thu, 01 Jan 50 00:00:00 GMT"], ["Thu, 01 Jan 2099 00:00:00 +1000"], ["Thu, 01 Jan 2099 00:00:00 UTC"],
     ["Thu, 01-Jan-2099 00:00:00 GMT"], ["Thu,  01 Jan 2099 00:00:00 GMT"], ["thu, 01 jan 2099 00:00:00 gmt"],
     ["Thu, 1 Jan 2099 00:00:00 GMT"], ["Thu, 01 Jan 2099 0:00:00 GMT"], [date(3600), date(7200)]],
    ids=["zero", "two-digit-year", "numeric-zone", "utc", "dashes", "two-spaces", "lower-case", "one-digit-day",
         "one-digit-hour", "two-lines"],
)  # fmt: skip
def test_an_invalid_expires_means_already_expired(expires: list[str]) -> None:
    fields = [("Expires", value) for value in expires]
    assert response_policy(200, fields, now=NOW).lifetime == 0  # RFC 9111 §5.3


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
    ids=["imf-fixdate", "rfc850", "asctime"],
)
def test_the_three_http_date_forms_are_read(value: str) -> None:
    assert parse_http_date(value, now=NOW) == 784111777.0  # RFC 9110 §5.6.7's example instant


@pytest.mark.parametrize(
    ("status", "fields", "reason"),
    [
        (200, [("Cache-Control", "max-age=60"), ("Cache-Control", "private")], "private"),
        (200, [("Cache-Control", "max-age=60, no-store")], "no-store"),
        (200, [("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "private")], "private"),
        (200, [("CDN-Cache-Control", "no-store"), ("Cache-Control", "max-age=60")], "no-store"),
        (200, [("Cache-Control", "max-age=60"), ("Set-Cookie", "a=b")], "set-cookie"),
        (200, [("Cache-Control", "max-age=60"), ("Vary", "Accept"), ("Vary", "*")], "vary-star"),
        (206, [("Cache-Control", "max-age=60")], "partial"),
        (299, [("Cache-Control", "must-understand, no-store, max-age=60")], "must-understand"),
        (500, [], "no-freshness"),
        (200, [], "no-freshness"),
        (302, [("Last-Modified", date(-3600))], "no-freshness"),
    ],
    ids=["private-on-a-second-line", "no-store", "cc-private-binds-despite-cdn-cc", "cdn-cc-no-store",
         "set-cookie", "vary-star-on-a-second-line", "partial-content", "must-understand-unknown-status",
         "5xx-without-freshness", "nothing-to-go-on", "302-is-not-heuristically-cacheable"],
)  # fmt: skip
def test_responses_a_shared_cache_must_not_store(status: int, fields: list[tuple[str, str]], reason: str) -> None:
    policy = response_policy(status, fields, now=NOW)
    assert not policy.storable and policy.reason == reason


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (503, [("Cache-Control", "max-age=60")]),
        (200, [("Cache-Control", "must-understand, no-store, max-age=60")]),
        (404, [("Last-Modified", date(-3600))]),
        (200, [("CDN-Cache-Control", "Max-Age=60"), ("Cache-Control", "max-age=60")]),
    ],
    ids=["5xx-with-explicit-freshness", "must-understand-overrides-no-store", "404-heuristic",
         "invalid-cdn-cache-control-ignored-whole"],
)  # fmt: skip
def test_responses_a_shared_cache_may_store(status: int, fields: list[tuple[str, str]]) -> None:
    assert response_policy(status, fields, now=NOW).storable


def test_authorization_needs_the_origins_say_so() -> None:
    assert not response_policy(200, [("Cache-Control", "max-age=60")], now=NOW, request_has_authorization=True).storable
    for directive in ("public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"):
        assert response_policy(200, [("Cache-Control", directive)], now=NOW, request_has_authorization=True).storable


# ---- age (RFC 9111 §4.2.3) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "request_time", "age"),
    [
        ([("Age", "30")], NOW, 30),
        ([("Age", "30")], NOW - 2, 32),
        ([("Date", date(-100))], NOW, 100),
        ([("Date", date(-100)), ("Age", "30")], NOW, 100),
        ([("Date", date(+100))], NOW, 0),
        ([("Date", date(+100)), ("Age", "30")], NOW, 30),
        ([("Age", "abc")], NOW, 0),
        ([("Age", "10"), ("Age", "20")], NOW, 10),
    ],
    ids=["origin-age", "age-plus-response-delay", "apparent-age-from-date", "larger-of-apparent-and-corrected",
         "clock-skew-never-makes-it-younger", "skewed-date-with-age", "invalid-age-ignored", "first-age-line"],
)  # fmt: skip
def test_initial_age(fields: list[tuple[str, str]], request_time: float, age: float) -> None:
    assert initial_age(fields, request_time, NOW) == age


def test_age_grows_with_time_in_storage() -> None:
    entry = stored([("Cache-Control", "max-age=600"), ("Age", "30")])
    assert decide(entry, NOW + 100).age == 130
    assert decide(entry, NOW + 100).ttl == 470


# ---- reuse and stale rules (RFC 9111 §4.2.4, RFC 5861) --------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "later", "reuse"),
    [
        ("max-age=60", 59, Reuse.FRESH),
        ("max-age=60", 60, Reuse.REVALIDATE),
        ("max-age=60, stale-while-revalidate=30", 80, Reuse.STALE_WHILE_REVALIDATE),
        ("max-age=60, stale-while-revalidate=30", 95, Reuse.REVALIDATE),
        ("max-age=60, stale-while-revalidate=30, must-revalidate", 80, Reuse.REVALIDATE),
        ("s-maxage=60, stale-while-revalidate=30", 80, Reuse.STALE_WHILE_REVALIDATE),
        ("no-cache, stale-while-revalidate=30", 1, Reuse.REVALIDATE),
    ],
    ids=["fresh", "stale-at-its-lifetime", "within-stale-while-revalidate", "past-stale-while-revalidate",
         "must-revalidate-forbids-swr", "s-maxage-keeps-the-origins-explicit-swr", "no-cache-always-revalidates"],
)  # fmt: skip
def test_reuse(cache_control: str, later: float, reuse: Reuse) -> None:
    fields = [("Cache-Control", cache_control), ("ETag", '"e"')]
    assert decide(stored(fields), NOW + later).reuse is reuse


def test_a_soft_purged_entry_is_always_revalidated() -> None:
    entry = dataclasses.replace(stored([("Cache-Control", "max-age=600")]), stale=True)
    assert decide(entry, NOW).reuse is Reuse.REVALIDATE


@pytest.mark.parametrize(
    ("cache_control", "later", "allowed"),
    [
        ("max-age=60", 100, True),
        ("max-age=60", 130, False),
        ("max-age=60, stale-if-error=600", 500, True),
        ("max-age=60, must-revalidate", 61, False),
        ("max-age=60, proxy-revalidate", 61, False),
        ("max-age=60, must-revalidate, stale-if-error=600", 61, False),
        ("no-cache", 1, False),
        ("s-maxage=60", 61, False),
        ("s-maxage=60, stale-if-error=600", 500, True),
    ],
    ids=["grace", "past-grace", "stale-if-error-beyond-grace", "must-revalidate", "proxy-revalidate",
         "must-revalidate-beats-stale-if-error", "no-cache", "s-maxage-implies-proxy-revalidate",
         "s-maxage-with-explicit-stale-if-error"],
)  # fmt: skip
def test_stale_on_origin_error(cache_control: str, later: float, allowed: bool) -> None:
    entry = stored([("Cache-Control", cache_control), ("ETag", '"e"')])
    assert stale_on_error(entry, decide(entry, NOW + later).age, GRACE) is allowed


# ---- Vary (RFC 9111 §4.1) and field lists (RFC 9110 §5.3, §5.6.1) ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([], ()),
        ([("Vary", "Accept-Encoding, Cookie")], ("accept-encoding", "cookie")),
        ([("Vary", "Accept-Encoding"), ("Vary", "cookie")], ("accept-encoding", "cookie")),
        ([("Vary", "*")], None),
        ([("Vary", "*, Accept")], None),
        ([("Vary", "Accept, *")], None),
        ([("Vary", ""), ("Vary", "*")], None),
        ([("Vary", " , Accept ,, ")], ("accept",)),
    ],
    ids=["none", "list", "two-lines", "star", "star-first", "star-last", "empty-line-then-star", "empty-members"],
)
def test_vary_fields(fields: list[tuple[str, str]], expected: tuple[str, ...] | None) -> None:
    assert vary_fields(fields) == expected


def test_vary_matching_reads_every_request_line() -> None:
    from edgefleet_edge.cachekey import secondary_key

    alice = [("Cookie", "id=alice")]
    both = [("Cookie", "id=alice"), ("Cookie", "cart=1")]
    variant = secondary_key(("cookie",), alice)
    assert vary_matches(("cookie",), variant, alice)
    assert not vary_matches(("cookie",), variant, both)
    assert not vary_matches(("cookie",), variant, [("Cookie", "id=bob")])
    # Accept is reduced to the image format class: different browser strings, one variant.
    webp = secondary_key(("accept",), [("Accept", "image/webp,*/*")])
    assert vary_matches(("accept",), webp, [("Accept", "image/webp;q=0.9, image/png")])


@pytest.mark.parametrize(
    ("value", "members"),
    [
        ("a, b,c", ["a", "b", "c"]),
        ('no-cache="Set-Cookie, Foo", max-age=5', ['no-cache="Set-Cookie, Foo"', "max-age=5"]),
        (r'x="a\"b,c", y', [r'x="a\"b,c"', "y"]),
        (" , ,", []),
    ],
    ids=["plain", "comma-inside-quotes", "escaped-quote", "only-empty-members"],
)
def test_list_members_split_outside_quotes(value: str, members: list[str]) -> None:
    assert split_list(value) == members


def test_repeated_lines_are_one_list() -> None:
    headers = [("Cache-Control", "max-age=60"), ("X-Other", "1"), ("cache-control", "private")]
    assert combined(headers, "Cache-Control") == "max-age=60, private"
    assert list_members(headers, "CACHE-CONTROL") == ["max-age=60", "private"]
    assert combined(headers, "Vary") is None
