"""How a row's figures are derived from the generators' raw results (no process is run)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.measure import MIN_OTHERS_WINDOW_S, summarize


def _raw(latencies_ms: list[float], elapsed_s: float, cpu_s: float) -> dict[str, Any]:
    return {
        "latencies_ms": latencies_ms,
        "statuses": {"200": len(latencies_ms)},
        "elapsed_s": elapsed_s,
        "cpu_s": cpu_s,
        "first_error": None,
    }


def test_other_load_is_what_neither_target_nor_generators_took() -> None:
    raw = [_raw([1.0, 2.0], 10.0, 0.5), _raw([3.0, 4.0], 9.0, 0.5)]
    row = summarize("t", raw, 8.0, {}, opa_cpu_s=2.0, machine_busy_s=12.0, window_s=10.0)
    # 12 s busy - 8 s target - 1 s generators = 3 s over 10 s.
    assert row["other_cpu_cores"] == pytest.approx(0.3)
    assert row["loadgen_cpu_s"] == pytest.approx(1.0)
    assert row["cpu_ms_per_req"] == pytest.approx(2000.0)
    assert row["opa_cpu_ms_per_req"] == pytest.approx(500.0)
    assert row["per_s"] == pytest.approx(0.4)  # 4 answers over the slower generator's 10 s


def test_rounding_below_zero_reads_as_no_other_load() -> None:
    # Each counter rounds to whole ticks: the parts can sum to a little more than the whole.
    row = summarize("t", [_raw([1.0], 5.0, 0.52)], 4.5, {}, machine_busy_s=5.0, window_s=5.0)
    assert row["other_cpu_cores"] == 0.0


@pytest.mark.parametrize("window_s", [0.03, MIN_OTHERS_WINDOW_S / 2])
def test_a_window_of_a_few_ticks_gives_no_other_load_figure(window_s: float) -> None:
    # The smoke run that printed 2.61 cores on 2 cores: 80 ms busy, 10 ms counted, 30 ms.
    row = summarize("t", [_raw([1.0], window_s, 0.0)], 0.01, {}, machine_busy_s=0.08,
                    window_s=window_s)  # fmt: skip
    assert row["other_cpu_cores"] is None


def test_no_machine_reading_gives_no_other_load_figure() -> None:
    row = summarize("t", [_raw([1.0], 1.0, 0.0)], 0.1, {})
    assert row["other_cpu_cores"] is None and row["steal_cores"] is None


def test_steal_is_reported_in_cores_under_the_same_window_rule() -> None:
    raw = [_raw([1.0, 2.0], 10.0, 0.5)]
    row = summarize("t", raw, 8.0, {}, machine_busy_s=12.0, machine_steal_s=1.5, window_s=10.0)
    assert row["steal_cores"] == pytest.approx(0.15)
    assert row["other_cpu_cores"] == pytest.approx(0.35)  # busy time counts the steal
    short = summarize("t", raw, 0.01, {}, machine_busy_s=0.08, machine_steal_s=0.01,
                      window_s=MIN_OTHERS_WINDOW_S / 2)  # fmt: skip
    assert short["steal_cores"] is None


def test_runs_the_hypervisor_took_cpu_from_are_named_under_their_table() -> None:
    from benchmarks.cli import STEAL_NOTE_CORES, render

    def run(name: str, number: int, steal_s: float) -> dict[str, Any]:
        row = summarize(name, [_raw([1.0, 2.0], 10.0, 0.5)], 8.0, {"concurrency": 16},
                        machine_busy_s=12.0, machine_steal_s=steal_s, window_s=10.0)  # fmt: skip
        return dict(row, run=number)

    quiet = [run("bare OPA", 1, 0.1), run("bare OPA", 2, 0.0)]
    assert "note: the hypervisor" not in render("cold", {"runs": quiet})
    stolen_s = STEAL_NOTE_CORES * 10.0 * 5.6  # 0.28 cores over the 10 s window
    text = render("cold", {"runs": [*quiet, run("releasegate", 1, stolen_s)]})
    assert "steal" in text.splitlines()[1]  # the table's column
    note = [line for line in text.splitlines() if line.startswith("note: the hypervisor")]
    assert note == [
        f"note: the hypervisor took >= {STEAL_NOTE_CORES} cores during 1 of 3 runs: "
        "releasegate run 1 (0.28); their rates and tails say as much about the host as "
        "about the code"
    ]


def test_server_timing_parts_and_the_rest_of_each_answer() -> None:
    raw = _raw([5.0, 6.0, 7.0, 8.0], 1.0, 0.1)
    raw["server_timing"] = [
        "opa;dur=1.0, log;dur=2.0, total;dur=4.0",
        "opa;dur=3.0, log;dur=1.0, total;dur=5.0",
        "opa;dur=2.0, log;dur=1.0, total;dur=6.0",
        None,  # an answer without the header (an error page from a proxy, say)
    ]
    row = summarize("t", [raw, _raw([9.0], 1.0, 0.1)], 1.0, {})
    timing = row["server_timing"]
    assert timing["opa"] == {"p50_ms": 2.0, "p99_ms": 3.0}
    assert timing["log"] == {"p50_ms": 1.0, "p99_ms": 2.0}
    assert timing["rest"] == {"p50_ms": 1.0, "p99_ms": 3.0}  # 4-1-2, 5-3-1, 6-2-1
    assert timing["total"] == {"p50_ms": 5.0, "p99_ms": 6.0}
    assert "server_timing" not in summarize("t", [_raw([1.0], 1.0, 0.1)], 1.0, {})
    partial = _raw([1.0], 1.0, 0.1)
    partial["server_timing"] = ["total;dur=0.5"]  # no decision: no rest
    assert summarize("t", [partial], 1.0, {})["server_timing"] == {
        "total": {"p50_ms": 0.5, "p99_ms": 0.5}
    }
