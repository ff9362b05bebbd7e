"""The benchmarks run and report what they promise (their numbers are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

EVERY_CASE = {"small_1hop", "small_2hop", "frame_1hop", "frame_2hop", "frame_1hop_loaned", "frame_1hop_subscribed"}
EVERY_CASE |= {"frame_1hop_raw"}  # car only: dora's source through send_output_raw
ARROW_CASES = {"arrow_uint8_1hop", "arrow_struct_1hop"}  # car and dora only: dora's own nodes, run by both
EVERY_CASE |= ARROW_CASES


def run_bench(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.slow
def test_latency_benchmark_reports_every_case_and_accounts_for_every_message() -> None:
    """car alone, not pinned (the comparison test below runs every peer, pinned). Two seconds a case: a run's
    clock starts before its nodes are up, and on a busy machine (the suite's other worker) dora's Arrow nodes took
    a second to import pyarrow, leaving 6 samples of a one-second window."""
    options = ["--peers", "car", "--seconds", "2.0", "--repeat", "1", "--count", "5000", "--no-machines"]
    report = run_bench("bench/compare.py", *options)
    assert report["peers"] == ["car"]
    cases = report["cases"]
    assert isinstance(cases, dict)
    assert set(cases) == EVERY_CASE
    assert set(cases.pop("frame_1hop_loaned")) == {"car"}
    raw = cases.pop("frame_1hop_raw")
    assert set(raw) == {"car"} and raw["car"]["runs"][0]["n"] > 10  # dora's zero-copy source ran under car
    subscribed = cases.pop("frame_1hop_subscribed")["car"]
    assert subscribed["p50_us"] > 0 and subscribed["runs"][0]["subscriber"]["p50_us"] > 0  # both ends measured
    assert subscribed["runs"][0]["subscriber"]["n"] > 10  # the subscriber joined and got the frames
    for case in ARROW_CASES:
        row = cases.pop(case)
        assert set(row) == {"car"} and row["car"]["runs"][0]["n"] > 10, case  # dora's nodes ran under car
    every_cpu = sorted(os.sched_getaffinity(0))
    for row in cases.values():
        assert row["car"]["p50_us"] > 0 and row["car"]["runs"][0]["sink_cpus"] == every_cpu  # not pinned
    throughput = report["throughput"]
    assert isinstance(throughput, dict)
    car = throughput["car"]
    assert car["sent"] == 5000 and car["accounted"] is True
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["frame_subscriber_p50_us"] > 0 and "frame_subscribed_sink_p50_added_us" in ratios
    assert ratios["small_p50_car_over_dora"] is None  # dora was not asked for
    operators = report["operators"]
    assert isinstance(operators, dict)
    assert set(operators["cases"]) == {"operator_hop", "operator_process_hop", "chain3_operators", "chain3_nodes"}
    assert all(row["p50_us"] > 0 and row["runs"][0]["n"] > 10 for row in operators["cases"].values())
    assert operators["restart"]["operator_ms"] > 0 and operators["restart"]["node_ms"] > 0
    assert all(0 < share <= 1.1 for share in operators["gil"].values())
    assert set(operators["ratios"]) == {
        "operator_hop_over_process_hop",
        "operator_hop_over_node_hop",
        "chain3_operators_over_nodes",
        "operator_restart_over_node_restart",
    }


@pytest.mark.slow
@pytest.mark.timeout(480)  # every case once, and the cross-machine ones: three clusters of two daemons
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs two CPUs to put the nodes on")
def test_compare_runs_dora_and_iceoryx2_side_by_side_with_every_peer_pinned_alike() -> None:
    """Installs dora and iceoryx2 into bench/.dora-venv and bench/.iceoryx2-venv from PyPI the first time (about
    20 s). One run for every peer: car's own cases, measured once, are what each peer is compared with."""
    shm = Path("/dev/shm")
    before = set(shm.glob("iox2_*"))
    report = run_bench(
        "bench/compare.py",
        "--peers",
        "car,dora,zmq,iceoryx2",
        "--seconds",
        "1.5",
        "--repeat",
        "1",
        "--count",
        "5000",
        "--pin",
        "--no-operators",  # car's own, measured by the test above: not what this one compares
    )
    missing = [f"{peer}: {report[peer]}" for peer in ("dora", "iceoryx2") if peer not in report["peers"]]
    if missing:
        pytest.skip(f"could not be installed or run here: {'; '.join(missing)}")
    assert report["pinned"] is True and str(report["iceoryx2"]).startswith("iceoryx2 0.10")
    cases = report["cases"]
    assert isinstance(cases, dict)
    assert set(cases) == EVERY_CASE
    first, second = sorted(os.sched_getaffinity(0))[:2]
    assert set(cases.pop("frame_1hop_subscribed")) == {"car"}  # car's subscribers: no peer has them
    assert set(cases.pop("frame_1hop_raw")) == {"car"}  # dora's counterpart is its frame_1hop_loaned row
    for case in ARROW_CASES:
        assert set(cases[case]) == {"car", "dora"}, case  # dora's own nodes, run by both
    for case, row in cases.items():
        assert row["dora"]["p50_us"] > 0 and row["dora"]["runs"][0]["n"] > 10
        if case not in ARROW_CASES:
            runs = row["iceoryx2"]["runs"]
            assert runs[0]["n"] > 10 and row["iceoryx2"]["p50_us"] > 0, case  # samples arrived and were timed
        sink_cpu = first if "2hop" in case else second  # source on the first CPU, then alternating
        for peer, found in row.items():
            assert found["runs"][0]["sink_cpus"] == [sink_cpu], (case, peer)
    assert set(shm.glob("iox2_*")) <= before  # iceoryx2's shared memory went with its processes
    throughput = report["throughput"]
    assert isinstance(throughput, dict) and "iceoryx2" not in throughput  # iceoryx2 has no throughput case
    dora = throughput["dora"]
    assert dora["sent"] == 5000 and dora["received"] + dora["dropped"] == 5000
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    for key in (
        "small_p50_car_over_dora",
        "frame_p50_car_over_dora",
        "small_p50_car_over_zmq",
        "frame_p50_car_over_zmq",
        "frame_loaned_p50_car_over_dora",
        "frame_raw_p50_car_over_dora",
        "throughput_car_over_dora",
        "arrow_uint8_p50_car_over_dora",
        "arrow_struct_p50_car_over_dora",
        "small_p50_car_over_iceoryx2",
        "frame_p50_car_over_iceoryx2",
        "frame_loaned_p50_car_over_iceoryx2",
    ):
        assert isinstance(ratios[key], float) and ratios[key] > 0, key
    split = report["machines"]
    assert isinstance(split, dict) and split["netns"] == "not asked for"
    for case in ("small_split", "frame_split"):  # two daemons, tcp:// between them: car, with keys, and dora
        assert set(split["cases"][case]) == {"car", "car_keys", "dora"}  # (--netns adds car_keys_netns)
        assert all(row["runs"][0]["n"] > 10 for row in split["cases"][case].values()), case
    assert set(split["throughput"]) == {"car", "car_keys", "dora"}
    for key in ("small_split_p50_car_over_dora", "frame_split_p50_car_over_dora", "throughput_split_car_over_dora"):
        assert isinstance(ratios[key], float) and ratios[key] > 0, key


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
    report = run_bench("bench/sync.py", "--files", "20")
    assert report["files"] == 20 and report["first_bytes"] > 16 * 400  # every file (16 of the library), the first time
    assert report["unchanged_sent"] == 0 and report["unchanged_bytes"] == 0 and report["unchanged_builds"] == ["cached"]
    assert 400 < report["edit_bytes"] < 500  # the one file edited
    assert report["start_without_sync_s"] > 0 and 0 < report["edit_to_running_s"] < 120
