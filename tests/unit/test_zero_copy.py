"""dora's zero-copy send contract, case by case, in-process: its own `test_contract.py` against car's `SampleHandler`
(car.compat.dora.sample) over a node that records what is sent."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import pytest

from car.compat.dora.sample import TRACKED, SampleHandler
from car.daemon.processes import COMPAT_DIR
from tests.helpers import ROOT


class RecordingNode:
    """`send_output_raw` as car's dora Node has it, over an ordinary array; sends recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send_output_raw(self, output_id: str, length: int, metadata: dict[str, Any] | None = None) -> SampleHandler:
        return SampleHandler(self, output_id, np.zeros(length, np.uint8), metadata)

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        self.sent.append((output_id, data))


def contract_cases() -> list[Any]:
    sys.path.insert(0, str(COMPAT_DIR))  # its `from dora import Node`
    try:
        path = ROOT / "tests" / "fixtures" / "dora_zero_copy" / "test_contract.py"
        spec = importlib.util.spec_from_file_location("dora_zero_copy_contract", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(COMPAT_DIR))
    return list(module.CASES)


@pytest.mark.skipif(not TRACKED, reason="car's sample buffer was built without a C compiler (car.compat.dora.sample)")
@pytest.mark.parametrize("case", contract_cases(), ids=lambda case: case.__name__)
def test_each_case_of_dora_s_contract_holds(case: Any) -> None:
    node = RecordingNode()
    case(node)
    assert all(isinstance(data, np.ndarray) for _, data in node.sent)  # the lent array itself: no copy


def test_a_sent_sample_carries_what_was_written_and_its_metadata() -> None:
    node = RecordingNode()
    with node.send_output_raw("frame", 6, {"n": 1}) as buffer:
        view = np.asarray(buffer, dtype=np.uint8)
        view[:] = np.arange(6)
        del view
    ((output, data),) = node.sent
    assert output == "frame" and data.tolist() == [0, 1, 2, 3, 4, 5]
