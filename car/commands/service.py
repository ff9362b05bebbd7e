"""`car service install|remove`: start this machine's daemon (and coordinator) on boot.

Three ways, one per kind of machine (`--init`):

- `systemd` (a laptop): a unit per program, `car-daemon.service` (and `car-coordinator.service`
  with `--coordinator`, which the daemon starts after), for the user (`~/.config/systemd/user`)
  or, with `--system`, for the machine (`/etc/systemd/system`). Each is checked with
  `systemd-analyze verify` when that is installed.
- `openrc` (the car's Alpine root): `/etc/init.d/car-daemon` (and `car-coordinator`), an
  `openrc-run` script (`rc-update add car-daemon default` enables it).
- `script` (an image without an init system): `/etc/car/start.sh`, which starts them in the
  background with a restart loop each, and `/etc/local.d/car.start` (run at boot by the
  `local` service, or by hand) calling it.

`--root DIR` writes under DIR instead of `/` (an image being built for the car). The commands
run the Python that runs this `car` (`python -m car ...`), with the options given. `remove`
deletes what `install` wrote (it says how to stop the services first).
"""

from __future__ import annotations

import argparse
import enum
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from car.commands.common import UserError, json_option
from car.transport import cluster

LOOPBACK = "127.0.0.1"


class Init(enum.StrEnum):
    """How a machine starts programs at boot."""

    SYSTEMD = "systemd"
    OPENRC = "openrc"
    SCRIPT = "script"


@dataclass(frozen=True)
class ServiceFile:
    """A file `install` writes: where, what, and whether it is a program to run."""

    path: Path
    text: str
    executable: bool = False


