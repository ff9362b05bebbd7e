"""No car description file makes the loader raise anything but a DescriptionError naming the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hal.description import CarDescription, DescriptionError, load_description

SECTIONS = [f.name for f in dataclasses.fields(CarDescription)]
KEYS = [f.name for section in SECTIONS for f in dataclasses.fields(getattr(CarDescription(), section))]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
SECTION = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES, max_size=6)
DOCUMENT = st.one_of(
    VALUES, st.dictionaries(st.sampled_from(SECTIONS) | st.text(max_size=6), SECTION | VALUES, max_size=5)
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=DOCUMENT)
@example(document={"sensors": {"line_tape": [1, 1]}})
@example(document={"wheels": {"left_motor": 0}})
@example(document={"camera": {"k1": float("nan")}})
@example(document={"sensors": {"line_floor": [True, 0, 0, 0, 0]}})
def test_any_document_loads_or_is_a_named_error(tmp_path: Path, document: object) -> None:
    path = tmp_path / "car.yml"
    path.write_text(yaml.safe_dump(document))
    try:
        loaded = load_description(path)
    except DescriptionError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(loaded, CarDescription)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_text_loads_or_is_a_named_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "car.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_description(path)
    except DescriptionError as exc:
        assert str(path) in str(exc)
