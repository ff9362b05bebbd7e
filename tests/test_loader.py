"""Dataflow files: every class of mistake is reported with its line and column, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from car.spec.loader import load_dataflow
from car.spec.model import Problem, parse_timer
from tests.helpers import assert_problems_mention, car, problems


def where(problem: Problem) -> tuple[int, int]:
    return problem.location.line, problem.location.column


def test_a_valid_file_loads_with_defaults_and_dora_forms(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.py").write_text("")
    path = tmp_path / "flow.yml"
    path.write_text(
        textwrap.dedent(
            """
            env: {GLOBAL: 1}
            nodes:
              - id: a
                path: a.py
                args: --kp 0.8 --name "two words"
                env: {ROI_TOP: 0.55, DEBUG: true}
                inputs:
                  tick: dora/timer/hz/30
                outputs: [x]
                deploy: {machine: car}
              - id: b
                _unstable_deploy: {machine: laptop}
                custom:
                  source: b.py
                  args: [one, 2]
                  inputs:
                    x: {source: a/x, queue_size: 1, queue_policy: backpressure, input_timeout: 2}
                restart_policy: on-failure
                max_restarts: 3
                restart_delay: 0.5
            """
        )
    )
    dataflow = load_dataflow(path)
    a, b = dataflow.nodes
    assert a.args == ("--kp", "0.8", "--name", "two words")
    assert a.env == {"ROI_TOP": "0.55", "DEBUG": "true"}
    assert a.inputs["tick"].is_timer and a.machine == "car"
    assert dataflow.env == {"GLOBAL": "1"}
    assert b.path == "b.py" and b.args == ("one", "2") and b.machine == "laptop"
    x = b.inputs["x"]
    assert (x.source_node, x.source_output, x.queue_size, x.queue_policy, x.input_timeout) == (
        "a",
        "x",
        1,
        "backpressure",
        2.0,
    )
    assert (b.restart_policy, b.max_restarts, b.restart_delay) == ("on-failure", 3, 0.5)
    assert x.queue_size == 1 and a.inputs["tick"].queue_size == 10


def test_yaml_syntax_error_has_its_position(tmp_path: Path) -> None:
    found = problems(tmp_path, "nodes:\n  - id: a\n    inputs: {tick: [\n")
    assert len(found) == 1
    assert found[0].message.startswith("YAML syntax error")
    assert found[0].location.line == 4


def test_unknown_keys_get_did_you_mean(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
            ouputs: [x]
          - id: b
            path: b.py
            inputs:
              x: {source: a/x, queue_sise: 2}
        """,
    )
    messages = {where(p): (p.message, p.hint) for p in found}
    assert messages[(4, 5)] == ("unknown key `ouputs` in a node", "did you mean `outputs`?")
    assert messages[(8, 24)][1] == "did you mean `queue_size`?"


