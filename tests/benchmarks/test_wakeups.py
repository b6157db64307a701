"""``python -m benchmarks.wakeups``: real forked peers over real unix sockets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import wakeups


def test_every_placement_is_measured_and_printed(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    assert (
        wakeups.main(["--count", "20", "--rounds", "2", "--pause-ms", "1", "--json", str(out)]) == 0
    )
    result = json.loads(out.read_text())
    expected = set(wakeups.PLACEMENTS)
    if len(os.sched_getaffinity(0)) < 2:
        expected.discard("other CPU")
    assert set(result["placements"]) == expected
    assert result["count"] == 20 and result["request_bytes"] == 1600
    for figures in result["placements"].values():
        send, trip = figures["send_us"], figures["round_trip_us"]
        assert 0 < send["p50"] <= send["p90"] <= send["p99"]
        assert 0 < trip["p50"] <= trip["p90"] <= trip["p99"]
        assert send["p50"] < trip["p99"]  # the send is part of the round trip


def test_the_sender_gets_its_cpus_back() -> None:
    before = os.sched_getaffinity(0)
    got = wakeups.round_trips("same CPU", 3, 0.0)
    assert os.sched_getaffinity(0) == before
    assert len(got["send_us"]) == len(got["round_trip_us"]) == 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        wakeups.main(["--count", "0"])
    assert exc.value.code == 2
