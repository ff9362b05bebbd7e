"""What parses user input for looking inside a graph: parameter values (`car param set`), field paths
(`car topic echo --field`), and message values as shown; fuzzed, so no input makes them raise the wrong thing."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from car.commands import values
from car.spec import parameters
from nodes import messages

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


def test_a_declaration_takes_its_type_from_the_default_and_checks_its_range() -> None:
    gain = parameters.declare("gain", 0.8, "steering gain", (0.0, 2.0))
    assert (gain.type, gain.default, gain.has_range) == ("float", 0.8, True)
    assert parameters.check(gain, 1) == ""  # an integer is a number
    assert parameters.coerce(gain, 1) == 1.0 and isinstance(parameters.coerce(gain, 1), float)
    assert "out of range" in parameters.check(gain, 2.5) and "[0, 2]" in parameters.check(gain, 2.5)
    assert "is not a number" in parameters.check(gain, "fast")
    assert "is not a number" in parameters.check(gain, True)  # a boolean is not a gain
    assert "is not" in parameters.check(gain, math.inf)
    flag = parameters.declare("enabled", True)
    assert parameters.check(flag, 1) != "" and parameters.check(flag, False) == ""
    count = parameters.declare("count", 3, value_range=(1, 10))
    assert parameters.check(count, 2.5) != "" and parameters.check(count, 10) == ""
    with pytest.raises(ValueError, match="its default"):
        parameters.declare("gain", 5.0, value_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="a default of type list"):
        parameters.declare("points", [1, 2])
    with pytest.raises(ValueError, match="range needs a number"):
        parameters.declare("name", "x", value_range=(0.0, 1.0))


@given(JSON_VALUES)
def test_any_json_value_is_checked_without_raising(value: Any) -> None:
    for declared in (
        parameters.declare("f", 0.5, value_range=(-1.0, 1.0)),
        parameters.declare("i", 1),
        parameters.declare("b", False),
        parameters.declare("s", "x"),
    ):
        problem = parameters.check(declared, value)
        assert isinstance(problem, str)
        if not problem:  # accepted: of the declared type, within its range
            assert isinstance(parameters.coerce(declared, value), parameters.TYPES[declared.type])


@given(JSON_VALUES, st.text(max_size=12))
def test_a_field_path_finds_a_part_or_says_what_is_there(value: Any, path: str) -> None:
    try:
        found = values.field(value, path)
    except KeyError as exc:
        assert "no field" in exc.args[0]
    else:
        json.dumps(found)


def test_arrays_are_shown_as_type_shape_and_statistics_never_their_numbers() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[0, 0, 0] = 255
    assert values.summary(frame) == {"dtype": "uint8", "shape": [480, 640, 3], "min": 0, "max": 255, "mean": 0.0003}
    assert values.text(frame) == "uint8[480,640,3] min 0 max 255 mean 0.0003"
    assert values.size_of(frame) == 921_600
    assert values.type_name(pa.array([1, 2, 3])) == "arrow int64[3]"
    assert values.summary(pa.array([1, 2, None])) == {
        "arrow": "int64",
        "length": 3,
        "nulls": 1,
        "min": 1.0,
        "max": 2.0,
        "mean": 1.5,
    }
    struct = pa.array([{"x": 1.0, "name": "a"}])
    assert values.summary(struct) == {"arrow": "struct<x: double, name: string>", "length": 1, "nulls": 0}
    assert values.summary(b"\x00" * 10) == {"bytes": 10}
    assert values.text({"left": 0.5}) == '{"left": 0.5}' and values.type_name({"a": 1}) == "json object"
    assert values.summary(np.array(["a", "b"])) == {"dtype": "<U1", "shape": [2]}  # no statistics of strings


@given(
    hnp.arrays(
        st.sampled_from([np.uint8, np.int16, np.float32, np.float64, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
    )
)
@example(np.full(4, 4.49423283715579e307))  # found by hypothesis: a sum first overflowed to infinity
@example(np.full(3, np.finfo(np.float32).max, np.float32))
def test_any_array_summary_is_strict_json(array: np.ndarray[Any, Any]) -> None:
    pictured = values.summary(array)
    json.dumps(pictured, allow_nan=False)  # NaN and infinities are left out of the statistics
    assert pictured["shape"] == list(array.shape) and values.size_of(array) == array.nbytes


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
        lambda inner: (
            st.lists(inner)
            | st.dictionaries(
                st.sampled_from(
                    ["left", "right", "t", "line", "found", "offset", "heading", "curvature", "confidence"]
                ),
                inner,
            )
        ),
        max_leaves=12,
    )
)
def test_the_nodes_messages_read_anything_with_a_message_error_or_a_record(value: object) -> None:
    for read in (messages.wheel_speeds, messages.sensor_bar, messages.line_estimate):
        try:
            record = read(value)
        except messages.MessageError as exc:
            assert str(exc)
        else:
            assert all(math.isfinite(x) for x in vars(record).values() if isinstance(x, float))


def test_a_good_line_message_reads_back_as_the_estimate_it_came_from() -> None:
    from nodes.line_detector import LineEstimate

    estimate = LineEstimate(True, 0.01, -0.2, 1.5, 0.9)
    assert messages.line_estimate(estimate.to_message()) == estimate
    assert messages.wheel_speeds({"left": 1, "right": 0.5}) == messages.WheelSpeeds(1.0, 0.5)
