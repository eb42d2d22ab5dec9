"""Ctrl-C and SIGTERM during a real ``ftbridge apply`` (a subprocess on the demo estate).

The sim's ``hold`` fault keeps every operation running until released, so the signal always
lands while actions are in flight; the tests synchronise on the apply's own JSON events (an
``op_started`` line: that action's handle is in the journal) or on the journal, never on time.
Each interrupted run must say what is left and how to carry on, exit 130 (SIGINT) or 143
(SIGTERM) without a traceback, leave the journal consistent (in-flight actions ``running``
with their handles, the others ``pending``), and ``apply --resume`` must then reach the same
end state as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
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

from ftbridge.config import load_config  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402

BOUND = 180.0  # seconds: how long a broken run may hang before the test gives up (not a measure)


def hold(cfg: Path, on: bool) -> None:
    c = load_config(cfg)
    for name, ep in c.endpoints.items():
        SimDriver(ep, endpoint=name).ex_inject(hold=on)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}


def lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The stream's lines as they come (None at its end), read by a thread."""
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def until(q: queue.Queue[str | None], wanted: str) -> list[str]:
    """Lines up to and including the first that contains ``wanted``."""
    seen: list[str] = []
    while True:
        line = q.get(timeout=BOUND)
        assert line is not None, f"the stream ended before {wanted!r}: {seen}"
        seen.append(line)
        if wanted in line:
            return seen


def rest(q: queue.Queue[str | None]) -> list[str]:
    out = []
    while (line := q.get(timeout=BOUND)) is not None:
        out.append(line)
    return out


