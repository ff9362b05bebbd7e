"""What an output's messages become in an MCAP file, so that Foxglove (and `car replay`) can read them back.

One channel per `node/output`, its kind chosen by the first message:

- an 8-bit image (H x W, or H x W x 1/3/4 `uint8`): Foxglove's well-known `foxglove.RawImage`
  (JSON encoding, data base64; bgr8 unless the metadata says `encoding: rgb8`), or
  `foxglove.CompressedImage` (JPEG) when recorded with `--compress jpeg`;
- another numpy array: msgpack `{dtype, shape, data}` (schema `car.ndarray`, JSON schema);
- a JSON value: JSON; a value that is not an object is wrapped as `{"_value": ...}` (Foxglove
  shows objects), with a JSON schema (`car.json`);
- anything else (bytes, Arrow arrays): msgpack of the value (`car.msgpack`).

Each message's metadata goes with it, as its `_metadata` field.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

RAW_IMAGE_SCHEMA = {
    "title": "foxglove.RawImage",
    "description": "A raw image",
    "type": "object",
    "properties": {
        "timestamp": {
            "type": "object",
            "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}},
        },
        "frame_id": {"type": "string"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "encoding": {"type": "string"},
        "step": {"type": "integer"},
        "data": {"type": "string", "contentEncoding": "base64"},
    },
}
COMPRESSED_IMAGE_SCHEMA = {
    "title": "foxglove.CompressedImage",
    "description": "A compressed image",
    "type": "object",
    "properties": {
        "timestamp": RAW_IMAGE_SCHEMA["properties"]["timestamp"],  # type: ignore[index]
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"},
    },
}
NDARRAY_SCHEMA = {
    "title": "car.ndarray",
    "type": "object",
    "properties": {"dtype": {"type": "string"}, "shape": {"type": "array"}, "data": {"type": "string"}},
}
JSON_SCHEMA = {"title": "car.json", "type": "object"}
ENCODINGS = {1: "mono8", 3: "bgr8", 4: "bgra8"}


@dataclass(frozen=True)
class ChannelKind:
    """How one output's messages are written: the schema's name and text, and the message encoding."""

    schema_name: str
    schema: dict[str, Any] | None  # None: self-describing (msgpack)
    message_encoding: str  # json | msgpack


RAW_IMAGE = ChannelKind("foxglove.RawImage", RAW_IMAGE_SCHEMA, "json")
COMPRESSED_IMAGE = ChannelKind("foxglove.CompressedImage", COMPRESSED_IMAGE_SCHEMA, "json")
NDARRAY = ChannelKind("car.ndarray", NDARRAY_SCHEMA, "msgpack")
JSON_VALUE = ChannelKind("car.json", JSON_SCHEMA, "json")
MSGPACK_VALUE = ChannelKind("car.msgpack", None, "msgpack")


def is_image(value: Any) -> bool:
    """An 8-bit array with an image's shape."""
    return (
        isinstance(value, np.ndarray)
        and value.dtype == np.uint8
        and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in ENCODINGS))
    )


def image_encoding(image: np.ndarray[Any, Any], metadata: dict[str, Any]) -> str:
    """The foxglove.RawImage encoding of an 8-bit image (`is_image`): bgr8, unless the metadata says rgb8."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    return "rgb8" if channels == 3 and metadata.get("encoding") == "rgb8" else ENCODINGS[channels]


def kind_of(value: Any, compress: str = "") -> ChannelKind:
    """The kind of channel for an output whose first message is `value` (`compress`: "" or "jpeg")."""
    if is_image(value):
        return COMPRESSED_IMAGE if compress == "jpeg" else RAW_IMAGE
    if isinstance(value, np.ndarray):
        return NDARRAY
    if value is None or isinstance(value, dict | list | str | int | float | bool):
        return JSON_VALUE
    return MSGPACK_VALUE


def encode(kind: ChannelKind, value: Any, metadata: dict[str, Any], stamp_ns: int, frame_id: str) -> bytes:
    """One message of a channel of `kind` (ValueError when `value` does not fit the channel)."""
    if kind in (RAW_IMAGE, COMPRESSED_IMAGE):
        if not is_image(value):
            raise ValueError(f"not an 8-bit image: {type(value).__name__}")
        stamp = {"sec": stamp_ns // 1_000_000_000, "nsec": stamp_ns % 1_000_000_000}
        if kind is COMPRESSED_IMAGE:
            import cv2  # only JPEG needs OpenCV

            ok, jpeg = cv2.imencode(".jpg", value)
            if not ok:
                raise ValueError("OpenCV could not encode the image as JPEG")
            body: dict[str, Any] = {"format": "jpeg", "data": base64.b64encode(jpeg.tobytes()).decode()}
        else:
            channels = 1 if value.ndim == 2 else value.shape[2]
            encoding = image_encoding(value, metadata)
            height, width = value.shape[:2]
            body = {
                "width": width,
                "height": height,
                "encoding": encoding,
                "step": width * channels,
                "data": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
            }
        return json.dumps({"timestamp": stamp, "frame_id": frame_id, **body, "_metadata": metadata}).encode()
    if kind is NDARRAY:
        array = np.ascontiguousarray(value)
        packed: bytes = msgpack.packb(
            {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes(), "_metadata": metadata}
        )
        return packed
    if kind is JSON_VALUE:
        wrapped = value if isinstance(value, dict) else {"_value": value}
        return json.dumps({**wrapped, "_metadata": metadata}, default=str).encode()
    plain = value.to_pylist() if hasattr(value, "to_pylist") else bytes(value)
    packed = msgpack.packb({"value": plain, "_metadata": metadata}, default=str)
    return packed


def decode(schema_name: str, data: bytes) -> tuple[Any, dict[str, Any]]:
    """A recorded message's value and metadata, as the output sent them (images as numpy arrays)."""
    if schema_name == RAW_IMAGE.schema_name:
        body = json.loads(data)
        raw = np.frombuffer(base64.b64decode(body["data"]), np.uint8)
        channels = body["step"] // body["width"]
        shape = (body["height"], body["width"]) if channels == 1 else (body["height"], body["width"], channels)
        return raw.reshape(shape), body.get("_metadata", {})
    if schema_name == COMPRESSED_IMAGE.schema_name:
        import cv2

        body = json.loads(data)
        jpeg = np.frombuffer(base64.b64decode(body["data"]), np.uint8)
        return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED), body.get("_metadata", {})
    if schema_name == NDARRAY.schema_name:
        body = msgpack.unpackb(data)
        array = np.frombuffer(body["data"], np.dtype(body["dtype"])).reshape(body["shape"])
        return array, body.get("_metadata", {})
    if schema_name == JSON_VALUE.schema_name:
        body = json.loads(data)
        metadata = body.pop("_metadata", {})
        return (body["_value"] if set(body) == {"_value"} else body), metadata
    body = msgpack.unpackb(data)
    return body["value"], body.get("_metadata", {})
