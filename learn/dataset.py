"""Training data from recordings: each camera frame paired with what the driver made of it.

A recording is an MCAP file from `car collect` or from `car launch ... --record` (someone
driving by hand from the live view, on the simulator or the real car). Its frames are the
camera's (`car_io/image`, raw or JPEG). Its labels are, in order of preference:

1. the simulator expert's corrections (`expert/label`, one per 10 ms cycle), each paired
   with the frame of the same cycle (the `frame` in both messages' metadata);
2. otherwise what the driver made the car do: the wheel speeds car_io measured
   (`car_io/sensors`, every 10 ms) `RESPONSE_S` after the frame, the time the motors take
   to follow a command. This holds however the car was driven (from the live view's keys,
   touch or gamepad, a teleop node, a joystick), and the live view's commands reach car_io
   alone, so a recording holds no other trace of them.

Wheel speeds become the speed and path curvature the network learns (`Label.from_wheels`,
with the car description's wheel base). Frames where the car is not driving forward
(slower than `MIN_SPEED`) teach nothing about steering and are left out. Frames inside the ranges marked in the recording's cleaning sidecar (learn.sidecar,
`car clean`) are left out too.

The unit of the validation split is the *episode*: one run of one track in a `car
collect` file (its `car.episode.N` metadata), or a whole recording otherwise.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from learn.sidecar import Sidecar, SidecarError
from nodes.pilot_model import INPUT_HEIGHT, INPUT_WIDTH, shrink

EPISODE_KEY = "car.episode."  # learn.collect writes these
RESPONSE_S = 0.15  # a driver's command shows in the measured wheel speeds about this much later
READING_SLACK_S = 0.05  # the reading paired with a frame is at most this far from frame + RESPONSE_S
MIN_SPEED = 0.05  # m/s
IMAGE_SCHEMAS = ("foxglove.RawImage", "foxglove.CompressedImage")


class DataError(ValueError):
    """A recording that cannot teach: the message names the file and what is wrong."""


@dataclass(frozen=True)
class Label:
    """What the network should answer for a frame."""

    curvature: float  # 1/m, left positive
    speed: float  # m/s
    on_road: bool

    @classmethod
    def from_wheels(cls, left: float, right: float, wheel_base: float, on_road: bool = True) -> Label | None:
        """The label for a wheel-speed command; None when the car is not driving forward."""
        speed = (left + right) / 2
        if speed < MIN_SPEED:
            return None
        return cls((right - left) / wheel_base / speed, speed, on_road)


@dataclass
class Dataset:
    """Shrunk frames with their labels and episodes, as arrays."""

    frames: np.ndarray  # N x H x W x 3 uint8
    targets: np.ndarray  # N x 3 float32: curvature (1/m), speed (m/s), on-road (0 or 1)
    episodes: np.ndarray  # N int: index into `episode_names`
    episode_names: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)  # per file: path, sha256, frames, dropped

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, mask: np.ndarray) -> Dataset:
        """The samples where `mask` is true."""
        return Dataset(self.frames[mask], self.targets[mask], self.episodes[mask], self.episode_names, self.sources)


@dataclass(frozen=True)
class _Episode:
    name: str
    start_ns: int
    end_ns: int


def sha256(path: Path) -> str:
    """The file's content hash (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(paths: list[Path], wheel_base: float) -> Dataset:
    """Every usable frame of the recordings, labelled; DataError for a file that is missing, broken or teaches
    nothing."""
    frames: list[np.ndarray] = []
    targets: list[tuple[float, float, float]] = []
    episodes: list[int] = []
    names: list[str] = []
    sources = []
    for path in paths:
        count = len(targets)
        dropped = 0
        for pair in labelled_frames(path, wheel_base):
            if not pair.kept:
                dropped += 1
                continue
            if pair.episode not in names:
                names.append(pair.episode)
            assert pair.frame is not None and pair.label is not None  # decoded, and labelled
            frames.append(pair.frame)
            targets.append((pair.label.curvature, pair.label.speed, 1.0 if pair.label.on_road else 0.0))
            episodes.append(names.index(pair.episode))
        if len(targets) == count:
            raise DataError(
                f"{path}: no frame with a command to learn from (it needs `car_io/image` frames, and an "
                "`expert/label` for each or `car_io/sensors` readings while the car drives forward)"
            )
        sidecar = Sidecar.path_for(path)
        sources.append(
            {
                "file": path.name,
                "sha256": sha256(path),
                "cleaning_sha256": sha256(sidecar) if sidecar.exists() else None,
                "frames": len(targets) - count,
                "dropped": dropped,
            }
        )
    return Dataset(
        np.stack(frames) if frames else np.zeros((0, INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8),
        np.asarray(targets, np.float32).reshape(-1, 3),
        np.asarray(episodes, np.int64),
        names,
        sources,
    )


def _damaged() -> tuple[type[Exception], ...]:
    """What reading a damaged or foreign file raises, from the MCAP reader or a message's decoding."""
    import mcap.exceptions

    return (OSError, ValueError, struct.error, EOFError, KeyError, TypeError, mcap.exceptions.McapError)


def _reader(path: Path) -> Any:
    import mcap.reader

    if not path.is_file():
        raise DataError(f"{path}: no such recording")
    stream = open(path, "rb")  # noqa: SIM115  # closed by the caller's `with`
    try:
        reader = mcap.reader.make_reader(stream)
        summary = reader.get_summary()
    except _damaged() as exc:
        stream.close()
        raise DataError(f"{path}: not a complete MCAP recording ({exc or type(exc).__name__})") from None
    if summary is None:
        stream.close()
        raise DataError(f"{path}: the recording was not finished (no summary): record it again")
    return stream, reader, summary


def recording_topics(path: Path) -> tuple[str, str, bool]:
    """The image topic, the label topic and whether the labels are the expert's (paired by frame; else the measured
    wheel speeds, paired by time)."""
    stream, _, summary = _reader(path)
    with stream:
        return _topics(path, summary)


def _topics(path: Path, summary: Any) -> tuple[str, str, bool]:
    """recording_topics from a recording's summary, already read."""
    topics = {c.topic: summary.schemas.get(c.schema_id) for c in summary.channels.values()}
    images = [t for t, s in topics.items() if s is not None and s.name in IMAGE_SCHEMAS]
    if not images:
        raise DataError(f"{path}: no camera frames in it (record `car_io/image` too)")
    image = "car_io/image" if "car_io/image" in images else images[0]
    labels = sorted(t for t in topics if t.endswith("/label"))
    if labels:
        return image, labels[0], True
    sensors = (
        "car_io/sensors"
        if "car_io/sensors" in topics
        else next((t for t in sorted(topics) if t.endswith("/sensors")), None)
    )
    if sensors is None:
        raise DataError(f"{path}: nothing to learn from in it: record `car_io/sensors` (the measured wheel speeds) too")
    return image, sensors, False


def _episodes(reader: Any, path: Path) -> list[_Episode]:
    found = []
    for record in reader.iter_metadata():
        if record.name.startswith(EPISODE_KEY):
            meta = record.metadata
            name = f"{path.name}#{record.name[len(EPISODE_KEY) :]} ({Path(meta.get('track', '?')).stem})"
            found.append(_Episode(name, int(meta["start_ns"]), int(meta["end_ns"])))
    return found or [_Episode(path.name, 0, 2**63 - 1)]


@dataclass(frozen=True)
class Paired:
    """One camera frame of a recording with the command paired with it."""

    stamp_ns: int  # its log time
    episode: str
    frame: np.ndarray | None  # shrunk (None when not decoded)
    label: Label | None  # None: no command for it (or the car not driving forward)
    kept: bool  # not inside a range the cleaning drops


def labelled_frames(
    path: Path, wheel_base: float, all_frames: bool = False, decode_frames: bool = True
) -> Iterator[Paired]:
    """The frames of one recording with their labels (with `all_frames`, those without one too), each once."""
    try:
        yield from _labelled(path, wheel_base, all_frames, decode_frames)
    except (DataError, SidecarError):  # said already, and clearly
        raise
    except _damaged() as exc:
        raise DataError(f"{path}: damaged, it cannot be read to the end ({exc or type(exc).__name__})") from None


def _labelled(path: Path, wheel_base: float, all_frames: bool, decode_frames: bool) -> Iterator[Paired]:
    """labelled_frames's work, which may meet a damaged file."""
    from car.recording.channels import decode

    cleaning = Sidecar.load(path)
    stream, reader, summary = _reader(path)
    with stream:
        image_topic, label_topic, by_frame = _topics(path, summary)
        episodes = _episodes(reader, path)

        def paired(stamp: int, frame: np.ndarray | None, label: Label | None) -> Paired:
            return Paired(stamp, _episode_of(episodes, stamp), frame, label, cleaning.keeps(stamp))

        pending: dict[Any, tuple[int, np.ndarray | None]] = {}  # frame number -> (log time, frame), until its label
        labels: dict[Any, Label | None] = {}  # frame number -> label, until its frame
        waiting: list[tuple[int, np.ndarray | None]] = []  # frames until the reading RESPONSE_S after them
        for schema, channel, message in reader.iter_messages(topics=[image_topic, label_topic], log_time_order=True):
            name = schema.name if schema is not None else ""
            stamp = message.log_time
            if channel.topic == label_topic:
                value, metadata = decode(name, message.data)
                if not by_frame:  # a reading: the frames it answers, RESPONSE_S before it
                    while waiting and waiting[0][0] + RESPONSE_S * 1e9 <= stamp:
                        at, frame_then = waiting.pop(0)
                        close = stamp - (at + RESPONSE_S * 1e9) <= READING_SLACK_S * 1e9
                        label = _measured(value, wheel_base) if close else None
                        if label is not None or all_frames:
                            yield paired(at, frame_then, label)
                    continue
                label = _label(value, wheel_base)
                if metadata.get("frame") in pending:
                    at, frame_then = pending.pop(metadata.get("frame"))
                    if label is not None or all_frames:
                        yield paired(at, frame_then, label)
                else:
                    labels[metadata.get("frame")] = label
                continue
            frame: np.ndarray | None
            if decode_frames:
                value, metadata = decode(name, message.data)
                frame = shrink(_bgr(value))
            else:
                frame, metadata = None, json.loads(message.data).get("_metadata", {})
            if by_frame:
                number = metadata.get("frame")
                if number in labels:
                    label = labels.pop(number)
                    if label is not None or all_frames:
                        yield paired(stamp, frame, label)
                else:
                    pending[number] = (stamp, frame)
            else:
                waiting.append((stamp, frame))
        if all_frames:  # frames whose label never came
            for at, frame_then in [*pending.values(), *waiting]:
                yield paired(at, frame_then, None)


def _bgr(value: Any) -> np.ndarray:
    image = np.asarray(value)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image[:, :, :3]


def _label(value: Any, wheel_base: float) -> Label | None:
    if not isinstance(value, dict):
        return None
    left, right = value.get("left"), value.get("right")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in (left, right)):
        return None
    return Label.from_wheels(float(left), float(right), wheel_base, bool(value.get("on_road", True)))  # type: ignore[arg-type]


def _measured(value: Any, wheel_base: float) -> Label | None:
    """The label a sensor reading's measured wheel speeds give (None: none in it, or not driving forward)."""
    speeds = value.get("speeds") if isinstance(value, dict) else None
    if not (isinstance(speeds, list) and len(speeds) == 2):
        return None
    return _label({"left": speeds[0], "right": speeds[1]}, wheel_base)


def _episode_of(episodes: list[_Episode], stamp: int) -> str:
    for episode in episodes:
        if episode.start_ns <= stamp <= episode.end_ns:
            return episode.name
    return episodes[-1].name
