"""`dora.builder`: write a dataflow file from Python instead of by hand.

builder = DataflowBuilder()
image = builder.add_node("camera").path("camera.py").add_output("image")
builder.add_node("detector").path("detector.py").add_input("image", image, queue_size=1)
builder.to_yaml("dataflow.yml")
"""

from __future__ import annotations

from typing import Any

import yaml

from car.spec.model import QUEUE_POLICIES

__all__ = ["DataflowBuilder", "Node", "Operator", "Output"]


class Output:
    """A node's output, usable as an input's source (`node/output`)."""

    def __init__(self, node: Node, output_id: str):
        self.node = node
        self.output_id = output_id

    def __str__(self) -> str:
        return f"{self.node.id}/{self.output_id}"


class Operator:
    """An operator of a runtime node (dora's format; car refuses operators when it loads the file)."""

    def __init__(self, id: str, **keys: Any):
        self.id = id
        self.config: dict[str, Any] = {"id": id, **{k: v for k, v in keys.items() if v is not None}}

    def to_dict(self) -> dict[str, Any]:
        """The operator as it appears in the file."""
        return dict(self.config)


class Node:
    """One node of the dataflow; each setter returns the node, so calls chain."""

    def __init__(self, id: str, **keys: Any):
        self.id = id
        self.config: dict[str, Any] = {"id": id, **keys}

    def _set(self, key: str, value: Any) -> Node:
        self.config[key] = value
        return self

    def path(self, path: str) -> Node:
        """The program (or `dynamic`)."""
        return self._set("path", path)

    def args(self, args: str) -> Node:
        """Its command-line arguments."""
        return self._set("args", args)

    def env(self, env: dict[str, Any]) -> Node:
        """Its environment variables."""
        return self._set("env", env)

    def build(self, build_command: str) -> Node:
        """The command `car build` runs for it."""
        return self._set("build", build_command)

    def git(self, url: str, branch: str | None = None, tag: str | None = None, rev: str | None = None) -> Node:
        """Where its source comes from (dora's keys)."""
        self.config["git"] = url
        for key, value in (("branch", branch), ("tag", tag), ("rev", rev)):
            if value is not None:
                self.config[key] = value
        return self

    def add_operator(self, operator: Operator) -> Node:
        """An operator of this (runtime) node."""
        self.config.setdefault("operators", []).append(operator.to_dict())
        return self

    def add_output(self, output_id: str) -> Output:
        """Declare an output (once); what inputs use as their source."""
        outputs = self.config.setdefault("outputs", [])
        if output_id not in outputs:
            outputs.append(output_id)
        return Output(self, output_id)

    def add_input(
        self,
        input_id: str,
        source: str | Output,
        queue_size: int | None = None,
        queue_policy: str | None = None,
    ) -> Node:
        """An input fed by `source` (`node/output`, a timer, or an Output), with an optional queue."""
        if queue_policy is not None and queue_policy not in QUEUE_POLICIES:
            raise ValueError(f"queue_policy must be one of {', '.join(QUEUE_POLICIES)}, not `{queue_policy}`")
        if queue_size is not None and queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        entry: Any = str(source)
        if queue_size is not None or queue_policy is not None:
            entry = {"source": str(source)}
            if queue_size is not None:
                entry["queue_size"] = queue_size
            if queue_policy is not None:
                entry["queue_policy"] = queue_policy
        self.config.setdefault("inputs", {})[input_id] = entry
        return self

    def to_dict(self) -> dict[str, Any]:
        """The node as it appears in the file."""
        return dict(self.config)


class DataflowBuilder:
    """A dataflow being written: add nodes, then `to_yaml()`."""

    def __init__(self, name: str = "dora-dataflow"):
        self.name = name
        self.nodes: list[Node] = []

    def add_node(self, id: str, **keys: Any) -> Node:
        """A new node (keys: any node keys of the file)."""
        node = Node(id, **keys)
        self.nodes.append(node)
        return node

    def to_yaml(self, path: str | None = None) -> str | None:
        """The dataflow as YAML; written to `path` instead (returning None) when one is given."""
        text = yaml.safe_dump({"nodes": [node.to_dict() for node in self.nodes]}, sort_keys=False)
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return None

    def __enter__(self) -> DataflowBuilder:
        return self

    def __exit__(self, *_: object) -> None:
        return None
