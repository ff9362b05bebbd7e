"""`car service install|remove`: the files that start car on boot, for systemd, OpenRC and an image without an init
system, each checked by what the system itself checks them with (car.commands.service)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from car.commands.service import Init, ServiceFile, verify
from tests.helpers import car


def install(root: Path, init: str, *more: str) -> dict[str, list[str]]:
    result = car(
        "service",
        "install",
        "--machine-id",
        "car1",
        "--coordinator",
        "--init",
        init,
        "--root",
        str(root),
        "--json",
        *more,
    )
    assert result.returncode == 0, result.stderr
    said: dict[str, list[str]] = json.loads(result.stdout)
    return said


def test_systemd_units_for_the_user_and_the_machine_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units could not be verified here")
    said = install(tmp_path / "user", "systemd")
    daemon = next(Path(p) for p in said["written"] if p.endswith("car-daemon.service"))
    text = daemon.read_text()
    assert "/.config/systemd/user/" in str(daemon) and "WantedBy=default.target" in text
    assert "-m car daemon --machine-id car1 --coordinator-addr 127.0.0.1:53290" in text
    assert "After=network-online.target car-coordinator.service" in text
    assert said["next"][1] == "systemctl --user enable --now car-coordinator.service car-daemon.service"
    system = install(tmp_path / "system", "systemd", "--system", "--python", "/usr/bin/python3")
    unit = Path(system["written"][1]).read_text()
    assert system["written"][1] == str(tmp_path / "system" / "etc/systemd/system/car-daemon.service")
    assert "ExecStart=/usr/bin/python3 -m car daemon" in unit and "WantedBy=multi-user.target" in unit
    bad = tmp_path / "bad.service"  # and the check catches a wrong unit
    bad.write_text("[Unit]\nDescription=x\n[Service]\nExecStart=relative/path\n")
    assert any("relative/path" in line for line in verify(Init.SYSTEMD, [ServiceFile(bad, "")]))


def test_the_car_s_alpine_root_gets_openrc_services_and_an_image_without_init_a_boot_script(tmp_path: Path) -> None:
    said = install(tmp_path / "alpine", "openrc", "--python", "/usr/bin/python3")
    scripts = [Path(p) for p in said["written"]]
    assert [p.name for p in scripts] == ["car-coordinator", "car-daemon"]
    for script in scripts:
        assert script.stat().st_mode & 0o111 and script.read_text().startswith("#!/sbin/openrc-run\n")
        assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert "command=/usr/bin/python3\ncommand_args='-m car daemon --machine-id car1" in scripts[1].read_text()
    said = install(tmp_path / "bare", "script")
    start, hook = (Path(p) for p in said["written"])
    assert start == tmp_path / "bare" / "etc/car/start.sh" and hook.read_text().endswith("exec /etc/car/start.sh\n")
    assert "keep car-coordinator " in start.read_text() and "keep car-daemon " in start.read_text()
    assert subprocess.run(["sh", "-n", str(start)]).returncode == 0


def test_remove_deletes_what_install_wrote_and_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    said = install(tmp_path, "openrc")
    removed = car("service", "remove", "--init", "openrc", "--root", str(tmp_path), "--json")
    assert removed.returncode == 0, removed.stderr
    assert sorted(json.loads(removed.stdout)["removed"]) == sorted(said["written"])
    assert not any(Path(p).exists() for p in said["written"])
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder must go")
    result = car("service", "install", "--machine-id", "m", "--init", "script", "--root", str(blocked))
    assert result.returncode != 0 and "cannot write" in result.stderr and "Traceback" not in result.stderr
    missing = car("service", "install", "--init", "script")
    assert missing.returncode == 2 and "--machine-id" in missing.stderr