def test_unsupported_dora_keys_are_errors_that_say_so(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        communication: {zenoh: {}}
        nodes:
          - id: native
            operator:
              shared-library: build/op
          - id: b
            path: b.py
            git: https://example.com/b.git
            inputs: {status: native/status}
          - id: sub
            module: graphs/sub.yml
          - id: c
            path: a.py
            inputs: {x: sub/x}
        """,
    )
    text = [str(p) for p in found]
    assert any(":1:1: `communication` in the dataflow is a dora key car does not support" in t for t in text)
    assert any(
        ":5:7: `shared-library` in an operator of node `native` is a dora key car does not support" in t for t in text
    )
    assert any(":8:5: `git` in a node is a dora key car does not support" in t for t in text)
    assert any(":11:13: module node `sub`: no module file `graphs/sub.yml`" in t for t in text)
    assert any(
        ":9:22: node `b` input `status` reads `native/status`, but `native` declares no output" in t for t in text
    )
    assert len(text) == 5, text  # one problem each: nothing that follows from the missing module file


def test_operator_nodes_load_with_their_ports_named_as_dora_names_them(tmp_path: Path) -> None:
    for name in ("webcam.py", "detect.py", "plot.py", "sink.py"):
        (tmp_path / name).write_text("")
    path = tmp_path / "flow.yml"
    path.write_text(
        textwrap.dedent(
            """
            nodes:
              - id: webcam
                operator:
                  python: webcam.py
                  inputs: {tick: dora/timer/millis/50}
                  outputs: [image]
              - id: vision
                restart_policy: on-failure
                max_restarts: 3
                operators:
                  - id: detect
                    python: {source: detect.py}
                    build: pip install numpy
                    inputs: {image: webcam/image}
                    outputs: [bbox, stdout]
                    send_stdout_as: stdout
                    output_types: {bbox: std/core/v1/Float32}
                  - id: plot
                    python: plot.py
                    inputs: {image: webcam/image, bbox: vision/detect/bbox}
              - id: sink
                path: sink.py
                inputs: {bbox: vision/detect/bbox, image: webcam/image}
            """
        )
    )
    flow = load_dataflow(path)
    webcam, vision, sink = flow.nodes
    assert webcam.path == "-m car.operators" and webcam.outputs == ("image",)
    assert [op.id for op in webcam.operators] == ["op"] and webcam.operators[0].port_prefix == ""
    assert webcam.inputs["tick"].is_timer
    assert vision.outputs == ("detect/bbox", "detect/stdout")
    assert set(vision.inputs) == {"detect/image", "plot/image", "plot/bbox"}
    assert vision.inputs["plot/bbox"].source == "vision/detect/bbox"
    assert vision.output_types == {"detect/bbox": "std/core/v1/Float32"}
    assert vision.builds == ("pip install numpy",)
    detect = vision.operators[0]
    assert (detect.python, detect.send_stdout_as, detect.inputs["image"].source) == (
        "detect.py",
        "stdout",
        "webcam/image",
    )
    assert vision.max_restarts == 3 and sink.inputs["bbox"].source_output == "detect/bbox"


def test_operator_node_mistakes_are_located(tmp_path: Path) -> None:
    (tmp_path / "op.py").write_text("")
    found = problems(
        tmp_path,
        """
        nodes:
          - id: single
            operator:
              python: op.py
              outputs: [image]
          - id: multi
            path: op.py
            inputs: {x: single/image}
            operators:
              - id: a
                python: {source: op.py, conda_env: base}
              - id: a
                python: missing.py
              - python: op.py
          - id: reader
            path: op.py
            inputs:
              x: single/op/image
              y: multi/image
        """,
    )
    assert_problems_mention(
        found,
        ":7:11: node `multi`.path is not a key of an operator node",
        ":8:13: node `multi`.inputs: an operator node's `inputs` belongs to its operators",
        ":11:44: node `multi` operator `a`.python.conda_env: car runs operators in the Python that runs car",
        ":12:13: node `multi` has two operators `a`",
        ":14:9: an operator of node `multi` has no `id`",
        ":18:10: node `reader` input `x` source `single/op/image` must look like `node/output`",
        "hint: `single` has a single `operator:`, whose outputs are read as `single/OUTPUT`",
        ":19:10: node `reader` input `y` reads `multi/image`, but `multi` declares no output `image`",
        "hint: `multi` runs operators: read `multi/OPERATOR/OUTPUT`",
    )


def test_backpressure_is_refused_for_operators_sharing_a_runtime(tmp_path: Path) -> None:
    """The runtime takes its node's messages as they come for all its operators, so it cannot hold one sender back
    for one of them; a single `operator:` runs on the receiving thread, so its backpressure holds."""
    (tmp_path / "op.py").write_text("")
    found = problems(
        tmp_path,
        """
        nodes:
          - id: single
            operator:
              python: op.py
              inputs: {tick: dora/timer/millis/10}
              outputs: [n]
          - id: one
            operator:
              python: op.py
              inputs: {n: {source: single/n, queue_policy: backpressure}}
          - id: multi
            operators:
              - id: a
                python: op.py
                inputs: {n: {source: single/n, queue_policy: backpressure, queue_size: 4}}
        """,
    )
    assert len(found) == 1, found
    assert_problems_mention(
        found,
        ":15:21: node `multi` operator `a` input `n`: operators of one runtime cannot take backpressure",
        "hint: make it a node of its own or a single `operator:`, or remove `queue_policy`",
    )


def test_typed_ports_are_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "types" / "shop" / "robots").mkdir(parents=True)
    (tmp_path / "types" / "shop" / "robots" / "v1.yml").write_text("types:\n  Arm: {arrow: Struct}\n")
    found = problems(
        tmp_path,
        """
        type_rules: [{from: std/core/v1/String, to: std/core/v1/Int64}]
        nodes:
          - id: a
            path: a.py
            inputs: {tick: dora/timer/hz/10}
            input_types: {tick: std/core/v1/UInt64}
            outputs: [small, word, arm, audio]
            output_types:
              small: std/core/v1/UInt8
              word: std/core/v1/String
              arm: shop/robots/v1/Arm
              audio: std/media/v1/AudioFrame[sample_type=f32]
              missing: std/core/v1/Bool
          - id: b
            path: b.py
            inputs:
              small: a/small
              word: a/word
              arm: a/arm
              audio: a/audio
              raw: a/small
              logs: dora/logs/warn
            input_types:
              small: std/core/v1/UInt64
              word: std/core/v1/Int64
              arm: shop/robots/v1/Arm
              audio: std/media/v1/AudioFrame[sample_type=i16]
              raw: std/core/v1/Bytes
              logs: std/core/v1/Flot64
        """,
    )
    messages = sorted(str(p) for p in found)
    assert len(messages) == 3, messages
    assert "output_types names `missing`, which is not one of its outputs" in messages[0]
    assert (
        "node `b` input `audio` takes `std/media/v1/AudioFrame[sample_type=i16]` (input_types), "
        "but `a/audio` sends `std/media/v1/AudioFrame[sample_type=f32]`" in messages[1]
    )
    assert "unknown type `std/core/v1/Flot64`" in messages[2] and "did you mean `std/core/v1/Float64`?" in str(found)


def test_log_keys_are_checked(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
            outputs: [data]
            min_log_level: loud
            max_log_size: lots
            send_logs_as: logs
          - id: b
            path: b.py
            inputs: {all: dora/logs, warn: dora/logs/warning, of_c: dora/logs/info/c}
        """,
    )
    text = "\n".join(str(p) for p in found)
    assert "min_log_level must be one of" in text or "use one of: error, warn, info" in text
    assert "max_log_size must be a size such as `50MB`" in text
    assert "send_logs_as names `logs`, which is not one of its outputs" in text
    assert "`dora/logs/warning` must be dora/logs, dora/logs/LEVEL or dora/logs/LEVEL/NODE" in text
    assert "`dora/logs/info/c` names no node of this file" in text
    assert "timer" not in text