@pytest.fixture
def estates(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(config of the estate that gets interrupted, its plan, config of an untouched twin)."""
    # one action at a time per endpoint: once each endpoint has one in flight, nothing else can
    # start while operations are held, so anything that starts after the signal is the bug
    cfg = K.copy_demo(tmp_path / "live", op_seconds=0.01, extra="concurrency_per_endpoint = 1")
    ref = K.copy_demo(tmp_path / "ref", op_seconds=0.01, extra="concurrency_per_endpoint = 1")
    plan = tmp_path / "plan.json"
    r = K.ftb("-c", str(cfg), "plan", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    hold(cfg, True)
    try:
        yield cfg, plan, ref
    finally:
        hold(cfg, False)


def journal(cfg: Path) -> tuple[list[str], dict[str, tuple[str, str | None]], list[tuple[str, str]]]:
    """(run statuses, action id -> (state, operation), (action id, event) of every event)."""
    with sqlite3.connect(cfg.parent / "state" / "journal.sqlite") as c:
        runs = [r[0] for r in c.execute("SELECT status FROM runs")]
        actions = {r[0]: (r[1], r[2]) for r in c.execute("SELECT action_id, state, operation FROM actions")}
        events = [(r[0], r[1]) for r in c.execute("SELECT action_id, event FROM events ORDER BY seq")]
    return runs, actions, events


def journaled_op(cfg: Path) -> bool:
    """Whether some action's operation handle is in the journal yet (False while it is made)."""
    if not (cfg.parent / "state" / "journal.sqlite").exists():
        return False
    try:
        return any(e == "op_started" for _, e in journal(cfg)[2])
    except sqlite3.OperationalError:
        return False


def resume_matches_uninterrupted(cfg: Path, plan: Path, ref: Path) -> None:
    hold(cfg, False)
    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes", "--resume")
    assert r.returncode == 0, r.stderr
    r = K.ftb("-c", str(ref), "apply", str(plan), "--yes")
    assert r.returncode == 0, r.stderr
    end = K.normalized_state(cfg.parent)
    assert all(s["running"] == [] and s["violations"] == [] for s in end.values()), end
    assert end == K.normalized_state(ref.parent), "resumed run ends elsewhere than an uninterrupted one"
    runs, actions, _ = journal(cfg)
    assert runs == ["done"] and {s for s, _ in actions.values()} <= {"succeeded", "skipped"}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_starting_and_resume_completes(
    estates: tuple[Path, Path, Path], sig: signal.Signals, code: int
) -> None:
    cfg, plan, ref = estates
    p = ftb_running("-c", str(cfg), "apply", str(plan), "--yes", "-o", "json")
    try:
        out = lines(p.stdout)  # type: ignore[arg-type]
        before: list[str] = []
        while len({json.loads(x)["endpoint"] for x in before if '"event": "op_started"' in x}) < 3:
            before += until(out, '"event": "op_started"')  # every endpoint's slot is taken, handle journaled
        p.send_signal(sig)
        after = rest(out)
        err = p.stderr.read()  # type: ignore[union-attr]
        assert p.wait(timeout=BOUND) == code, err
    finally:
        if p.poll() is None:
            p.kill()
    events = [json.loads(x) for x in before + after]
    last = events[-1]
    assert last["event"] == "interrupted", last
    assert last["signal"] == sig.name and last["resume"].endswith("--yes --resume")
    assert last["in_flight"] and all(f["operation"] for f in last["in_flight"]), last
    assert last["not_started"], "with every operation held, some actions cannot have started"
    started_before = {e["action"] for e in events[: len(before)] if e["event"] == "action_started"}
    assert {f["action"] for f in last["in_flight"]} == started_before
    late = [e for e in events[len(before) :] if e["event"] in ("action_started", "op_started")]
    assert late == [], f"actions started after the signal: {late}"
    assert "Traceback" not in err
    assert "apply: stopping: no new action starts" in err
    assert f"apply interrupted: run {last['run']}: " in err and "not started" in err
    assert f"carry on with: ftbridge -c {cfg} apply {plan} --yes --resume" in err

    runs, actions, jevents = journal(cfg)
    assert runs == ["interrupted"]
    flying = {f["action"] for f in last["in_flight"]}
    assert {a for a, (s, _) in actions.items() if s == "running"} == flying
    assert all(actions[a][1] for a in flying), "an action in flight keeps its operation's handle"
    assert {a for a, (s, _) in actions.items() if s == "pending"} == set(last["not_started"])
    started = {a for a, e in jevents if e == "action_started"}
    assert not started & set(last["not_started"]), "an action the run reports as not started was started"
    # the history says so too
    r = K.ftb("-c", str(cfg), "runs", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert "interrupted" in r.stdout

    resume_matches_uninterrupted(cfg, plan, ref)


def test_second_ctrl_c_leaves_at_once(estates: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """After the first Ctrl-C the run has to write the journal once more (marking itself
    interrupted); another process holds the journal, so it waits. The second Ctrl-C leaves at
    once: no traceback, what is left and the resume command said, the journal consistent."""
    cfg, plan, ref = estates
    with_wait(cfg, "10m")  # the first Ctrl-C's run waits on the journal until the second
    p = ftb_running("-c", str(cfg), "apply", str(plan), "--yes", "-o", "json")
    holder = None
    try:
        out, err = lines(p.stdout), lines(p.stderr)  # type: ignore[arg-type]
        until(out, '"event": "op_started"')
        holder = hold_journal(cfg.parent / "state" / "journal.sqlite")
        p.send_signal(signal.SIGINT)
        until(err, "held by another process")  # the first Ctrl-C's run waits on the journal
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=BOUND) == 130
        tail = rest(out)
        said = "".join(rest(err))
    finally:
        if p.poll() is None:
            p.kill()
        if holder is not None:
            release_journal(holder, BOUND)
    last = json.loads(tail[-1])
    assert last["event"] == "interrupted" and last["forced"] is True, tail
    assert "Traceback" not in said
    assert "apply interrupted: run 1: " in said and "carry on with: " in said and "--resume" in said
    runs, actions, _ = journal(cfg)
    assert runs == ["running"], "the run could not be marked; it reads as after a crash"
    assert {s for s, _ in actions.values()} <= {"pending", "running"}
    with sqlite3.connect(cfg.parent / "state" / "journal.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    resume_matches_uninterrupted(cfg, plan, ref)


def with_wait(cfg: Path, wait: str) -> None:
    """``[state] busy_timeout`` in the config."""
    text = cfg.read_text()
    assert '[state]\ndir = "state"\n' in text
    cfg.write_text(text.replace('[state]\ndir = "state"\n', f'[state]\ndir = "state"\nbusy_timeout = "{wait}"\n'))


def test_sigterm_gives_the_terminal_its_cursor_back(estates: tuple[Path, Path, Path]) -> None:
    """On a terminal the apply shows live bars, which hide the cursor; SIGTERM must end with the
    cursor shown again (stderr is a real pseudo-terminal here)."""
    import pty
    import time

    cfg, plan, _ = estates
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "ftbridge", "-c", str(cfg), "apply", str(plan), "--yes"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**env(), "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(slave)
    seen = bytearray()

    def pump() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + BOUND  # a bound for a broken run, not a measure of speed
        while not journaled_op(cfg):
            assert p.poll() is None and time.monotonic() < deadline, bytes(seen)
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=BOUND) == 143, bytes(seen)
    finally:
        if p.poll() is None:
            p.kill()
        reader.join(timeout=BOUND)
        os.close(master)
    text = bytes(seen)
    assert b"\x1b[?25l" in text, "the live bars did not hide the cursor: this test shows nothing"
    assert text.rfind(b"\x1b[?25h") > text.rfind(b"\x1b[?25l"), "the cursor is left hidden"
    assert b"Traceback" not in text and b"carry on with: " in text
    assert journal(cfg)[0] == ["interrupted"]


def test_ctrl_c_during_failover_then_resume(tmp_path: Path) -> None:
    """The same for ``failover run`` (it reaches the apply through the failover service)."""
    cfgs, plans = {}, {}
    for name in ("ref", "live"):
        cfgs[name] = K.copy_demo(tmp_path / name, op_seconds=0.01)
        plans[name] = tmp_path / name / "fo.json"
        r = K.ftb(
            "-c", str(cfgs[name]), "failover", "plan", "--domain", "site=ams1", "--fence", "--out", str(plans[name])
        )
        assert r.returncode in (0, 1) and plans[name].exists(), r.stderr  # 1: some VMs cannot be brought up
    cfg, plan = cfgs["live"], plans["live"]
    hold(cfg, True)
    p = ftb_running("-c", str(cfg), "failover", "run", str(plan), "--yes", "-o", "json")
    try:
        out = lines(p.stdout)  # type: ignore[arg-type]
        until(out, '"event": "op_started"')
        p.send_signal(signal.SIGINT)
        last = json.loads(rest(out)[-1])
        err = p.stderr.read()  # type: ignore[union-attr]
        assert p.wait(timeout=BOUND) == 130, err
    finally:
        if p.poll() is None:
            p.kill()
        hold(cfg, False)
    assert last["event"] == "interrupted" and last["in_flight"], last
    assert "Traceback" not in err and "failover interrupted: run " in err
    assert f"failover run {plan} --yes --resume" in last["resume"]
    assert journal(cfg)[0] == ["interrupted"]

    r = K.ftb("-c", str(cfg), "failover", "run", str(plan), "--yes", "--resume")
    assert r.returncode == 0, r.stderr
    r = K.ftb("-c", str(cfgs["ref"]), "failover", "run", str(plans["ref"]), "--yes")
    assert r.returncode == 0, r.stderr
    assert K.normalized_state(cfg.parent) == K.normalized_state(cfgs["ref"].parent)
    for kind in ("promote", "restart"):  # each VM brought up once, not once per run
        done = [o["vm"] for o in K.sim_ops(cfg.parent) if o["kind"] == kind and o["state"] == "succeeded"]
        assert sorted(done) == sorted(set(done)), (kind, done)
