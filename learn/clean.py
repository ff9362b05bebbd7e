"""`car clean DATA.mcap`: a page to look through a recording and mark what training should leave out.

    car clean data.mcap [--port 8790] [--host 127.0.0.1]

Like donkeycar's tub editor: scrub through the camera's frames with the commands (speed,
curvature, and whether the car was on its road) plotted beside them, mark ranges to drop
(a crash, a stretch driven badly, a hand in front of the camera), and save. The ranges go
into a small sidecar beside the recording (learn.sidecar: `DATA.clean.json`); the
recording is never rewritten, and `car train` leaves those frames out.

The page is served here (Python's own HTTP server, on 127.0.0.1 unless `--host` says
otherwise) until Ctrl-C:

- `GET /` the page, `GET /api/recording` the frames' times and the plotted series,
  `GET /api/frame/K` frame K as JPEG;
- `POST /api/drop` `{"drop": [{"start_ns", "end_ns"}, ...]}` saves the sidecar.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from learn.dataset import DataError, labelled_frames, recording_topics
from learn.sidecar import Sidecar, SidecarError

STATIC = Path(__file__).parent / "static"
UPLOT = Path(__file__).resolve().parent.parent / "view" / "static"  # the live view's copy of uPlot
FILES = {
    "/": (STATIC / "clean.html", "text/html; charset=utf-8"),
    "/clean.js": (STATIC / "clean.js", "text/javascript; charset=utf-8"),
    "/uPlot.iife.min.js": (UPLOT / "uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/uPlot.min.css": (UPLOT / "uPlot.min.css", "text/css; charset=utf-8"),
}
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Indexed:
    """One frame of the recording, as the page lists it."""

    stamp_ns: int
    speed: float | None  # m/s of the command paired with it (None: none)
    curvature: float | None
    on_road: bool | None


class Recording:
    """A recording opened for the page: its frames' times and commands, and frames read on demand."""

    def __init__(self, path: Path, wheel_base: float):
        import mcap.reader

        self.path = path
        self.image_topic = recording_topics(path)[0]
        pairs = sorted(
            labelled_frames(path, wheel_base, all_frames=True, decode_frames=False), key=lambda p: p.stamp_ns
        )
        self.frames = [
            Indexed(p.stamp_ns, p.label.speed, p.label.curvature, p.label.on_road)
            if p.label is not None
            else Indexed(p.stamp_ns, None, None, None)
            for p in pairs
        ]
        if not self.frames:
            raise DataError(f"{path}: no camera frames in it")
        self._stream = open(path, "rb")  # noqa: SIM115  # closed by close()
        self._reader = mcap.reader.make_reader(self._stream)
        self._lock = threading.Lock()

    def summary(self) -> dict[str, Any]:
        """What the page plots: each frame's time (s from the first) and command, and the saved drops."""
        first = self.frames[0].stamp_ns
        return {
            "file": self.path.name,
            "frames": len(self.frames),
            "stamps_ns": [f.stamp_ns for f in self.frames],
            "t": [round((f.stamp_ns - first) / 1e9, 4) for f in self.frames],
            "speed": [None if f.speed is None else round(f.speed, 4) for f in self.frames],
            "curvature": [None if f.curvature is None else round(f.curvature, 4) for f in self.frames],
            "on_road": [None if f.on_road is None else int(f.on_road) for f in self.frames],
            "drop": Sidecar.load(self.path).to_json(self.path)["drop"],
            "sidecar": Sidecar.path_for(self.path).name,
        }

    def jpeg(self, index: int) -> bytes:
        """Frame `index` as JPEG bytes."""
        from car.recording.channels import decode

        stamp = self.frames[index].stamp_ns
        with self._lock:
            for schema, _, message in self._reader.iter_messages(
                topics=[self.image_topic], start_time=stamp, end_time=stamp + 1
            ):
                if schema is not None and schema.name == "foxglove.CompressedImage":
                    return base64.b64decode(json.loads(message.data)["data"])
                image, _ = decode(schema.name if schema is not None else "", message.data)
                ok, encoded = cv2.imencode(".jpg", np.asarray(image), [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    return bytes(encoded)
        raise DataError(f"frame {index} could not be read from {self.path}")

    def save(self, raw: Any) -> dict[str, Any]:
        """Save the page's ranges as the sidecar; what was saved."""
        sidecar = Sidecar.from_json(raw, "the page's ranges")
        path = sidecar.save(self.path)
        dropped = sum(not sidecar.keeps(f.stamp_ns) for f in self.frames)
        return {"saved": path.name, "ranges": len(sidecar.drop), "dropped_frames": dropped}

    def close(self) -> None:
        """Close the recording."""
        self._stream.close()


def handler_for(recording: Recording) -> type[BaseHTTPRequestHandler]:
    """The request handler serving `recording`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
            return

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def do_GET(self) -> None:  # the http.server's name
            if self.path in FILES:
                path, kind = FILES[self.path]
                self._send(HTTPStatus.OK, path.read_bytes(), kind)
            elif self.path == "/api/recording":
                self._json(HTTPStatus.OK, recording.summary())
            elif self.path.startswith("/api/frame/") and self.path[11:].isdigit():
                index = int(self.path[11:])
                if not 0 <= index < len(recording.frames):
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no frame {index}"})
                    return
                self._send(HTTPStatus.OK, recording.jpeg(index), "image/jpeg")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/api/drop" or not 0 < length <= MAX_BODY:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "POST /api/drop with a JSON body"})
                return
            try:
                self._json(HTTPStatus.OK, recording.save(json.loads(self.rfile.read(length))))
            except (json.JSONDecodeError, SidecarError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except OSError as exc:
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"could not save: {exc}"})

    return Handler


def main(argv: list[str] | None = None) -> None:
    """`car clean`."""
    from hal.description import load_description

    parser = argparse.ArgumentParser(prog="car clean", description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", metavar="DATA.mcap")
    parser.add_argument("--port", type=int, default=8790, help="the page's port (default 8790; 0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="where to listen (default 127.0.0.1: this machine only)")
    args = parser.parse_args(argv)
    try:
        recording = Recording(Path(args.recording), load_description().car.wheel_base)
    except (DataError, SidecarError) as exc:
        print(f"car clean: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler_for(recording))
    except OSError as exc:
        recording.close()
        print(f"car clean: --port {args.port}: {exc.strerror}; pick another port", file=sys.stderr)
        raise SystemExit(2) from None
    host, port = server.server_address[:2]
    print(f"car clean: {len(recording.frames)} frames of {args.recording} at http://{host!s}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        recording.close()


if __name__ == "__main__":
    main()
