"""`car doctor` on real graphs: traced with strace, compared with a profile, gaps failed through seccomp."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from car.doctor.arch import calls_of
from tests.debian import debian_program
from tests.helpers import COUNTING_FLOW, ROOT, SINK, car, counting_source, processes_mentioning, write_flow

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("doctor")]  # the module's fixture runs once, on one worker

FOLLOW_LINE = ROOT / "dataflows" / "follow_line.yml"


@pytest.fixture(scope="module")
def strace() -> str:
    """strace, installed when missing; and libseccomp's binding, for failing calls."""
    found = debian_program("strace", "car doctor's tests")
    try:
        import pyseccomp  # noqa: F401  # loads the system's libseccomp.so.2
    except (ImportError, OSError) as exc:
        pytest.skip(f"car doctor's tests need pyseccomp and libseccomp: {exc}")
    return found


def _doctor(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "car", "doctor", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_a_gap_that_kills_and_one_that_does_not_are_told_apart_on_a_two_node_graph(strace: str, tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(1000), sink_py=SINK)
    # a kernel with every x86_64 call but two: libzmq waits with epoll_wait; glibc registers threads with rseq
    profile = tmp_path / "two-short.json"
    calls = sorted(calls_of("x86_64") - {"epoll_wait", "rseq"})
    profile.write_text(json.dumps({"target": "x86_64 without epoll_wait and rseq", "syscalls": calls}))
    options = ["--target", str(profile), "--arch", "x86_64", "--duration", "3", "--inject", "--json", "--keep", "kept"]
    result = _doctor(str(flow), *options, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # a fatal gap
    report = json.loads(result.stdout)
    assert report["nodes"] == ["src", "sink"] and report["target"] == "two-short"
    assert {row["traced"] for row in report["mapped"]} <= {"restart_syscall"}  # x86_64 onto itself: nothing else
    who = {row["who"]: row for row in report["processes"]}
    assert set(who) == {"daemon", "src", "sink"} and all(row["processes"] == 1 for row in who.values())
    assert all(row["threads"] >= 1 and row["calls"] > 100 for row in who.values())
    gaps = {gap["gap"]: gap for gap in report["gaps"]}
    assert set(gaps) == {"epoll_wait", "rseq"}
    assert set(gaps["epoll_wait"]["by"]) == {"daemon", "src", "sink"} and gaps["epoll_wait"]["errno"] == "ENOSYS"
    assert gaps["epoll_wait"]["outcome"] == "fatal" and "killed by SIGABRT" in gaps["epoll_wait"]["detail"]
    assert gaps["rseq"]["outcome"] == "harmless", gaps["rseq"]
    assert (tmp_path / "kept" / "trace.strace").stat().st_size > 0 and (tmp_path / "kept" / "inject-rseq.out").exists()
    assert processes_mentioning(str(tmp_path)) == []  # every process of every run ended (the killed ones too)


def test_the_car_side_of_follow_line_completes_a_lap_with_every_starry_gap_failing(strace: str, tmp_path: Path) -> None:
    report_file = tmp_path / "lap.json"
    options = ["--headless", "--laps", "1", "--report", str(report_file), "--duration", "40"]
    result = _doctor(str(FOLLOW_LINE), "--enforce", "--json", *options, cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == "starryos-2e075ac" and report["arch"] == "riscv64"
    mapped = {row["traced"]: row["target"] for row in report["mapped"]}
    assert mapped["epoll_wait"] == "epoll_pwait" and mapped["arch_prctl"] is None  # what riscv64's C library does
    gaps = {gap["gap"] for gap in report["gaps"]}
    assert "epoll_pwait" not in gaps and "socketpair(SOCK_SEQPACKET)" not in gaps and "ioctl(FIOCLEX)" not in gaps
    assert report["enforced"]["outcome"] in ("harmless", "not reached"), report["enforced"]
    assert any("1 laps done" in line for line in report["enforced"]["said"]), report["enforced"]
    lap = json.loads(report_file.read_text())  # the enforced run's figures (it ran last)
    assert lap["laps"] >= 1 and lap["completed"], lap


def test_bad_input_gets_a_clear_error(strace: str, tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(5), sink_py=SINK)
    (tmp_path / "broken.json").write_text('{"syscalls": ["read"], "flags": [}')
    said = {
        ("--target", "starry-9"): "no target profile `starry-9`",
        ("--target", str(tmp_path / "broken.json")): "broken.json:1:34: not JSON",
        ("--arch", "mips"): "invalid choice: 'mips'",
        ("--hw",): "--hw needs --port",
        ("--duration", "0"): "--duration must be positive",
    }
    for options, expected in said.items():
        result = _doctor(str(flow), *options, cwd=tmp_path, timeout=60)
        assert result.returncode == 2 and expected in result.stderr, (options, result.stderr)
        assert "Traceback" not in result.stderr
    missing = _doctor(str(tmp_path / "nope.yml"), cwd=tmp_path, timeout=60)
    assert missing.returncode == 2 and "nope.yml" in missing.stderr and "Traceback" not in missing.stderr
    listed = car("doctor", "--list-targets")
    assert listed.returncode == 0 and listed.stdout.startswith("starryos-2e075ac (default): Starry-OS/StarryOS@2e075ac")


ANNOUNCER = """
import sys
from car import Node
from car.transport.discovery import Kind, announced, discover

node = Node()
with announced(Kind.DAEMON, "car", "*", 53290):  # as `car daemon --listen '*'` does
    for event in node:
        if event.type == "INPUT":
            found = sorted(f.name for f in discover(1.5, (Kind.DAEMON,)))
            print("found", found, flush=True)
            sys.exit(0 if found == ["car"] else 1)
"""


def test_mdns_on_the_car_side_passes_the_enforced_run(
    strace: str, two_namespaces: tuple[str, str], tmp_path: Path
) -> None:
    """The car announces itself and finds what is announced, every Starry gap failing at once: without a netlink
    socket zeroconf cannot list the interfaces, so the address is the one the mDNS group is reached by."""
    pytest.importorskip("zeroconf", reason="discovery needs the zeroconf package (the dev extra installs it)")
    inside, _ = two_namespaces
    veth = inside[:-1] + "x"  # bench/machines.py's names: the namespace's end of the pair
    subprocess.run(["ip", "-n", inside, "route", "add", "default", "dev", veth], check=True, capture_output=True)
    flow = write_flow(
        tmp_path,
        "nodes:\n  - id: mdns\n    path: mdns.py\n    inputs: {tick: dora/timer/millis/300}\n",
        mdns_py=ANNOUNCER,
    )
    doctor = [sys.executable, "-m", "car", "doctor", str(flow), "--machine", "", "--enforce", "--duration", "4"]
    result = subprocess.run(
        [*("ip", "netns", "exec", inside), *doctor, "--json", "--keep", str(tmp_path / "kept")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    gaps = {row["gap"] for row in report["gaps"]}
    assert "socket(AF_NETLINK)" in gaps  # what zeroconf would list the interfaces with: Starry lacks it
    assert report["enforced"]["outcome"] == "harmless", report["enforced"]
    logs = list((tmp_path / "kept" / "logs").glob("*enforce/mdns.log"))
    assert len(logs) == 1 and "found ['car']" in logs[0].read_text()  # announced and found, on Starry's calls


def test_operators_on_the_car_side_pass_the_enforced_run(strace: str, tmp_path: Path) -> None:
    """dora's operator forms (tests/fixtures/dora_operators): the runtime's labors, its supervisor and its C buffer
    type run on Starry's system calls, every gap failing at once."""
    folder = tmp_path / "ops"
    shutil.copytree(ROOT / "tests" / "fixtures" / "dora_operators", folder)
    ticker = folder / "ticker_op.py"
    ticker.write_text(ticker.read_text().replace('"COUNT", "30"', '"COUNT", "100000"'))  # ticks for the whole run
    result = _doctor("both_forms.yml", "--machine", "", "--enforce", "--duration", "4", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["nodes"] == ["ticker", "template", "pair", "sink"]
    assert report["enforced"]["outcome"] == "harmless", report["enforced"]
    assert any("4 of 4 nodes ok" in line for line in report["enforced"]["said"]), report["enforced"]
    assert {row["who"] for row in report["processes"]} >= {"ticker", "pair"}  # the runtimes were traced
