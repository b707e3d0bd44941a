"""Purges through the console's HTTP API against a real fleet: input errors, the event stream, and purges
issued by others (``edgefleet purge``) in the recent list."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.console.conftest import ConsoleFleet


@pytest.mark.parametrize(
    ("payload", "message"),
    [({"kind": "tag", "targets": []}, "name at least one tag"), ({"kind": "everything"}, "kind must be"),
     ({"kind": "tag", "targets": ["bad tag!"]}, "is not valid"), ({"kind": "path", "targets": "x"}, None)],
    ids=["no-targets", "unknown-kind", "bad-tag", "string-targets"],
)  # fmt: skip
def test_purge_input_errors_name_what_is_wrong(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str], payload: dict[str, object],
    message: str | None,
) -> None:  # fmt: skip
    http, csrf = signed_in
    answer = http.post(f"{console_fleet.url}/api/purges", json=payload, headers={"X-CSRF-Token": csrf}, timeout=30)
    if message is None:
        assert answer.status_code == 202, "one target per line is accepted as a string too"
        return
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_event_stream_reports_every_edge_and_the_duration(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    issued = http.post(f"{console_fleet.url}/api/purges", json={"kind": "prefix", "targets": ["catalogue/"],
                       "soft": True}, headers={"X-CSRF-Token": csrf}, timeout=30).json()  # fmt: skip
    assert issued["description"] == "soft purge of prefix /assets/catalogue/"
    edges = sorted(e.name for e in console_fleet.state.edges)
    assert sorted(issued["expected"]) == edges
    with http.get(f"{console_fleet.url}/api/purges/{issued['entry_id']}/events", stream=True, timeout=90) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines(decode_unicode=True) if line.startswith('data: {"')]
    final = json.loads(events[-1].removeprefix("data: "))
    assert final["complete"] is True and final["pending"] == []
    assert sorted(final["acks"]) == edges
    assert final["duration_ms"] == max(final["acks"].values())


def test_purges_issued_elsewhere_show_in_the_recent_list(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str]
) -> None:
    done = subprocess.run([sys.executable, "-m", "edgefleet.cli", "purge", "--tag", "from-the-cli", "--wait",
                           "--state-dir", str(console_fleet.state_dir)], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    http, _ = signed_in
    recent = http.get(f"{console_fleet.url}/api/purges", timeout=30).json()["purges"]
    cli = next(p for p in recent if p["description"] == "purge of tag from-the-cli")
    assert cli["issuer"] == "cli"
    assert sorted(cli["acks"]) == sorted(e.name for e in console_fleet.state.edges)
    assert cli["duration_ms"] is not None
    page = http.get(f"{console_fleet.url}/purges/recent", timeout=30).text
    assert "purge of tag from-the-cli" in page and "slowest so far" in page
