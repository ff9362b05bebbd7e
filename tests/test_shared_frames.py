"""Large arrays through shared memory: real mappings in /dev/shm, real node processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from car.transport import shm, wire
from car.transport.hlc import Timestamp
from car.transport.shm import (
    FINISHED,
    MAX_SLOTS,
    FrameReader,
    FrameWriter,
    StaleFrameError,
    finish_reader,
    reset_reader,
)
from tests.helpers import car, launch, write_flow

FRAME = (480, 640, 3)


def frame(n: int) -> np.ndarray:
    """A frame whose every byte says which frame it is."""
    return np.full(FRAME, n % 251, np.uint8)


def test_a_frame_goes_through_a_slot_and_back(tmp_path: Path) -> None:
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=3)
    header = wire.encode(wire.KIND_DATA, b"cam/image", Timestamp(5, 0), frame(7), {"n": 7})
    descriptor = writer.put(header[1])
    assert descriptor is not None
    message = wire.shared(header[0], descriptor)
    assert message[2] & wire.SHARED and not message[2] & wire.PAYLOAD_FRAME

    reader = FrameReader()
    held, slot, seq, nbytes = reader.hold(wire.inline_payload(message), line=0, copies=1)
    decoded = wire.decode(message, reader.array_buffer(held, slot, seq, nbytes))
    reader.hand_to(decoded.value, held, slot)
    assert decoded.value.shape == FRAME and decoded.metadata == {"n": 7}
    assert not decoded.value.flags.writeable
    assert np.array_equal(decoded.value, frame(7))
    writer.close()


def test_a_held_slot_is_never_reused_and_is_freed_when_the_array_goes(tmp_path: Path) -> None:
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=3)
    reader = FrameReader()
    kept = []
    for n in range(3):  # the reader keeps all three frames: every slot is held
        descriptor = writer.put(memoryview(frame(n)))
        assert descriptor is not None
        held, slot, seq, nbytes = reader.hold(descriptor, 0, 1)
        array = np.ndarray(FRAME, np.uint8, reader.array_buffer(held, slot, seq, nbytes))
        reader.hand_to(array, held, slot)  # the slot is held while the array (or a view of it) lives
        kept.append(array[100:200])  # a view of the array keeps its slot too
        del array
    old_file = writer.name
    grown = writer.put(memoryview(frame(3)))  # nothing free: a new file with twice the slots
    assert grown is not None and FrameReader.parse(grown)[3] != old_file and writer.slots == 6
    assert [int(view[0, 0, 0]) for view in kept] == [0, 1, 2]  # untouched
    kept.pop(1)  # the middle frame is let go
    assert writer.put(memoryview(frame(4))) is not None
    assert [int(view[0, 0, 0]) for view in kept] == [0, 2]
    writer.close()


def test_past_the_most_slots_the_sender_is_told_to_copy(tmp_path: Path) -> None:
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=MAX_SLOTS)
    reader = FrameReader()
    payload = memoryview(bytes(8192))
    holds = []
    for _ in range(MAX_SLOTS):
        descriptor = writer.put(payload)
        assert descriptor is not None
        holds.append(reader.hold(descriptor, 0, 1))
    assert writer.put(payload) is None  # every one of the most slots is held: send this one by copy
    held, slot, _, _ = holds[5]
    reader.release(held, slot)
    assert writer.put(payload) is not None
    writer.close()


def test_a_reused_slot_is_reported_not_read(tmp_path: Path) -> None:
    prefix = f"{tmp_path}/car-t-0.0-"
    writer = FrameWriter(prefix, readers=1, slots=2)
    reader = FrameReader()
    first = writer.put(memoryview(frame(1)))
    assert first is not None
    held, slot, seq, nbytes = reader.hold(first, 0, 1)
    finish_reader(prefix, 0)  # as after the reader left: the sender may reuse everything
    for n in range(2, 4):
        assert writer.put(memoryview(frame(n))) is not None
    with pytest.raises(StaleFrameError, match="reused"):
        reader.array_buffer(held, slot, seq, nbytes)
    reset_reader(prefix, 0)  # a restarted reader holds everything until it reads: the sender moves on
    moved = writer.put(memoryview(frame(4)))
    assert moved is not None and FrameReader.parse(moved)[3] != FrameReader.parse(first)[3]
    writer.close()


def test_a_larger_array_gets_larger_slots(tmp_path: Path) -> None:
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=2)
    small = writer.put(memoryview(np.ones(70_000, np.uint8)))
    large = writer.put(memoryview(np.ones(2_000_000, np.uint8)))
    assert small is not None and large is not None
    reader = FrameReader()
    names = {FrameReader.parse(d)[3] for d in (small, large)}
    assert len(names) == 2  # a second file; the first stays readable
    held, slot, seq, nbytes = reader.hold(small, 0, 1)
    buffer = reader.array_buffer(held, slot, seq, nbytes)
    assert nbytes == 70_000 and bytes(buffer[:3]) == b"\x01\x01\x01"
    writer.close()


CAMERA = """
        nodes:
          - id: camera
            path: camera.py
            inputs: {tick: dora/timer/millis/5}
            outputs: [image]
