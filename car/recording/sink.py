"""Recordings: the MCAP file a recorder writes (`McapSink`), what a run's recording says of it, and reading one back.

How each kind of value becomes a channel (schema, encoding) and back is
car.recording.channels; the recorder and the player are the built-in nodes of
car.recording.recorder and car.recording.player; `car record`, `car info` and `car replay`
(car.commands) are built on these.
"""

from __future__ import annotations

import enum
import json
import platform
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from car.plan.runs import RunError
from car.recording import channels as mcap_channels


class RecordError(RunError):
    """A recording could not be made or read; the message says why and what to do."""


def _need_mcap() -> None:
    """RecordError saying how to install the `mcap` package when it is not there (a car without the extra)."""
    try:
        import mcap  # noqa: F401
    except ImportError:
        raise RecordError(
            "recording needs the `mcap` package: pip install 'smartcar[record]' (or `pip install mcap`)"
        ) from None


class Ended(enum.Enum):
    """Why a recording stopped."""

    RUN_ENDED = "run ended"  # every part's run ended (its streams closed, STOP, or its daemon died)
    STOPPED = "stopped"  # Ctrl-C, SIGTERM
    DURATION = "duration reached"


@dataclass
class Written:
    """What one channel got."""

    topic: str
    schema: str
    messages: int = 0
    bytes: int = 0


@dataclass
class Recording:
    """What a recording wrote: its channels, what it lost, and why it stopped."""

    path: str
    channels: dict[str, Written] = field(default_factory=dict)
    dropped: int = 0
    unwritable: int = 0  # messages that did not fit their channel's kind (an output that changed type)
    ended_by: Ended | None = None

    @property
    def messages(self) -> int:
        """Messages written, on every channel."""
        return sum(c.messages for c in self.channels.values())


class McapSink:
    """An MCAP file being written (by one thread): channels made as outputs first send."""

    def __init__(self, path: Path, compress: str):
        _need_mcap()
        import mcap.writer

        self._compress = compress
        self._file = open(path, "wb")  # noqa: SIM115  # closed by close()
        self._writer = mcap.writer.Writer(self._file, compression=mcap.writer.CompressionType.LZ4)
        self._writer.start(profile="", library="car record")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, mcap_channels.ChannelKind]] = {}
        self.recording = Recording(str(path))

    def describe(self, facts: dict[str, str], dataflow_file: str, launch_env: dict[str, str] | None = None) -> None:
        """The run's facts (`run_facts`) as MCAP metadata, the environment its launch options gave every node
        (`car.launch`: the simulator's track and seed, say) when it has one, and its dataflow file as an attachment
        when it can be read here."""
        now = time.time_ns()
        self._writer.add_metadata("car.run", facts)
        if launch_env:
            self._writer.add_metadata("car.launch", launch_env)
        if dataflow_file:
            try:
                text = Path(dataflow_file).read_bytes()
            except OSError:
                return
            self._writer.add_attachment(now, now, Path(dataflow_file).name, "application/yaml", text)

    def write(self, topic: str, value: Any, metadata: dict[str, Any], stamp_ns: int) -> None:
        """One message on the channel of `topic` (made on its first message)."""
        found = self._channels.get(topic)
        if found is None:
            found = self._channels[topic] = self._channel(topic, mcap_channels.kind_of(value, self._compress))
        channel_id, kind = found
        try:
            data = mcap_channels.encode(kind, value, metadata, stamp_ns, topic.partition("/")[0])
        except (ValueError, TypeError):
            self.recording.unwritable += 1
            return
        written = self.recording.channels[topic]
        self._writer.add_message(channel_id, stamp_ns, data, stamp_ns, written.messages)
        written.messages += 1
        written.bytes += len(data)

    def _channel(self, topic: str, kind: mcap_channels.ChannelKind) -> tuple[int, mcap_channels.ChannelKind]:
        schema_id = self._schemas.get(kind.schema_name)
        if schema_id is None:
            text = json.dumps(kind.schema).encode() if kind.schema is not None else b""
            encoding = "jsonschema" if kind.schema is not None else ""
            schema_id = self._schemas[kind.schema_name] = self._writer.register_schema(kind.schema_name, encoding, text)
        channel_id = self._writer.register_channel(topic, kind.message_encoding, schema_id)
        self.recording.channels[topic] = Written(topic, kind.schema_name)
        return channel_id, kind

    def close(self) -> Recording:
        """Finish the file (its summary and index): it is complete however the recording ended."""
        self._writer.finish()  # type: ignore[no-untyped-call]  # mcap leaves it unannotated
        self._file.close()
        return self.recording


def run_facts(name: str, machines: list[str], dataflow_file: str) -> dict[str, str]:
    """What a recording says of its run: its name, machines, dataflow file, where it was recorded, versions."""
    return {
        "dataflow": name,
        "dataflow_file": str(Path(dataflow_file).resolve()) if dataflow_file else "",
        "machines": ",".join(m or "here" for m in machines),
        "recorded_on": socket.gethostname(),
        "python": platform.python_version(),
        "car": _version(),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smartcar")
    except PackageNotFoundError:
        return "unknown"


def check_output(path: Path) -> None:
    """RecordError unless `path` is a FILE.mcap in a folder that exists."""
    if path.suffix != ".mcap":
        raise RecordError(f"{path}: name the file FILE.mcap (Foxglove and `car info` go by the suffix)")
    if not path.parent.is_dir():
        raise RecordError(f"{path}: the folder {path.parent} does not exist")


@dataclass(frozen=True)
class ChannelInfo:
    """One channel of a recording, as `car info` shows it."""

    topic: str
    schema: str
    encoding: str
    messages: int
    rate_hz: float
    mean_bytes: int


def describe_file(path: Path, sizes: bool = True) -> dict[str, Any]:
    """A recording's duration, metadata, attachments and channels (counts, rates, and unless not `sizes`, which
    reads every message, their mean size)."""
    _need_mcap()
    import mcap.exceptions
    import mcap.reader

    try:
        with open(path, "rb") as stream:
            reader = mcap.reader.make_reader(stream)
            summary = reader.get_summary()
            total: dict[int, int] = {}
            for _, channel, message in reader.iter_messages() if sizes else ():
                total[channel.id] = total.get(channel.id, 0) + len(message.data)
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
            attachments = [a.name for a in reader.iter_attachments()]
    except FileNotFoundError:
        raise RecordError(f"{path}: no such file") from None
    except (OSError, ValueError, mcap.exceptions.McapError) as exc:
        raise RecordError(f"{path} is not a complete MCAP file ({exc})") from None
    if summary is None or summary.statistics is None:
        raise RecordError(f"{path} has no summary: it was not finished (a recorder that was killed?)")
    stats = summary.statistics
    duration = max(0.0, (stats.message_end_time - stats.message_start_time) / 1e9)
    channels = []
    for channel_id, channel in sorted(summary.channels.items()):
        count = stats.channel_message_counts.get(channel_id, 0)
        schema = summary.schemas.get(channel.schema_id)
        channels.append(
            ChannelInfo(
                channel.topic,
                schema.name if schema is not None else "",
                channel.message_encoding,
                count,
                round(count / duration, 2) if duration > 0 else 0.0,
                total.get(channel_id, 0) // count if count else 0,
            )
        )
    return {
        "path": str(path),
        "duration_s": round(duration, 3),
        "start_ns": stats.message_start_time,
        "messages": stats.message_count,
        "metadata": metadata,
        "attachments": attachments,
        "channels": [asdict(c) for c in channels],
    }
