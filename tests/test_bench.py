"""The benchmarks run and report what they promise (their numbers are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def run_bench(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.slow
def test_latency_benchmark_reports_every_case_and_accounts_for_every_message() -> None:
    report = run_bench("bench/latency.py", "--seconds", "0.6", "--repeat", "1", "--count", "5000")
    cases = report["cases"]
    assert isinstance(cases, dict)
    assert set(cases) == {"small_1hop", "small_2hop", "frame_1hop", "frame_2hop"}
    for row in cases.values():
        assert row["car"]["p50_us"] > 0 and row["zmq"]["p50_us"] > 0 and row["ratio_p50"] > 0
    throughput = report["throughput"]
    assert isinstance(throughput, dict)
    car = throughput["car"]
    assert car["sent"] == 5000 and car["accounted"] is True
    assert throughput["zmq"]["received"] == 5000


@pytest.mark.slow
def test_timer_benchmark_reports_jitter_and_drift() -> None:
    report = run_bench("bench/timers.py", "--seconds", "1")
    assert report["ticks"] > 50
    jitter = report["jitter_us"]
    assert isinstance(jitter, dict) and 0 <= jitter["p50"] <= jitter["p99"] <= jitter["max"]


@pytest.mark.slow
def test_simulator_benchmark_reports_speed_and_render_time() -> None:
    report = run_bench("bench/sim_speed.py", "--seconds", "3")
    assert report["sim_seconds"] >= 3.0 and report["frames"] >= 89
    assert report["realtime_factor"] > 1  # sanity only: headless is faster than real time
    assert 0 < report["render_ms_p50"] <= report["render_ms_p99"]


@pytest.mark.slow
def test_perception_benchmark_times_the_detector() -> None:
    report = run_bench("bench/perception.py", "--frames", "20")
    assert report["frames"] == 80 and 0 < report["ms_p50"] <= report["ms_p99"]
    assert report["found"] > 0.9


@pytest.mark.slow
def test_loop_latency_benchmark_measures_frame_to_command() -> None:
    report = run_bench("bench/loop_latency.py", "--laps", "1")
    assert report["frames"] > 100
    assert 0 < report["loop_latency_ms_p50"] <= report["loop_latency_ms_p99"]
