"""`car collect`: the simulator's expert drives, and what the camera saw and the expert said is recorded.

    car collect --track T [--track T2 ...] --laps N -o DATA.mcap [--noise X] [--randomize]
                [--seed S] [--episodes K] [--speed V]

Each track is driven K times (an *episode* each: its own seed, so its own scene with
`--randomize`) by `dataflows/collect.yml`: car_io, the expert (nodes.expert) and a
recorder, at realtime factor 0, so the simulation goes as fast as the graph takes it and
the recorder's backpressure loses nothing. With `--noise X` what the car executes wanders
(X: the spread of the steering error, 1/m; 1.0 is a good start) and is pushed off its
line now and then, while the recorded `expert/label` is always the expert's correction.

The episodes are written into one MCAP file, with each episode's track, seed and time
range in its metadata (`car.episode.N`), which `car train` uses to hold whole episodes
out for validation. Progress (frames per second) is printed as it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from nodes.car_io.sim import PROGRESS

ROOT = Path(__file__).resolve().parent.parent
COLLECT_FLOW = ROOT / "dataflows" / "collect.yml"
EPISODE_KEY = "car.episode."  # MCAP metadata: one record per episode, named car.episode.0, car.episode.1, ...
COLLECT_KEY = "car.collect"  # MCAP metadata: how the file was collected
EXCURSIONS_PER_MINUTE = 6.0  # with --noise: how often the car drives off its road for the expert to bring it back


class CollectError(Exception):
    """A mistake in what `car collect` was asked, or a run that failed; the message says what to do."""


@dataclass(frozen=True)
class Episode:
    """One run of the expert on one track."""

    index: int
    track: str
    seed: int
    laps: int
    randomized: bool
    noise: float


@dataclass(frozen=True)
class Collected:
    """What one episode gave: its frames, how long it took, and the part file it wrote."""

    episode: Episode
    frames: int
    wall_s: float
    start_ns: int
    end_ns: int
    report: dict[str, Any]


def plan(args: argparse.Namespace) -> list[Episode]:
    """The episodes to run, checked (CollectError for a bad track or number) before anything starts."""
    from sim.track import TrackError, load_track

    if args.laps < 1:
        raise CollectError("--laps must be at least 1")
    if args.episodes < 1:
        raise CollectError("--episodes must be at least 1")
    if args.noise < 0:
        raise CollectError("--noise is a spread (1/m): 0 or more")
    if not str(args.output).endswith(".mcap"):
        raise CollectError(f"-o {args.output}: name the file DATA.mcap")
    if not Path(args.output).resolve().parent.is_dir():
        raise CollectError(f"-o {args.output}: the folder {Path(args.output).resolve().parent} does not exist")
    tracks = []
    for name in args.track:
        try:
            load_track(name)
        except TrackError as exc:
            raise CollectError(f"--track {name}: {exc}") from None
        tracks.append(str(Path(name).resolve()) if Path(name).exists() else name)
    episodes: list[Episode] = []
    for _ in range(args.episodes):
        for track in tracks:
            index = len(episodes)
            episodes.append(Episode(index, track, args.seed + index, args.laps, args.randomize, args.noise))
    return episodes


def run_episode(episode: Episode, folder: Path, speed: float, say: Any) -> tuple[Collected, Path]:
    """Run the collect graph for one episode into a part file of its own in `folder`."""
    part = folder / f"part-{episode.index}.mcap"
    flow = yaml.safe_load(COLLECT_FLOW.read_text(encoding="utf-8"))
    for node in flow["nodes"]:
        if node["id"] == "expert":
            node["env"] = {
                **node.get("env", {}),
                "EXPERT_NOISE": str(episode.noise),
                "EXPERT_EXCURSIONS": str(EXCURSIONS_PER_MINUTE if episode.noise > 0 else 0.0),
                "EXPERT_MAX_SPEED": str(speed),
            }
        elif node["id"] == "recorder":
            node["args"] = f"--compress jpeg {part}"
    flow_file = folder / f"collect-{episode.index}.yml"
    flow_file.write_text(yaml.safe_dump(flow, sort_keys=False), encoding="utf-8")
    report = folder / f"report-{episode.index}.json"
    command = [sys.executable, "-m", "car", "launch", str(flow_file), "--track", episode.track]
    command += ["--laps", str(episode.laps), "--seed", str(episode.seed), "--headless", "--realtime-factor", "0"]
    command += [
        "--report",
        str(report),
        "--out",
        str(folder / "runs"),
        "--name",
        f"collect-{os.getpid()}-{episode.index}",
    ]
    command += ["--randomize"] if episode.randomized else []
    started = time.monotonic()
    start_ns = time.time_ns()
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder) as run:
        assert run.stdout is not None
        for line in run.stdout:  # car_io's progress, shown as it comes; the rest kept for an error
            if PROGRESS in line:
                say("  " + line.split(PROGRESS + ": ", 1)[-1].strip())
            lines.append(line)
    wall = time.monotonic() - started
    if run.returncode != 0 or not report.exists() or not part.exists():
        tail = "".join(lines[-8:]).strip()
        raise CollectError(f"episode {episode.index} ({episode.track}, seed {episode.seed}) failed:\n{tail}")
    figures = json.loads(report.read_text(encoding="utf-8"))
    frames = round(figures["duration_s"] * _camera_fps())
    say(
        f"episode {episode.index + 1}: {Path(episode.track).stem}, seed {episode.seed}: {figures['laps']} laps, "
        f"{frames} frames in {wall:.1f} s ({frames / wall:.0f} frames/s, {figures['duration_s'] / wall:.1f}x real time)"
    )
    return Collected(episode, frames, wall, start_ns, time.time_ns(), figures), part


def _camera_fps() -> float:
    from hal.description import load_description

    return load_description().camera.fps


def merge(parts: list[tuple[Collected, Path]], output: Path, settings: dict[str, str]) -> int:
    """Write the parts' messages into one MCAP file, with the episodes as metadata; the messages written."""
    import mcap.reader
    import mcap.writer

    written = 0
    temporary = output.with_name(output.name + ".partial")
    with open(temporary, "wb") as stream:
        writer = mcap.writer.Writer(stream, compression=mcap.writer.CompressionType.LZ4)
        writer.start(profile="", library="car collect")
        writer.add_metadata(COLLECT_KEY, settings)
        schemas: dict[tuple[str, bytes], int] = {}
        channels: dict[str, int] = {}
        for collected, part in parts:
            first, last = None, None
            with open(part, "rb") as source:
                reader = mcap.reader.make_reader(source)
                for schema, channel, message in reader.iter_messages(log_time_order=True):
                    key = (schema.name, schema.data) if schema is not None else ("", b"")
                    if key not in schemas:
                        encoding = schema.encoding if schema is not None else ""
                        schemas[key] = writer.register_schema(key[0], encoding, key[1])
                    if channel.topic not in channels:
                        channels[channel.topic] = writer.register_channel(
                            channel.topic, channel.message_encoding, schemas[key]
                        )
                    writer.add_message(channels[channel.topic], message.log_time, message.data, message.publish_time)
                    first = message.log_time if first is None else first
                    last = message.log_time
                    written += 1
            episode = {k: str(v) for k, v in asdict(collected.episode).items()}
            episode.update(
                start_ns=str(first or collected.start_ns),
                end_ns=str(last or collected.end_ns),
                frames=str(collected.frames),
                mean_speed_mps=str(collected.report.get("mean_speed_mps")),
                cross_track_rms_m=str(collected.report.get("cross_track_rms_m")),
            )
            writer.add_metadata(f"{EPISODE_KEY}{collected.episode.index}", episode)
        writer.add_attachment(0, 0, COLLECT_FLOW.name, "application/yaml", COLLECT_FLOW.read_bytes())
        writer.finish()  # type: ignore[no-untyped-call]  # mcap leaves it unannotated
    temporary.replace(output)
    return written


