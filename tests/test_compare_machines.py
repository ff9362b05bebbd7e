"""bench/machines.py: one pipeline split over two machines' daemons on this host, node to node over tcp://: car,
car with CurveZMQ keys, and dora's two daemons (bench/compare.py runs it as its cross-machine part)."""

from __future__ import annotations

import pytest

from tests.test_bench import run_bench

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_the_cross_machine_cases_run_for_car_with_and_without_keys_and_for_dora() -> None:
    report = run_bench("bench/machines.py", "--seconds", "1.0", "--count", "5000")
    assert report["netns"] == "not asked for"
    peers = {"car", "car_keys", "dora"} if "dora" in report["throughput"] else {"car", "car_keys"}
    for case in ("small_split", "frame_split"):  # two daemons, tcp:// between them: car, with keys, and dora
        assert set(report["cases"][case]) == peers  # (--netns adds car_keys_netns)
        assert all(row["n"] > 10 and row["p50_us"] > 0 for row in report["cases"][case].values()), case
    assert set(report["throughput"]) == peers
    if peers == {"car", "car_keys"}:
        pytest.skip("dora could not be installed here: car's cases passed")
