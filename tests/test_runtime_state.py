"""A state directory that is full, read-only, someone else's, or whose journal another process
holds: the real command on the demo estate, on a real small tmpfs, a real read-only bind mount,
a real foreign-owned directory and a real second process holding the journal.

Mounting needs root (as in CI); a directory another user owns is made unreadable to this one by
running the command as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (``setpriv``).
"""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from helpers import ftb_running, hold_journal, release_journal

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mounting a tmpfs or a read-only bind needs root (CI runs as root)")
BOUND = 180.0


def demo(where: Path, state: Path, extra_state: str = "") -> Path:
    """The demo estate in ``where`` (its sim files there), its state directory ``state``."""
    cfg = K.copy_demo(where, op_seconds=0.01)
    text = cfg.read_text().replace('[state]\ndir = "state"\n', f'[state]\ndir = "{state}"\n{extra_state}')
    cfg.write_text(text)
    return cfg


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted at the end whatever happens."""
    where = tmp_path / "small"
    where.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def ballast(where: Path, leave: int) -> Path:
    """A file filling ``where`` up to ``leave`` bytes free."""
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    path = where / "ballast"
    with open(path, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return path


def leftovers(where: Path) -> list[Path]:
    return [p for p in where.rglob("*") if p.name.endswith(".tmp")]


def one_error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@needs_root
def test_disk_full_during_apply_then_resume(tmp_path: Path, tmpfs: Path) -> None:
    cfg = demo(tmp_path / "live", tmpfs)
    ref = K.copy_demo(tmp_path / "ref", op_seconds=0.01)
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan)).returncode == 0
    # room for the start of the run, not for all of it (the journal's WAL grows by a few pages per
    # transaction, about one per action: 512 KiB took the whole run, 96 KiB not even its start)
    ballast_file = ballast(tmpfs, 256 * 1024)

    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes")
    assert r.returncode == 11, r.stderr
    line = one_error_line(r.stderr)
    assert f"{tmpfs}/journal.sqlite: cannot write: disk full" in line, line
    assert f"free some space there, then carry on with: ftbridge -c {cfg} apply {plan} --yes --resume" in line
    assert leftovers(tmpfs) == []
    with sqlite3.connect(tmpfs / "journal.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (status,) = c.execute("SELECT status FROM runs").fetchone()
        states = [s for (s,) in c.execute("SELECT state FROM actions")]
        handles = c.execute("SELECT count(*) FROM actions WHERE operation IS NOT NULL").fetchone()[0]
    assert status == "running" and "pending" in states and "running" in states, "the disk filled mid-run"

    ballast_file.unlink()  # space is back
    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes", "--resume")
    assert r.returncode == 0, r.stderr
    # an operation in flight when the disk filled is found again, not started afresh: by its
    # handle, when that was committed (it rides the next commit without waiting, so the disk
    # may fill first: the threads' timing decides), else by the resume: the platform's pending
    # operations (adopted) or the live estate showing the action done (skipped)
    with sqlite3.connect(tmpfs / "journal.sqlite") as c:
        found = c.execute("SELECT count(*) FROM events WHERE event IN ('op_adopted', 'action_skipped')").fetchone()[0]
    assert handles + found >= 1, "an operation in flight when the disk filled is found again"
    assert K.ftb("-c", str(ref), "apply", str(plan), "--yes").returncode == 0
    end = K.normalized_state(cfg.parent)
    assert all(s["running"] == [] and s["violations"] == [] for s in end.values())
    assert end == K.normalized_state(ref.parent)
    assert leftovers(tmpfs) == []


@needs_root
def test_disk_full_when_writing_a_plan(tmp_path: Path, tmpfs: Path) -> None:
    cfg = demo(tmp_path / "live", tmpfs)
    (tmpfs / "plans").mkdir()
    ballast(tmpfs, 0)
    # what only reads still works (where VMs were last seen cannot be recorded: a warning)
    r = K.ftb("-c", str(cfg), "inventory")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "cannot record where VMs run" in r.stderr and "disk full" in r.stderr
    r = K.ftb("-c", str(cfg), "plan")
    assert r.returncode == 11, r.stderr
    line = one_error_line(r.stderr)
    assert f"{tmpfs}/plans/plan-" in line and ".json: cannot write: disk full" in line, line
    assert leftovers(tmpfs) == [] and list((tmpfs / "plans").iterdir()) == []


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(config, a plan applied already, the state dir) with the state dir then mounted read-only."""
    state = tmp_path / "state"
    cfg = demo(tmp_path / "live", state)
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan)).returncode == 0
    assert K.ftb("-c", str(cfg), "apply", str(plan), "--yes").returncode == 0
    mount("--bind", str(state), str(state))
    try:
        mount("-o", "remount,bind,ro", str(state))
        yield cfg, plan, state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


