"""MinIO bucket notifications (webhook target): which objects were written or removed.

MinIO posts ``{"EventName": ..., "Key": "bucket/key", "Records": [...]}`` where each record is S3-event
shaped: ``eventName`` (``s3:ObjectCreated:Put``, ``s3:ObjectRemoved:Delete``...), ``s3.bucket.name`` and
``s3.object.key``, URL-encoded as in S3 event notifications (``+`` for space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from edgefleet_origin.change_events import Change
from edgefleet_origin.errors import BadRequest

MAX_RECORDS = 1000


@dataclass(frozen=True)
class BucketEvent:
    change: Change
    bucket: str
    key: str
    etag: str | None = None


def parse_notification(document: Any) -> list[BucketEvent]:
    """The object changes in one webhook body; records of other event types are skipped."""
    if not isinstance(document, dict):
        raise BadRequest("event body must be a JSON object")
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadRequest("event body has no Records list")
    if len(records) > MAX_RECORDS:
        raise BadRequest(f"more than {MAX_RECORDS} records in one event")
    events = []
    for index, record in enumerate(records):
        name = _field(record, index, "eventName")
        if name.startswith("s3:ObjectCreated:"):
            change = Change.WRITTEN
        elif name.startswith("s3:ObjectRemoved:"):
            change = Change.DELETED
        else:
            continue
        s3 = record.get("s3")
        bucket = _field(s3.get("bucket") if isinstance(s3, dict) else None, index, "s3.bucket", "name")
        raw_key = _field(s3.get("object") if isinstance(s3, dict) else None, index, "s3.object", "key")
        etag = s3["object"].get("eTag") if change is Change.WRITTEN else None
        events.append(BucketEvent(change, bucket, unquote_plus(raw_key), etag if isinstance(etag, str) else None))
    return events


def _field(container: Any, index: int, where: str, name: str | None = None) -> str:
    value = container.get(name or where) if isinstance(container, dict) else None
    if not isinstance(value, str) or not value:
        path = f"{where}.{name}" if name else where
        raise BadRequest(f"record {index} has no {path}")
    return value
