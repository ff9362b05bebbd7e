"""dora's modules: a sub-graph in a file of its own, used as a node (`module: FILE`), expanded when the file loads.

A module file has a header (`module: {name, inputs, inputs_optional, outputs}`), an
optional `build` and its `nodes`; inside, `_mod/PORT` reads one of the module's inputs. A
node `- id: M, module: FILE, inputs: {PORT: SOURCE}` becomes the module's nodes, named
`M.NODE`, their `_mod/PORT` inputs reading SOURCE (an optional port left unwired drops the
input), their references to each other renamed, their paths resolved from the module's
folder; other nodes read `M/OUTPUT`, which names the one node of the module that sends it.
The module node's `env`, `params` (as `PARAM_KEY` in each node's environment, and
`$PARAM_KEY` in its args), `deploy` and `build` apply to every node inside.

The loader (car.spec.loader) checks a module file with a checker of its own, so each
problem inside names the module's file and line; this module only renames (`Expansion`).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from car.spec.model import InputSpec, NodeSpec, OperatorSpec

MODULE_SOURCE = "_mod"  # `_mod/PORT`: one of the module's inputs, inside a module
MAX_DEPTH = 8  # modules inside modules, at most (dora's limit)
MAX_FILE_BYTES = 1 << 20  # a module file's size, at most (dora's limit)
PARAM_KEY = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class ModuleHeader:
    """A module file's `module:` header."""

    name: str
    inputs: tuple[str, ...] = ()
    inputs_optional: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def ports(self) -> tuple[str, ...]:
        """Every input port, required or optional."""
        return (*self.inputs, *self.inputs_optional)


@dataclass(frozen=True)
class Expansion:
    """How one module node becomes nodes: its id, what its ports are wired to, and what it passes on."""

    module_id: str
    folder: Path  # the module file's folder
    base_dir: Path  # the folder the dataflow's relative paths resolve against
    wiring: dict[str, str]  # port -> source (as the parent wrote it)
    env: dict[str, str] = field(default_factory=dict)  # the module node's env, and PARAM_* from its params
    params: dict[str, str] = field(default_factory=dict)
    build: str = ""  # the module file's and the module node's builds, run in the module's folder first
    working_dir: str = ""  # the module node's deploy.working_dir: where its nodes without one of their own run

    def node(self, spec: NodeSpec, siblings: set[str], first: bool) -> NodeSpec:
        """One of the module's nodes (`siblings`: the ids inside the module), as the dataflow has it."""
        inputs: dict[str, InputSpec] = {}
        for name, inp in spec.inputs.items():
            source = self.source(inp.source, siblings)
            if source is not None:
                inputs[name] = replace(inp, source=source)
        args = tuple(self._with_params(arg) for arg in spec.args)
        build = " && ".join(part for part in (self.build_here() if first else "", spec.build) if part)
        return replace(
            spec,
            id=f"{self.module_id}.{spec.id}",
            path=self.path(spec.path),
            working_dir=spec.working_dir or self.working_dir,
            args=args,
            env={**self.env, **spec.env},
            build=build,
            inputs=inputs,
            operators=tuple(self.operator(op, siblings) for op in spec.operators),
        )

    def operator(self, op: OperatorSpec, siblings: set[str]) -> OperatorSpec:
        """An operator of one of the module's nodes, its file and sources renamed."""
        inputs = {}
        for name, inp in op.inputs.items():
            source = self.source(inp.source, siblings)
            if source is not None:
                inputs[name] = replace(inp, source=source)
        return replace(op, python=self.path(op.python), inputs=inputs)

    def source(self, source: str, siblings: set[str]) -> str | None:
        """What an input inside the module reads, renamed (None: an optional port left unwired)."""
        node, _, output = source.partition("/")
        if node == MODULE_SOURCE:
            return self.wiring.get(output)
        if node in siblings:
            return f"{self.module_id}.{node}/{output}"
        return source  # a timer, dora/logs, or a problem the module's checker reported

    def path(self, path: str) -> str:
        """A node's path from the module's folder, made relative to the dataflow's (a program or module: as is)."""
        if not path or path.startswith("-m ") or ("/" not in path and not path.endswith(".py")):
            return path
        if Path(path).is_absolute():
            return path
        return os.path.relpath(self.folder / path, self.base_dir)

    def build_here(self) -> str:
        """The module's own build, in its folder."""
        if not self.build:
            return ""
        return f"(cd {shlex.quote(os.path.relpath(self.folder, self.base_dir))} && {self.build})"

    def _with_params(self, arg: str) -> str:
        for key, value in self.params.items():
            arg = arg.replace(f"$PARAM_{key.upper()}", value)
        return arg


def producers(nodes: list[NodeSpec], output: str, module_id: str) -> list[str]:
    """The `node/output` sources among a module's direct nodes (ids `module_id.X`) that send `output` (an operator
    node's `OPID/output` too)."""
    found = []
    for node in nodes:
        if "." in node.id.removeprefix(f"{module_id}."):
            continue  # inside a nested module: reached through that module's own outputs
        for name in node.outputs:
            if name == output or name.endswith(f"/{output}"):
                found.append(f"{node.id}/{name}")
    return found
