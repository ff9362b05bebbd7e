"""The reference pages cannot drift from the code: the CLI reference is made from the command table and names every
command `car --help` lists; the dataflow file's page names every key the loader accepts."""

from __future__ import annotations

import re

from car.commands.cli import command_table, listed
from car.commands.reference import cli_reference, help_text, subcommands
from car.spec.loader import TOP_KEYS
from car.spec.node_reader import DEPLOY_KEYS, INPUT_KEYS, NODE_KEYS, RUNTIME_NODE_KEYS
from tests.helpers import ROOT


def test_the_cli_reference_has_a_section_for_every_command_car_help_lists() -> None:
    page = cli_reference()
    said = help_text()
    names = [command.name for command in listed(command_table())]
    assert "sync" in names and "new" in names and "flash" in names  # built-in, new, and installed commands
    for name in names:
        assert re.search(rf"^\s+{re.escape(name)}\s", said, re.M), f"`car --help` does not list {name}"
        assert f"\n## car {name}\n" in page, name
        assert f"docs: docs/reference/cli.md#car-{name}" in help_text(name), name  # its help links to its section
    assert "docs/reference/cli.md" in said
    for name in names:
        for sub in subcommands(name):  # `car node add`, `car topic echo`, ...
            assert f"\n### car {name} {sub}\n" in page and f"usage: car {name} {sub}" in page
    assert len(subcommands("node")) >= 9 and "install" in subcommands("service")


def test_the_dataflow_page_names_every_key_the_loader_accepts() -> None:
    page = (ROOT / "docs" / "reference" / "dataflow.md").read_text()
    for keys in (TOP_KEYS, NODE_KEYS, RUNTIME_NODE_KEYS, DEPLOY_KEYS, INPUT_KEYS):
        missing = [key for key in keys if not re.search(rf"(`|\.|\b){re.escape(key)}(`|:|$)", page, re.M)]
        assert not missing, f"docs/reference/dataflow.md does not name {missing}"


def test_every_option_the_overview_names_is_one_its_command_takes() -> None:
    """docs/reference/commands.md's table (hand-written, with examples) against each command's own `--help`."""
    page = (ROOT / "docs" / "reference" / "commands.md").read_text()
    helps: dict[str, str] = {}
    reference = cli_reference()
    wrong = []
    for row in re.findall(r"^\| (`car .+?) \| ", page, re.M):
        for usage in re.findall(r"`(car [^`]+)`", row):
            words = usage.replace("\\|", "|").split()
            name = words[1].split("|")[0]
            if name.startswith("-"):  # `car --version`
                continue
            if name not in helps:
                helps[name] = help_text(name)
            sub = words[2].split("|")[0] if len(words) > 2 and re.fullmatch(r"[a-z|-]+", words[2]) else ""
            said = helps[name]
            if sub and f"### car {name} {sub}" in reference:
                said = help_text(name, sub)
            for option in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", usage):
                if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", said):
                    wrong.append(f"{usage}: {option}")
    assert not wrong, "the overview names options its commands do not take:\n" + "\n".join(wrong)