def arguments() -> argparse.ArgumentParser:
    """`car collect`'s options."""
    parser = argparse.ArgumentParser(prog="car collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--track", action="append", required=True, help="a track name or file; repeat for more")
    parser.add_argument("--laps", type=int, default=1, help="laps per episode (default 1)")
    parser.add_argument("-o", "--output", required=True, metavar="DATA.mcap", help="the recording to write")
    parser.add_argument("--noise", type=float, default=0.0, help="steering noise in what is executed, 1/m (default 0)")
    parser.add_argument("--randomize", action="store_true", help="a scene drawn at random for each episode")
    parser.add_argument("--seed", type=int, default=0, help="the first episode's seed; the next ones count up")
    parser.add_argument("--episodes", type=int, default=1, help="runs of each track, each with its own seed")
    parser.add_argument("--speed", type=float, default=0.75, help="the expert's top speed, m/s (default 0.75)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """`car collect`."""
    args = arguments().parse_args(argv)
    try:
        episodes = plan(args)
        if not 0.1 <= args.speed <= 2.0:
            raise CollectError("--speed is the expert's top speed: between 0.1 and 2 m/s")
        output = Path(args.output).resolve()
        started = time.monotonic()
        parts = []
        with tempfile.TemporaryDirectory(prefix="car-collect-") as scratch:
            for episode in episodes:
                parts.append(run_episode(episode, Path(scratch), args.speed, lambda line: print(line, flush=True)))
            settings = {
                "tracks": ",".join(Path(t).stem for t in args.track),
                "laps": str(args.laps),
                "noise": str(args.noise),
                "randomize": str(args.randomize),
                "seed": str(args.seed),
                "episodes": str(len(episodes)),
                "speed": str(args.speed),
            }
            written = merge(parts, output, settings)
    except CollectError as exc:
        print(f"car collect: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("car collect: interrupted; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    frames = sum(c.frames for c, _ in parts)
    wall = time.monotonic() - started
    size = output.stat().st_size / 1e6
    print(
        f"collected {len(parts)} episodes, {frames} frames ({written} messages) into {args.output} ({size:.1f} MB) "
        f"in {wall:.1f} s: {frames / wall:.0f} frames/s"
    )


if __name__ == "__main__":
    main()
