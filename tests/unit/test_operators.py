"""Operators' decisions in-process: the scheduler's carts, labors and supervisor, and the runtime's routes, ends and
restarts, over an in-memory node (car.operators)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from car.compat.dora import DoraStatus
from car.compat.dora.node import TIMED_OUT
from car.node.drops import DropFlag, DropSource
from car.operators.bounds import InputBounds
from car.operators.loading import OperatorLoadError, load_module, operator_class
from car.operators.runtime import Ending, Runtime
from car.operators.scheduler import Lane, Put, Scheduler
from car.plan.config import NodeConfig, OperatorConfig
from tests.helpers import wait_until

DEADLINE_S = 10.0


# -- the scheduler --------------------------------------------------------------------------------
def test_each_cart_runs_its_items_in_order_one_at_a_time() -> None:
    scheduler = Scheduler(2, 3)
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    running: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    overlaps: list[str] = []

    def runner(name: str) -> Any:
        def run(item: int) -> None:
            running[name] += 1
            if running[name] > 1:
                overlaps.append(name)
            time.sleep(0.0001 * (item % 3))
            seen[name].append(item)
            running[name] -= 1

        return run

    carts = {name: scheduler.cart(name, runner(name)) for name in seen}
    scheduler.start()
    for item in range(200):
        for cart in carts.values():
            scheduler.put(cart, item)
    wait_until("every item", lambda: all(len(items) == 200 for items in seen.values()), timeout=DEADLINE_S, poll=0.001)
    scheduler.close()
    assert all(items == list(range(200)) for items in seen.values())
    assert not overlaps


def test_a_blocked_cart_does_not_hold_up_the_others() -> None:
    """All labors busy, one of them blocked: the supervisor adds a labor for the cart that waits."""
    scheduler = Scheduler(1, 2, stall_s=0.005)
    release = threading.Event()
    done: list[str] = []
    blocked = scheduler.cart("blocked", lambda _: release.wait(DEADLINE_S))
    other = scheduler.cart("other", lambda item: done.append(item))
    scheduler.start()
    scheduler.put(blocked, "wait")
    wait_until(
        "the blocked cart to be running",
        lambda: scheduler.labors == 1 and not blocked.items,
        timeout=DEADLINE_S,
        poll=0.001,
    )
    scheduler.put(other, "go on")
    wait_until(
        "the other cart to run while the first is blocked", lambda: done == ["go on"], timeout=DEADLINE_S, poll=0.001
    )
    assert scheduler.added == 1
    release.set()
    scheduler.close()


def test_a_cart_made_ready_by_a_labor_runs_on_that_labor_without_waking_another() -> None:
    scheduler = Scheduler(2, 2, stall_s=10.0)  # no help from the supervisor within the test
    threads: dict[str, int] = {}
    done = threading.Event()
    second = scheduler.cart("second", lambda _: (threads.__setitem__("second", threading.get_ident()), done.set()))

    def first_run(_: object) -> None:
        threads["first"] = threading.get_ident()
        scheduler.put(second, "from the first")

    first = scheduler.cart("first", first_run)
    scheduler.start()
    wait_until("the labors", lambda: scheduler.labors == 2, timeout=DEADLINE_S, poll=0.001)
    scheduler.put(first, "go")
    assert done.wait(DEADLINE_S)
    assert threads["second"] == threads["first"]
    scheduler.close()


def test_a_scheduler_without_labors_runs_carts_on_the_calling_thread() -> None:
    scheduler = Scheduler(0, 0)
    ran: list[int] = []
    cart = scheduler.cart("only", lambda item: ran.append(threading.get_ident()))
    scheduler.start()
    scheduler.put(cart, 1)
    scheduler.put(cart, 2)
    assert ran == []
    scheduler.run_ready()
    assert ran == [threading.get_ident()] * 2


def test_a_closed_cart_refuses_items() -> None:
    scheduler = Scheduler(0, 0)
    cart = scheduler.cart("c", lambda _: None)
    scheduler.put(cart, 1)
    assert scheduler.close_cart(cart) == [1]
    assert scheduler.put(cart, 2) is Put.REFUSED
    scheduler.run_ready()


# -- the runtime over an in-memory node ---------------------------------------------------------------
class MemoryNode:
    """A runtime's node in memory: events put in by the test, sends recorded."""

    def __init__(self, operators: list[OperatorConfig], policy: str = "never", max_restarts: int = 0):
        inputs = {
            op.port_prefix + name: source
            for op in operators
            for name, source in op.inputs.items()
            if not source.startswith("node/")
        }
        self.config = NodeConfig(
            node_id="node",
            run_id="r",
            run_name="r",
            dataflow="flow.yml",
            receive_endpoint="",
            control_endpoint="",
            daemon_pid=0,
            operators=operators,
            restart_policy=policy,
            max_restarts=max_restarts,
        )
        self.inputs = inputs
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.sent: list[tuple[str, Any]] = []
        self.stop_reasons: list[str] = []
        self.drops = DropFlag()
        self.drop_sources: list[DropSource] = []

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return {"kind": "dora", "type": "ERROR", "error": TIMED_OUT}

    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        self.sent.append((output_id, data))

    def has_readers(self, output_id: str) -> bool:
        return True

    def stop_dataflow(self, reason: str) -> None:
        self.stop_reasons.append(reason)

    def dataflow_descriptor(self) -> dict[str, Any]:
        return {"nodes": [{"id": "node"}]}

    def timestamp(self) -> Any:
        return time.time()

    def count_drops(self, source: DropSource) -> None:
        self.drop_sources.append(source)

    def input(self, name: str, value: Any) -> None:
        self.events.put({"kind": "dora", "type": "INPUT", "id": name, "value": pa.array([value]), "metadata": {}})