@needs_root
def test_read_only_state_dir(read_only_state: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, plan, state = read_only_state
    before = sorted((p.name, p.stat().st_size) for p in state.rglob("*") if p.is_file())
    # what only reads works
    for args in (["inventory"], ["runs"], ["plan", "show", str(plan)]):
        r = K.ftb("-c", str(cfg), *args)
        assert r.returncode == 0, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = K.ftb("-c", str(cfg), "runs", "-o", "json")
    assert '"done"' in r.stdout, r.stdout
    r = K.ftb("-c", str(cfg), "audit")
    assert r.returncode in (0, 1), r.stderr
    # what must write says where and why, once
    r = K.ftb("-c", str(cfg), "plan")
    assert r.returncode == 11, r.stderr
    assert f"{state}/plans/plan-" in one_error_line(r.stderr) and "read-only file system" in r.stderr
    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes")
    assert r.returncode == 11, r.stderr
    line = one_error_line(r.stderr)
    assert str(state) in line and "read-only file system" in line, line
    assert sorted((p.name, p.stat().st_size) for p in state.rglob("*") if p.is_file()) == before


def foreign(*args: str) -> subprocess.CompletedProcess[str]:
    """The command run by a user who may not enter the state directory: root without the
    capabilities that override file permissions (``setpriv``), or this user if not root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    pre: list[str] = []
    if ROOT:
        caps = "-dac_override,-dac_read_search"
        pre = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    return subprocess.run(
        [*pre, sys.executable, "-m", "ftbridge", *args], capture_output=True, text=True, env=env, timeout=BOUND
    )


@pytest.mark.skipif(ROOT and shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_state_dir_of_another_user(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    cfg = demo(tmp_path / "live", state)
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan)).returncode == 0
    before = sorted((p.name, p.stat().st_mtime_ns) for p in state.rglob("*"))
    if ROOT:
        os.chown(state, 65534, 65534)
        state.chmod(0o700)
    else:
        state.chmod(0o000)
    try:
        r = foreign("-c", str(cfg), "inventory")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        r = foreign("-c", str(cfg), "apply", str(plan), "--yes")
        assert r.returncode == 11, r.stderr
        line = one_error_line(r.stderr)
        assert str(state) in line and "permission denied" in line, line
    finally:
        state.chmod(0o700)
        if ROOT:
            os.chown(state, 0, 0)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in state.rglob("*")) == before, "nothing was written"


# -- a journal another process holds ------------------------------------------------------------
def busy_demo(tmp_path: Path, busy_timeout: str) -> tuple[Path, Path, Path]:
    """The demo with a plan made and its state directory there: (config, plan, journal path)."""
    state = tmp_path / "state"
    cfg = demo(tmp_path / "live", state, f'busy_timeout = "{busy_timeout}"\n')
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan)).returncode == 0
    state.mkdir(parents=True, exist_ok=True)
    return cfg, plan, state / "journal.sqlite"


def test_busy_journal_waits_then_exit_9(tmp_path: Path) -> None:
    cfg, plan, jpath = busy_demo(tmp_path, "1s")
    ops_before = K.sim_ops(cfg.parent)
    holder = hold_journal(jpath)
    try:
        r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes")
    finally:
        release_journal(holder, BOUND)
    assert r.returncode == 9, r.stderr
    assert r.stderr.count(f"waiting for {jpath}, held by another process") == 1, r.stderr
    line = one_error_line(r.stderr)
    assert f"{jpath}: held by another process" in line and "nothing was changed" in line
    assert K.sim_ops(cfg.parent) == ops_before, "nothing changed on the platforms"
    with sqlite3.connect(jpath) as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs'").fetchone() == (0,)


def first_line(stream: IO[str]) -> str:
    """The stream's first line, read by a thread so that a broken run fails the test in bounded time."""
    q: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: q.put(stream.readline()), daemon=True).start()
    return q.get(timeout=BOUND)


def test_busy_journal_released_while_waiting(tmp_path: Path) -> None:
    """The holder lets go once the apply says it waits: the apply then carries on to the end."""
    cfg, plan, jpath = busy_demo(tmp_path, "10m")
    holder = hold_journal(jpath)
    p = ftb_running("-c", str(cfg), "apply", str(plan), "--yes")
    try:
        assert p.stderr is not None
        first = first_line(p.stderr)
        assert first.strip() == f"waiting for {jpath}, held by another process", first
    finally:
        release_journal(holder, BOUND)
    out, err = p.communicate(timeout=BOUND)
    assert p.returncode == 0, first + err
    with sqlite3.connect(jpath) as c:
        assert c.execute("SELECT status FROM runs").fetchall() == [("done",)]
