"""The smart car's `car launch` options; they reach the nodes as environment variables.

--sim / --hw, --port PORT     CAR_BACKEND=sim|hw, CAR_PORT
--board-give-up S             CAR_BOARD_GIVE_UP_S: with --hw, how long a lost board is waited for (default 10)
--track NAME_OR_FILE          CAR_TRACK (a name from sim/tracks/ or a track file path)
--seed N                      CAR_SEED
--randomize                   CAR_RANDOMIZE=1: the simulator draws its scene at random from the seed (sim.randomize:
                              floor, light, the camera's true pose within calibration's tolerance, noise, motion blur)
--laps N                      CAR_LAPS: car_io stops the run after N laps, or once the car was off the line for 3 s
                              or stood still for 10 s
                              (without it the run goes on off the line: someone may drive the car back)
--report FILE.json            CAR_REPORT: car_io writes the run's figures there (and FILE.png)
--car FILE.yml                CAR_DESCRIPTION: the car description every node and the simulator read (hal.description);
                              without it, with --hw the user's ~/.config/car/car.yml if there is one (`car calibrate`
                              writes it), else (and always with --sim) the simulator's car, hal/cars/sim.yml
--sim-car FILE.yml            CAR_SIM_DESCRIPTION: the simulator's own car (the true one, when --car is a calibrated model)
--model FILE.onnx             CAR_MODEL: the learned pilot's model (nodes.learned_pilot), checked before anything starts;
                              a graph with a learned pilot needs it
--headless                    CAR_HEADLESS=1: no live window
--realtime-factor X           CAR_REALTIME_FACTOR: simulated seconds per wall second (0: as fast as the nodes go)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by every `car launch`: nothing at run time
    from car.spec.model import Dataflow

TRACK_ENV = "CAR_TRACK"  # the simulator's track: a name from sim/tracks/ or a file's absolute path
SIM_TIME_ENV = "CAR_SIM_TIME_S"  # the simulated run ends after this much car time
LEARNED_PILOT = "nodes.learned_pilot"  # a node whose path runs this is a learned pilot, and needs --model
RANDOMIZE_ENV = "CAR_RANDOMIZE"  # "1": the simulator's scene is drawn at random from the seed


class SmartCarOptions:
    """Registered under the entry point `car.launch_options` as `smartcar`."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Declare the options."""
        backend = group.add_mutually_exclusive_group()
        backend.add_argument(
            "--sim", dest="backend", action="store_const", const="sim", help="drive the simulator (default)"
        )
        backend.add_argument("--hw", dest="backend", action="store_const", const="hw", help="drive the real board")
        group.add_argument("--port", help="serial port or URL of the board (with --hw)")
        group.add_argument("--camera", help="camera for --hw: a device index, /dev/videoN or a video file")
        group.add_argument(
            "--board-give-up",
            type=float,
            metavar="S",
            help="with --hw: how long a lost board (unplugged, reset) is waited for before the run ends (default 10)",
        )
        group.add_argument(
            "--car",
            metavar="FILE.yml",
            help="the car's description (geometry, motors, camera; default: the simulator's)",
        )
        group.add_argument(
            "--sim-car",
            metavar="FILE.yml",
            help="the simulated car itself, when --car is a model of it (say, a calibrated one); default: --car's",
        )
        group.add_argument(
            "--track", default="oval", help="a track name from sim/tracks/ or a track file (default oval)"
        )
        group.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
        group.add_argument(
            "--randomize",
            action="store_true",
            help="draw the simulated scene at random from the seed (floor, light, camera pose, noise, blur)",
        )
        group.add_argument(
            "--laps", type=int, help="stop the run after N laps (or 3 s off the line, or 10 s standing still)"
        )
        group.add_argument(
            "--sim-time",
            type=float,
            metavar="S",
            help="stop the simulated run after S seconds of car time (--duration counts wall-clock seconds)",
        )
        group.add_argument("--report", metavar="FILE.json", help="write the run's figures (and FILE.png) at the end")
        group.add_argument("--model", metavar="FILE.onnx", help="the learned pilot's model (made by `car train`)")
        group.add_argument("--headless", action="store_true", help="no live window")
        group.add_argument(
            "--realtime-factor",
            type=float,
            default=1.0,
            metavar="X",
            help="simulated s per wall s; 0: as fast as possible",
        )

    def environment(self, args: argparse.Namespace) -> dict[str, str]:
        """Check the values and turn them into node environment variables."""
        backend = args.backend or "sim"
        env = {"CAR_BACKEND": backend, "CAR_SEED": str(args.seed), "CAR_REALTIME_FACTOR": str(args.realtime_factor)}
        if args.realtime_factor < 0:
            raise ValueError("--realtime-factor must be >= 0")
        if backend == "hw" and not args.port:
            raise ValueError("--hw needs --port PORT: the board's serial port or URL (e.g. /dev/ttyACM0)")
        if backend == "sim" and (args.port or args.camera):
            given = "--port" if args.port else "--camera"
            raise ValueError(f"{given} is for the real car: add --hw (without it the simulator runs)")
        if backend == "sim":
            from sim.track import TrackError, load_track  # only when launching: `car list` need not load OpenCV

            try:
                load_track(args.track)
            except TrackError as exc:
                raise ValueError(str(exc)) from None
            track = Path(args.track)
            env[TRACK_ENV] = str(track.resolve()) if track.exists() else args.track
            if args.randomize:
                env[RANDOMIZE_ENV] = "1"
        elif args.randomize:
            raise ValueError("--randomize draws the simulator's scene: it needs --sim (the default), not --hw")
        if args.port:  # a path from here (the nodes run elsewhere), the link itself kept: it may point anew later
            port = Path(args.port)
            env["CAR_PORT"] = str(port.absolute()) if port.exists() else args.port
        if args.board_give_up is not None:
            if backend != "hw" or not args.board_give_up > 0:
                raise ValueError("--board-give-up S is for --hw, with S > 0 seconds")
            env["CAR_BOARD_GIVE_UP_S"] = str(args.board_give_up)
        if args.camera:
            camera = Path(args.camera)
            env["CAR_CAMERA"] = str(camera.resolve()) if camera.exists() else args.camera
        from hal.description import DEFAULT_FILE, user_file

        if args.car:
            env["CAR_DESCRIPTION"] = _checked_description("--car", args.car)
        elif backend == "hw" and user_file().is_file():  # what `car calibrate` measured of the real car
            env["CAR_DESCRIPTION"] = _checked_description("the user's car file", str(user_file()))
        else:  # the simulator's car: calibrating the real one does not change simulated runs
            env["CAR_DESCRIPTION"] = str(DEFAULT_FILE)
        if args.sim_car:
            if backend != "sim":
                raise ValueError("--sim-car is the simulator's car: it needs --sim (the default), not --hw")
            env["CAR_SIM_DESCRIPTION"] = _checked_description("--sim-car", args.sim_car)
        if args.laps is not None:
            if args.laps < 1:
                raise ValueError("--laps must be at least 1")
            env["CAR_LAPS"] = str(args.laps)
        if args.sim_time is not None:
            if backend != "sim" or not args.sim_time > 0:
                raise ValueError("--sim-time S is the simulated run's length: it needs --sim, with S > 0 seconds")
            env[SIM_TIME_ENV] = str(args.sim_time)
        if args.report:
            report = Path(args.report).resolve()
            if not report.parent.is_dir() or not os.access(report.parent, os.W_OK):
                raise ValueError(
                    f"--report {args.report}: the folder {report.parent} does not exist or is not writable"
                )
            if report.suffix != ".json":
                raise ValueError(f"--report {args.report}: name a .json file (the picture goes beside it as .png)")
            env["CAR_REPORT"] = str(report)
        if args.headless:
            env["CAR_HEADLESS"] = "1"
        if args.model:
            from nodes.pilot_model import MODEL_ENV, ModelError, load_model

            try:
                load_model(args.model)
            except ModelError as exc:
                raise ValueError(f"--model: {exc}") from None
            env[MODEL_ENV] = str(Path(args.model).resolve())
        return env

    def warnings(self, args: argparse.Namespace, dataflow: Dataflow) -> list[str]:
        """Combinations that run but may not do what was meant (ValueError: one that cannot run)."""
        said = []
        learned = [n.id for n in dataflow.nodes if LEARNED_PILOT in n.path]
        if learned and not args.model:
            raise ValueError(
                f"node `{learned[0]}` of {dataflow.file} is a learned pilot: give it a model with --model FILE.onnx "
                "(models/lane.onnx for lane tracks, models/line.onnx for tape; or one made with `car train`)"
            )
        if args.model and not learned:
            said.append(f"--model: no node of {dataflow.file} is a learned pilot ({LEARNED_PILOT}); nothing reads it")
        if args.backend == "hw" and not args.camera and _reads_camera_frames(dataflow):
            said.append(
                "--hw without --camera: car_io sends no camera frames (a graph that follows the line by camera sees nothing)"
            )
        return said


def _reads_camera_frames(dataflow: Dataflow) -> bool:
    """Whether a node reads car_io's camera frames (its `image` output)."""
    car_io = {n.id for n in dataflow.nodes if "car_io" in n.path}
    return any(
        i.source_node in car_io and i.source_output == "image" for n in dataflow.nodes for i in n.inputs.values()
    )


def _checked_description(option: str, path: str) -> str:
    """The absolute path of a car description that loads; ValueError naming the option and the fault."""
    from hal.description import DescriptionError, load_description

    try:
        load_description(path)
    except DescriptionError as exc:
        raise ValueError(f"{option}: {exc}") from None
    return str(Path(path).resolve())


OPTIONS = SmartCarOptions()
