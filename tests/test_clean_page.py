"""`car clean`'s page in a real headless Chromium: scrub a recording's frames beside its commands, mark a range,
save it beside the recording (never rewriting it), and training leaves those frames out."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from car.commands.launch import end_process
from car.recording.sink import McapSink
from learn.dataset import load, sha256
from learn.sidecar import Sidecar
from tests.browser import browser_page

FRAMES = 60
WHEEL_BASE = 0.15  # the simulator's car (hal/cars/sim.yml), which `car clean` reads


def recording(path: Path) -> list[int]:
    """A recording like `car collect`'s: a frame every 33 ms (its number drawn into it), each with the expert's label;
    the frames' log times."""
    sink = McapSink(path, "jpeg")
    stamps = []
    for k in range(FRAMES):
        stamp = 1_000_000_000 + k * 33_000_000
        image = np.full((240, 320, 3), 60 + 3 * k, np.uint8)
        sink.write("car_io/image", image, {"frame": 3 * k, "observation": "image"}, stamp)
        speed, curvature = 0.5, 2.0 * np.sin(k / 10)
        half = curvature * WHEEL_BASE / 2
        label = {"left": speed * (1 - half), "right": speed * (1 + half), "on_road": k < 50}
        sink.write("expert/label", label, {"frame": 3 * k}, stamp + 1_000_000)
        stamps.append(stamp)
    sink.close()
    return stamps


@contextmanager
def clean_page(path: Path) -> Iterator[str]:
    """`car clean` on a free port until the block ends; its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "car", "clean", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # it says where it listens once it does
        assert " at http://127.0.0.1:" in line, line + (process.stderr.read() if process.stderr else "")
        yield line.rsplit(" at ", 1)[1].strip()
    finally:
        end_process(process, grace=10)


@pytest.mark.slow
def test_the_page_scrubs_marks_a_range_and_saves_it_beside_the_recording(tmp_path: Path) -> None:
    data = tmp_path / "drive.mcap"
    stamps = recording(data)
    before = sha256(data)
    with clean_page(data) as url, browser_page(url) as page:
        page.wait_for("document.getElementById('file').textContent.includes('60 frames')")
        page.wait_for("drawn() && state.plot.scales.x.max === 60")  # the commands are plotted, a point per frame
        page.evaluate("show(10)")
        page.wait_for(
            "document.getElementById('frame').complete && document.getElementById('frame').naturalWidth === 320"
        )
        assert "frame 11 of 60" in page.evaluate("document.getElementById('where').textContent")
        shade = page.evaluate(
            "(() => { const c = document.createElement('canvas'); const i = document.getElementById('frame');"
            " c.width = 4; c.height = 4; const x = c.getContext('2d'); x.drawImage(i, 0, 0, 4, 4);"
            " return x.getImageData(1, 1, 1, 1).data[0]; })()"
        )
        assert abs(shade - (60 + 3 * 10)) <= 4  # frame 10's own picture, through the JPEG
        page.evaluate("markStart()")
        page.key("ArrowRight", "ArrowRight", 39)  # scrub with the keys: one frame, then ten
        page.call(
            "Input.dispatchKeyEvent",
            type="keyDown",
            key="ArrowRight",
            code="ArrowRight",
            windowsVirtualKeyCode=39,
            modifiers=8,
        )
        page.call(
            "Input.dispatchKeyEvent",
            type="keyUp",
            key="ArrowRight",
            code="ArrowRight",
            windowsVirtualKeyCode=39,
            modifiers=8,
        )
        page.wait_for("state.index === 21")
        page.key("ArrowLeft", "ArrowLeft", 37)
        page.evaluate("markEnd()")
        assert "frames 11–21" in page.evaluate("document.getElementById('ranges').textContent")
        page.evaluate("document.getElementById('save').click()")
        saved = page.wait_for(
            "document.getElementById('saved').textContent.startsWith('saved') && document.getElementById('saved').textContent"
        )
        assert "11 frame(s) left out" in saved and "drive.clean.json" in saved
    sidecar = Sidecar.load(data)
    assert [(r.start_ns, r.end_ns) for r in sidecar.drop] == [(stamps[10], stamps[20])]
    assert sha256(data) == before  # the recording itself is never rewritten
    kept = load([data], WHEEL_BASE)
    assert len(kept) == FRAMES - 11 and kept.sources[0]["dropped"] == 11
    assert kept.sources[0]["cleaning_sha256"] == sha256(Sidecar.path_for(data))
    assert kept.targets[:, 2].tolist().count(0.0) == 10  # the frames off the road are kept, marked so


@pytest.mark.slow
def test_a_bad_range_is_refused_and_nothing_is_saved(tmp_path: Path) -> None:
    data = tmp_path / "drive.mcap"
    recording(data)
    with clean_page(data) as url:
        request = urllib.request.Request(
            url + "api/drop", data=json.dumps({"drop": [{"start_ns": 5, "end_ns": 1}]}).encode(), method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert "drop range 1 needs whole-number start_ns <= end_ns" in json.loads(refused.value.read())["error"]
    assert not Sidecar.path_for(data).exists()
    missing = subprocess.run(
        [sys.executable, "-m", "car", "clean", str(tmp_path / "none.mcap")], capture_output=True, text=True, timeout=60
    )
    assert (
        missing.returncode == 2
        and "none.mcap: no such recording" in missing.stderr
        and "Traceback" not in missing.stderr
    )
