"""`car doctor`'s parts on their own: the strace reducer on recorded lines, the architecture mapping, profiles and
their comparison, and the seccomp rules a gap becomes."""

from __future__ import annotations

import errno
import json
import socket
import termios
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from car.doctor.arch import calls_of, on_target
from car.doctor.confine import rules_for, token_match
from car.doctor.gaps import Gap, GapKey, compare
from car.doctor.profile import ProfileError, load_profile, profile_from, shipped
from car.doctor.trace import TraceError, read_trace
from car.doctor.traced import DoctorError, car_side
from car.spec.loader import load_dataflow

# What `strace -f -qq -o FILE` wrote for a small Python program with a thread (edited down, real lines).
RECORDED = """\
4100 execve("/usr/bin/python3", ["python3", "-u", "node.py"], 0x7ffc5c0a3b28 /* 31 vars */) = 0
4100 arch_prctl(0x3001 /* ARCH_??? */, 0x7ffd0e2e1b50) = -1 EINVAL (Invalid argument)
4100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
4100 mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7f0e2c000000
4100 rseq(0x7f0e2d5b0fe0, 0x20, 0, 0x53053053) = 0
4100 ioctl(0, TCGETS, 0x7ffd0e2e1a90) = -1 ENOTTY (Inappropriate ioctl for device)
4100 ioctl(3, FIOCLEX) = 0
4100 ioctl(5, SNDCTL_TMR_START or TCSETS, {c_iflag=, c_oflag=, c_cflag=B115200|CS8|CREAD|CLOCAL, c_lflag=, ...}) = 0
4100 socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC, 0, [6, 7]) = 0
4100 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 8
4100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|\
CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f0e2c7ff910, parent_tid=0x7f0e2c7ff910, exit_signal=0, \
stack=0x7f0e2bfff000, stack_size=0x7fff00, tls=0x7f0e2c7ff640} => {parent_tid=[4101]}, 88) = 4101
4101 futex(0x7f0e2d400a40, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, {tv_sec=1733, tv_nsec=0}, \
FUTEX_BITSET_MATCH_ANY <unfinished ...>
4100 epoll_wait(9,  <unfinished ...>
4101 <... futex resumed>) = -1 ETIMEDOUT (Connection timed out)
4100 <... epoll_wait resumed>[{events=EPOLLIN, data={u32=10, u64=10}}], 256, -1) = 1
4101 futex(0x7f0e2d400a44, FUTEX_WAKE_PRIVATE, 1) = 0
4100 write(2, "a, b) = \\" quoted", 17) = 17
4100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f0e2d5b0a10) = 4102
4102 execve("/bin/true", ["true"], 0x7ffd0e2e1c38 /* 31 vars */) = 0
4102 +++ exited with 0 +++
4100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=4102, si_uid=0, si_status=0, si_utime=0} ---
[pid  4101] tgkill(4100, 4101, SIGABRT) = 0
4103 ???( <unfinished ...>
4103 <... ??? resumed>)                = ?
4101 +++ killed by SIGABRT (core dumped) +++
4100 +++ killed by SIGABRT (core dumped) +++
"""


def test_the_reducer_keeps_names_tokens_errors_threads_programs_signals_and_ends() -> None:
    trace = read_trace(RECORDED.splitlines(keepends=True))
    by_name = {call.name: call for call in trace.calls}
    assert [c.name for c in trace.calls if c.tid == 4101] == ["futex", "futex", "tgkill"]  # each when it ended
    assert by_name["socketpair"].tokens == {"AF_UNIX", "SOCK_SEQPACKET", "SOCK_CLOEXEC"}
    assert by_name["socket"].tokens == {"AF_NETLINK", "SOCK_RAW", "SOCK_CLOEXEC"}  # not the protocol
    assert by_name["openat"].tokens == {"O_RDONLY", "O_CLOEXEC"}  # the flags, not the path's words
    assert by_name["mmap"].tokens == {"PROT_NONE", "MAP_PRIVATE", "MAP_ANONYMOUS", "MAP_STACK"}
    assert by_name["arch_prctl"].errno == "EINVAL" and by_name["rseq"].errno == ""
    ioctls = [c for c in trace.calls if c.name == "ioctl"]
    assert [sorted(c.tokens) for c in ioctls] == [["TCGETS"], ["FIOCLEX"], ["SNDCTL_TMR_START or TCSETS"]]
    assert ioctls[0].errno == "ENOTTY"
    waits = [c for c in trace.calls if c.name == "futex"]
    assert waits[0].timed and waits[0].errno == "ETIMEDOUT"  # joined from its unfinished and resumed halves
    assert waits[0].tokens == {"FUTEX_WAIT_BITSET_PRIVATE", "FUTEX_CLOCK_REALTIME", "FUTEX_BITSET_MATCH_ANY"}
    assert not waits[1].timed and waits[1].tokens == {"FUTEX_WAKE_PRIVATE"}
    assert by_name["epoll_wait"].args == ("9", "[{events=EPOLLIN, data={u32=10, u64=10}}]", "256", "-1")
    assert by_name["write"].args[1].startswith('"a, b) = ') and len(by_name["write"].args) == 3  # a string's commas
    clone3 = by_name["clone3"]
    assert {"CLONE_THREAD", "CLONE_VM"} <= clone3.tokens and "CLONE_THREAD" in clone3.tokens
    assert trace.created_by == {4101: 4100, 4102: 4100} and trace.threads == {4101}
    assert trace.process_of(4101) == 4100 and trace.process_of(4102) == 4102
    assert trace.programs == {4100: ["python3", "-u", "node.py"], 4102: ["true"]}
    assert trace.ends == {4102: "exited with 0", 4101: "killed by SIGABRT", 4100: "killed by SIGABRT"}
    assert trace.signals == [(4100, "SIGCHLD")]
    assert by_name["tgkill"].tid == 4101  # the `[pid N]` prefix too