def test_duplicate_ids_and_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
          - id: a
            path: b.py
            path: a.py
        """,
    )
    messages = {where(p): p.message for p in found}
    assert messages[(4, 5)] == "duplicate node id `a` (first at line 2)"
    assert messages[(6, 5)] == "duplicate key `path` in a node (first at line 5)"


def test_missing_source_node_and_output_get_suggestions(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: camera
            path: a.py
            outputs: [image]
          - id: detector
            path: b.py
            inputs:
              image: camra/image
              frame: camera/imag
              other: camera/depth
            outputs: [line]
        """,
    )
    by_line = {p.location.line: p for p in found}
    assert "there is no node `camra`" in by_line[8].message and by_line[8].hint == "did you mean `camera`?"
    assert "declares no output `imag`" in by_line[9].message and by_line[9].hint == "did you mean `image`?"
    assert "declares: image; or add `depth` to its outputs" in by_line[10].hint
    assert by_line[8].location.column == 14


def test_malformed_timers_and_sources(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
            inputs:
              t1: dora/timer/millis/fast
              t2: dora/timer/weeks/1
              t3: dora/timer/hz/0
              t4: just-a-name
              t5: a/b/c
        """,
    )
    lines = sorted(p.location.line for p in found)
    assert lines == [5, 6, 7, 8, 9]
    text = "\n".join(p.message for p in found)
    assert "`fast` is not a number" in text and "must be positive" in text and "must look like `node/output`" in text


def test_bad_types_and_values(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
            outputs: x
            env: [1, 2]
            restart_policy: sometimes
            max_restarts: -1
            restart_delay: soon
            inputs:
              t: {source: dora/timer/millis/10, queue_size: 0, queue_policy: drop_newest, input_timeout: 0}
          - id: has/slash
            path: b.py
          - id: b
            path: b.py
            args: {a: 1}
            outputs: [y, y, "has space"]
        """,
    )
    assert_problems_mention(
        found,
        ":4:14: node `a`.outputs must be a list",
        ":5:10: node `a`.env must be a mapping",
        ":6:21: node `a`.restart_policy must be one of never, on-failure, always, got `sometimes`",
        ":7:19: node `a`.max_restarts must be >= 0",
        ":8:20: node `a`.restart_delay must be a number",
        "queue_size must be >= 1",
        "queue_policy must be one of drop_oldest, backpressure, got `drop_newest`",
        "input_timeout must be > 0",
        ":11:9: node id `has/slash` must not contain `/`",
        ":15:11: node `b`.args must be a string or a list of strings",
        ":16:18: node `b` declares output `y` twice",
        "output name `has space` must not contain",
    )


