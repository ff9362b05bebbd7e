"""One node of a dataflow file (a program, an operator node or a dynamic one), read into the model.

`NodeReader` reads a node's YAML (its keys, path, inputs, outputs, operators, restarts,
logs, deploy) into a `NodeSpec`, reporting each mistake at its place; the loader
(car.spec.loader) reads the file around it (its top keys, module nodes and module files)
and checks what the nodes read from each other.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from car.spec import types
from car.spec.model import (
    DEFAULT_QUEUE_SIZE,
    DYNAMIC_PATH,
    LOG_LEVELS,
    LOG_SOURCE,
    OPERATOR_RUNTIME,
    QUEUE_POLICIES,
    RESTART_POLICIES,
    SINGLE_OPERATOR_ID,
    Deploy,
    InputSpec,
    Location,
    NodeSpec,
    OperatorSpec,
    Placement,
    Problem,
    QueuePolicy,
    RestartPolicy,
    parse_timer,
)
from car.spec.values import ValueReader, suggest

NODE_KEYS = (
    "id",
    "name",
    "description",
    "path",
    "args",
    "env",
    "build",
    "inputs",
    "outputs",
    "deploy",
    "_unstable_deploy",
    "restart_policy",
    "max_restarts",
    "restart_delay",
    "cpu_affinity",
    "critical",
    "custom",
    "output_types",
    "input_types",
    "min_log_level",
    "max_log_size",
    "max_rotated_files",
    "send_logs_as",
    "send_stdout_as",
    "operator",
    "operators",
)
# An operator node (dora's `operator:` / `operators:`) takes these beside its operators (dora's, and car's restarts);
# what a program node has (path, inputs, outputs, ...) belongs to each operator.
RUNTIME_NODE_KEYS = (
    "id",
    "name",
    "description",
    "env",
    "deploy",
    "_unstable_deploy",
    "cpu_affinity",
    "restart_policy",
    "max_restarts",
    "restart_delay",
    "critical",
    "operator",
    "operators",
)
OPERATOR_KEYS = (
    "id",
    "name",
    "description",
    "python",
    "build",
    "inputs",
    "outputs",
    "output_types",
    "input_types",
    "send_stdout_as",
    "send_logs_as",
    "min_log_level",
)
_NATIVE_OPERATOR = "car runs Python operators: write this one in Python (`python: FILE.py`), or make it a node"
UNSUPPORTED_OPERATOR = {
    "shared-library": _NATIVE_OPERATOR,
    "wasm": _NATIVE_OPERATOR,
    "max_log_size": "set log rotation on a program node: an operator node's log holds all its operators' lines",
    "max_rotated_files": "set log rotation on a program node: an operator node's log holds all its operators' lines",
}
CUSTOM_KEYS = ("source", "args", "envs", "env", "build", "inputs", "outputs")
INPUT_KEYS = ("source", "queue_size", "queue_policy", "input_timeout")
DEPLOY_KEYS = ("machine", "working_dir", "local", "files")

NOT_SUPPORTED_HINT = "remove it: car does not implement this dora feature"
UNSUPPORTED_NODE = {
    "ros2": "ROS 2 bridging is not part of car; bridge in a node of your own",
    "git": "fetch the source yourself and point `path` at it",
    "branch": "fetch the source yourself and point `path` at it",
    "tag": "fetch the source yourself and point `path` at it",
    "rev": "fetch the source yourself and point `path` at it",
    "hub": "install the package yourself and use `path: -m package.module`",
}
for _key in (
    "path_sha256",
    "output_framing",
    "output_metadata",
    "pattern",
    "shared_memory_pool_size",
    "max_restart_delay",
    "restart_window",
    "health_check_timeout",
    "finish_grace_secs",
    "params",
    "startup_timeout",
):
    UNSUPPORTED_NODE[_key] = NOT_SUPPORTED_HINT


def user_types(base_dir: Path) -> dict[str, Path]:
    """The types a project defines in `types/` next to its dataflow: URN -> the file that defines it.

    A file that cannot be read defines nothing (its types are then reported unknown, naming the file).
    """
    folder = base_dir / "types"
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for file in sorted(folder.rglob("v*.yml")):
        prefix = file.relative_to(folder).with_suffix("").as_posix()
        if prefix.startswith("std/"):
            continue  # reserved for the standard library
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        names = loaded.get("types") if isinstance(loaded, dict) else None
        for name in names if isinstance(names, dict) else ():
            found[f"{prefix}/{name}"] = file
    return found


@dataclass
class Ports:
    """What a program node, an operator, or a runtime node (its operators' together) reads and sends."""

    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    output_types: dict[str, str] = field(default_factory=dict)
    input_types: dict[str, str] = field(default_factory=dict)
    min_log_level: str = ""
    send_logs_as: str = ""
    send_stdout_as: str = ""
    operators: tuple[OperatorSpec, ...] = ()


def valid_id(text: str) -> bool:
    return bool(text) and "/" not in text and not any(c.isspace() for c in text)


def path_hint(base: Path, path: str, in_module: bool = False) -> str:
    folder = (base / path).parent
    if folder.is_dir():
        names = [p.name for p in folder.iterdir()]
        close = suggest(Path(path).name, names)
        if close:
            return close
    where = "the module file's folder" if in_module else "the dataflow file's folder"
    return f"paths are relative to {where}; use `-m package.module` for a Python module"


class NodeReader(ValueReader):
    """Reads nodes of one file (`label`, its relative paths from `base_dir`), collecting located problems."""

    def __init__(self, label: str, base_dir: Path, placement: Placement | None, in_module: bool = False):
        """`placement`: how a coordinator places the file on machines (None: all here); `in_module`: reading a
        module file (car.spec.modules), whose relative paths are from its own folder."""
        super().__init__(label)
        self.base_dir = base_dir
        self.placement = placement
        self.in_module = in_module
        self._input_locations: dict[tuple[str, str], Location] = {}  # (node, input) -> where its source is
        self._user_types = user_types(base_dir)

    def inherited_working_dir(self, machine: str) -> str:
        """The folder a node without a `working_dir` of its own is checked in, as `working_dir` would name it
        ("": the file's folder); a module's nodes take their module node's (car.spec.loader)."""
        return ""

    def deploy(self, node: yaml.Node | None, what: str) -> Deploy:
        """A `deploy:` map: the machine, the working folder there, and the globs of files `car sync` sends."""
        if node is None:
            return Deploy()
        pairs = self.mapping(node, what)
        values = self.known_keys(pairs or [], DEPLOY_KEYS, {}, what)
        machine = self.string(values["machine"], f"{what}.machine") if "machine" in values else ""
        working_dir = self.string(values["working_dir"], f"{what}.working_dir") if "working_dir" in values else ""
        files = self.file_globs(values["files"], f"{what}.files") if "files" in values else ()
        return Deploy(machine or "", working_dir or "", files)

    def file_globs(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        """`deploy.files`: globs relative to the node's folder (`!GLOB` leaves files out)."""
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items is None:
            self.problem(node, f"{what} must be a list of globs", "for example `files: ['*.py', 'models/*.onnx']`")
            return ()
        globs = []
        for item in items:
            glob = self.string(item, f"{what} item")
            if glob is None:
                continue
            bare = glob.removeprefix("!")
            if Path(bare).is_absolute() or ".." in Path(bare).parts:
                self.problem(item, f"{what}: `{glob}` reaches outside the node's folder", "give a glob relative to it")
                continue
            globs.append(glob)
        return tuple(globs)

    def node(self, item: yaml.Node, default_machine: str) -> NodeSpec | None:
        pairs = self.mapping(item, "a node")
        if pairs is None:
            return None
        values = self.known_keys(pairs, NODE_KEYS, UNSUPPORTED_NODE, "a node")
        if "id" not in values:
            self.problem(item, "node has no `id`", "start each node with `- id: NAME`")
            return None
        node_id = self.string(values["id"], "node id")
        if node_id is None:
            return None
        if not valid_id(node_id):
            self.problem(values["id"], f"node id `{node_id}` must not contain `/` or spaces")
            return None
        what = f"node `{node_id}`"
        runtime = "operator" in values or "operators" in values
        if runtime:
            self.runtime_keys(values, what)
        elif "custom" in values:
            custom = self.known_keys(self.mapping(values["custom"], f"{what}.custom") or [], CUSTOM_KEYS, {}, "custom")
            for old, new in (("source", "path"), ("envs", "env")):
                if old in custom:
                    custom[new] = custom.pop(old)
            for key, value in custom.items():
                if key in values:
                    self.problem(value, f"{what} sets `{key}` both in `custom` and at the node's top level")
                values[key] = value
        deploy = self.deploy(values.get("deploy") or values.get("_unstable_deploy"), f"{what}.deploy")
        machine, working_dir = deploy.machine or default_machine, deploy.working_dir
        checked_in = working_dir or self.inherited_working_dir(machine)
        if runtime:
            ports = self.operators(values, node_id, machine, checked_in)
            path = OPERATOR_RUNTIME
        else:
            ports = self.ports(values, node_id)
            path = self.path(values.get("path"), item, what, machine, checked_in)
        args: tuple[str, ...] = ()
        if "args" in values:
            args = self.args(values["args"], f"{what}.args")
        env = self.env(values["env"], f"{what}.env") if "env" in values else {}
        build = (self.string(values["build"], f"{what}.build") or "") if "build" in values else ""
        policy = RestartPolicy.NEVER
        if "restart_policy" in values:
            chosen = self.choice(values["restart_policy"], f"{what}.restart_policy", RESTART_POLICIES)
            policy = RestartPolicy(chosen) if chosen else policy
        max_restarts = 0
        if "max_restarts" in values:
            max_restarts = self.integer(values["max_restarts"], f"{what}.max_restarts", 0) or 0
        delay = 0.0
        if "restart_delay" in values:
            delay = self.number(values["restart_delay"], f"{what}.restart_delay", 0.0) or 0.0
        critical = self.boolean(values["critical"], f"{what}.critical") if "critical" in values else True
        cpus = self.cpus(values["cpu_affinity"], f"{what}.cpu_affinity") if "cpu_affinity" in values else ()
        log_size = self.byte_size(values["max_log_size"], f"{what}.max_log_size") if "max_log_size" in values else 0
        rotated = 5
        if "max_rotated_files" in values:
            rotated = self.integer(values["max_rotated_files"], f"{what}.max_rotated_files", 1) or 5
        if cpus and path == DYNAMIC_PATH:
            self.problem(
                values["cpu_affinity"],
                f"{what}.cpu_affinity: car does not start a dynamic node, so it cannot pin it",
                f"remove it and start the node pinned yourself: `taskset -c {','.join(map(str, cpus))} car run-node {node_id} -- ...`",
            )
        return NodeSpec(
            id=node_id,
            path=path,
            location=self.loc(item),
            name=str(self.scalar(values["name"])) if "name" in values else "",
            description=str(self.scalar(values["description"])) if "description" in values else "",
            args=args,
            env=env,
            build=build,
            inputs=ports.inputs,
            outputs=ports.outputs,
            machine=machine,
            working_dir=working_dir,
            deploy_files=deploy.files,
            restart_policy=policy,
            max_restarts=max_restarts,
            restart_delay=delay,
            cpu_affinity=cpus,
            cpu_affinity_location=self.loc(values["cpu_affinity"]) if cpus else None,
            critical=critical,
            output_types=ports.output_types,
            input_types=ports.input_types,
            min_log_level=ports.min_log_level,
            max_log_size=log_size,
            max_rotated_files=rotated,
            send_logs_as=ports.send_logs_as,
            send_stdout_as=ports.send_stdout_as,
            operators=ports.operators,
        )

    def ports(self, values: dict[str, yaml.Node], node_id: str, operator: str = "", prefix: str = "") -> Ports:
        """A program node's (or one `operator`'s, whose ports the node has with `prefix` in front) inputs,
        outputs, their types and where its logs go."""
        what = f"node `{node_id}`" if not operator else f"node `{node_id}` operator `{operator}`"
        outputs = self.outputs(values["outputs"], what) if "outputs" in values else ()
        inputs = self.inputs(values["inputs"], node_id, prefix) if "inputs" in values else {}
        log_level = ""
        if "min_log_level" in values:
            log_level = self.choice(values["min_log_level"], f"{what}.min_log_level", LOG_LEVELS) or ""
        logs_output, stdout_output = (
            self.own_output(values, key, what, outputs) for key in ("send_logs_as", "send_stdout_as")
        )
        return Ports(
            inputs=inputs,
            outputs=outputs,
            output_types=self.port_types(values.get("output_types"), f"{what}.output_types", outputs, "outputs"),
            input_types=self.port_types(values.get("input_types"), f"{what}.input_types", tuple(inputs), "inputs"),
            min_log_level=log_level,
            send_logs_as=logs_output,
            send_stdout_as=stdout_output,
        )

    def runtime_keys(self, values: dict[str, yaml.Node], what: str) -> None:
        """An operator node has its operators and the node keys RUNTIME_NODE_KEYS names; the rest is refused."""
        if "operator" in values and "operators" in values:
            self.problem(values["operators"], f"{what} has both `operator` and `operators`", "keep one of them")
        for key in [k for k in values if k not in RUNTIME_NODE_KEYS]:
            node = values.pop(key)
            if key in OPERATOR_KEYS:
                hint = f"move `{key}` inside `operator:` (or into each of `operators:`)"
                self.problem(node, f"{what}.{key}: an operator node's `{key}` belongs to its operators", hint)
            else:
                hint = "an operator node runs its operators' `python:` files; make it a program node to use this key"
                self.problem(node, f"{what}.{key} is not a key of an operator node", hint)

    def operators(self, values: dict[str, yaml.Node], node_id: str, machine: str, working_dir: str) -> Ports:
        """A runtime node's operators, and the node's ports: theirs, each with its `OPID/` in front (none for a
        single `operator:`)."""
        what = f"node `{node_id}`"
        single = "operator" in values
        listed = values["operator"] if single else values["operators"]
        items = [listed] if single else listed.value if isinstance(listed, yaml.SequenceNode) else None
        if not items:
            self.problem(listed, f"{what}.operators must be a non-empty list", "start each operator with `- id: NAME`")
            return Ports()
        found: list[OperatorSpec] = []
        merged = Ports()
        for item in items:
            entries = self.mapping(item, f"an operator of {what}")
            if entries is None:
                continue
            op_values = self.known_keys(entries, OPERATOR_KEYS, UNSUPPORTED_OPERATOR, f"an operator of {what}")
            op_id = SINGLE_OPERATOR_ID if single else ""
            if "id" in op_values:
                op_id = self.string(op_values["id"], f"an operator id of {what}") or ""
                if op_id and not valid_id(op_id):
                    self.problem(op_values["id"], f"operator id `{op_id}` must not contain `/` or spaces")
                    continue
            if not op_id:
                if "id" not in op_values:
                    self.problem(item, f"an operator of {what} has no `id`", "start each operator with `- id: NAME`")
                continue
            if any(op.id == op_id for op in found):
                self.problem(op_values.get("id", item), f"{what} has two operators `{op_id}`", "give each its own id")
                continue
            prefix = "" if single else f"{op_id}/"
            ports = self.ports(op_values, node_id, op_id, prefix)
            for name, inp in ports.inputs.items():
                if inp.queue_policy == QueuePolicy.BACKPRESSURE and not single:
                    self.problems.append(
                        Problem(
                            self._input_locations[(node_id, prefix + name)],
                            f"{what} operator `{op_id}` input `{name}`: operators of one runtime cannot take "
                            "backpressure (the runtime takes its node's messages as they come, for every operator)",
                            "make it a node of its own or a single `operator:`, or remove `queue_policy` "
                            "(past `queue_size` the oldest is dropped, counted)",
                        )
                    )
            python = self.python(op_values.get("python"), item, f"{what} operator `{op_id}`", machine, working_dir)
            build = (self.string(op_values["build"], f"{what}.build") or "") if "build" in op_values else ""
            found.append(
                OperatorSpec(
                    id=op_id,
                    python=python,
                    location=self.loc(item),
                    port_prefix=prefix,
                    name=str(self.scalar(op_values["name"])) if "name" in op_values else "",
                    description=str(self.scalar(op_values["description"])) if "description" in op_values else "",
                    build=build,
                    inputs=ports.inputs,
                    outputs=ports.outputs,
                    send_stdout_as=ports.send_stdout_as,
                    send_logs_as=ports.send_logs_as,
                    min_log_level=ports.min_log_level,
                )
            )
            merged.inputs.update(
                {prefix + name: replace(spec, name=prefix + name) for name, spec in ports.inputs.items()}
            )
            merged.output_types.update({prefix + name: urn for name, urn in ports.output_types.items()})
            merged.input_types.update({prefix + name: urn for name, urn in ports.input_types.items()})
            merged.outputs = (*merged.outputs, *(prefix + name for name in ports.outputs))
        merged.operators = tuple(found)
        return merged

    def python(self, node: yaml.Node | None, item: yaml.Node, what: str, machine: str, working_dir: str) -> str:
        """An operator's `python:` (a file, or `{source: FILE}`), checked where it runs as a node's `path` is."""
        if node is None:
            self.problem(item, f"{what} has no `python`", "set `python: FILE.py`, the file with its `Operator` class")
            return ""
        source_node = node
        if isinstance(node, yaml.MappingNode):
            options = self.known_keys(self.mapping(node, f"{what}.python") or [], ("source", "conda_env"), {}, what)
            if "conda_env" in options:
                self.problem(
                    options["conda_env"],
                    f"{what}.python.conda_env: car runs operators in the Python that runs car, not in a conda environment",
                    "install the operator's packages there (pip) and remove `conda_env`",
                )
            if "source" not in options:
                self.problem(node, f"{what}.python has no `source`", "write `python: FILE.py`")
                return ""
            source_node = options["source"]
        source = self.string(source_node, f"{what}.python") or ""
        if source.startswith(("http://", "https://")):
            self.problem(
                source_node, f"{what}.python is a URL: car does not download operators", "download it and name the file"
            )
            return ""
        if source and not source.endswith(".py"):
            self.problem(
                source_node,
                f"{what}.python `{source}` is not a Python file",
                "name the `.py` file with its `Operator` class",
            )
            return ""
        return self.path(source_node, item, what, machine, working_dir) if source else ""

    def own_output(self, values: dict[str, yaml.Node], key: str, what: str, outputs: tuple[str, ...]) -> str:
        """`send_logs_as` / `send_stdout_as`: one of the node's outputs, or ""."""
        if key not in values:
            return ""
        name = self.string(values[key], f"{what}.{key}") or ""
        if name and name not in outputs:
            self.problem(
                values[key],
                f"{what}.{key} names `{name}`, which is not one of its outputs",
                f"add `{name}` to its outputs",
            )
        return name

    def port_types(self, node: yaml.Node | None, what: str, ports: tuple[str, ...], kind: str) -> dict[str, str]:
        """`output_types` / `input_types`: port -> a known type URN."""
        if node is None:
            return {}
        found: dict[str, str] = {}
        for port, key_node, value in self.mapping(node, what) or []:
            if port not in ports:
                hint = suggest(port, ports) or f"its {kind}: {', '.join(ports) or 'none'}"
                self.problem(key_node, f"{what} names `{port}`, which is not one of its {kind}", hint)
                continue
            text = self.string(value, f"{what}.{port}")
            if text is None:
                continue
            try:
                ref = types.parse(text)
            except ValueError as exc:
                self.problem(value, f"{what}.{port}: {exc}")
                continue
            if ref.base not in types.STANDARD and ref.base not in self._user_types:
                known = [*types.STANDARD, *self._user_types]
                hint = suggest(ref.base, known) or (
                    "the standard types are std/core/v1/{Int64, Float64, String, Bytes, ...}, std/math/v1/..., "
                    "std/media/v1/...; a project's own go in types/<prefix>/v1.yml next to the dataflow"
                )
                self.problem(value, f"{what}.{port}: unknown type `{ref.base}`", hint)
                continue
            found[port] = str(ref)
        return found

    def byte_size(self, node: yaml.Node, what: str) -> int:
        """A size: bytes, or a number with KB, MB or GB (`"100MB"`)."""
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        text = str(value).strip().upper().replace(" ", "")
        for unit, factor in (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("B", 1)):
            number = text.removesuffix(unit)
            if number != text:
                try:
                    size = float(number) * factor
                except ValueError:
                    break
                if size >= 1 and size < 1 << 50:
                    return int(size)
                break
        self.problem(node, f"{what} must be a size such as `50MB` or `1GB`")
        return 0

    def path(self, node: yaml.Node | None, item: yaml.Node, what: str, machine: str, working_dir: str) -> str:
        """The node's `path`, checked where it runs: see `Dataflow.node_folder` for the folder it resolves in."""
        if node is None:
            self.problem(
                item, f"{what} has no `path`", "set `path:` to a Python file, `-m package.module` or a program"
            )
            return ""
        path = self.string(node, f"{what}.path")
        if path is None or path == DYNAMIC_PATH or path.startswith("-m "):
            return path or ""
        command = "/" not in path and not path.endswith(".py")  # maybe a program on PATH
        local = self.placement is None or self.placement.is_local(machine)
        if not local and not working_dir and not command and not Path(path).is_absolute():
            self.problem(
                node,
                f"{what} runs on machine `{machine}`, which does not share this machine's files, "
                f"and its path `{path}` is relative",
                f"give it `deploy: {{machine: {machine}, working_dir: FOLDER}}` (its folder on `{machine}`) "
                "or an absolute path",
            )
            return path
        if self.placement is not None and not self.placement.checks(machine):
            return path  # checked on its own machine, by its daemon
        base = self.base_dir
        try:
            if not local:
                base = Path.home() / working_dir  # an absolute working_dir stays as it is
            elif working_dir:
                base = self.base_dir / working_dir
                if not base.is_dir():
                    if self.placement is not None:
                        self.problem(
                            node, f"{what}: its working_dir `{working_dir}` is not a folder (looked for {base})"
                        )
                        return path
                    base = self.base_dir  # `car launch` of a file for several machines: everything runs here
            if (base / path).exists():
                return path
        except (OSError, ValueError) as exc:  # too long a name, a NUL byte
            self.problem(node, f"{what}.path `{path[:60]}` cannot be a file name: {getattr(exc, 'strerror', exc)}")
            return path
        if command and shutil.which(path):
            return path
        self.problem(
            node, f"{what}.path `{path}` does not exist (looked in {base})", path_hint(base, path, self.in_module)
        )
        return path

    def args(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if isinstance(node, yaml.SequenceNode):
            items = [self.scalar(v) if isinstance(v, yaml.ScalarNode) else None for v in node.value]
            if any(v is None or isinstance(v, (dict, list)) for v in items):
                self.problem(node, f"{what} must be a string or a list of strings")
                return ()
            return tuple(str(v) for v in items)
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value is None or isinstance(value, (dict, list)):
            self.problem(node, f"{what} must be a string or a list of strings")
            return ()
        try:
            return tuple(shlex.split(str(value)))
        except ValueError as exc:
            self.problem(node, f"{what} cannot be split into arguments: {exc}", "check the quotes")
            return ()

    def cpus(self, node: yaml.Node, what: str) -> tuple[int, ...]:
        """CPU numbers: one (`2`) or a list (`[0, 1]`)."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        scalars = [self.scalar(v) if isinstance(v, yaml.ScalarNode) else None for v in items]
        values = [v for v in scalars if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        if not values or len(values) != len(scalars):
            self.problem(node, f"{what} must be a CPU number or a list of them", "for example `cpu_affinity: [1]`")
            return ()
        if len(set(values)) != len(values):
            self.problem(node, f"{what} names a CPU twice")
            return ()
        return tuple(values)

    def outputs(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what}.outputs must be a list of output names", "write `outputs: [name, ...]`")
            return ()
        names: list[str] = []
        for item in node.value:
            name = self.string(item, f"an output of {what}")
            if name is None:
                continue
            if not valid_id(name):
                self.problem(item, f"output name `{name}` must not contain `/` or spaces")
            elif name in names:
                self.problem(item, f"{what} declares output `{name}` twice")
            else:
                names.append(name)
        return tuple(names)

    def inputs(self, node: yaml.Node, node_id: str, prefix: str = "") -> dict[str, InputSpec]:
        """Inputs by name (an operator's: its node's are named with `prefix` in front)."""
        what = f"node `{node_id}`"
        inputs: dict[str, InputSpec] = {}
        for name, key_node, value in self.mapping(node, f"{what}.inputs") or []:
            if not valid_id(name):
                self.problem(key_node, f"input name `{name}` must not contain `/` or spaces")
                continue
            spec = self.input(name, value, f"{what} input `{name}`")
            if spec is not None:
                inputs[name] = spec
                self._input_locations[(node_id, prefix + name)] = self.loc(value)
        return inputs

    def input(self, name: str, node: yaml.Node, what: str) -> InputSpec | None:
        if isinstance(node, yaml.MappingNode):
            values = self.known_keys(self.mapping(node, what) or [], INPUT_KEYS, {}, what)
            if "source" not in values:
                self.problem(node, f"{what} has no `source`", "write `source: node/output`")
                return None
            source_node = values["source"]
        else:
            values, source_node = {}, node
        source = self.string(source_node, f"{what} source")
        if source is None:
            return None
        if source == LOG_SOURCE or source.startswith(LOG_SOURCE + "/"):
            parts = source.split("/")[2:]
            if len(parts) > 2 or (parts and parts[0] not in LOG_LEVELS) or not all(parts):
                hint = f"levels: {', '.join(LOG_LEVELS)}; for example dora/logs/warn or dora/logs/info/camera"
                self.problem(
                    source_node, f"{what}: `{source}` must be dora/logs, dora/logs/LEVEL or dora/logs/LEVEL/NODE", hint
                )
                return None
        elif source.startswith("dora/"):
            try:
                parse_timer(source)
            except ValueError as exc:
                hint = "for example dora/timer/millis/10, dora/timer/hz/30, or dora/logs for log entries"
                self.problem(source_node, f"{what}: {exc}", hint)
                return None
        elif source.count("/") not in (1, 2) or not all(source.split("/")):  # node/operator/output: cross_check
            self.problem(source_node, f"{what} source `{source}` must look like `node/output`")
            return None
        queue_size = DEFAULT_QUEUE_SIZE
        if "queue_size" in values:
            queue_size = self.integer(values["queue_size"], f"{what} queue_size", 1) or DEFAULT_QUEUE_SIZE
        policy = QueuePolicy.DROP_OLDEST
        if "queue_policy" in values:
            chosen = self.choice(values["queue_policy"], f"{what} queue_policy", QUEUE_POLICIES)
            policy = QueuePolicy(chosen) if chosen else policy
        timeout = None
        if "input_timeout" in values:
            timeout = self.number(values["input_timeout"], f"{what} input_timeout", 0.0, inclusive=False)
        return InputSpec(name, source, queue_size, policy, timeout)