def test_what_is_not_strace_output_is_named_by_its_line() -> None:
    with pytest.raises(TraceError, match="line 2: not a system call"):
        read_trace(["4100 getpid() = 4100\n", "hello world\n"])


@given(st.lists(st.text(max_size=80), max_size=20))
def test_the_reducer_reads_anything_or_says_which_line_is_not_strace(lines: list[str]) -> None:
    try:
        read_trace(lines)
    except TraceError as exc:
        assert str(exc).startswith("line ")


def test_x86_64_calls_become_what_the_target_libc_makes_and_x86_only_calls_none() -> None:
    for arch in ("riscv64", "aarch64", "loongarch64"):
        assert on_target("epoll_wait", arch).call == "epoll_pwait"
        assert on_target("open", arch).call == "openat"
        assert on_target("vfork", arch).call == "clone"
        assert on_target("poll", arch).call == "ppoll"
        assert on_target("select", arch).call == "pselect6"
        assert on_target("arch_prctl", arch).call == ""  # x86 only: not made there
        assert on_target("restart_syscall", arch).call == ""  # Linux resuming a sleep, not the program
        assert not on_target("futex", arch).replaced and not on_target("rseq", arch).replaced
        assert "epoll_wait" not in calls_of(arch) and "epoll_pwait" in calls_of(arch)
    assert on_target("rename", "riscv64").call == "renameat2"  # riscv64 has no renameat
    assert on_target("rename", "aarch64").call == "renameat"
    assert on_target("riscv_flush_icache", "riscv64").call == "riscv_flush_icache"
    assert not on_target("epoll_wait", "x86_64").replaced  # x86_64 onto itself: nothing mapped


def _profile(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"target": "a small kernel", **fields}))
    return path


def test_a_small_profile_finds_missing_calls_missing_tokens_and_calls_that_behave_differently(tmp_path: Path) -> None:
    path = _profile(
        tmp_path,
        syscalls=[
            "execve",
            "openat",
            "mmap",
            "ioctl",
            "socketpair",
            "socket",
            "clone",
            "clone3",
            "futex",
            "tgkill",
            "write",
        ],
        flags={
            "ioctl": {"allow_tokens": ["TCGETS", "TCSETS"]},
            "socket": {"allow_tokens": ["AF_UNIX", "SOCK_STREAM", "SOCK_CLOEXEC"]},
        },
        errno={"tokens": {"socket": {"AF_": "EAFNOSUPPORT", "SOCK_": "ESOCKTNOSUPPORT"}, "ioctl": {"": "ENOTTY"}}},
        behaviours=[{"call": "futex", "tokens": ["FUTEX_WAIT_BITSET_PRIVATE"], "timed": True, "note": "relative"}],
    )
    profile = load_profile(str(path))
    trace = read_trace(RECORDED.splitlines())
    found = compare(trace, profile, "riscv64", lambda tid: "n" if trace.process_of(tid) == 4100 else "")
    gaps = {str(key): gap for key, gap in found.gaps.items()}
    assert set(gaps) == {
        "rseq",  # not in the profile
        "epoll_pwait",  # what the traced epoll_wait is on riscv64
        "ioctl(FIOCLEX)",  # a token the profile's ioctl lacks; `SNDCTL_TMR_START or TCSETS` is allowed by TCSETS
        "socket(AF_NETLINK)",
        "socket(SOCK_RAW)",
    }  # arch_prctl is not made on riscv64; socketpair has no token list here; 4102's calls are not counted
    assert gaps["epoll_pwait"].traced == {"epoll_wait"} and gaps["epoll_pwait"].errno == "ENOSYS"
    assert gaps["socket(AF_NETLINK)"].errno == "EAFNOSUPPORT" and gaps["socket(SOCK_RAW)"].errno == "ESOCKTNOSUPPORT"
    assert gaps["ioctl(FIOCLEX)"].errno == "ENOTTY" and gaps["ioctl(FIOCLEX)"].by == Counter({"n": 1})
    assert {(m.traced, m.call): n for m, n in found.mapped.items()} == {
        ("epoll_wait", "epoll_pwait"): 1,
        ("arch_prctl", ""): 1,
    }
    assert [(d.behaviour.note, d.by) for d in found.differs] == [("relative", Counter({"n": 1}))]
    assert found.threads == {"n": {4100, 4101}} and found.processes == {"n": {4100}}


