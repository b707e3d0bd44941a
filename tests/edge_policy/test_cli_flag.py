"""``edgefleet edge --cache-policy``: the default, the baselines, and a clear error for anything else."""

from __future__ import annotations

import argparse

import pytest
from edgefleet_edge.cli import configure, settings_from


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgefleet edge")
    configure(parser)
    return parser.parse_args(["--origin", "http://origin:8081", *argv])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "s3fifo-gdsf"),
        (["--cache-policy", "s3fifo-sa"], "s3fifo-sa"),
        (["--cache-policy", "s3fifo"], "s3fifo"),
        (["--cache-policy", "lru"], "lru"),
    ],
    ids=["default", "s3fifo-sa", "s3fifo", "lru"],
)
def test_cache_policy_flag_reaches_the_edge_settings(argv: list[str], expected: str) -> None:
    assert settings_from(parse(argv)).cache_policy == expected


def test_cache_policy_environment_variable_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_CACHE_POLICY", "lru")
    assert settings_from(parse([])).cache_policy == "lru"


@pytest.mark.parametrize("source", ["flag", "environment"], ids=["flag", "environment"])
def test_unknown_cache_policy_is_a_clear_cli_error(
    source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--cache-policy", "arc"] if source == "flag" else []
    if source == "environment":
        monkeypatch.setenv("EDGEFLEET_CACHE_POLICY", "arc")
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert "unknown cache policy 'arc'; choose s3fifo-gdsf, s3fifo-sa, s3fifo, lru" in capsys.readouterr().err
