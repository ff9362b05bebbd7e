"""Load and check a dataflow file in dora 1.x's YAML format.

Every problem in a file is collected, each with its file, line and column, before
anything is reported: `load_dataflow` raises one `DataflowError` that lists them all.
Works on PyYAML's node tree (not plain dicts) so that every value keeps its position.
Each node is read by car.spec.node_reader; this module reads the file around them (its
top keys), expands module nodes (each module file checked by a checker of its own, so
its problems name that file: car.spec.modules) and checks what the nodes read.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from car.spec import types
from car.spec.model import (
    Dataflow,
    DataflowError,
    InputSpec,
    Location,
    NodeSpec,
    Placement,
    Problem,
    QueuePolicy,
)
from car.spec.modules import MAX_DEPTH, MAX_FILE_BYTES, MODULE_SOURCE, PARAM_KEY, Expansion, ModuleHeader, producers
from car.spec.node_reader import NOT_SUPPORTED_HINT, NodeReader, path_hint, valid_id
from car.spec.values import suggest

TOP_KEYS = ("nodes", "env", "deploy", "_unstable_deploy", "strict_types", "type_rules")
UNSUPPORTED_TOP = {
    "communication": "remove it: car picks the transport itself (ipc:// on one machine, tcp:// across)",
    "_unstable_communication": "remove it: car picks the transport itself",
    "_unstable_debug": NOT_SUPPORTED_HINT,
    "health_check_interval": NOT_SUPPORTED_HINT,
}
MODULE_NODE_KEYS = (
    "id",
    "name",
    "description",
    "module",
    "inputs",
    "env",
    "build",
    "deploy",
    "_unstable_deploy",
    "params",
)
MODULE_FILE_KEYS = ("module", "nodes", "build")
MODULE_HEADER_KEYS = ("name", "inputs", "inputs_optional", "outputs")
_NOT_IN_MODULE_NODE = "a module node's nodes are in its module file: set this on them there"
NOT_MODULE_NODE_KEYS = {
    key: _NOT_IN_MODULE_NODE for key in ("path", "args", "operator", "operators", "outputs", "custom", "git", "ros2")
}


def load_dataflow(path: str | Path, placement: Placement | None = None) -> Dataflow:
    """Read and check the dataflow file at `path`; raise DataflowError listing every problem.

    `placement`: how a coordinator places it on machines (None: every node runs here)."""
    file = Path(path)
    label = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataflowError(
            [Problem(Location(label, 1, 1), "no such file", "check the path to the dataflow file")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataflowError([Problem(Location(label, 1, 1), f"cannot read the file: {exc}")]) from None
    return check_text(text, label, file.resolve(), placement)


def check_text(
    text: str, label: str, file: Path, placement: Placement | None = None, modules: Mapping[str, str] | None = None
) -> Dataflow:
    """Check dataflow YAML `text` (named `label` in messages; relative paths resolve against `file`'s folder).

    `modules`: the texts of its module files by their path in the dataflow's folder (`Dataflow.modules`, as the
    command that read the file sends them); given, module files are read from it and never from this machine's
    disk, which may not hold the folder the file was read from."""
    checker = _Checker(label, file.parent, placement, files=ModuleFiles(modules))
    dataflow = checker.check(text, file)
    if checker.problems:
        # the file's own problems first, then each module file's, each in line order; one of each
        unique = {(str(p), p.location): p for p in checker.problems}
        checker.problems = sorted(
            unique.values(),
            key=lambda p: (p.location.file != label, p.location.file, p.location.line, p.location.column),
        )
        raise DataflowError(checker.problems)
    assert dataflow is not None
    return dataflow


def check_node(text: str, label: str, running: Dataflow, replacing: str = "") -> NodeSpec:
    """One node's definition (`car node add|replace --from-yaml FILE`, the file named `label`) checked against the
    running graph `running`, as `car check` checks a file: what it reads is there; it adds a new id, or with
    `replacing` has that node's id and still sends every output a node of the graph reads. Paths resolve from the
    dataflow's folder, where the node runs. DataflowError lists every problem."""
    checker = _Checker(label, running.base_dir, running.placement)
    spec = checker.check_one(text, running, replacing)
    if checker.problems:
        raise DataflowError(sorted(checker.problems, key=lambda p: (p.location.line, p.location.column)))
    assert spec is not None
    return spec