def op(
    op_id: str, inputs: dict[str, str], outputs: list[str], single: bool = False, queue_size: int = 10
) -> OperatorConfig:
    sizes = dict.fromkeys(inputs, queue_size)
    return OperatorConfig(op_id, f"{op_id}.py", "" if single else f"{op_id}/", inputs, outputs, queue_sizes=sizes)


class Counter:
    """Counts its inputs and forwards them; raises on the value 13."""

    instances: ClassVar[list[Counter]] = []

    def __init__(self) -> None:
        self.count = 0
        Counter.instances.append(self)

    def on_event(self, event: dict[str, Any], send_output: Any) -> DoraStatus:
        if event["type"] == "INPUT":
            if event["value"][0].as_py() == 13:
                raise RuntimeError("unlucky")
            self.count += 1
            send_output("out", event["value"], event["metadata"])
        return DoraStatus.CONTINUE


class Keeper:
    """Keeps every event it gets."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_event(self, event: dict[str, Any], send_output: Any) -> DoraStatus:
        self.events.append(event)
        return DoraStatus.CONTINUE


def run_in_thread(runtime: Runtime) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(runtime.run()), daemon=True)
    thread.start()
    return thread, codes


def test_a_value_between_operators_goes_by_reference_and_in_order() -> None:
    node = MemoryNode(
        [op("a", {"x": "src/x"}, ["out"], queue_size=50), op("b", {"x": "node/a/out"}, [], queue_size=50)]
    )
    runtime = Runtime(node, {"a": Counter, "b": Keeper})
    thread, codes = run_in_thread(runtime)
    for k in range(100, 150):
        node.input("a/x", k)
    b = runtime.by_id["b"].instance
    wait_until("b's 50 events", lambda: len(b.events) == 50, timeout=DEADLINE_S, poll=0.001)
    assert [e["value"][0].as_py() for e in b.events] == list(range(100, 150))
    sent_arrays = [data for output, data in node.sent if output == "a/out"]
    assert all(e["value"] is sent for e, sent in zip(b.events, sent_arrays, strict=True))  # the same array
    assert all("timestamp" in e["metadata"] for e in b.events)
    node.events.put({"kind": "dora", "type": "STOP", "id": "MANUAL"})
    thread.join(DEADLINE_S)
    assert codes == [0]
    assert b.events[-1]["type"] == "STOP"


def test_a_failed_operator_restarts_in_place_and_its_sibling_keeps_its_state() -> None:
    node = MemoryNode([op("a", {"x": "src/x"}, ["out"]), op("b", {"x": "node/a/out"}, ["out"])], policy="on-failure")
    Counter.instances = []
    runtime = Runtime(node, {"a": Counter, "b": Counter})
    thread, codes = run_in_thread(runtime)
    for value in (1, 2, 13, 4):
        node.input("a/x", value)
    wait_until("b's three values", lambda: runtime.by_id["b"].instance.count == 3, timeout=DEADLINE_S, poll=0.001)
    a, b = runtime.by_id["a"], runtime.by_id["b"]
    assert a.restarts == 1 and b.restarts == 0
    assert a.instance.count == 1  # the new instance saw only the value after the failure
    assert b.instance is Counter.instances[1]  # the sibling is the instance it was, with its count
    node.events.put({"kind": "dora", "type": "STOP", "id": "MANUAL"})
    thread.join(DEADLINE_S)
    assert codes == [0]


def test_a_failed_operator_without_restarts_stops_its_siblings_and_the_node_fails() -> None:
    node = MemoryNode([op("a", {"x": "src/x"}, ["out"]), op("b", {"y": "src/y"}, [])])
    runtime = Runtime(node, {"a": Counter, "b": Keeper})
    thread, codes = run_in_thread(runtime)
    node.input("a/x", 13)
    thread.join(DEADLINE_S)
    assert codes == [1]
    assert runtime.by_id["a"].ending is Ending.FAILED
    assert runtime.by_id["b"].instance.events[-1]["type"] == "STOP"


def test_max_restarts_is_counted_per_operator() -> None:
    node = MemoryNode([op("a", {"x": "src/x"}, ["out"], single=True)], policy="on-failure", max_restarts=2)
    runtime = Runtime(node, {"a": Counter})
    thread, codes = run_in_thread(runtime)
    for _ in range(3):
        node.input("x", 13)
    thread.join(DEADLINE_S)
    assert codes == [1]
    assert runtime.by_id["a"].restarts == 2


def test_inputs_closing_end_the_operators_in_turn() -> None:
    """a's input closes: a gets STOP, so b's input from a closes and b gets STOP after a's last value."""
    node = MemoryNode([op("a", {"x": "src/x"}, ["out"]), op("b", {"x": "node/a/out"}, [])])
    runtime = Runtime(node, {"a": Counter, "b": Keeper})
    thread, codes = run_in_thread(runtime)
    node.input("a/x", 1)
    node.events.put({"kind": "dora", "type": "INPUT_CLOSED", "id": "a/x"})
    node.events.put({"kind": "dora", "type": "STOP", "id": "ALL_INPUTS_CLOSED"})
    thread.join(DEADLINE_S)
    assert codes == [0]
    kinds = [(e["type"], e.get("id")) for e in runtime.by_id["b"].instance.events]
    assert kinds == [("INPUT", "x"), ("INPUT_CLOSED", "x"), ("STOP", "ALL_INPUTS_CLOSED")]


