"""The wire format, without Redis: encode/decode round trips and clear errors for bad entries."""

from __future__ import annotations

import pytest

from edgefleet.bus import MalformedMessage, PurgeMessage, WarmMessage, decode, encode


@pytest.mark.parametrize(
    "message",
    [
        PurgeMessage(purge_id="a", paths=("/assets/x.jpg",), soft=True, issuer="cli", issued_at=1.5),
        PurgeMessage(purge_id="b", prefixes=("/assets/",), tags=("sku-1", "cat-shoes")),
        PurgeMessage(purge_id="c", all=True, refetch=True),
        WarmMessage(paths=("/assets/new.jpg",), issuer="origin"),
    ],
    ids=["path-soft", "prefix-and-tags", "all", "warm"],
)
def test_message_round_trips_through_the_wire_format(message: PurgeMessage | WarmMessage) -> None:
    assert decode(encode(message)) == message


def test_message_decodes_from_redis_bytes() -> None:
    fields = {k.encode(): v.encode() for k, v in encode(PurgeMessage(purge_id="x", tags=("t",))).items()}
    assert decode(fields) == PurgeMessage(purge_id="x", tags=("t",), issued_at=decode(fields).issued_at)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"v": "9", "kind": "purge", "data": "{}"}, "unknown wire version"),
        ({"v": "1", "kind": "explode", "data": "{}"}, "unknown message kind"),
        ({"v": "1", "kind": "purge", "data": "{not json"}, "data is not JSON"),
        ({"v": "1", "kind": "purge", "data": '{"purge_id": "x", "paths": ["no-slash"]}'}, "field paths.0"),
        ({"v": "1", "kind": "purge", "data": '{"purge_id": "x"}'}, "names no target"),
        ({"v": "1", "kind": "purge", "data": '{"purge_id": "x", "all": true, "evil": 1}'}, "field evil"),
        ({"v": "1", "kind": "warm", "data": '{"paths": []}'}, "field paths"),
        ({}, "unknown wire version"),
    ],
    ids=["version", "kind", "json", "relative-path", "no-target", "unknown-field", "empty-warm", "empty"],
)
def test_malformed_entry_is_rejected_with_a_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode(fields)
