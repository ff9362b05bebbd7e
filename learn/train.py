"""`car train`: a pilot network from recordings, saved as ONNX for the car.

    car train DATA.mcap [MORE.mcap ...] -o MODEL.onnx [--epochs N] [--seed S]

Reads every labelled frame (learn.dataset: the simulator expert's labels, or the commands
of someone driving), holds whole episodes out for validation (`--validation` of them, at
least one; with a single episode, its last part), and trains learn.network with AdamW
(optax) on augmented batches (learn.augment). The loss is the squared error of the path's
curvature and the speed (scaled as nodes.pilot_model reads them), weighted down where the
car was off its road, plus the cross-entropy of the on-road output. A progress bar shows
the losses; training stops early when the validation loss has not improved for
`--patience` epochs, and the best epoch's weights are kept.

Beside MODEL.onnx go MODEL.png (the loss curves) and the model's metadata says what it
was trained on (each file's SHA-256 and its cleaning's), the parameters and the versions
(learn.export). The on-road output is calibrated on the held-out frames (`calibrate`):
the pilot's 0.5 is where 95 % of them on the road stay sure, so a scene unlike the
training's reads as unsure. Runs on the CPU (JAX); the same seed and data give the same
model.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from car.cache.store import Store
from learn import cached
from learn.dataset import DataError, Dataset, load
from learn.sidecar import SidecarError
from nodes.pilot_model import CURVATURE_SCALE, SPEED_SCALE, blob


class TrainError(Exception):
    """A mistake in what `car train` was asked: the message says what to do."""


@dataclass(frozen=True)
class TrainParams:
    """How a model is trained."""

    epochs: int = 30
    seed: int = 0
    batch: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6  # epochs without a better validation loss before stopping
    validation: float = 0.2  # share of the episodes held out
    off_road_weight: float = 0.3  # the steering loss's weight where the car was off its road
    on_road_weight: float = 0.2  # the on-road output's share of the loss
    sure_share: float = 0.95  # of the held-out frames on the road, the share the calibrated model is sure of


@dataclass(frozen=True)
class Split:
    """Which samples train and which validate, and how they were chosen."""

    train: np.ndarray  # bool mask
    validate: np.ndarray  # bool mask
    held_out: list[str]  # the validation episodes
    how: str


@dataclass
class History:
    """The losses, epoch by epoch."""

    train: list[float]
    validate: list[float]
    best_epoch: int = 0
    stopped_early: bool = False


def split(data: Dataset, share: float, seed: int) -> Split:
    """Hold out whole episodes (a share of them, at least one); with one episode, its last part by time."""
    names = list(range(len(data.episode_names)))
    if len(names) >= 2:
        rng = np.random.default_rng(seed)
        count = max(1, round(share * len(names)))
        held = sorted(int(k) for k in rng.choice(names, size=min(count, len(names) - 1), replace=False))
        validate = np.isin(data.episodes, held)
        return Split(~validate, validate, [data.episode_names[k] for k in held], "by episode")
    cut = int(len(data) * (1 - share))
    validate = np.arange(len(data)) >= cut
    return Split(~validate, validate, [f"{data.episode_names[0]} (its last {share:.0%})"], "one episode: by time")


def _scaled(targets: np.ndarray) -> np.ndarray:
    return np.column_stack([targets[:, 0] / CURVATURE_SCALE, targets[:, 1] / SPEED_SCALE, targets[:, 2]]).astype(
        np.float32
    )


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("smartcar", "jax", "optax", "equinox", "onnx", "numpy", "opencv-python-headless"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


class Progress:
    """A progress bar on a terminal, a line per epoch otherwise."""

    WIDTH = 24

    def __init__(self, epochs: int, stream: Any = sys.stdout):
        self.epochs = epochs
        self.stream = stream
        self.live = bool(getattr(stream, "isatty", lambda: False)())

    def batch(self, epoch: int, done: int, total: int, loss: float) -> None:
        """Within an epoch (drawn only on a terminal)."""
        if self.live:
            filled = round(self.WIDTH * done / max(total, 1))
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(f"\repoch {epoch}/{self.epochs} [{bar}] train {loss:.4f}")
            self.stream.flush()

    def epoch(self, epoch: int, train: float, validate: float, best: bool, seconds: float) -> None:
        """An epoch's end."""
        mark = "  best" if best else ""
        line = f"epoch {epoch}/{self.epochs}  train {train:.4f}  validation {validate:.4f}  {seconds:.1f} s{mark}"
        self.stream.write(("\r" + line + " " * 8 if self.live else line) + "\n")
        self.stream.flush()