def test_stop_all_asks_the_daemon_to_stop_the_dataflow() -> None:
    class Quitter:
        def on_event(self, event: dict[str, Any], send_output: Any) -> DoraStatus:
            return DoraStatus.STOP_ALL

    node = MemoryNode([op("q", {"x": "src/x"}, [], single=True)])
    runtime = Runtime(node, {"q": Quitter})
    thread, codes = run_in_thread(runtime)
    node.input("x", 1)
    thread.join(DEADLINE_S)
    assert codes == [0]
    assert node.stop_reasons == ["operator `q` returned STOP_ALL"]


def test_sending_on_an_undeclared_output_names_the_declared_ones() -> None:
    class Wrong:
        error = ""

        def on_event(self, event: dict[str, Any], send_output: Any) -> None:
            try:
                send_output("nope", pa.array([1]))
            except ValueError as exc:
                Wrong.error = str(exc)

    node = MemoryNode([op("w", {"x": "src/x"}, ["out"], single=True)])
    runtime = Runtime(node, {"w": Wrong})
    thread, _ = run_in_thread(runtime)
    node.input("x", 1)
    wait_until("the error", lambda: Wrong.error, timeout=DEADLINE_S, poll=0.001)
    assert "has no output `nope` (declared: out)" in Wrong.error
    node.events.put({"kind": "dora", "type": "STOP", "id": "MANUAL"})
    thread.join(DEADLINE_S)


