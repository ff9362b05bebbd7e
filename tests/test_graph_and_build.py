"""`car graph` and `car build`."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import car, write_flow

FLOW = """
nodes:
  - id: camera
    path: camera.py
    build: echo built > built.txt
    inputs: {tick: dora/timer/millis/33}
    outputs: [image]
  - id: detector
    path: detector.py
    inputs:
      image: {source: camera/image, queue_size: 1}
    outputs: [line]
  - id: controller
    path: controller.py
    inputs: {line: detector/line, tick: dora/timer/millis/10}
"""


def test_graph_prints_mermaid_with_every_edge(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW, camera_py="", detector_py="", controller_py="")
    result = car("graph", str(flow))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("flowchart LR\n")
    assert 'n0["camera"]' in text and 'n2["controller"]' in text
    assert 't0(["timer 33 ms"])' in text and 't1(["timer 10 ms"])' in text
    assert 'n0 -->|"image (queue 1)"| n1' in text
    assert 'n1 -->|"line"| n2' in text
    assert 't1 -->|"tick"| n2' in text


def test_graph_html_page(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW, camera_py="", detector_py="", controller_py="")
    page = tmp_path / "graph.html"
    result = car("graph", str(flow), "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "<svg" in html and "<script" not in html  # drawn in the page itself: nothing to fetch
    assert [line for line in html.splitlines() if "://" in line and "xmlns=" not in line] == []
    for name in ("camera", "detector", "controller", "timer 33 ms"):
        assert f">{name}</text>" in html
    assert html.count('class="edge"') == html.count("--&gt;|")  # one drawn edge per Mermaid edge
    assert "n0 --&gt;|&quot;image (queue 1)&quot;| n1" in html  # and the Mermaid source, to copy


def test_build_runs_each_build_command_in_the_dataflow_folder(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW, camera_py="", detector_py="", controller_py="")
    result = car("build", str(flow), cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "built.txt").read_text() == "built\n"
    failing = write_flow(tmp_path, FLOW.replace("echo built > built.txt", "exit 4"))
    result = car("build", str(failing))
    assert result.returncode == 1 and "`camera`: failed (exit code 4); nothing of it is cached" in result.stderr
