"""Code shipped to machines, decided in-process: which files a node takes, how a machine takes them, and the
coordinator's and daemon's part in `car sync` (no socket, no process but the ones a build would start)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from car.daemon import received
from car.daemon.machine import MachineDaemon
from car.plan.files import MAX_FILES, FilesError, node_files
from car.spec.loader import check_text
from car.spec.model import DataflowError, Placement
from car.transport import cluster, control, shipping
from tests.helpers import assert_problems_mention
from tests.unit.test_coordinator import Cluster
from tests.unit.test_machine_daemon import Clock, MemoryIO, VirtualProc


def files_of(folder: Path, node: str, deploy_files: str = "") -> list[str]:
    lines = f"nodes:\n  - id: n\n{node}    deploy: {{machine: car, working_dir: proj{deploy_files}}}\n"
    flow = check_text(lines, "flow.yml", folder / "flow.yml", Placement(frozenset({"laptop"})))
    return node_files(flow, flow.nodes[0])


def touch(folder: Path, *paths: str) -> None:
    for path in paths:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(path)


# -- what a node takes ----------------------------------------------------------------------------------
def test_a_node_takes_its_files_folder_without_runs_caches_or_environments(tmp_path: Path) -> None:
    touch(tmp_path, "robot/sink.py", "robot/lib/a.py", "robot/out/run.mcap", "robot/__pycache__/a.pyc")
    touch(tmp_path, "robot/env/pyvenv.cfg", "robot/env/lib/x.py", "robot/b.pyc", "other/c.py", "flow.yml")
    assert files_of(tmp_path, "    path: robot/sink.py\n") == ["robot/lib/a.py", "robot/sink.py"]


def test_a_node_beside_the_dataflow_takes_the_project(tmp_path: Path) -> None:
    touch(tmp_path, "flow.yml", "a.py", "lib/b.py", ".git/HEAD", "out/x.log")
    assert files_of(tmp_path, "    path: a.py\n") == ["a.py", "flow.yml", "lib/b.py"]


def test_a_module_path_takes_its_package_and_an_installed_module_nothing(tmp_path: Path) -> None:
    touch(tmp_path, "nodes/__init__.py", "nodes/steer.py", "elsewhere.py")
    assert files_of(tmp_path, "    path: -m nodes.steer\n") == ["nodes/__init__.py", "nodes/steer.py"]
    assert files_of(tmp_path, "    path: -m json.tool\n") == []


def test_operators_take_each_operators_folder(tmp_path: Path) -> None:
    touch(tmp_path, "ops/a/op.py", "ops/a/w.onnx", "ops/b/op.py", "ops/c/no.py")
    node = "    operators:\n      - id: a\n        python: ops/a/op.py\n      - id: b\n        python: ops/b/op.py\n"
    assert files_of(tmp_path, node) == ["ops/a/op.py", "ops/a/w.onnx", "ops/b/op.py"]


def test_deploy_files_widen_and_narrow_what_a_node_takes(tmp_path: Path) -> None:
    touch(tmp_path, "robot/sink.py", "robot/tests/t.py", "robot/big/data.bin", "models/pilot.onnx", "models/x.txt")
    files = ", files: ['models/*.onnx', '!tests', '!*.bin']"
    assert files_of(tmp_path, "    path: robot/sink.py\n", files) == ["models/pilot.onnx", "robot/sink.py"]


def test_deploy_files_that_are_not_globs_inside_the_folder_are_located_problems(tmp_path: Path) -> None:
    touch(tmp_path, "a.py")
    for files, expected in (
        ("files: a.py", "node `n`.deploy.files must be a list of globs"),
        ("files: ['../secrets/*']", "`../secrets/*` reaches outside the node's folder"),
        ("files: ['/etc/*']", "`/etc/*` reaches outside the node's folder"),
    ):
        text = f"nodes:\n  - id: n\n    path: a.py\n    deploy: {{machine: car, working_dir: w, {files}}}\n"
        with pytest.raises(DataflowError) as caught:
            check_text(text, "flow.yml", tmp_path / "flow.yml", Placement(frozenset()))
        assert_problems_mention(caught.value.problems, expected)
        assert all(p.location.line == 4 for p in caught.value.problems)


def test_a_folder_of_too_many_files_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "many").mkdir()
    for k in range(MAX_FILES + 1):
        (tmp_path / "many" / f"{k}.py").touch()
    flow = check_text(
        "nodes:\n  - id: n\n    path: many/0.py\n    deploy: {machine: car, working_dir: w}\n",
        "flow.yml",
        tmp_path / "flow.yml",
        Placement(frozenset()),
    )
    with pytest.raises(FilesError, match="more than 5000; give it a `working_dir` of its own"):
        node_files(flow, flow.nodes[0])


# -- how a machine takes them ---------------------------------------------------------------------------
def pieces(path: str, data: bytes, step: int, mode: int = 0o644) -> list[shipping.FilePiece]:
    digest = hashlib.sha256(data).hexdigest()
    return [
        shipping.FilePiece(path=path, offset=at, data=data[at : at + step], size=len(data), sha256=digest, mode=mode)
        for at in range(0, max(len(data), 1), step)
    ]


def offer(path: str, data: bytes, mode: int = 0o644) -> shipping.FileOffer:
    return shipping.FileOffer(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), mode=mode)


def test_a_machine_wants_what_it_lacks_or_holds_otherwise_and_fixes_a_mode_in_place(tmp_path: Path) -> None:
    touch(tmp_path, "same.py", "other.py", "mode.sh")
    (tmp_path / "mode.sh").chmod(0o644)
    offers = [offer("same.py", b"same.py"), offer("other.py", b"changed"), offer("new/x.py", b"x")]
    offers.append(offer("mode.sh", b"mode.sh", 0o755))
    assert received.wanted(tmp_path, offers) == ["other.py", "new/x.py"]
    assert (tmp_path / "mode.sh").stat().st_mode & 0o777 == 0o755


def test_a_file_arrives_whole_across_messages_with_its_mode(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    parts = pieces("bin/run.sh", data, 4000, 0o755)
    assert received.write(tmp_path, parts[:2]) == []  # not complete yet: nothing in place
    assert not (tmp_path / "bin" / "run.sh").exists()
    assert received.write(tmp_path, parts[2:]) == ["bin/run.sh"]
    target = tmp_path / "bin" / "run.sh"
    assert target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o755
    assert not list((tmp_path / "bin").glob(".*car-partial"))


def test_an_empty_file_arrives(tmp_path: Path) -> None:
    assert received.write(tmp_path, pieces("__init__.py", b"", 10)) == ["__init__.py"]
    assert (tmp_path / "__init__.py").read_bytes() == b""


def test_content_that_arrives_changed_keeps_the_old_file(tmp_path: Path) -> None:
    touch(tmp_path, "a.py")
    bad = pieces("a.py", b"new content", 100)[0]
    bad = shipping.FilePiece(path="a.py", offset=0, data=b"new c0ntent", size=11, sha256=bad.sha256)
    with pytest.raises(received.ShipmentError, match="arrived changed"):
        received.write(tmp_path, [bad])
    assert (tmp_path / "a.py").read_text() == "a.py" and not list(tmp_path.glob(".*car-partial"))


def test_a_piece_without_the_ones_before_it_is_refused(tmp_path: Path) -> None:
    later = pieces("a.py", b"0123456789", 4)[1]
    with pytest.raises(received.ShipmentError, match="without the ones before it"):
        received.write(tmp_path, [later])


def test_a_folder_in_the_way_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").mkdir()
    with pytest.raises(received.ShipmentError, match=r"cannot write .*a\.py: Is a directory"):
        received.write(tmp_path, pieces("a.py", b"x", 10))
    assert not list(tmp_path.glob(".*car-partial"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab./\\\0~", max_size=12))
def test_no_path_sent_leaves_its_folder(path: str) -> None:
    folder = Path("/srv/car/proj")
    try:
        target = received.inside(folder, path)
    except received.ShipmentError:
        return
    assert os.path.normpath(target).startswith(str(folder) + os.sep)


# -- the daemon and the coordinator ---------------------------------------------------------------------
def daemon(tmp_path: Path) -> tuple[MachineDaemon, MemoryIO]:
    io = MemoryIO()
    return MachineDaemon("car", tmp_path / "runs", io, say=lambda _: None, clock=Clock()), io


def answer(io: MemoryIO) -> cluster.MachineAnswer:
    (found,) = io.take(cluster.MachineAnswer)
    assert isinstance(found, cluster.MachineAnswer)
    return found


def test_the_daemon_answers_offers_and_writes_in_its_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    machine, io = daemon(tmp_path)
    ask = shipping.OfferFiles("proj", [offer("a.py", b"print(1)\n")])
    machine.handle(cluster.MachineRequest("t1", control.encode(ask)))
    wanted = control.decode(answer(io).reply, shipping.FilesWanted)
    assert wanted.wanted == ["a.py"] and wanted.folder == str(tmp_path / "home" / "proj")
    machine.handle(
        cluster.MachineRequest("t2", control.encode(shipping.WriteFiles("proj", pieces("a.py", b"print(1)\n", 4))))
    )
    assert control.decode(answer(io).reply, shipping.FilesWritten).written == ["a.py"]
    assert (tmp_path / "home" / "proj" / "a.py").read_text() == "print(1)\n"
    escape = shipping.WriteFiles("proj", pieces("../../etc/x", b"x", 4))
    machine.handle(cluster.MachineRequest("t3", control.encode(escape)))
    refused = answer(io)
    assert refused.token == "t3" and "machine `car`: refused `../../etc/x`" in refused.error
    machine.handle(cluster.MachineRequest("t4", b"\x93garbage"))
    assert answer(io).error.startswith("machine `car`: not a control message")


def test_the_daemon_builds_in_a_process_and_answers_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "rt"))
    machine, io = daemon(tmp_path)
    started: list[tuple[Path, bool]] = []

    def start_build(file: Path, name: str, force: bool, folder: Path) -> object:
        started.append((file, force))
        (folder / "report.json").write_text('{"nodes": [{"node": "sink", "outcome": "ran"}]}')
        (folder / "said.txt").write_text("built")
        io.procs.append(VirtualProc(1))
        return io.procs[-1]

    io.start_build = start_build  # type: ignore[method-assign]
    request = shipping.BuildHere("nodes: []\n", "/laptop/proj/flow.yml", True)
    machine.handle(cluster.MachineRequest("b1", control.encode(request)))
    ((file, force),) = started
    assert file.name == "flow.yml" and file.read_text() == "nodes: []\n" and force
    machine.tick(0.0)
    assert io.take(cluster.MachineAnswer) == []  # still building: heartbeats go on meanwhile
    io.procs[-1].code = 0
    machine.tick(0.0)
    built = control.decode(answer(io).reply, shipping.Built)
    assert built.code == 0 and "sink" in built.report and built.said == "built"
    assert not file.parent.exists()  # its folder went with it


def test_the_coordinator_relays_a_machine_request_and_its_answer_or_says_why_not() -> None:
    two = Cluster()
    two.join("car", "10.0.0.2")
    two.to("car")
    request = control.encode(shipping.OfferFiles("proj", []))
    assert two.ask(cluster.AskMachine(machine="car", request=request, timeout=60)) == []
    (relayed,) = two.to("car", cluster.MachineRequest)
    assert relayed.request == request
    reply = control.encode(shipping.FilesWanted(["a.py"], "/home/pi/proj"))
    two.daemons.deliver(b"car", cluster.MachineAnswer("car", relayed.token, reply))
    (answered,) = two.clients.take(b"cli")
    assert isinstance(answered, cluster.MachineReply) and answered.reply == reply
    (unknown,) = two.ask(cluster.AskMachine(machine="robot", request=request))
    assert isinstance(unknown, cluster.Declined) and "machine robot not connected (connected: car)" in unknown.error
    two.ask(cluster.AskMachine(machine="car", request=request, timeout=60))
    two.clock.now += 30
    two.coordinator.expire(two.clock.now)
    assert two.clients.take(b"cli") == []  # a build may take long: the command's own timeout holds
    two.clock.now += 31
    two.coordinator.expire(two.clock.now)
    (late,) = two.clients.take(b"cli")
    assert isinstance(late, cluster.Declined) and "machine `car` did not answer" in late.error


def test_random_offers_are_wanted_exactly_when_they_differ(tmp_path: Path) -> None:
    rng = random.Random(5)
    offers = []
    for k in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 50)))
        if rng.random() < 0.5:
            (tmp_path / f"{k}").write_bytes(data if rng.random() < 0.5 else data + b"!")
        offers.append(offer(f"{k}", data))
    expected = [
        o.path
        for o in offers
        if not (tmp_path / o.path).is_file() or hashlib.sha256((tmp_path / o.path).read_bytes()).hexdigest() != o.sha256
    ]
    assert received.wanted(tmp_path, offers) == expected
