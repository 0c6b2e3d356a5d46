"""keygate.observability: publishing the metrics an invocation added, and only those."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from keygate.observability import flush_added_metrics, metrics


@pytest.fixture(autouse=True)
def no_metrics_left() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The embedded-metric-format documents Powertools printed."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]


def test_an_invocation_that_added_no_metric_prints_nothing(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    flush_added_metrics()
    assert capsys.readouterr().out == ""


def test_the_metrics_an_invocation_added_are_printed_once(capsys, monkeypatch):
    # Given metrics on, as deployed, and one metric added during an invocation
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.add_metric(name="LastUsedRefreshFailed", unit="Count", value=1)
    # When the handler publishes what it added, then the next invocation adds nothing
    flush_added_metrics()
    flush_added_metrics()
    # Then one document carries it, in KeyGate's namespace with the service dimension
    [document] = _printed(capsys)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "KeyGate" and directive["Dimensions"] == [["service"]]
    assert [metric["Name"] for metric in directive["Metrics"]] == ["LastUsedRefreshFailed"]
    assert document["service"] == "keygate"


def test_with_metrics_switched_off_nothing_is_printed_and_nothing_piles_up(capsys, monkeypatch):
    # Powertools keeps the metrics it does not print; the next invocation must not inherit them
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics.add_metric(name="SignatureRefused401", unit="Count", value=1)
    flush_added_metrics()
    assert capsys.readouterr().out == ""
    assert not metrics.metric_set