@dataclass
class ModuleFiles:
    """The module files of one dataflow, by their path in its folder (POSIX, relative): `given` (None: read them
    from the disk), and the texts `read` while checking it."""

    given: Mapping[str, str] | None = None
    read: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _ModuleScope:
    """Where a module file is checked: how deep, inside which module files, under which dataflow folder."""

    depth: int
    files: tuple[Path, ...]
    root: Path
    # the module node's `deploy.working_dir` (or its enclosing one's): the dataflow's folder on its machine
    working_dir: str = ""


class _Checker(NodeReader):
    """Walks the YAML node tree of a dataflow, builds the model and collects problems."""

    def __init__(
        self,
        label: str,
        base_dir: Path,
        placement: Placement | None,
        scope: _ModuleScope | None = None,
        files: ModuleFiles | None = None,
    ):
        """`scope`: checking a module file (its header is read from it), inside the files that use it; `files`:
        where module files are read from (one for a dataflow and the module files in it)."""
        super().__init__(label, base_dir, placement, in_module=scope is not None)
        self.scope = scope
        self.files = files or ModuleFiles()
        self.header: ModuleHeader | None = None
        self.header_locations: dict[str, Location] = {}  # a module file's declared outputs: where each is
        self._aliases: dict[str, str] = {}  # `module/output` -> the node output it names (car.spec.modules)
        self._module_outputs: dict[str, tuple[str, ...]] = {}  # module node id -> the outputs its module declares
        self._unread_modules: set[str] = set()  # module nodes whose file could not be read (said once)
        self._wired: list[tuple[str, InputSpec, Location]] = []  # module nodes' inputs: checked here, as inputs are
        self._outputs: dict[str, tuple[str, ...]] = {}  # while cross-checking: each node's outputs
        self._runtimes: set[str] = set()  # ... the nodes with `operators:`, and with one `operator:`
        self._singles: set[str] = set()
        self._type_rules: set[tuple[str, str]] = set()

    def check(self, text: str, file: Path) -> Dataflow | None:
        root = self.compose(text, "a dataflow needs a `nodes:` list")
        if root is None:
            return None
        pairs = self.mapping(root, "the dataflow")
        if pairs is None:
            return None
        top = self.known_keys(pairs, TOP_KEYS, UNSUPPORTED_TOP, "the dataflow")
        env = self.env(top["env"], "env") if "env" in top else {}
        if "strict_types" in top:  # car always refuses a type mismatch: dora's strict mode
            self.boolean(top["strict_types"], "strict_types")
        if "type_rules" in top:
            self.type_rules(top["type_rules"])
        machine = self.deploy(top.get("deploy") or top.get("_unstable_deploy"), "deploy").machine
        if self.placement is not None:
            machine = machine or self.placement.default_machine
        nodes = self.node_list(root, top, machine)
        if nodes is None:
            return None
        return Dataflow(
            file=file,
            nodes=tuple(nodes),
            env=env,
            machine=machine,
            placement=self.placement,
            modules=dict(self.files.read),
        )

    def check_one(self, text: str, running: Dataflow, replacing: str) -> NodeSpec | None:
        """See `check_node`."""
        root = self.compose(text, "a node's definition: `id: NAME`, `path: FILE`, its inputs and outputs")
        if root is None:
            return None
        item = root
        if isinstance(root, yaml.SequenceNode):
            if len(root.value) != 1:
                self.problem(root, "the file must define one node", "one mapping (`id: ...`), or a list of one")
                return None
            item = root.value[0]
        if isinstance(item, yaml.MappingNode) and any(k.value == "module" for k, _ in item.value):
            self.problem(item, "a module node cannot be added to a running graph", "add the module's nodes one by one")
            return None
        machine = running.machine or (running.placement.default_machine if running.placement else "")
        spec = self.node(item, machine)
        if spec is None:
            return None
        if replacing and spec.id != replacing:
            self.problem(item, f"the file defines node `{spec.id}`, not `{replacing}`", f"give it `id: {replacing}`")
        elif not replacing and any(node.id == spec.id for node in running.nodes):
            hint = f"to change it: `car node replace {spec.id} --from-yaml FILE`"
            self.problem(item, f"the running graph has a node `{spec.id}` already", hint)
        for name, inp in spec.inputs.items():
            if inp.queue_policy == QueuePolicy.BACKPRESSURE:
                self.problems.append(
                    Problem(
                        self._input_locations[(spec.id, name)],
                        f"node `{spec.id}` input `{name}`: a node added to a running graph cannot take backpressure",
                        "its links are made while the graph runs, and drop their oldest: remove `queue_policy`",
                    )
                )
        nodes = [node for node in running.nodes if node.id != spec.id] + [spec]
        self.cross_check(nodes)
        for node in nodes[:-1]:
            for name, inp in node.inputs.items():
                if inp.source_node == spec.id and inp.source_output not in spec.outputs:
                    message = (
                        f"node `{node.id}` input `{name}` reads `{inp.source}`, which this `{spec.id}` does not send"
                    )
                    hint = f"add `{inp.source_output}` to its outputs, or first `car node disconnect {inp.source} {node.id}/{name}`"
                    self.problem(item, message, hint)
        return spec

    def compose(self, text: str, empty_hint: str) -> yaml.Node | None:
        """The YAML node tree of a file's text (None after reporting a syntax error or an empty file)."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = f"YAML syntax error: {exc.problem or exc.context}"
            self.problems.append(Problem(Location(self.label, line, col), message, "fix the YAML syntax"))
            return None
        except (yaml.YAMLError, RecursionError) as exc:
            self.problems.append(Problem(Location(self.label, 1, 1), f"YAML error: {exc}"))
            return None
        if root is None:
            self.problems.append(Problem(Location(self.label, 1, 1), "the file is empty", empty_hint))
        return root

    def node_list(self, root: yaml.Node, top: dict[str, yaml.Node], machine: str) -> list[NodeSpec] | None:
        """The file's `nodes`, module nodes expanded, every input's source renamed through the modules' outputs,
        all cross-checked (None when there is no list to read)."""
        if "nodes" not in top:
            what = "the module file" if self.scope else "the dataflow"
            self.problem(root, f"{what} has no `nodes` list", "add `nodes:` with at least one node")
            return None
        nodes_node = top["nodes"]
        if not isinstance(nodes_node, yaml.SequenceNode) or not nodes_node.value:
            self.problem(nodes_node, "`nodes` must be a non-empty list", "start each node with `- id: NAME`")
            return None
        nodes: list[NodeSpec] = []
        first_seen: dict[str, Location] = {}
        for item in nodes_node.value:
            is_module = isinstance(item, yaml.MappingNode) and any(
                isinstance(k, yaml.ScalarNode) and k.value == "module" for k, _ in item.value
            )
            specs = self.module_node(item, machine) if is_module else [self.node(item, machine)]
            for spec in specs:
                if spec is None:
                    continue
                if spec.id in first_seen:
                    self.problem(
                        item,
                        f"duplicate node id `{spec.id}` (first at line {first_seen[spec.id].line})",
                        "give every node its own id",
                    )
                    continue
                first_seen[spec.id] = spec.location
                nodes.append(spec)
        nodes = [self.renamed(spec) for spec in nodes]
        self.cross_check(nodes)
        return nodes

    def renamed(self, spec: NodeSpec) -> NodeSpec:
        """A node whose inputs read `module/output` reads the node output it names (car.spec.modules)."""
        if not self._aliases:
            return spec

        def rename(inputs: dict[str, InputSpec]) -> dict[str, InputSpec]:
            return {
                name: replace(inp, source=self._aliases[inp.source]) if inp.source in self._aliases else inp
                for name, inp in inputs.items()
            }

        operators = tuple(replace(op, inputs=rename(op.inputs)) for op in spec.operators)
        return replace(spec, inputs=rename(spec.inputs), operators=operators)

    # -- modules ---------------------------------------------------------------------------------------
    def module_node(self, item: yaml.Node, default_machine: str) -> list[NodeSpec | None]:
        """A `module:` node: its module file checked (its problems name that file) and its nodes, renamed."""
        pairs = self.mapping(item, "a node") or []
        values = self.known_keys(pairs, (*MODULE_NODE_KEYS, *NOT_MODULE_NODE_KEYS), {}, "a module node")
        for key in [k for k in values if k in NOT_MODULE_NODE_KEYS]:
            self.problem(values.pop(key), f"`{key}` is not a key of a module node", NOT_MODULE_NODE_KEYS[key])
        node_id = self.string(values["id"], "node id") if "id" in values else None
        if node_id is None:
            if "id" not in values:
                self.problem(item, "module node has no `id`", "start each node with `- id: NAME`")
            return []
        if not valid_id(node_id):
            self.problem(values["id"], f"node id `{node_id}` must not contain `/` or spaces")
            return []
        what = f"module node `{node_id}`"
        found = self.module_file(values["module"], what)
        if found is None:
            self._unread_modules.add(node_id)
            return []
        file, text = found
        deploy = self.deploy(values.get("deploy") or values.get("_unstable_deploy"), f"{what}.deploy")
        machine = deploy.machine
        scope = _ModuleScope(
            depth=(self.scope.depth + 1) if self.scope else 1,
            files=(*self.scope.files, file) if self.scope else (file,),
            root=self.scope.root if self.scope else self.base_dir,
            working_dir=deploy.working_dir or (self.scope.working_dir if self.scope else ""),
        )
        label = str(Path(self.label).parent / values["module"].value)
        inner = _Checker(label, file.parent, self.placement, scope, self.files)
        header, inner_nodes, build = inner.check_module(text, machine or default_machine)
        self.problems.extend(inner.problems)
        if header is None:
            self._unread_modules.add(node_id)
            return []
        self._module_outputs[node_id] = header.outputs
        wiring = self.module_wiring(values.get("inputs"), header, item, what)
        params = self.params(values["params"], f"{what}.params") if "params" in values else {}
        env = self.env(values["env"], f"{what}.env") if "env" in values else {}
        env.update({f"PARAM_{key.upper()}": value for key, value in params.items()})
        own_build = (self.string(values["build"], f"{what}.build") or "") if "build" in values else ""
        expansion = Expansion(
            module_id=node_id,
            folder=file.parent,
            base_dir=self.base_dir,
            working_dir=scope.working_dir,
            wiring=wiring,
            env=env,
            params=params,
            build=" && ".join(part for part in (own_build, build) if part),
        )
        siblings = {spec.id for spec in inner_nodes}
        expanded = [expansion.node(spec, siblings, first=k == 0) for k, spec in enumerate(inner_nodes)]
        for (inner_id, name), location in inner._input_locations.items():
            self._input_locations[(f"{node_id}.{inner_id}", name)] = location
        for output in header.outputs:
            sources = producers(expanded, output, node_id) + [
                f"{node_id}.{target}"
                for alias, target in inner._aliases.items()
                if alias.split("/", 1)[1] == output and alias.split("/", 1)[0] in inner._module_outputs
            ]
            if len(sources) == 1:
                self._aliases[f"{node_id}/{output}"] = sources[0]
            elif not sources and (
                inner._unread_modules or any(output in outs for outs in inner._module_outputs.values())
            ):
                continue  # a module inside could not be read, or sends it from none of its nodes: said in its file
            else:
                where = inner.header_locations.get(output, Location(label, 1, 1))
                message = (
                    f"the module's output `{output}` is sent by none of its nodes"
                    if not sources
                    else f"the module's output `{output}` is sent by {len(sources)} of its nodes ({', '.join(sources)})"
                )
                hint = "exactly one node of the module must send it: add it to one node's outputs, or rename the others"
                self.problems.append(Problem(where, message, hint))
        return list(expanded)

    def module_file(self, node: yaml.Node, what: str) -> tuple[Path, str] | None:
        """A module node's file, read: inside the dataflow's folder, at most MAX_FILE_BYTES, not a module it is in."""
        name = self.string(node, f"{what}.module")
        if not name:
            return None
        root = (self.scope.root if self.scope else self.base_dir).resolve()
        file = (self.base_dir / name).resolve()
        if Path(name).is_absolute() or not file.is_relative_to(root):
            self.problem(
                node,
                f"{what}: its module file `{name}` is outside the dataflow's folder ({root})",
                "put module files under the dataflow's folder",
            )
            return None
        if self.scope is not None and file in self.scope.files:
            self.problem(node, f"{what}: module `{name}` uses itself", "a module may not include a module it is inside")
            return None
        if self.scope is not None and self.scope.depth >= MAX_DEPTH:
            self.problem(node, f"{what}: modules are nested more than {MAX_DEPTH} deep", "flatten the modules")
            return None
        key = file.relative_to(root).as_posix()
        text = self._module_text(node, what, name, file, key)
        if text is not None:
            self.files.read[key] = text
            return file, text
        return None

    def _module_text(self, node: yaml.Node, what: str, name: str, file: Path, key: str) -> str | None:
        """A module file's text: sent with the dataflow (this machine may not have its folder), or from the disk."""
        if self.files.given is not None:
            text = self.files.given.get(key)
            if text is None:
                sent = ", ".join(sorted(self.files.given)) or "none"
                self.problem(
                    node,
                    f"{what}: module file `{name}` was not sent with the dataflow (sent: {sent})",
                    "start it with `car start`, which sends the module files it reads",
                )
            size = len(text.encode("utf-8")) if text is not None else 0
        else:
            try:
                size = file.stat().st_size
                text = file.read_text(encoding="utf-8") if size <= MAX_FILE_BYTES else None
            except FileNotFoundError:
                hint = path_hint(file.parent, file.name)
                self.problem(node, f"{what}: no module file `{name}` (looked for {file})", hint)
                return None
            except (OSError, UnicodeDecodeError) as exc:
                self.problem(node, f"{what}: cannot read module file `{name}`: {exc}")
                return None
        if size > MAX_FILE_BYTES:
            self.problem(node, f"{what}: module file `{name}` is {size} bytes (at most {MAX_FILE_BYTES})")
            return None
        return text

    def inherited_working_dir(self, machine: str) -> str:
        """A module's node without a `working_dir` of its own runs in its module node's (the dataflow's folder on
        that machine), at its module file's place in the dataflow's folder: checked there."""
        if self.scope is None or not self.scope.working_dir:
            return ""
        inside = os.path.relpath(self.base_dir, self.scope.root)
        if self.placement is None or self.placement.is_local(machine):
            return str(self.scope.root / self.scope.working_dir / inside)
        return posixpath.normpath(posixpath.join(self.scope.working_dir, inside))

    def check_module(self, text: str, machine: str) -> tuple[ModuleHeader | None, list[NodeSpec], str]:
        """A module file: its header, its nodes (modules in it expanded) and its own build."""
        root = self.compose(text, "a module file has a `module:` header and `nodes:`")
        if root is None:
            return None, [], ""
        top = self.known_keys(self.mapping(root, "the module file") or [], MODULE_FILE_KEYS, {}, "the module file")
        if "module" not in top:
            self.problem(
                root,
                "the module file has no `module:` header",
                "start it with `module: {name: NAME, inputs: [...], outputs: [...]}`",
            )
            return None, [], ""
        header = self.module_header(top["module"])
        if header is None:
            return None, [], ""
        self.header = header
        build = (self.string(top["build"], "the module's build") or "") if "build" in top else ""
        nodes = self.node_list(root, top, machine)
        return header, nodes or [], build

    def module_header(self, node: yaml.Node) -> ModuleHeader | None:
        """`module: {name, inputs, inputs_optional, outputs}`."""
        values = self.known_keys(
            self.mapping(node, "the `module:` header") or [], MODULE_HEADER_KEYS, {}, "the `module:` header"
        )
        if "name" not in values:
            self.problem(node, "the `module:` header has no `name`", "add `name: NAME`")
            return None
        name = self.string(values["name"], "the module's name") or ""
        ports = {
            key: self.outputs(values[key], f"the module's {key}") if key in values else ()
            for key in MODULE_HEADER_KEYS[1:]
        }
        for item in values["outputs"].value if isinstance(values.get("outputs"), yaml.SequenceNode) else []:
            if isinstance(item, yaml.ScalarNode):
                self.header_locations[str(item.value)] = self.loc(item)
        return ModuleHeader(name, ports["inputs"], ports["inputs_optional"], ports["outputs"])

    def module_wiring(self, node: yaml.Node | None, header: ModuleHeader, item: yaml.Node, what: str) -> dict[str, str]:
        """A module node's `inputs`: each of the module's ports -> the source wired to it."""
        wiring: dict[str, str] = {}
        for port, key_node, value in self.mapping(node, f"{what}.inputs") or [] if node is not None else []:
            if port not in header.ports:
                hint = suggest(port, header.ports) or f"the module's inputs: {', '.join(header.ports) or 'none'}"
                self.problem(key_node, f"{what}: its module has no input `{port}`", hint)
                continue
            spec = self.input(port, value, f"{what} input `{port}`")
            if spec is not None:
                wiring[port] = spec.source
                self._wired.append((what, spec, self.loc(value)))
        for port in header.inputs:
            if port not in wiring:
                self.problem(
                    item, f"{what} does not wire its module's input `{port}`", f"add `inputs: {{{port}: NODE/OUTPUT}}`"
                )
        return wiring

    def params(self, node: yaml.Node, what: str) -> dict[str, str]:
        """A module node's `params`: names of letters, digits and `_`, each a value."""
        found: dict[str, str] = {}
        for key, key_node, value in self.mapping(node, what) or []:
            if not PARAM_KEY.match(key):
                self.problem(key_node, f"{what}: `{key}` must be letters, digits and `_`")
                continue
            scalar = self.scalar(value) if isinstance(value, yaml.ScalarNode) else None
            if scalar is None or isinstance(scalar, (dict, list)):
                self.problem(value, f"{what}.{key} must be a plain value")
                continue
            found[key] = str(scalar).lower() if isinstance(scalar, bool) else str(scalar)
        return found

    def check_types(
        self, node: NodeSpec, name: str, spec: InputSpec, sent_types: dict[str, str], location: Location
    ) -> None:
        """The type an input takes against the type its source sends, when both are known."""
        wanted = node.input_types.get(name)
        sent = types.TIMER_TYPE if spec.is_timer else types.LOG_TYPE if spec.is_log else sent_types.get(spec.source)
        if wanted is None or sent is None or types.compatible(types.parse(sent), types.parse(wanted), self._type_rules):
            return
        message = f"node `{node.id}` input `{name}` takes `{wanted}` (input_types), but `{spec.source}` sends `{sent}`"
        hint = f"declare the same type at both ends, or allow it: `type_rules: [{{from: {sent}, to: {wanted}}}]`"
        self.problems.append(Problem(location, message, hint))

    def type_rules(self, node: yaml.Node) -> None:
        """`type_rules: [{from: URN, to: URN}, ...]`: connections the file allows beyond the built-in ones."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "`type_rules` must be a list of `{from: TYPE, to: TYPE}`")
            return
        for item in node.value:
            rule = self.known_keys(self.mapping(item, "a type rule") or [], ("from", "to"), {}, "a type rule")
            ends = [self.string(rule[k], f"type rule `{k}`") if k in rule else None for k in ("from", "to")]
            if None in ends:
                if len(rule) == 2:
                    continue
                self.problem(item, "a type rule needs `from` and `to`", "write `- {from: TYPE, to: TYPE}`")
                continue
            try:
                sent, wanted = (types.parse(str(end)).base for end in ends)
            except ValueError as exc:
                self.problem(item, f"type rule: {exc}")
                continue
            self._type_rules.add((sent, wanted))

    def cross_check(self, nodes: list[NodeSpec]) -> None:
        """Every input's source against the nodes there are (a module's nodes were checked in its own file; what a
        module node wires to its module is checked here)."""
        self._outputs = {n.id: n.outputs for n in nodes}
        self._runtimes = {n.id for n in nodes if n.operators and n.operators[0].port_prefix}
        self._singles = {n.id for n in nodes if n.operators and not n.operators[0].port_prefix}
        sent_types = {f"{n.id}/{output}": urn for n in nodes for output, urn in n.output_types.items()}
        for node in nodes:
            if node.location.file != self.label:
                continue  # from a module: checked with its file
            for name, spec in node.inputs.items():
                location = self._input_locations[(node.id, name)]
                self.check_types(node, name, spec, sent_types, location)
                self.check_source(f"node `{node.id}` input `{name}`", spec, location)
        for what, spec, location in self._wired:
            self.check_source(f"{what} input `{spec.name}`", spec, location)

    def check_source(self, what: str, spec: InputSpec, location: Location) -> None:
        """That an input's source is there: a node's output, a module's, a port of the module being checked."""
        outputs = self._outputs
        if spec.is_log:
            parts = spec.source.split("/")
            if len(parts) == 4 and parts[3] not in outputs:
                hint = suggest(parts[3], list(outputs)) or f"nodes in this file: {', '.join(outputs)}"
                self.problems.append(Problem(location, f"`{spec.source}` names no node of this file", hint))
        if spec.from_daemon:
            return
        source_node, source_output = spec.source_node, spec.source_output
        if source_node == MODULE_SOURCE and self.header is not None:
            if source_output not in self.header.ports:
                hint = suggest(source_output, self.header.ports) or (
                    f"the module's inputs: {', '.join(self.header.ports) or 'none'}; declare it under `inputs:`"
                )
                message = f"{what} reads `{spec.source}`, which the module does not declare"
                self.problems.append(Problem(location, message, hint))
            return
        if source_node in self._unread_modules:
            return  # its module file's problem is said already
        if source_node in self._module_outputs:
            declared = self._module_outputs[source_node]
            if source_output not in declared:  # a declared one sent by no node is reported in the module's file
                hint = suggest(source_output, declared) or f"its module declares: {', '.join(declared) or 'none'}"
                message = f"{what} reads `{spec.source}`, but module `{source_node}` has no such output"
                self.problems.append(Problem(location, message, hint))
            return
        if spec.source.count("/") == 2 and source_node in outputs and source_node not in self._runtimes:
            message = f"{what} source `{spec.source}` must look like `node/output`"
            hint = (
                f"`{source_node}` has a single `operator:`, whose outputs are read as `{source_node}/OUTPUT`"
                if source_node in self._singles
                else f"node/operator/output names an operator's output, and `{source_node}` has no `operators`"
            )
            self.problems.append(Problem(location, message, hint))
        elif source_node not in outputs:
            hint = suggest(source_node, list(outputs)) or f"nodes in this file: {', '.join(outputs)}"
            if self.header is not None:
                hint += f"; a module reads what is outside it through `_mod/PORT` (its inputs: {', '.join(self.header.ports) or 'none'})"
            message = f"{what} reads from `{spec.source}`, but there is no node `{source_node}`"
            self.problems.append(Problem(location, message, hint))
        elif source_output not in outputs[source_node]:
            declared = outputs[source_node]
            hint = suggest(source_output, declared) or (
                f"`{source_node}` runs operators: read `{source_node}/OPERATOR/OUTPUT` "
                f"(it has {', '.join(declared) or 'none'})"
                if source_node in self._runtimes
                else f"add `{source_output}` to the outputs of `{source_node}`"
                if not declared
                else f"`{source_node}` declares: {', '.join(declared)}; or add `{source_output}` to its outputs"
            )
            message = f"{what} reads `{spec.source}`, but `{source_node}` declares no output `{source_output}`"
            self.problems.append(Problem(location, message, hint))
