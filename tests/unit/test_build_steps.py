"""Cached builds' decisions without running anything: a build cut into steps, strace's per-process files read into
what a step read and wrote, and the cache's records (car.cache)."""

from __future__ import annotations

from pathlib import Path

from car.cache.accesses import read_accesses
from car.cache.builds import Step, steps_of
from car.cache.store import StepRecord, Store
from car.content.store import Seen


def test_a_build_is_cut_at_its_top_level_ands_and_a_cd_moves_the_steps_after_it() -> None:
    assert steps_of("cd src && make && cd .. && cp src/a.out bin/") == [
        Step("make", "src"),
        Step("cp src/a.out bin/", ""),
    ]
    assert steps_of('echo "a && b" && (cd x && make)') == [Step('echo "a && b"'), Step("(cd x && make)")]
    assert steps_of("export CC=clang && make") == [Step("export CC=clang && make")]  # shell state: one step
    assert steps_of("CC=clang && make") == [Step("CC=clang && make")]
    assert steps_of("pip install -r requirements.txt") == [Step("pip install -r requirements.txt")]


def write_trace(folder: Path, files: dict[int, str]) -> Path:
    prefix = folder / "trace"
    for pid, text in files.items():
        Path(f"{prefix}.{pid}").write_text(text)
    return prefix


def test_reads_writes_folders_children_renames_and_deletions_are_followed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    for name in ("sub/in.txt", "out.bin", "moved.bin", "kept.c", "old.o"):
        (work / name).write_text("x")
    prefix = write_trace(
        tmp_path,
        {
            100: (
                'execve("/bin/sh", ["sh", "-c", "..."], 0x7ffd /* 3 vars */) = 0\n'
                'openat(AT_FDCWD, "kept.c", O_RDONLY|O_CLOEXEC) = 3</tmp/kept.c>\n'
                'chdir("sub") = 0\n'
                "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 101\n"
                'chdir("/nowhere") = -1 ENOENT (No such file or directory)\n'
                'openat(AT_FDCWD, "missing.txt", O_RDONLY) = -1 ENOENT (No such file or directory)\n'
                "+++ exited with 0 +++\n"
            ),
            101: (
                'execve("/usr/bin/cp", ["cp", "in.txt", "../out.bin"], 0x5 /* 3 vars */) = 0\n'
                'openat(AT_FDCWD, "in.txt", O_RDONLY) = 3</work/sub/in.txt>\n'
                'openat(AT_FDCWD, "../out.bin", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 4</work/out.bin>\n'
                'openat(4</tmp/work>, "tmp.part", O_WRONLY|O_CREAT, 0600) = 5\n'
                'rename("../out.bin", "../moved.bin") = 0\n'
                'unlinkat(AT_FDCWD, "/tmp/work/tmp.part", 0) = 0\n'
                'unlink("../old.o") = 0\n'
                'openat(AT_FDCWD, "/proc/self/maps", O_RDONLY) = 5\n'
                "+++ exited with 0 +++\n"
            ),
        },
    )
    (work / "old.o").unlink()  # what the trace says happened
    (work / "out.bin").unlink()
    found = read_accesses(prefix, 100, work)
    assert found.ran == {Path("/bin/sh"), Path("/usr/bin/cp")}
    assert found.read == {work / "kept.c", work / "sub" / "in.txt"}  # relative to the folder it was in then
    assert found.written == {work / "moved.bin"}  # renamed; the temporary file was deleted: no output
    assert found.outputs() == [work / "moved.bin"] and found.deleted() == [work / "old.o"]
    assert Path("/tmp/work/tmp.part") not in found.written
    assert work / "sub" / "missing.txt" not in found.read  # a failed open is no input


def test_a_file_seen_by_a_step_is_the_same_by_its_stat_or_else_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("one")
    seen = Seen.of(path)
    assert seen.same_as(path)
    path.write_text("two")  # same size, new content
    assert not seen.same_as(path)
    path.write_text("one")  # new mtime, same content: the hash says it is the same
    assert seen.same_as(path)
    assert not seen.same_as(tmp_path / "gone.txt")


def test_the_store_keeps_records_and_contents_and_forgets_a_failed_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    out = tmp_path / "out.bin"
    out.write_bytes(b"\x00\x01payload")
    seen = Seen.of(out)
    store.keep(out, seen)
    store.save(StepRecord("k1", "make", outputs={str(out): seen}, deleted=[str(tmp_path / "x")]))
    out.unlink()
    record = store.record("k1")
    assert record is not None and record.outputs[str(out)] == seen and record.deleted == [str(tmp_path / "x")]
    store.restore(out, seen)
    assert out.read_bytes() == b"\x00\x01payload" and seen.same_as(out)
    (tmp_path / "cache" / "steps" / "k2.json").write_text("not json")
    assert store.record("k2") is None  # a damaged record: the step runs again
    store.forget("k1")
    assert store.record("k1") is None
