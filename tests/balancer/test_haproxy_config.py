"""The rendered HAProxy configuration and the slot assignment, as data: no HAProxy needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from edgefleet_balancer.haproxy_config import HAProxyConfig, render
from edgefleet_balancer.membership import Member, MembershipError, assign_slots, reset_commands, runtime_commands


def config(**overrides: object) -> str:
    base: dict[str, object] = {
        "listen": ("0.0.0.0", 8080), "metrics_socket": Path("/run/b/metrics.sock"),
        "socket": Path("/run/b/haproxy.sock"), "edge_names_map": Path("/run/b/edges.map"),
        "warm_socket": Path("/run/b/warm.sock"),
    }  # fmt: skip
    return render(HAProxyConfig(**{**base, **overrides}))  # type: ignore[arg-type]


def section(text: str, header: str) -> list[str]:
    """The lines of one section (``backend edges``, ``frontend data``, ...), stripped."""
    body = text.split(f"\n{header}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def backend(text: str) -> list[str]:
    return section(text, "backend edges")


def test_render_is_deterministic() -> None:
    assert config() == config()


@pytest.mark.parametrize(
    ("key", "line"),
    [("pathAndQuery", "balance uri whole path-only"), ("path", "balance uri path-only")],
    ids=["path-and-query", "path-only"],
)
def test_hash_key_chooses_what_of_the_target_is_hashed(key: str, line: str) -> None:
    lines = backend(config(hash_key=key))
    assert line in lines
    assert "hash-type consistent" in lines


@pytest.mark.parametrize(("factor", "percent"), [(1.25, 125), (2.0, 200), (1.0, 101)], ids=["default", "2x", "1x"])
def test_load_factor_becomes_the_hash_balance_factor_in_percent(factor: float, percent: int) -> None:
    assert f"hash-balance-factor {percent}" in backend(config(load_factor=factor))


def test_only_get_and_head_are_retried_after_the_request_was_sent() -> None:
    lines = backend(config())
    assert "retries 1" in lines
    assert "option redispatch 1" in lines
    assert "retry-on conn-failure empty-response response-timeout" in lines
    assert "http-request disable-l7-retry unless METH_GET" in lines


def test_request_bodies_stream_and_targets_are_not_normalised() -> None:
    text = config()
    assert "http-buffer-request" not in text
    assert "normalize-uri" not in text


def test_only_expect_100_continue_requests_wait_for_their_body() -> None:
    text = config()
    waits = [line.strip() for line in text.splitlines() if "wait-for-body" in line]
    assert waits == ["http-request wait-for-body time 1s at-least 16k if { req.hdr(expect) -i 100-continue }"]


def test_every_timeout_is_set_on_purpose() -> None:
    text = config()
    for name in ("connect", "http-request", "http-keep-alive", "client", "server", "queue", "check"):
        assert re.search(rf"^    timeout {name} \d+ms$", text, re.MULTILINE), name


def test_connections_to_edges_stay_open_and_are_shared() -> None:
    # Measured in bench/balancer_tuning.py: closing the edge connection after each response (http-server-close)
    # costs about 2.7x the CPU per request, busy-polling about 2x on a core shared with an edge.
    text = config()
    assert "http-reuse always" in backend(text)
    for costly in ("http-server-close", "httpclose", "busy-polling"):
        assert costly not in text, costly


def test_health_checks_ask_each_edge_for_healthz() -> None:
    lines = backend(config())
    assert "option httpchk GET /healthz" in lines
    assert any(line.startswith("default-server check ") for line in lines)


def test_x_edge_header_can_be_switched_off() -> None:
    assert "set-header X-Edge " in config()
    assert "set-header X-Edge " not in config(x_edge=False)


def test_exporter_listens_only_on_a_private_socket() -> None:
    text = config()
    metrics = text.split("frontend metrics\n", 1)[1].split("\n\n", 1)[0]
    assert "bind unix@/run/b/metrics.sock mode 600" in metrics
    assert "prometheus-exporter" in metrics


EDGES = [Member(f"edge-{i}", "10.0.0.1", 8000 + i) for i in range(20)]


def test_slots_depend_on_the_member_set_not_on_its_order() -> None:
    assert assign_slots(EDGES, 64) == assign_slots(list(reversed(EDGES)), 64)


def test_an_edge_keeps_its_slot_when_another_leaves_or_joins() -> None:
    before = {m.name: slot for slot, m in assign_slots(EDGES, 64).items()}
    after = {m.name: slot for slot, m in assign_slots(EDGES[1:], 64).items()}
    moved = [name for name in after if after[name] != before[name]]
    # Only an edge that had been pushed on by edge-0 colliding with it can move.
    assert len(moved) <= 1


def test_more_edges_than_slots_is_refused() -> None:
    with pytest.raises(MembershipError, match="slots"):
        assign_slots(EDGES, 8)


def test_runtime_commands_touch_only_slots_that_change() -> None:
    current = {1: Member("a", "10.0.0.1", 80, 90), 2: Member("b", "10.0.0.2", 80, 90)}
    wanted = {1: Member("a", "10.0.0.1", 80, 90), 3: Member("c", "10.0.0.3", 80, 90)}
    commands = runtime_commands(current, wanted, "/m")
    assert not any("slot1" in c for c in commands)
    assert commands == [
        "set server edges/slot3 addr 10.0.0.3 port 80",
        "set server warm/slot3 addr 10.0.0.3 port 80",
        "set server edges/slot3 check-port 90",
        "add map /m slot3 c",
        "set server edges/slot3 state ready",
        "set server edges/slot2 state maint",
        "del map /m slot2",
    ]


def test_runtime_commands_make_before_break() -> None:
    """An edge that moves slot is in its new slot before it leaves the old one, and a slot that changes
    hands comes before the slots that only empty: the ring is never without the edges both sides share."""
    current = {5: Member("a", "10.0.0.1", 80), 9: Member("gone", "10.0.0.9", 80)}
    wanted = {5: Member("b", "10.0.0.2", 80), 6: Member("a", "10.0.0.1", 80)}
    commands = runtime_commands(current, wanted, None)
    order = {c: i for i, c in enumerate(commands)}
    assert order["set server edges/slot6 state ready"] < order["set server edges/slot5 state maint"]
    assert order["set server edges/slot5 state maint"] < order["set server edges/slot5 addr 10.0.0.2 port 80"]
    assert order["set server edges/slot5 state ready"] < order["set server edges/slot9 state maint"]


def test_runtime_commands_address_the_warm_slot_and_leave_its_state_to_tracking() -> None:
    commands = runtime_commands({}, {4: Member("a", "10.0.0.1", 80, 90)}, None)
    assert "set server warm/slot4 addr 10.0.0.1 port 80" in commands
    assert not any(c.startswith("set server warm/") and "state" in c for c in commands)


def test_runtime_commands_set_the_warm_state_when_there_is_nothing_to_track() -> None:
    up = runtime_commands({}, {4: Member("a", "10.0.0.1", 80)}, None, checks=False)
    down = runtime_commands({4: Member("a", "10.0.0.1", 80)}, {}, None, checks=False)
    assert "set server warm/slot4 state ready" in up
    assert down == ["set server edges/slot4 state maint", "set server warm/slot4 state maint"]


def test_warm_backend_is_the_same_ring_without_bounded_loads() -> None:
    text = config(slots=3)
    data, warm = backend(text), section(text, "backend warm")
    assert [line for line in warm if line.startswith(("balance", "hash-type"))] == [
        line for line in data if line.startswith(("balance", "hash-type"))
    ]
    assert not any(line.startswith("hash-balance-factor") for line in warm)
    assert [line for line in warm if line.startswith("server ")] == [
        f"server slot{i} 0.0.0.0:0 track edges/slot{i}" for i in (1, 2, 3)
    ]
    assert "bind unix@/run/b/warm.sock mode 600" in section(text, "frontend warm")


def test_data_frontend_deletes_a_client_sent_warm_marker() -> None:
    assert "http-request del-header X-Edgefleet-Warm" in section(config(), "frontend data")
    assert not any("del-header" in line for line in section(config(), "frontend warm"))


def test_reset_commands_fill_the_wanted_slots_without_maintenance_and_empty_all_others() -> None:
    commands = reset_commands({2: Member("a", "10.0.0.1", 80, 90)}, 3, "/m")
    assert commands[0] == "clear map /m"
    assert "set server edges/slot2 state maint" not in commands
    assert "set server edges/slot2 state ready" in commands
    assert [c for c in commands if c.endswith("state maint")] == [
        "set server edges/slot1 state maint",
        "set server edges/slot3 state maint",
    ]
