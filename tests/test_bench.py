"""The benchmarks run and report what they promise (their numbers are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def run_bench(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.slow
def test_a_peer_that_cannot_be_installed_says_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare.py then measures the other peers; here, the installer's own error (asks PyPI for a missing name)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from peers import venv

    target = tmp_path / "peer-venv"
    with pytest.raises(venv.PeerUnavailable, match="installing car-bench-no-such-peer failed") as failed:
        venv.ensure(
            "car-bench-no-such-peer",
            target,
            ["car-bench-no-such-peer==0.0.1"],
            [str(target / "bin" / "car-bench-no-such-peer")],
        )
    assert "car-bench-no-such-peer" in str(failed.value).split("failed", 1)[1]  # pip's reason follows


@pytest.mark.slow
def test_footprint_benchmark_times_startup_and_weighs_every_node() -> None:
    report = run_bench("bench/footprint.py", "--repeat", "1", "--settle", "3")
    startup = report["startup"]
    assert isinstance(startup, dict) and 0 < startup["p50_ms"] < 30_000
    memory = report["memory"]
    assert isinstance(memory, dict)
    assert set(memory["nodes"]) == {"car_io", "line_detector", "controller"}
    for figures in memory["nodes"].values():
        assert 0 < figures["pss_mb"] <= figures["rss_mb"]
    assert memory["total_pss_mb"] <= memory["total_rss_mb"]


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


def test_wire_cost_measures_every_case_against_another_checkout() -> None:
    report = run_bench("bench/wire_cost.py", "--rounds", "5", "--batch", "20", "--against", str(ROOT))
    cases, against, ratios = report["cases"], report["against"], report["p25_ratio"]
    assert isinstance(cases, dict) and isinstance(against, dict) and isinstance(ratios, dict)
    assert {"bytes 64 B + metadata", "frame 921,600 B (view)", "pyarrow struct x100"} <= set(cases)
    assert set(against) == set(ratios) == set(cases)  # the same checkout sends everything this one does
    assert all(row["min_us"] > 0 and row["min_us"] <= row["p25_us"] <= row["median_us"] for row in cases.values())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scale_reports_start_up_cost_and_detection_of_killed_daemons() -> None:
    report = run_bench("bench/scale.py", "--daemons", "4", "--chains", "3")
    assert report["daemons"] == 4 and report["nodes"] == 12
    assert 0 < report["start_to_first_message_s"]["median"] <= report["start_to_first_message_s"]["max"]
    assert report["coordinator_rss_mb"] > 0 and report["heartbeat_messages_per_s_per_daemon"] == 4.0
    detected = report["detection_s"]
    assert len(detected) == 4  # every daemon killed was marked lost, after about the timeout
    assert all(report["lost_timeout_s"] * 0.5 < t < report["lost_timeout_s"] + 10 for t in detected.values())


def test_board_link_benchmark_times_the_firmware_loop_telemetry_ping_and_watchdog() -> None:
    options = ["--seconds", "0.5", "--pings", "10", "--watchdog-trials", "1"]
    report = run_bench("bench/board_link.py", *options)
    for back_end in ("micropython", "cpython"):
        row = report[back_end]
        assert isinstance(row, dict)
        assert row["loop"]["rounds"] > 100 and row["loop"]["longest_ms"] > 0
        assert row["telemetry_hz"] > 30 and row["pings_unanswered"] == 0
        assert 240 < row["watchdog_board_ms"]["p50"] < 400  # 250 ms after the last command, one telemetry period
    assert "MicroPython" in report["micropython"]["back_end"] and "CPython" in report["cpython"]["back_end"]


@pytest.mark.slow
def test_sync_benchmark_times_an_edit_to_running_on_a_machine_that_shares_no_files() -> None:
    report = run_bench("bench/sync.py", "--files", "12")
    assert report["files"] == 12 and report["first_bytes"] > 8 * 400  # every file (8 of the library), the first time
    assert report["unchanged_sent"] == 0 and report["unchanged_bytes"] == 0 and report["unchanged_builds"] == ["cached"]
    assert 400 < report["edit_bytes"] < 500  # the one file edited
    assert report["start_without_sync_s"] > 0 and 0 < report["edit_to_running_s"] < 120
