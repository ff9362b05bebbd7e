"""Typed control messages: one encoding, a version, clear errors; the daemon refuses what it cannot read."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from car.transport import control
from car.transport.states import NodeStatus


def test_every_message_round_trips_with_its_type_and_fields() -> None:
    messages: list[control.ControlMessage] = [
        control.Ready("camera", 1234),
        control.Bye("camera", 10, 20, {"input image": 3}, 7),
        control.Subscribe(99, "ipc:///tmp/x.sock", ["camera/image", "*"], 5),
        control.Subscribed("ab12", [control.SubscribedOutput("camera/image", "/dev/shm/car-x-0.0-", 4)]),
        control.RunStatus(
            "run",
            "id",
            "f.yml",
            "/d",
            1,
            2.5,
            [control.NodeRow(id="a", state=NodeStatus.RUNNING, pid=3, restarts=0, rate=1.5, status="ok")],
            1,
        ),
        control.AddSubscriber("image", "ab12", "ipc:///tmp/x.sock", 10, 4),
        control.Flushed(["reader"]),
    ]
    for message in messages:
        assert control.decode(control.encode(message), control.ControlMessage) == message


def test_a_peer_of_another_version_is_told_to_use_one_version() -> None:
    raw = msgpack.packb({"v": control.VERSION + 1, "t": "ready", "node": "a"})
    with pytest.raises(control.ControlError, match=r"version 2, this side speaks 1: every process of a run"):
        control.decode(raw, control.NodeToDaemon)


def test_unknown_types_wrong_directions_and_bad_fields_are_named() -> None:
    def raw(**body: object) -> bytes:
        return msgpack.packb({"v": control.VERSION, **body})  # type: ignore[no-any-return]

    with pytest.raises(control.ControlError, match="unknown control message type 'launch_missiles'"):
        control.decode(raw(t="launch_missiles"), control.ControlMessage)
    with pytest.raises(control.ControlError, match="a 'ready' message is not a DaemonReply message"):
        control.decode(raw(t="ready", node="a"), control.DaemonReply)
    with pytest.raises(control.ControlError, match=r"Ready.pid should be int, not str"):
        control.decode(raw(t="ready", node="a", pid="12"), control.NodeToDaemon)
    with pytest.raises(control.ControlError, match="Ready has no field colour"):
        control.decode(raw(t="ready", node="a", colour="red"), control.NodeToDaemon)
    with pytest.raises(control.ControlError, match=r"Subscribed\.outputs is not a SubscribedOutput"):
        control.decode(raw(t="subscribed", subscription="x", outputs=[3]), control.DaemonReply)
    with pytest.raises(control.ControlError, match="missing 1 required positional argument: 'node'"):
        control.decode(raw(t="ready"), control.NodeToDaemon)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.dictionaries(
        st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5) | st.lists(st.integers(0, 9))
    )
)
def test_no_input_makes_decoding_raise_anything_but_a_control_error(data: bytes | dict[str, object]) -> None:
    raw = data if isinstance(data, bytes) else msgpack.packb({"v": control.VERSION, "t": "stats", **data})
    try:
        control.decode(raw, control.ControlMessage)
    except control.ControlError:
        pass