def test_the_shipped_starry_profile_is_the_shared_copy_with_what_the_kernel_source_says(tmp_path: Path) -> None:
    assert "starryos-2e075ac" in shipped()
    profile = load_profile(None)
    assert len(profile.syscalls) == 210 and "epoll_pwait" in profile.syscalls and "epoll_wait" not in profile.syscalls
    assert not profile.token_allowed("socket", "SOCK_SEQPACKET") and profile.token_allowed("socket", "SOCK_DGRAM")
    assert profile.errno_for_token("ioctl", "TCFLSH") == "ENOTTY"
    assert profile.errno_for_token("socket", "SOCK_SEQPACKET") == "ESOCKTNOSUPPORT"
    assert profile.libc == "musl" and profile.call_errno == "ENOSYS"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"syscalls": ["read"],\n "flags": [}', r"small.json:2:12: not JSON"),
        ('{"target": "x"}', "syscalls: a list of names"),
        ('{"syscalls": []}', "syscalls: list the system calls"),
        ('{"syscalls": ["read"], "flags": {"ioctl": {"allow": 1}}}', r"flags.ioctl.allow_tokens: a list of names"),
        ('{"syscalls": ["read"], "errno": {"call": "ENOPE"}}', "errno.call: 'ENOPE' is not an errno name"),
        ('{"syscalls": ["read"], "behaviours": [{"call": "futex"}]}', r"behaviours\[0\]: give call and note"),
        ("[1, 2]", "a profile is a JSON object"),
    ],
)
def test_a_profile_with_a_mistake_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "small.json"
    path.write_text(text)
    with pytest.raises(ProfileError, match=said):
        load_profile(str(path))


def test_an_unknown_shipped_profile_names_those_there_are() -> None:
    with pytest.raises(ProfileError, match=r"no target profile `starry-9` \(shipped: starryos-2e075ac"):
        load_profile("starry-9")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: (
            st.lists(c)
            | st.dictionaries(
                st.sampled_from(["syscalls", "flags", "errno", "behaviours", "call", "tokens", "note", "allow_tokens"]),
                c,
            )
        ),
        max_leaves=12,
    )
)
def test_profile_from_takes_any_json_or_says_what_is_wrong(raw: object) -> None:
    try:
        profile_from(raw, "fuzz.json")
    except ProfileError as exc:
        assert str(exc).startswith("fuzz.json")


def test_a_gap_becomes_seccomp_rules_on_this_machines_calls_with_the_targets_errno() -> None:
    missing = Gap(GapKey("epoll_pwait"), "ENOSYS", {"epoll_wait"})
    assert [(r.call, r.errno, r.argument) for r in rules_for(missing)] == [("epoll_wait", "ENOSYS", -1)]
    seqpacket = rules_for(Gap(GapKey("socketpair", "SOCK_SEQPACKET"), "ESOCKTNOSUPPORT", {"socketpair"}))
    assert [(r.argument, r.mask, r.value) for r in seqpacket] == [(1, 0xF, socket.SOCK_SEQPACKET)]
    flush = token_match("ioctl", "TCFLSH")
    assert (flush.argument, flush.value) == (1, termios.TCFLSH)
    assert token_match("ioctl", "SNDCTL_TMR_START or TCSETS").value == termios.TCSETS
    assert token_match("socket", "AF_NETLINK").value == socket.AF_NETLINK
    bitset = token_match("futex", "FUTEX_WAIT_BITSET_PRIVATE")
    assert (bitset.mask, bitset.value) == (0x7F | 128, 9 | 128)
    with pytest.raises(ValueError, match="cannot be failed alone"):
        token_match("clone3", "CLONE_THREAD")
    assert errno.ENOSYS  # the names rules carry are errno's


def test_the_car_side_of_a_split_graph_is_a_file_with_only_its_nodes_removed_afterwards(tmp_path: Path) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text("")
    flow = tmp_path / "split.yml"
    flow.write_text(
        "nodes:\n"
        "  - {id: io, path: a.py, inputs: {tick: dora/timer/millis/10, cmd: brain/cmd}, outputs: [frame],"
        " deploy: {machine: car}}\n"
        "  - {id: brain, path: b.py, inputs: {frame: {source: io/frame, queue_size: 1}}, outputs: [cmd],"
        " deploy: {machine: laptop}}\n"
        "  - {id: log, path: c.py, inputs: {frame: io/frame}, deploy: {machine: car}}\n"
    )
    dataflow = load_dataflow(flow)
    with car_side(dataflow, "car") as side:
        assert (side.nodes, side.left_out, side.unfed) == (("io", "log"), ("brain",), ("io/cmd",))
        assert side.file != flow and side.file.parent == tmp_path
        reduced = load_dataflow(side.file)  # a file car launch takes: only the car's nodes, nothing dangling
        assert [n.id for n in reduced.nodes] == ["io", "log"] and set(reduced.nodes[0].inputs) == {"tick"}
    assert not side.file.exists()
    with (
        pytest.raises(DoctorError, match=r"places no node on `robot` \(its machines: car, laptop"),
        car_side(dataflow, "robot"),
    ):
        pass