def test_paths_that_do_not_exist(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "detector.py").write_text("")
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: nodes/detectr.py
          - id: b
            path: -m some.module
          - id: c
            path: no-such-program-anywhere
          - id: d
            path: dynamic
          - id: e
            path: python3
        """,
        files=(),
    )
    assert [where(p) for p in found] == [(3, 11), (7, 11)]
    assert found[0].hint == "did you mean `detector.py`?"


def test_empty_file_and_missing_nodes(tmp_path: Path) -> None:
    assert problems(tmp_path, "")[0].message == "the file is empty"
    assert problems(tmp_path, "env: {}\n")[0].message == "the dataflow has no `nodes` list"
    assert problems(tmp_path, "nodes: []\n")[0].message == "`nodes` must be a non-empty list"
    assert problems(tmp_path, "- a\n")[0].message == "the dataflow must be a mapping (`key: value` lines)"


def test_timer_periods() -> None:
    assert parse_timer("dora/timer/millis/10") == 10_000_000
    assert parse_timer("dora/timer/secs/2") == 2_000_000_000
    assert parse_timer("dora/timer/secs/0.5") == 500_000_000
    assert parse_timer("dora/timer/hz/100") == 10_000_000
    with pytest.raises(ValueError, match="must be positive"):
        parse_timer("dora/timer/millis/0")


def test_car_check_prints_every_problem_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "flow.yml"
    path.write_text("nodes:\n  - id: a\n    path: missing.py\n    inputs: {x: nowhere/x}\n    colour: red\n")
    result = car("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].endswith(
        "flow.yml:3:11: node `a`.path `missing.py` does not exist (looked in " + str(tmp_path) + ")"
    )
    assert any(
        line.endswith("flow.yml:4:17: node `a` input `x` reads from `nowhere/x`, but there is no node `nowhere`")
        for line in lines
    )
    assert any("flow.yml:5:5: unknown key `colour` in a node" in line for line in lines)
    assert lines[-1].endswith("flow.yml: 3 problems; nothing was started")
    launched = car("launch", str(path))
    assert launched.returncode == 2 and "nothing was started" in launched.stderr


def test_car_check_on_a_missing_file(tmp_path: Path) -> None:
    result = car("check", str(tmp_path / "nope.yml"))
    assert result.returncode == 2
    assert "nope.yml:1:1: no such file" in result.stderr
