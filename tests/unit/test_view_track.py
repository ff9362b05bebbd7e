"""What the live view is given to draw of the simulator's track: tape as one line, a road as its markings too."""

from __future__ import annotations

import numpy as np
import pytest

from sim import load_track
from view.command import _track


def test_a_tape_track_is_its_line_and_its_boxes() -> None:
    drawn = _track("oval_box")
    assert drawn is not None and drawn.edges == [] and drawn.centre == []
    assert drawn.width == pytest.approx(0.019) and len(drawn.boxes) == 1
    assert drawn.points[0] == drawn.points[-1]  # closed


def test_a_road_is_drawn_with_its_solid_edges_its_dashed_centre_and_the_lane_to_keep_to() -> None:
    drawn = _track("lane_oval")
    track = load_track("lane_oval")
    assert drawn is not None and len(drawn.edges) == 2 and drawn.centre
    start = np.array(track.centre[0])
    edge_gaps = [np.hypot(*(np.array(edge[0]) - start)) for edge in drawn.edges]
    assert edge_gaps == pytest.approx([track.lane_width, track.lane_width], abs=1e-3)
    assert np.hypot(*(np.array(drawn.points[0]) - start)) == pytest.approx(track.lane_width / 2, abs=1e-3)
    assert _track("no-such-track") is None  # said on the view's stderr; the page draws the trail alone
