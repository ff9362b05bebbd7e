"""bench/compare.py: car's own cases and dora, bare pyzmq and iceoryx2 side by side, pinned alike (a file of its own,
and the cross-machine cases in another: the longest tests, so that the suite's two workers share them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_bench import run_bench

EVERY_CASE = {"small_1hop", "small_2hop", "frame_1hop", "frame_2hop", "frame_1hop_loaned", "frame_1hop_subscribed"}
EVERY_CASE |= {"frame_1hop_raw"}  # car only: dora's source through send_output_raw
ARROW_CASES = {"arrow_uint8_1hop", "arrow_struct_1hop"}  # car and dora only: dora's own nodes, run by both
EVERY_CASE |= ARROW_CASES


def assert_cars_own(report: dict[str, object]) -> None:
    """What car measured of itself in a compare.py run: every case, both ends of a subscribed frame, dora's nodes
    and zero-copy source under car, the operators, and the throughput case with every message accounted for."""
    cases = report["cases"]
    assert isinstance(cases, dict) and set(cases) == EVERY_CASE
    raw = cases["frame_1hop_raw"]["car"]
    assert raw["runs"][0]["n"] > 10  # dora's zero-copy source ran under car
    subscribed = cases["frame_1hop_subscribed"]["car"]
    assert subscribed["p50_us"] > 0 and subscribed["runs"][0]["subscriber"]["p50_us"] > 0  # both ends measured
    assert subscribed["runs"][0]["subscriber"]["n"] > 10  # the subscriber joined and got the frames
    for case in ARROW_CASES:
        assert cases[case]["car"]["runs"][0]["n"] > 10, case  # dora's nodes ran under car
    for row in cases.values():
        assert row["car"]["p50_us"] > 0
    throughput = report["throughput"]
    assert isinstance(throughput, dict)
    assert throughput["car"]["sent"] == 5000 and throughput["car"]["accounted"] is True
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["frame_subscriber_p50_us"] > 0 and "frame_subscribed_sink_p50_added_us" in ratios
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
@pytest.mark.timeout(480)  # every case once
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs two CPUs to put the nodes on")
def test_compare_reports_every_case_of_car_and_of_dora_and_iceoryx2_pinned_alike() -> None:
    """Installs dora and iceoryx2 into bench/.dora-venv and bench/.iceoryx2-venv from PyPI the first time (about
    20 s). One run for every peer: car's own cases (its subscribers, dora's nodes under car, the operators, every
    message of the throughput case accounted for), measured once, are what each peer is compared with."""
    shm = Path("/dev/shm")
    before = set(shm.glob("iox2_*"))
    options = ["--peers", "car,dora,zmq,iceoryx2", "--seconds", "1.0", "--repeat", "1", "--count", "5000", "--pin"]
    options.append("--no-machines")  # the cross-machine cases: tests/test_compare_machines.py, beside this one
    report = run_bench("bench/compare.py", *options)
    assert_cars_own(report)
    missing = [f"{peer}: {report[peer]}" for peer in ("dora", "iceoryx2") if peer not in report["peers"]]
    if missing:
        pytest.skip(f"could not be installed or run here (car's own cases passed): {'; '.join(missing)}")
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
        assert row["dora"]["p50_us"] > 0 and row["dora"]["runs"][0]["n"] > 5  # dora starts its nodes slower
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
    assert report["machines"]["cases"] == {}  # asked not to: they are tests/test_compare_machines.py's