"""
SOURCE = """
    import numpy as np
    from car import Node
    node = Node()
    n = 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            node.send_output("image", np.full((480, 640, 3), n % 251, np.uint8), {"n": n})
            if n == 60:
                break
"""

# Keeps every frame for the whole run (more than the ring can ever have slots) and checks,
# at the end, that no frame it kept changed under it: the sender added slots, and then
# copied frames through the link while every slot was held.
HOARDER = """
    import json, time
    from car import Node
    node = Node()
    kept, seen, torn = [], [], 0
    for event in node:
        if event.type == "INPUT":
            n, image = event.metadata["n"], event.value
            if not (image == n % 251).all():
                torn += 1
            seen.append(n)
            kept.append((n, image))
            time.sleep(0.002)
    changed = [n for n, image in kept if not (image == n % 251).all()]
    report = {"seen": seen, "torn": torn, "changed": changed, "readonly": not kept[0][1].flags.writeable,
              "dropped": sum(node.drop_counts().values())}
    json.dump({**report, "run": node.config.run_id}, open("hoarder.json", "w"))
"""


HOARDED = 180  # more than the files of 13, 26, 52 and 64 slots the sender makes hold together


def test_frames_between_processes_are_never_torn_even_when_a_reader_hoards_them(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        CAMERA
        + """
          - id: hoarder
            path: hoarder.py
            inputs: {image: {source: camera/image, queue_size: 10}}
        """,
        camera_py=SOURCE.replace("(480, 640, 3)", "(160, 240, 3)").replace("n == 60", f"n == {HOARDED}"),
        hoarder_py=HOARDER,
    )
    launch(flow)
    report = json.loads((tmp_path / "hoarder.json").read_text())
    # a node that is still starting may drop the oldest frames of its queue (counted)
    assert len(report["seen"]) + report["dropped"] == HOARDED and report["seen"] == sorted(report["seen"])
    assert report["torn"] == 0 and report["changed"] == [] and report["readonly"]
    camera_log = (tmp_path / "out").glob("*/camera.log")
    assert any("copying frames through the link" in log.read_text() for log in camera_log)
    assert not list(Path("/dev/shm").glob(f"car-{report['run']}-*")), "the run left shared-memory files behind"


def test_a_reader_that_exits_does_not_hold_the_ring(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        CAMERA
        + """
          - id: quitter
            path: quitter.py
            inputs: {image: camera/image}
          - id: reader
            path: reader.py
            inputs: {image: {source: camera/image, queue_size: 20}}
        """,
        camera_py=SOURCE,
        quitter_py="""
            from car import Node
            node = Node()
            for event in node:
                break
        """,
        reader_py="""
            import json
            from car import Node
            node = Node()
            seen = [e.metadata["n"] for e in node if e.type == "INPUT" and (e.value == e.metadata["n"] % 251).all()]
            json.dump({"seen": seen, "dropped": sum(node.drop_counts().values())}, open("reader.json", "w"))
        """,
    )
    launch(flow)
    report = json.loads((tmp_path / "reader.json").read_text())
    assert len(report["seen"]) + report["dropped"] == 60 and report["seen"] == sorted(report["seen"])
    camera_log = next((tmp_path / "out").glob("*/camera.log")).read_text()
    assert "copying frames" not in camera_log  # the quitter's line was marked finished


def test_a_reader_that_left_stays_left_when_the_slots_grow(tmp_path: Path) -> None:
    prefix = f"{tmp_path}/car-t-0.0-"
    writer = FrameWriter(prefix, readers=1, slots=2)
    assert writer.put(memoryview(np.ones(70_000, np.uint8))) is not None
    finish_reader(prefix, 0)
    for _ in range(3):  # a larger array: a new file, where the reader is still gone
        assert writer.put(memoryview(frame(1))) is not None
    writer.close()


def test_finished_mark_is_the_reader_line(tmp_path: Path) -> None:
    prefix = f"{tmp_path}/car-t-0.0-"
    writer = FrameWriter(prefix, readers=2, slots=2)
    assert writer.put(memoryview(frame(1))) is not None
    finish_reader(prefix, 1)
    assert writer.segment is not None
    assert writer.segment.readers_state(2, (), ()).received == 0  # line 0 has not received anything, line 1 left
    finish_reader(prefix, 0)
    assert writer.segment.readers_state(2, (), ()) == (FINISHED, FINISHED, 0)
    writer.close()


def test_a_subscriber_line_keeps_what_it_holds_but_never_holds_the_sender_up(tmp_path: Path) -> None:
    """A node reader's line keeps slots it has yet to receive; a subscriber's line only the slots it holds."""
    prefix = f"{tmp_path}/car-t-0.0-"
    writer = FrameWriter(prefix, readers=1, slots=2, lines=3)
    writer.subscribe(2)  # line 2: a subscriber that never reads
    reader, subscriber = FrameReader(), FrameReader()
    for n in range(1, 9):  # the node reader takes and lets go of each frame; the subscriber takes none
        descriptor = writer.put(memoryview(frame(n)))
        assert descriptor is not None
        held = reader.hold(descriptor, 0, 1)
        reader.release(held[0], held[1])
    assert writer.slots == 2 and writer.count == 1  # it neither grew its file nor copied: nothing was held up
    descriptor = writer.put(memoryview(frame(9)))
    assert descriptor is not None
    held, slot, seq, nbytes = subscriber.hold(descriptor, 2, 1)  # now the subscriber holds frame 9
    assert (writer.segment is not None) and writer.segment.readers_state(1, (2,), ()).held == 1 << slot
    kept = np.ndarray((nbytes,), np.uint8, subscriber.array_buffer(held, slot, seq, nbytes))
    for n in range(10, 14):  # the ring goes on around the subscriber's slot
        descriptor = writer.put(memoryview(frame(n)))
        assert descriptor is not None and FrameReader.parse(descriptor)[0] != slot
        taken = reader.hold(descriptor, 0, 1)
        reader.release(taken[0], taken[1])
    assert int(kept.min()) == int(kept.max()) == 9  # what it holds stays whole
    writer.close()


def test_files_of_a_killed_run_are_removed_by_the_next_car_command(tmp_path: Path) -> None:
    code = (
        "import os, pathlib, sys\n"
        "from car.plan.runs import create_run\n"
        f"info = create_run('ghost', 'x.yml', {str(tmp_path)!r})\n"
        "pathlib.Path(f'/dev/shm/car-{info.run_id}-0.0-1-1').write_bytes(b'x')\n"
        "print(info.run_id)\n"
    )
    run_id = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(f"/dev/shm/car-{run_id}-0.0-1-1").exists()
    car("list")
    assert not Path(f"/dev/shm/car-{run_id}-0.0-1-1").exists()


def test_a_reader_notified_before_the_copy_ends_waits_for_it(tmp_path: Path) -> None:
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=2)
    payload = memoryview(frame(9))
    descriptor = writer.reserve(payload)  # the notification goes out first...
    assert descriptor is not None
    reader = FrameReader()
    held, slot, seq, nbytes = reader.hold(descriptor, 0, 1)
    filler = threading.Timer(0.05, writer.fill, [payload])  # ...and the copy ends 50 ms later
    filler.start()
    buffer = reader.array_buffer(held, slot, seq, nbytes)
    filler.join()
    assert np.array_equal(np.frombuffer(buffer, np.uint8).reshape(FRAME), frame(9))
    writer.close()


def test_a_copy_that_never_ends_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shm, "WRITE_TIMEOUT_S", 0.05)
    writer = FrameWriter(f"{tmp_path}/car-t-0.0-", readers=1, slots=2)
    descriptor = writer.reserve(memoryview(frame(1)))  # as if the sender died before fill()
    assert descriptor is not None
    reader = FrameReader()
    held, slot, seq, nbytes = reader.hold(descriptor, 0, 1)
    with pytest.raises(StaleFrameError, match="never finished"):
        reader.array_buffer(held, slot, seq, nbytes)
    writer.close()


def test_a_restarted_reader_gets_whole_frames(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        CAMERA
        + """
          - id: flaky
            path: flaky.py
            inputs: {image: {source: camera/image, queue_size: 4}}
            restart_policy: on-failure
            max_restarts: 1
            restart_delay: 0.05
        """,
        camera_py=SOURCE,
        flaky_py="""
            import json, os, sys
            from car import Node
            node = Node()
            first_life = not os.path.exists("crashed")
            seen = []
            for event in node:
                if event.type == "INPUT":
                    n = event.metadata["n"]
                    seen.append([n, bool((event.value == n % 251).all())])
                    if first_life and len(seen) == 5:
                        open("crashed", "w").close()
                        sys.exit(1)  # dies holding frames
            json.dump({"seen": seen, "dropped": sum(node.drop_counts().values())}, open("flaky.json", "w"))
        """,
    )
    launch(flow)
    report = json.loads((tmp_path / "flaky.json").read_text())
    assert report["seen"], "the restarted reader got no frame"
    assert all(intact for _, intact in report["seen"])
    assert report["seen"][-1][0] == 60  # it read to the end


def test_a_subscriber_that_keeps_frames_gets_every_one_while_the_ring_can_grow(tmp_path: Path) -> None:
    """A recorder's line (`keep`): the sender takes other slots, or grows its ring, rather than reuse a slot the
    recorder has yet to receive; past MAX_SLOTS it reuses one (the recorder loses that frame, counted), never
    holding the sender up or making it copy."""
    prefix = f"{tmp_path}/car-t-0.0-"
    writer = FrameWriter(prefix, readers=1, slots=2, lines=3)
    writer.subscribe(2, keep=True)
    reader, recorder = FrameReader(), FrameReader()
    pending = []  # notifications the recorder has yet to take: it fell behind
    for n in range(1, 21):
        descriptor = writer.put(memoryview(frame(n)))
        assert descriptor is not None  # never a copy: there is always a slot
        taken = reader.hold(descriptor, 0, 1)  # the node reader keeps up
        reader.release(taken[0], taken[1])
        pending.append(descriptor)
    assert writer.slots == 16  # it grew (2, 4, 8, 16: a new file each) rather than reuse what the recorder lacks
    for n, descriptor in enumerate(pending, start=1):  # the recorder catches up: every frame whole
        held, slot, seq, nbytes = recorder.hold(descriptor, 2, 1)
        got = np.ndarray((nbytes,), np.uint8, recorder.array_buffer(held, slot, seq, nbytes))
        assert int(got.min()) == int(got.max()) == n % 251
        recorder.release(held, slot)
    for n in range(21, 200):  # stuck for good: the ring stops at MAX_SLOTS and the sender goes on without a copy
        descriptor = writer.put(memoryview(frame(n)))
        assert descriptor is not None
        taken = reader.hold(descriptor, 0, 1)
        reader.release(taken[0], taken[1])
    assert writer.slots == shm.MAX_SLOTS
    writer.unsubscribe(2)
    assert writer.keeping == () and writer.subscribers == ()
    writer.close()