def service_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car service`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="install|remove")
    install = actions.add_parser("install", help="write the files that start the daemon (and coordinator) on boot")
    install.add_argument("--machine-id", required=True, metavar="ID", help="this machine's name (`car daemon`)")
    install.add_argument("--coordinator", action="store_true", help="start a coordinator here too, before the daemon")
    install.add_argument(
        "--coordinator-addr", default=f"{LOOPBACK}:{cluster.DAEMON_PORT}", metavar="HOST[:PORT]", help="the daemon's"
    )
    install.add_argument("--listen", default=LOOPBACK, metavar="ADDR", help="the daemon's --listen")
    install.add_argument(
        "--python",
        default=sys.executable,
        metavar="PATH",
        help="the Python with car (default: this one; on the car's Alpine root, /usr/bin/python3)",
    )
    remove = actions.add_parser("remove", help="delete what install wrote")
    for sub in (install, remove):
        sub.add_argument(
            "--init", choices=[i.value for i in Init], default=Init.SYSTEMD.value, help="(default systemd)"
        )
        sub.add_argument("--system", action="store_true", help="systemd: for the machine, not the user")
        sub.add_argument("--root", default="/", metavar="DIR", help="write under DIR (an image being built)")
        json_option(sub)


def cmd_service(args: argparse.Namespace) -> int:
    """`car service install|remove`."""
    init, root = Init(args.init), Path(args.root)
    if args.action == "install":
        options = Options(args.machine_id, args.coordinator, args.coordinator_addr, args.listen, args.python)
        files = service_files(init, options, args.system, root)
        for file in files:
            _write(file)
        problems = verify(init, files)
        if problems:
            for file in files:
                file.path.unlink(missing_ok=True)
            raise UserError("the files did not verify, and were removed:\n" + "\n".join(problems))
        said = {"written": [str(f.path) for f in files], "next": next_steps(init, files, args.system)}
    else:
        every = Options("", coordinator=True)
        written = [f.path for f in service_files(init, every, args.system, root) if f.path.exists()]
        for path in written:
            path.unlink()
        said = {"removed": [str(p) for p in written], "next": stop_steps(init, args.system)}
    if args.json:
        print(json.dumps(said))
    else:
        for key, items in said.items():
            print(f"{key}:" + "".join(f"\n  {item}" for item in items))
    return 0


@dataclass(frozen=True)
class Options:
    """What the programs started at boot are started with."""

    machine: str
    coordinator: bool = False  # a coordinator here too
    coordinator_addr: str = f"{LOOPBACK}:{cluster.DAEMON_PORT}"
    listen: str = LOOPBACK
    python: str = sys.executable


def service_files(init: Init, options: Options, system: bool, root: Path) -> list[ServiceFile]:
    """The files that start the daemon (and, with a coordinator, the coordinator first) at boot."""
    python = shlex.quote(options.python)
    daemon = f"{python} -m car daemon --machine-id {shlex.quote(options.machine)}"
    daemon += f" --coordinator-addr {shlex.quote(options.coordinator_addr)} --listen {shlex.quote(options.listen)}"
    coordinator = options.coordinator
    programs = [("car-coordinator", f"{python} -m car coordinator", "the coordinator")] if coordinator else []
    programs.append(("car-daemon", daemon, f"the daemon of machine {options.machine}"))
    if init is Init.SYSTEMD:
        folder = root / "etc/systemd/system" if system else _user_units(root)
        target = "multi-user.target" if system else "default.target"
        return [
            ServiceFile(folder / f"{name}.service", _unit(what, command, target, coordinator and name == "car-daemon"))
            for name, command, what in programs
        ]
    if init is Init.OPENRC:
        return [
            ServiceFile(root / "etc/init.d" / name, _openrc(name, what, command), executable=True)
            for name, command, what in programs
        ]
    start = root / "etc/car/start.sh"
    return [
        ServiceFile(start, _script(programs), executable=True),
        ServiceFile(root / "etc/local.d/car.start", "#!/bin/sh\n# starts car at boot\nexec /etc/car/start.sh\n", True),
    ]


def verify(init: Init, files: list[ServiceFile]) -> list[str]:
    """What the system's own checker says is wrong with the files ([]: nothing, or no checker here)."""
    if init is Init.SYSTEMD:
        checker = shutil.which("systemd-analyze")
        if checker is None:
            return []
        argv = [checker, "verify", *(str(f.path) for f in files)]
    else:
        argv = ["sh", "-n", *(str(f.path) for f in files)]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode == 0:
        return []
    return [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]


def next_steps(init: Init, files: list[ServiceFile], system: bool) -> list[str]:
    """What to run to start them now and at every boot."""
    names = [f.path.name for f in files]
    if init is Init.SYSTEMD:
        scope = "" if system else " --user"
        steps = [f"systemctl{scope} daemon-reload", f"systemctl{scope} enable --now {' '.join(names)}"]
        return steps + ([] if system else ["loginctl enable-linger $USER   # to start them before you log in"])
    if init is Init.OPENRC:
        return [f"rc-update add {name} default && rc-service {name} start" for name in names]
    return ["rc-update add local default   # where OpenRC runs local.d; else run /etc/car/start.sh from the boot"]


def stop_steps(init: Init, system: bool) -> list[str]:
    """What to run to stop what was started (before or after removing the files)."""
    if init is Init.SYSTEMD:
        scope = "" if system else " --user"
        return [f"systemctl{scope} disable --now car-daemon car-coordinator", f"systemctl{scope} daemon-reload"]
    if init is Init.OPENRC:
        return ["rc-service car-daemon stop; rc-update del car-daemon default (and car-coordinator)"]
    return ["kill $(cat /run/car-daemon.pid /run/car-coordinator.pid)"]


def _user_units(root: Path) -> Path:
    home = Path.home()
    return (
        root / home.relative_to("/") / ".config/systemd/user" if home.is_absolute() else root / ".config/systemd/user"
    )


def _unit(what: str, command: str, target: str, after_coordinator: bool) -> str:
    after = (
        "After=network-online.target car-coordinator.service" if after_coordinator else "After=network-online.target"
    )
    return (
        f"[Unit]\nDescription=car: {what}\n{after}\nWants=network-online.target\n\n"
        f"[Service]\nType=simple\nExecStart={command}\nRestart=on-failure\nRestartSec=2\n"
        "Environment=PYTHONUNBUFFERED=1\nKillMode=mixed\nTimeoutStopSec=20\n\n"
        f"[Install]\nWantedBy={target}\n"
    )


def _openrc(name: str, what: str, command: str) -> str:
    program, _, args = command.partition(" ")
    return (
        "#!/sbin/openrc-run\n"
        f'name="{name}"\ndescription="car: {what}"\n'
        f"command={program}\ncommand_args={shlex.quote(args)}\ncommand_background=true\n"
        f'pidfile="/run/{name}.pid"\noutput_log="/var/log/{name}.log"\nerror_log="/var/log/{name}.log"\n'
        "retry=20\n\ndepend() {\n\tneed net\n\tafter firewall\n}\n"
    )


def _script(programs: list[tuple[str, str, str]]) -> str:
    lines = [
        "#!/bin/sh",
        "# Starts car's programs at boot on an image without an init system: each in the background, started again",
        "# when it ends (after 2 s); its pid in /run/NAME.pid, its output in /var/log/NAME.log.",
        "",
        "keep() {",
        "    name=$1; shift",
        '    ( while true; do "$@" >>"/var/log/$name.log" 2>&1; sleep 2; done ) &',
        '    echo $! >"/run/$name.pid"',
        "}",
        "",
    ]
    lines += [f"keep {name} {command}" for name, command, _ in programs]
    return "\n".join(lines) + "\n"


def _write(file: ServiceFile) -> None:
    try:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        file.path.write_text(file.text)
        if file.executable:
            file.path.chmod(0o755)
    except OSError as exc:
        hint = " (as root, or with --root DIR)" if isinstance(exc, PermissionError) else ""
        raise UserError(f"cannot write {file.path}: {exc.strerror}{hint}") from None
