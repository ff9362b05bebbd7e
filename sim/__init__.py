"""The simulator: tracks, car dynamics, camera and sensors behind the `hal` interfaces."""

from hal.description import CameraParams, CarParams, SensorParams
from sim.render import render_run, save_run_png
from sim.track import Track, TrackError, load_track
from sim.world import GroundTruth, World

__all__ = [
    "CameraParams",
    "CarParams",
    "GroundTruth",
    "SensorParams",
    "Track",
    "TrackError",
    "World",
    "load_track",
    "render_run",
    "save_run_png",
]
