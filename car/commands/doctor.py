"""`car doctor FILE`: check the car side of a graph against a target kernel (StarryOS by default) before the car.

    car doctor dataflows/follow_line.yml                       # trace, map onto riscv64, compare with the profile
    car doctor dataflows/follow_line.yml --inject              # and fail each gap alone: harmless, degraded, fatal?
    car doctor dataflows/follow_line.yml --enforce --laps 1    # every gap failing at once: the closest to the car
    car doctor dataflows/follow_line_ir.yml --hw --port /dev/pts/3 --enforce   # car launch's options pass through
    car doctor --list-targets

It runs the nodes that deploy to `--machine` (all, when the file deploys nowhere) with
`car launch` under `strace -f` (car.doctor.traced), reduces the trace (car.doctor.trace),
maps it onto the target's architecture (car.doctor.arch), compares it with the target's
profile (car.doctor.profile, car.doctor.gaps) and prints what the target lacks, how
often, who used it and what is known of its effect. `--inject` runs the graph again once
per gap with that call or token failing as the target fails it, `--enforce` once with
every gap failing (a seccomp filter, car.doctor.confine), and says what happened
(car.doctor.outcome). Exit status 1 when a gap proved fatal.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from car.commands.extensions import launch_options
from car.doctor.arch import ARCHITECTURES, ArchitectureError
from car.doctor.confine import Rule, load_seccomp, rules_for
from car.doctor.gaps import Findings, Gap, compare
from car.doctor.outcome import KNOWN_EFFECTS, Outcome, Verdict, failing, judge
from car.doctor.profile import DEFAULT, Profile, ProfileError, load_profile, shipped
from car.doctor.trace import TraceError
from car.doctor.traced import CarSide, DoctorError, TracedRun, car_side, node_programs, run_traced, work_folder
from car.spec.loader import load_dataflow
from car.spec.model import DataflowError

EXIT_FATAL = 1
EXIT_USAGE = 2
WIDTH = 100  # of the report's wrapped lines


@dataclass
class Checked:
    """A gap, the seccomp rules that fail it, and what was learnt by failing it."""

    gap: Gap
    rules: list[Rule] = field(default_factory=list)
    not_injected: str = ""  # why it cannot be failed (then there are no rules)
    outcome: Outcome | None = None

    def __post_init__(self) -> None:
        try:
            self.rules = rules_for(self.gap)
        except ValueError as exc:
            self.not_injected = str(exc)


def _own_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--machine", default="car", help="the machine whose nodes run (default car)")
    parser.add_argument("--target", metavar="PROFILE", help=f"a shipped profile or a .json file (default {DEFAULT})")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="riscv64", help="the target's architecture")
    parser.add_argument("--duration", type=float, default=8.0, metavar="S", help="seconds per run (default 8)")
    parser.add_argument("--inject", action="store_true", help="fail each gap alone and say what it does")
    parser.add_argument("--enforce", action="store_true", help="fail every gap at once: the graph as on the target")
    parser.add_argument("--keep", metavar="DIR", help="keep the traces, rules and logs in DIR")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--list-targets", action="store_true", help="list the shipped profiles")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="car doctor",
        description="check the car side of a graph against a target kernel: trace it, compare, fail the gaps",
        epilog="Other options are car launch's (--hw, --port, --track, --laps, ...), passed to it as given.",
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="the dataflow")
    _own_arguments(parser)
    for name, provider in launch_options():
        provider.add_arguments(parser.add_argument_group(f"car launch's {name} options"))
    return parser


def main(argv: list[str]) -> None:
    """`car doctor ARGS`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_targets:
        _list_targets()
        sys.exit(0)
    if not args.file:
        parser.error("give the dataflow FILE (or --list-targets)")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    own = argparse.ArgumentParser(add_help=False)
    _own_arguments(own)
    rest = list(argv)
    rest.remove(args.file)
    _, launch_argv = own.parse_known_args(rest)  # what is left is car launch's, as given
    for name, provider in launch_options():
        try:
            provider.environment(args)
        except ValueError as exc:
            parser.error(f"{name} options: {exc}")
    try:
        sys.exit(doctor(args, launch_argv))
    except (DoctorError, ProfileError, ArchitectureError, TraceError) as exc:
        print(f"car doctor: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except DataflowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"car doctor: {args.file}: {len(exc.problems)} problem(s); nothing was run", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)


def _list_targets() -> None:
    for name in shipped():
        profile = load_profile(name)
        default = " (default)" if name == DEFAULT else ""
        print(f"{name}{default}: {profile.target}; {len(profile.syscalls)} calls, libc {profile.libc or 'unknown'}")


def doctor(args: argparse.Namespace, launch_argv: list[str]) -> int:
    """Trace, compare, and with --inject or --enforce fail the gaps; print the report; the exit status."""
    profile = load_profile(args.target)
    dataflow = load_dataflow(args.file)
    if args.inject or args.enforce:
        try:
            load_seccomp()
        except ImportError as exc:
            raise DoctorError(str(exc)) from None
    say = _Say(args.json)
    with car_side(dataflow, args.machine) as side, work_folder(args.keep) as folder:
        programs = node_programs(dataflow, side.nodes)
        say.header(side, profile, args.arch, launch_argv)
        baseline = run_traced(side, launch_argv, args.duration, folder, "trace", programs=programs)
        if not baseline.trace.calls:
            raise DoctorError(f"strace recorded nothing: {baseline.output.strip()[-300:]}")
        findings = compare(baseline.trace, profile, args.arch, baseline.who)
        checked = [Checked(gap) for gap in sorted(findings.gaps.values(), key=lambda g: (-g.count, str(g.key)))]
        say.findings(baseline, findings, args.arch)
        for item in checked if args.inject else []:
            if item.rules:
                label = f"inject-{item.gap.key}"
                run = run_traced(side, launch_argv, args.duration, folder, label, item.rules, programs=programs)
                item.outcome = judge(run, baseline, failing([item.gap]), args.duration)
        say.gaps(checked, args.inject, baseline)
        say.differs(findings, profile)
        enforced = None
        if args.enforce:
            rules = [rule for item in checked for rule in item.rules]
            run = run_traced(side, launch_argv, args.duration, folder, "enforce", rules, programs=programs)
            enforced = judge(run, baseline, failing([item.gap for item in checked if item.rules]), args.duration)
            say.enforced(enforced, run, [item.gap for item in checked if not item.rules])
        if args.keep:
            say.line(f"traces, rules and logs kept in {folder}/")
    say.done(checked, enforced)
    fatal = any(item.outcome is not None and item.outcome.verdict is Verdict.FATAL for item in checked)
    return EXIT_FATAL if fatal or (enforced is not None and enforced.verdict is Verdict.FATAL) else 0


class _Say:
    """The report: a table for people, or (`as_json`) one JSON object at the end."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.report: dict[str, Any] = {}

    def line(self, text: str = "") -> None:
        if not self.as_json:
            print(text, flush=True)

    def header(self, side: CarSide, profile: Profile, arch: str, launch_argv: list[str]) -> None:
        nodes = ", ".join(side.nodes)
        self.report.update(machine=side.machine, nodes=list(side.nodes), target=profile.name, arch=arch)
        self.line(f"car doctor: the nodes of `{side.machine}` ({nodes}) and their daemon, against {profile.name}")
        self.line(f"  target: {profile.target}; {arch}; C library {profile.libc or 'unknown'}")
        if side.left_out:
            self.line(
                f"  not run (other machines): {', '.join(side.left_out)}; inputs left unfed: {', '.join(side.unfed)}"
            )
        if launch_argv:
            self.line(f"  car launch options: {' '.join(launch_argv)}")
        self.line("  tracing a run with strace ...")

    def findings(self, run: TracedRun, found: Findings, arch: str) -> None:
        rows = [
            {"who": who, "processes": len(found.processes[who]), "threads": len(found.threads[who]), "calls": count}
            for who, count in sorted(found.calls.items())
        ]
        mapped = [
            {"traced": m.traced, "target": m.call or None, "calls": n} for m, n in sorted(found.mapped.items(), key=str)
        ]
        self.report.update(returncode=run.returncode, processes=rows, mapped=mapped)
        self.line(
            f"\nThe run (car launch exited with {run.returncode}{', stopped: it overran' if run.timed_out else ''}):"
        )
        self.line(f"  {'WHO':<16} {'PROCESSES':>9} {'THREADS':>8} {'CALLS':>9}")
        for row in rows:
            self.line(f"  {row['who']:<16} {row['processes']:>9} {row['threads']:>8} {row['calls']:>9}")
        if mapped:
            self.line(f"Mapped from x86_64 onto {arch} (the calls its C library makes instead):")
            shown = [f"{m['traced']} -> {m['target'] or 'none (not made there)'} ({m['calls']})" for m in mapped]
            self.line(textwrap.fill("; ".join(shown), WIDTH, initial_indent="  ", subsequent_indent="  "))

    def gaps(self, checked: list[Checked], injected: bool, run: TracedRun) -> None:
        self.report["gaps"] = [
            {
                "gap": str(item.gap.key),
                "errno": item.gap.errno,
                "calls": item.gap.count,
                "by": dict(item.gap.by),
                "traced": sorted(item.gap.traced),
                "known": KNOWN_EFFECTS.get(str(item.gap.key), ""),
                "outcome": None if item.outcome is None else item.outcome.verdict.value,
                "detail": item.not_injected or ("" if item.outcome is None else item.outcome.detail),
            }
            for item in checked
        ]
        if not checked:
            self.line("\nNo gaps: every call and token the run used is in the profile.")
            return
        self.line(f"\nWhat the target lacks ({len(checked)}):")
        self.line(f"  {'GAP':<28} {'FAILS WITH':<15} {'CALLS':>6}  {'RESULT' if injected else 'KNOWN'}")
        for item in checked:
            if injected:
                result = f"cannot be failed alone: {item.not_injected}" if item.not_injected else str(item.outcome)
            else:
                result = KNOWN_EFFECTS.get(str(item.gap.key), "-")
            self.line(f"  {item.gap.key!s:<28} {item.gap.errno:<15} {item.gap.count:>6}  {result}")
            self.line(f"  {'':<28} by {', '.join(f'{name} {count}' for name, count in item.gap.by.most_common())}")

    def differs(self, found: Findings, profile: Profile) -> None:
        self.report["differs"] = [
            {"call": d.behaviour.call, "calls": sum(d.by.values()), "by": dict(d.by), "note": d.behaviour.note}
            for d in found.differs
        ]
        for d in found.differs:
            who = ", ".join(f"{name} {count}" for name, count in d.by.most_common())
            tokens = "|".join(sorted(d.behaviour.tokens))
            timed = " with a timeout" if d.behaviour.timed else ""
            self.line(f"\nBehaves differently: {d.behaviour.call}({tokens}){timed}, {sum(d.by.values())} calls ({who})")
            self.line(textwrap.fill(d.behaviour.note, WIDTH, initial_indent="  ", subsequent_indent="  "))
            traced_with = " ".join(platform.libc_ver()).strip() or "an unknown C library"
            if profile.libc and profile.libc not in traced_with:
                self.line(f"  (traced with {traced_with}; the target's C library is {profile.libc})")

    def enforced(self, outcome: Outcome, run: TracedRun, left: list[Gap]) -> None:
        said = [line for line in run.output.splitlines() if line.startswith("car:") and "logs:" not in line]
        tail = said[-4:]  # how the run ended (its logs are in --keep's folder)
        self.report["enforced"] = {"outcome": outcome.verdict.value, "detail": outcome.detail, "said": tail}
        self.line(f"\nEvery gap failing at once (--enforce): {outcome}")
        if left:
            self.line(f"  (not failed: {', '.join(str(g.key) for g in left)}: seccomp cannot see them)")
        for line in tail:
            self.line(f"  {line}")

    def done(self, checked: list[Checked], enforced: Outcome | None) -> None:
        if self.as_json:
            print(json.dumps(self.report, indent=1))
            return
        fatal = [str(i.gap.key) for i in checked if i.outcome is not None and i.outcome.verdict is Verdict.FATAL]
        if fatal:
            self.line(f"\nFatal on the target: {', '.join(fatal)}")
        elif enforced is not None and enforced.verdict is Verdict.FATAL:
            self.line("\nFatal on the target: the gaps together (see above)")