def test_a_lane_keeps_its_newest_items_and_pushes_its_oldest_off_the_cart() -> None:
    scheduler = Scheduler(0, 0)
    ran: list[str] = []
    cart = scheduler.cart("c", ran.append)
    two, one = Lane(2), Lane(1)
    puts = [scheduler.put(cart, f"x{n}", two) for n in range(4)]
    assert puts == [Put.QUEUED, Put.QUEUED, Put.PUSHED_OUT, Put.PUSHED_OUT]
    scheduler.put(cart, "stop")  # in no lane: never pushed out
    scheduler.put(cart, "y0", one)
    assert scheduler.put(cart, "y1", one) is Put.PUSHED_OUT
    assert scheduler.put(cart, "x4", two) is Put.PUSHED_OUT
    scheduler.run_ready()
    assert ran == ["x3", "stop", "y1", "x4"] and (two.pushed_out, one.pushed_out) == (3, 1)
    assert not two.waiting and not one.waiting  # what ran left its lane


def test_input_bounds_count_drops_as_the_node_reports_them() -> None:
    flag = DropFlag()
    bounds = InputBounds(flag)
    lanes = bounds.lanes({"x": ("op/x", 2), "latest": ("op/latest", 1)})
    scheduler = Scheduler(0, 0)
    cart = scheduler.cart("op", lambda _: None)

    def put(name: str) -> None:
        if scheduler.put(cart, {"type": "INPUT", "id": name}, lanes[name]) is Put.PUSHED_OUT:
            bounds.pushed_out(lanes[name])

    for _ in range(3):
        put("latest")
    assert bounds.superseded() == 2 and not flag.pending and not bounds.unreported_drops()  # by design: no drop
    for _ in range(5):
        put("x")
    assert flag.pending and bounds.drop_counts() == {"input op/x": 3}
    assert bounds.unreported_drops() == ["input `op/x` (queue_size 2): 3"] and bounds.unreported_drops() == []


def test_an_operator_that_falls_behind_keeps_its_bound_and_its_sibling_gets_every_event() -> None:
    """b blocks on its first event while 50 more come: it keeps the newest 3 (its queue_size), the rest dropped and
    reported as the node's; a, beside it, handles all 51."""
    blocked, release = threading.Event(), threading.Event()

    class Blocked(Keeper):
        def on_event(self, event: dict[str, Any], send_output: Any) -> DoraStatus:
            if event["type"] == "INPUT" and not self.events:
                blocked.set()
                release.wait(DEADLINE_S)
            return super().on_event(event, send_output)

    node = MemoryNode([op("a", {"x": "src/x"}, [], queue_size=51), op("b", {"x": "src/x"}, [], queue_size=3)])
    node.inputs = {"a/x": "src/x", "b/x": "src/x"}
    runtime = Runtime(node, {"a": Keeper, "b": Blocked}, labors=1)
    thread, codes = run_in_thread(runtime)
    a = runtime.by_id["a"]
    node.input("b/x", 0)
    assert blocked.wait(DEADLINE_S)
    for k in range(51):
        node.input("a/x", k)
        if k:
            node.input("b/x", k)
    wait_until("a's 51 events", lambda: len(a.instance.events) == 51, timeout=DEADLINE_S, poll=0.001)
    release.set()
    b = runtime.by_id["b"]
    wait_until("b's 4 events", lambda: len(b.instance.events) == 4, timeout=DEADLINE_S, poll=0.001)
    node.events.put({"kind": "dora", "type": "STOP", "id": "MANUAL"})
    thread.join(DEADLINE_S)
    assert codes == [0]
    assert [e["value"][0].as_py() for e in a.instance.events if e["type"] == "INPUT"] == list(range(51))
    assert [e["value"][0].as_py() for e in b.instance.events if e["type"] == "INPUT"] == [0, 48, 49, 50]
    assert [source.drop_counts() for source in node.drop_sources] == [{"input b/x": 47}]
    assert node.drops.pending


def test_an_operator_file_that_fails_to_import_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken_op.py"
    broken.write_text("import nonexistent_module_xyz\n")
    with pytest.raises(OperatorLoadError, match="No module named 'nonexistent_module_xyz'"):
        load_module(broken)
    plain = tmp_path / "plain_op.py"
    plain.write_text("x = 1\n")
    with pytest.raises(OperatorLoadError, match="defines no `Operator`"):
        operator_class(load_module(plain))
