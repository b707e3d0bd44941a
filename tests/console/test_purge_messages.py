"""From the purge form to a bus message (pure)."""

from __future__ import annotations

import pytest

from edgefleet.console.purges import PurgeInputError, describe, purge_message


@pytest.mark.parametrize(
    ("kind", "targets", "field", "expected"),
    [("path", ["products/shoe.jpg", " /assets/x.jpg ", ""], "paths", ("/assets/products/shoe.jpg", "/assets/x.jpg")),
     ("prefix", ["products/"], "prefixes", ("/assets/products/",)),
     ("tag", ["sku-1", "cat-shoes"], "tags", ("sku-1", "cat-shoes"))],
    ids=["paths-under-assets", "prefix", "tags"],
)  # fmt: skip
def test_form_targets_become_the_right_message_field(
    kind: str, targets: list[str], field: str, expected: tuple[str, ...]
) -> None:
    message = purge_message(kind, targets, soft=False, issuer="console")
    assert getattr(message, field) == expected
    assert message.issuer == "console" and message.purge_id.startswith("console-")


def test_everything_needs_no_targets_and_soft_is_kept() -> None:
    message = purge_message("all", [], soft=True, issuer="console")
    assert message.all and message.soft
    assert describe(message) == "soft purge of everything"


@pytest.mark.parametrize(
    ("kind", "targets", "reason"),
    [("tag", [], "name at least one tag"), ("nothing", ["x"], "kind must be"), ("tag", ["a b"], "is not valid"),
     ("tag", [f"t{i}" for i in range(101)], "at most 100")],
    ids=["empty", "unknown-kind", "bad-tag", "too-many"],
)  # fmt: skip
def test_bad_purge_forms_are_refused_with_a_reason(kind: str, targets: list[str], reason: str) -> None:
    with pytest.raises(PurgeInputError, match=reason):
        purge_message(kind, targets, soft=False, issuer="console")


def test_description_shortens_long_lists() -> None:
    message = purge_message("tag", [f"sku-{i}" for i in range(7)], soft=False, issuer="console")
    assert describe(message) == "purge of tag sku-0, tag sku-1, tag sku-2, tag sku-3 and 3 more"