def fit(data: Dataset, params: TrainParams, progress: Progress) -> tuple[Any, History, Split]:
    """Train a network on `data`; the best epoch's network, the history and the split."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from learn.augment import augment
    from learn.network import PilotNet

    chosen = split(data, params.validation, params.seed)
    train_frames, train_targets = data.frames[chosen.train], _scaled(data.targets[chosen.train])
    check_frames, check_targets = blob(data.frames[chosen.validate]), _scaled(data.targets[chosen.validate])
    if len(train_targets) < params.batch or len(check_targets) == 0:
        raise TrainError(
            f"too little data: {len(train_targets)} frames to train on and {len(check_targets)} to validate "
            f"(at least {params.batch} and 1): record more"
        )
    key = jax.random.PRNGKey(params.seed)
    model = PilotNet(key)
    batches = len(train_targets) // params.batch
    schedule = optax.cosine_decay_schedule(params.learning_rate, max(1, batches * params.epochs), alpha=0.05)
    optimiser = optax.adamw(schedule, weight_decay=params.weight_decay)
    state = optimiser.init(eqx.filter(model, eqx.is_array))

    def loss_of(model: Any, frames: Any, targets: Any) -> jax.Array:
        out = jax.vmap(model)(frames)
        weight = params.off_road_weight + (1 - params.off_road_weight) * targets[:, 2]
        steering = jnp.mean(weight * ((out[:, 0] - targets[:, 0]) ** 2 + (out[:, 1] - targets[:, 1]) ** 2))
        sure = jnp.mean(optax.sigmoid_binary_cross_entropy(out[:, 2], targets[:, 2]))
        return steering + params.on_road_weight * sure

    @eqx.filter_jit
    def step(model: Any, state: Any, frames: Any, targets: Any) -> tuple[Any, Any, jax.Array]:
        loss, grads = eqx.filter_value_and_grad(loss_of)(model, frames, targets)
        updates, state = optimiser.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    evaluate = eqx.filter_jit(loss_of)

    def validation_loss(model: Any) -> float:
        total, size = 0.0, 1024
        for start in range(0, len(check_targets), size):
            part = slice(start, start + size)
            total += float(evaluate(model, check_frames[part], check_targets[part])) * len(check_targets[part])
        return total / len(check_targets)

    rng = np.random.default_rng(params.seed)
    history = History([], [])
    best, best_loss = model, math.inf
    for epoch in range(1, params.epochs + 1):
        started = time.monotonic()
        order = rng.permutation(len(train_targets))
        running = 0.0
        for k in range(batches):
            picked = order[k * params.batch : (k + 1) * params.batch]
            frames = blob(augment(train_frames[picked], rng))
            model, state, loss = step(model, state, frames, train_targets[picked])
            running += float(loss)
            progress.batch(epoch, k + 1, batches, running / (k + 1))
        history.train.append(running / batches)
        history.validate.append(validation_loss(model))
        improved = history.validate[-1] < best_loss
        if improved:
            best, best_loss, history.best_epoch = model, history.validate[-1], epoch
        progress.epoch(epoch, history.train[-1], history.validate[-1], improved, time.monotonic() - started)
        if epoch - history.best_epoch >= params.patience:
            history.stopped_early = True
            break
    return best, history, chosen


@dataclass(frozen=True)
class Calibration:
    """Where the on-road output says "sure": the logit that `sure_share` of the held-out on-road frames reach."""

    logit: float
    probability: float  # the same, as the uncalibrated model's probability
    frames: int  # held-out on-road frames it was measured on
    foreign_share: float | None  # of the held-out frames off the road, the share the calibrated model is unsure of


def calibrate(model: Any, data: Dataset, chosen: Split, share: float) -> tuple[Any, Calibration]:
    """Shift the on-road output so that 0.5 (the pilot's default `min_confidence`) falls where `share` of the
    held-out frames on the road stay sure: what the model says of a scene unlike any it was trained on (a tape floor
    for a lane model) then reads as unsure, and the car stops."""
    import equinox as eqx
    import jax

    frames, targets = blob(data.frames[chosen.validate]), data.targets[chosen.validate]
    logits = np.concatenate(
        [np.asarray(jax.vmap(model)(frames[k : k + 1024]))[:, 2] for k in range(0, len(frames), 1024)]
    )
    on_road = logits[targets[:, 2] > 0.5]
    if len(on_road) == 0:
        return model, Calibration(0.0, 0.5, 0, None)
    threshold = float(np.quantile(on_road, 1 - share))
    off_road = logits[targets[:, 2] <= 0.5]
    foreign = float(np.mean(off_road < threshold)) if len(off_road) else None
    shifted = eqx.tree_at(lambda m: m.out.bias, model, model.out.bias.at[2].add(-threshold))
    return shifted, Calibration(threshold, float(1 / (1 + np.exp(-threshold))), len(on_road), foreign)


def loss_curve_png(history: History, path: Path, title: str) -> None:
    """The training and validation losses per epoch, drawn with OpenCV, as PNG."""
    import cv2

    width, height, margin = 640, 360, 50
    image = np.full((height, width, 3), 255, np.uint8)
    series = [("train", history.train, (200, 120, 0)), ("validation", history.validate, (0, 100, 230))]
    values = [v for _, s, _ in series for v in s if math.isfinite(v) and v > 0]
    low, high = math.log10(min(values)), math.log10(max(values))
    high = high if high > low else low + 1
    epochs = max(len(history.train), 2)

    def at(epoch: int, value: float) -> tuple[int, int]:
        x = margin + (width - 2 * margin) * (epoch - 1) / (epochs - 1)
        y = height - margin - (height - 2 * margin) * (math.log10(max(value, 1e-12)) - low) / (high - low)
        return round(x), round(y)

    cv2.rectangle(image, (margin, margin), (width - margin, height - margin), (180, 180, 180), 1)
    for value, row in ((10**high, margin + 4), (10**low, height - margin)):  # the axis's ends, in loss units
        cv2.putText(image, f"{value:.3g}", (4, row), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for name, losses, colour in series:
        points = np.array([at(k + 1, v) for k, v in enumerate(losses)], np.int32)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        cv2.putText(
            image,
            name,
            (width - margin - 110, margin + 20 + 20 * (name == "validation")),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            1,
            cv2.LINE_AA,
        )
    if history.best_epoch:
        cv2.circle(
            image, at(history.best_epoch, history.validate[history.best_epoch - 1]), 5, (0, 0, 0), 1, cv2.LINE_AA
        )
    cv2.putText(image, title, (margin, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
    cv2.putText(
        image,
        f"loss (log scale) per epoch, 1-{len(history.train)}",
        (margin, height - 15),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (90, 90, 90),
        1,
        cv2.LINE_AA,
    )
    if not cv2.imwrite(str(path), image):
        raise TrainError(f"could not write {path}")


def train(paths: list[Path], output: Path, params: TrainParams, progress: Progress | None = None) -> dict[str, Any]:
    """Train on the recordings at `paths` and write the model to `output` (and the loss curves beside it); the
    metadata written into the model."""
    from hal.description import load_description
    from learn import export
    from learn.network import weights

    progress = progress or Progress(params.epochs)
    wheel_base = load_description().car.wheel_base
    data = load(paths, wheel_base)
    print(
        f"{len(data)} frames from {len(paths)} recording(s), {len(data.episode_names)} episode(s); "
        f"{sum(s['dropped'] for s in data.sources)} left out by cleaning",
        file=progress.stream,
    )
    model, history, chosen = fit(data, params, progress)
    model, calibration = calibrate(model, data, chosen, params.sure_share)
    print(
        f"validation: {chosen.how}, held out {len(chosen.held_out)} of {len(data.episode_names)}: "
        f"{', '.join(chosen.held_out)}",
        file=progress.stream,
    )
    foreign = calibration.foreign_share
    print(
        f"on-road output calibrated: sure of {params.sure_share:.0%} of {calibration.frames} held-out frames on the "
        f"road (above {calibration.probability:.3f})"
        + (f", unsure of {foreign:.0%} of those off it" if foreign is not None else ""),
        file=progress.stream,
    )
    metadata = {
        "trained_on": data.sources,
        "parameters": asdict(params),
        "versions": _versions(),
        "validation": {
            "loss": history.validate[history.best_epoch - 1],
            "best_epoch": history.best_epoch,
            "epochs_run": len(history.train),
            "stopped_early": history.stopped_early,
            "split": chosen.how,
            "held_out": chosen.held_out,
            "frames": int(chosen.validate.sum()),
        },
        "frames": int(chosen.train.sum()),
        "weights": weights(model),
        "on_road_calibration": asdict(calibration),
    }
    export.save(model, output, metadata)
    loss_curve_png(history, output.with_suffix(".png"), f"{output.name}: best epoch {history.best_epoch}")
    return metadata


def arguments() -> argparse.ArgumentParser:
    """`car train`'s options."""
    defaults = TrainParams()
    parser = argparse.ArgumentParser(prog="car train", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", metavar="DATA.mcap", help="recordings (car collect, car launch --record)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", help="the model to write")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"at most (default {defaults.epochs})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="the same seed and data: the same model")
    parser.add_argument("--batch", type=int, default=defaults.batch, help=f"frames per step (default {defaults.batch})")
    parser.add_argument(
        "--patience", type=int, default=defaults.patience, help="epochs without progress before stopping"
    )
    parser.add_argument(
        "--validation", type=float, default=defaults.validation, help="share of the episodes held out (default 0.2)"
    )
    parser.add_argument(
        "--force", action="store_true", help="train even when the recordings, parameters and code are unchanged"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """`car train`."""
    args = arguments().parse_args(argv)
    output = Path(args.output)
    try:
        if output.suffix != ".onnx":
            raise TrainError(f"-o {args.output}: name the model MODEL.onnx")
        if not output.resolve().parent.is_dir():
            raise TrainError(f"-o {args.output}: the folder {output.resolve().parent} does not exist")
        if args.epochs < 1 or args.batch < 1 or args.patience < 1 or not 0 < args.validation < 1:
            raise TrainError("--epochs, --batch and --patience are at least 1, and --validation between 0 and 1")
        params = TrainParams(
            epochs=args.epochs, seed=args.seed, batch=args.batch, patience=args.patience, validation=args.validation
        )
        started = time.monotonic()
        paths = [Path(p) for p in args.data]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise TrainError(f"no such recording: {', '.join(missing)}")
        store = Store()
        key = cached.training_key(paths, asdict(params))
        if not args.force and cached.restore(store, key, output):
            print(
                f"car train: the recordings, parameters and code are as when {output.name} was trained: "
                f"it is written from the cache (--force trains again)"
            )
            return
        metadata = train(paths, output, params)
        cached.keep(store, key, output, time.monotonic() - started)
    except (TrainError, DataError, SidecarError) as exc:
        print(f"car train: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except ModuleNotFoundError as exc:
        print(
            f"car train: {exc.name} is missing: install the training extra (pip install -e '.[train]')", file=sys.stderr
        )
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("car train: interrupted; no model was written", file=sys.stderr)
        raise SystemExit(130) from None
    size = output.stat().st_size / 1e3
    print(
        f"wrote {output} ({size:.0f} kB, {metadata['weights']} weights; validation loss "
        f"{metadata['validation']['loss']:.4f} at epoch {metadata['validation']['best_epoch']}) and "
        f"{output.with_suffix('.png')} in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
