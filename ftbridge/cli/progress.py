"""What a running apply shows: bars on a terminal, JSON lines with ``-o json``, and Ctrl-C.

Every command that runs through the apply (``apply``, ``failover run``, ``failover test``,
``failback``, ``reprotect``) runs its service inside :func:`running`, which

* shows something at once: a spinner while the plan is checked against the live estate,
  then one bar for the run, named after the command, and one per action while it runs, with
  bytes, throughput and time left for actions that copy data (from the fraction the
  platform reports and the bytes the plan says the action copies);
* writes one JSON object per event with ``-o json``, and nothing while it runs otherwise;
* on Ctrl-C or SIGTERM stops starting actions and stops waiting (operations in flight go on on
  the platform, their handles journaled), marks the run interrupted, restores the terminal,
  says what was done, what is in flight and what was not started, and the command that carries
  on (with ``-o json`` as a last ``{"event": "interrupted", ...}`` line); exit 130 (SIGINT) or
  143 (SIGTERM). A second signal leaves at once, still without a traceback: the journal holds
  every state before any wait, so ``--resume`` finds the run as after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ftbridge.cli.common import Output, err, say
from ftbridge.cli.render import plural
from ftbridge.signalsafe import Installed, on_signals

if TYPE_CHECKING:
    from ftbridge.apply import ApplyEvent, Outcome
    from ftbridge.apply.interrupt import RunInterrupted
    from ftbridge.planning.planfile import PlanAction

T = TypeVar("T")

INTERRUPTED = 130  # what shells report for a process stopped by SIGINT
_FINAL = ("action_succeeded", "action_skipped", "action_failed", "action_blocked")


class Tally:
    """Counts what a run did, from its events, for the Ctrl-C message."""

    def __init__(self) -> None:
        self.run: int | None = None
        self.total = 0
        self.done = 0
        self.failed = 0
        self.running: dict[str, str] = {}  # action id -> "a3 move_disk web01"
        self._lock = threading.Lock()

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            if event.event == "run_started":
                self.run = event.data.get("run")
                self.total = int(event.data.get("actions", 0))
                self.done = int(event.data.get("done", 0))
            elif event.event == "action_started" and event.action:
                self.running[event.action] = f"{event.action} {event.kind} {event.vm}"
            elif event.event in _FINAL and event.action:
                self.running.pop(event.action, None)
                if event.event in ("action_succeeded", "action_skipped"):
                    self.done += 1
                else:
                    self.failed += 1

    def left(self) -> str:
        with self._lock:
            if self.run is None:
                return "nothing had started (the plan was still being checked)"
            waiting = max(0, self.total - self.done - self.failed - len(self.running))
            parts = [f"{self.done} of {plural(self.total, 'action')} done"]
            if self.running:
                parts.append(
                    f"{len(self.running)} running ({', '.join(sorted(self.running.values())[:3])}"
                    + (", ..." if len(self.running) > 3 else "")
                    + ")"
                )
            if self.failed:
                parts.append(f"{self.failed} failed")
            parts.append(f"{waiting} not started")
            return f"run {self.run}: " + ", ".join(parts)


class JsonLines:
    """One JSON object per event on stdout, flushed, for programs following along."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = VmIds()

    def __call__(self, event: ApplyEvent) -> None:
        if event.event == "action_progress":
            return  # too chatty for a log; the start and end of each action are there
        self.write(self._ids.line(event.to_dict()))

    def write(self, data: dict[str, Any]) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(data, default=str) + "\n")
            sys.stdout.flush()


def event_dict(event: ApplyEvent, vms: dict[str, str] | None = None) -> dict[str, Any]:
    """An event in the JSON vocabulary: ``vm`` the id, ``vm_name`` the name, ``at`` RFC 3339.

    The apply's events name a VM by its name; ``vms`` (action id -> VM id, from the
    ``run_started`` event) gives the id back."""
    return VmIds(vms).line(event.to_dict())


class VmIds:
    """Turns the apply's event dicts into the JSON vocabulary, remembering from each
    ``run_started`` which VM id each action acts on (the events carry only the VM's name)."""

    def __init__(self, vms: dict[str, str] | None = None) -> None:
        self.vms = dict(vms or {})

    def line(self, event: dict[str, Any]) -> dict[str, Any]:
        from ftbridge.timefmt import rfc3339

        if event.get("event") == "run_started" and isinstance(event.get("action_vms"), dict):
            self.vms = {str(k): str(v) for k, v in event["action_vms"].items()}
        data = {k: v for k, v in event.items() if k not in ("action_vms", "action_bytes", "at")}
        if "action" in data and isinstance(data.get("vm"), str) and "vm_name" not in data:
            name = data.pop("vm")
            vm_id = self.vms.get(str(data["action"]))
            data = {**({"vm": vm_id} if vm_id else {}), "vm_name": name, **data}
        return {"at": rfc3339(round(time.time(), 3)), **data}


class Quiet:
    """Not a terminal and not JSON: nothing while it runs; the summary lists every failure."""

    def __call__(self, event: ApplyEvent) -> None:
        return None


class Bars:
    """Rich progress on stderr: a spinner while the plan is checked, then one bar named after
    the command for the run and one per running action (bytes, throughput, time left when the
    action copies data and the platform reports progress)."""

    def __init__(self, command: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
        )

        self.command = command
        self.progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(),
            console=err(),
            transient=False,
        )
        self._lock = threading.Lock()
        self.overall: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}
        self.sizes: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.checking: TaskID | None = None
        self.total = 0
        self.completed = 0

    def __enter__(self) -> Bars:
        self.progress.start()
        self.checking = self.progress.add_task(
            f"{self.command}: checking the plan against the live estate", total=None, figures=""
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: ApplyEvent) -> None:
        p = self.progress
        if event.event == "run_started":
            if self.checking is not None:
                p.remove_task(self.checking)
                self.checking = None
            total = int(event.data.get("actions", 0))
            done = int(event.data.get("done", 0))
            self.sizes = {str(k): int(v) for k, v in (event.data.get("action_bytes") or {}).items()}
            self.total, self.completed = total, done
            self.overall = p.add_task(self.command, total=total, completed=done, figures=f"{done}/{total}")
        elif event.event == "action_started" and event.action and event.action not in self.tasks:
            size = self.sizes.get(event.action, 0)
            self.started[event.action] = time.monotonic()
            self.tasks[event.action] = p.add_task(
                f"  {event.action} {event.kind} {event.vm}", total=100, figures=_figures(size, 0.0, 0.0)
            )
        elif event.event == "action_progress" and event.action in self.tasks and event.progress is not None:
            aid = event.action or ""
            size = self.sizes.get(aid, 0)
            elapsed = time.monotonic() - self.started.get(aid, time.monotonic())
            p.update(self.tasks[aid], completed=100 * event.progress, figures=_figures(size, event.progress, elapsed))
        elif event.event in _FINAL:
            task = self.tasks.pop(event.action or "", None)
            if task is not None:
                p.remove_task(task)
            if self.overall is not None:
                self.completed += 1
                p.update(self.overall, completed=self.completed, figures=f"{self.completed}/{self.total}")
            if event.event in ("action_failed", "action_blocked"):
                p.console.print(
                    f"[red]{event.action} {event.kind} {event.vm}: {_escape(event.message)}[/red]",
                    markup=True,
                    highlight=False,
                )
        elif event.event == "action_retry":
            p.console.print(f"[yellow]{event.action} {event.vm}: {_escape(event.message)}[/yellow]", highlight=False)
        elif event.event == "note" and event.message:
            p.console.print(_escape(event.message), highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _figures(size: int, fraction: float, elapsed: float) -> str:
    """``12.0/40.0 GiB 310 MiB/s 1m30s left`` for a copy under way; ``%`` for the rest."""
    from ftbridge.cli.render import human_bytes, seconds

    if size <= 0:
        return f"{100 * fraction:3.0f}%"
    done = size * fraction
    text = f"{human_bytes(done)}/{human_bytes(size)}"
    if fraction > 0 and elapsed > 0:
        rate = done / elapsed
        left = (size - done) / rate if rate > 0 else None
        text += f" {human_bytes(rate)}/s"
        if left is not None:
            text += f" {seconds(left)} left"
    return text


def running(command: str, output: Output, yes: bool, resume_hint: str, body: Callable[[Any], T]) -> T:
    """Run ``body(sink)`` with the display that suits where the output goes (see the module
    docstring); Ctrl-C and SIGTERM stop it as :class:`_Stopper` says."""
    from ftbridge.apply.interrupt import RunInterrupted, stopping
    from ftbridge.cli.render import busy
    from ftbridge.errors import StateStorageError

    tally = Tally()
    if output is Output.json:
        display: Any = JsonLines()
    elif err().is_terminal and yes:
        display = Bars(command)
    else:
        display = Quiet()

    def sink(event: ApplyEvent) -> None:
        tally(event)
        display(event)

    stopper = _Stopper(command, tally, resume_hint, display)
    try:
        with stopper, stopping(stopper.stop):
            if isinstance(display, Bars):
                with display:
                    return body(sink)
            if not yes and output is not Output.json:
                with busy(f"{command}: checking the plan against the live estate"):
                    return body(sink)
            return body(sink)
    except RunInterrupted as exc:
        stopper.report(exc)
        raise typer.Exit(stopper.exit_code) from None
    except StateStorageError as exc:
        if tally.run is not None:  # what was started is journaled: once the disk is right, carry on
            exc.carry_on(resume_hint)
        raise


class _Stopper:
    """Ctrl-C (SIGINT) and SIGTERM during a run.

    The first one sets :attr:`stop`: the run starts nothing new, stops waiting on the operations
    in flight (their handles are in the journal), marks itself interrupted, and the command says
    what is left and how to carry on, then exits 130 (SIGINT) or 143 (SIGTERM). A second one
    leaves at once: the terminal is restored, the same is said from what the events showed, and
    the process ends without unwinding (every state is committed to the journal before any wait,
    so ``--resume`` finds the run as after a crash)."""

    def __init__(self, command: str, tally: Tally, resume_hint: str, display: Any) -> None:
        self.command = command
        self.tally = tally
        self.resume_hint = resume_hint
        self.display = display
        self.stop = threading.Event()
        self.signal: int | None = None
        self._installed: Installed | None = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            self._installed = on_signals((signal.SIGINT, signal.SIGTERM), self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed is not None:
            self._installed.restore()

    def _on_signal(self, signum: int) -> None:
        """Runs on the signal relay's thread (:mod:`ftbridge.signalsafe`), not in a handler: it
        answers even while the main thread sleeps, and interrupts nothing the main thread holds."""
        if self.signal is None:
            self.signal = signum
            # said before the run is told: once told, the main thread may finish and leave while
            # this (daemon) thread still held stderr's lock, which ends the interpreter with a
            # fatal error instead of the exit code
            say(
                f"{self.command}: stopping: no new action starts, actions in flight leave their operations "
                "to the journal (Ctrl-C again leaves at once)",
                "yellow",
            )
            self.stop.set()
            return
        # the second signal: leave now, without unwinding the worker threads
        _show_cursor()
        if isinstance(self.display, JsonLines):
            self.display.write(
                {
                    "event": "interrupted",
                    "signal": signal.Signals(self.signal).name,
                    "forced": True,
                    "summary": self.tally.left(),
                    "resume": self.resume_hint,
                }
            )
        say(f"{self.command} interrupted: {self.tally.left()}", "yellow")
        if self.tally.run is not None:
            say(f"carry on with: {self.resume_hint}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)

    def report(self, exc: RunInterrupted) -> None:
        """What is left of a run that stopped (the journal's account, see ``RunInterrupted``)."""
        if isinstance(self.display, JsonLines):
            self.display.write(
                {
                    "event": "interrupted",
                    "signal": signal.Signals(self.signal or signal.SIGINT).name,
                    **exc.to_dict(),
                    "resume": self.resume_hint if exc.run is not None else None,
                }
            )
        say(f"{self.command} interrupted: {exc.left()}", "yellow")
        if exc.run is not None:
            say(f"carry on with: {self.resume_hint}")


def _show_cursor() -> None:
    """Give the terminal its cursor back (a live display hides it) before leaving without unwinding."""
    console = err()
    if console.is_terminal:
        try:
            console.file.write("\x1b[?25h\n")
            console.file.flush()
        except OSError:
            pass


# -- what every run-through-the-apply command prints before and after ---------------------------
def action_json(a: PlanAction, **extra: Any) -> dict[str, Any]:
    """An action in the JSON vocabulary (``action`` its id as the plan writes it, ``vm`` the VM's
    id, ``vm_name`` its name)."""
    return {"action": a.id, "kind": a.kind, "endpoint": a.endpoint, "vm": a.vm, "vm_name": a.vm_name, **extra}


def show_preview(title: str, preview: list[tuple[PlanAction, str]], lines: JsonLines | None) -> int:
    """What ``--yes`` would do (a table, or preview JSON lines); returns how many would run."""
    from ftbridge.cli.render import STATE_STYLES, Col, gib, table, text_col

    if lines is not None:
        for a, status in preview:
            lines.write({"event": "preview", **action_json(a, status=status, reason=a.reason)})
    else:
        table(
            title,
            [
                "action",
                "kind",
                "vm",
                Col("status", styles=STATE_STYLES),
                Col("bytes", "num", drop=1),
                text_col("why", drop=2),
            ],
            [[a.id, a.kind, a.vm_name, s, gib(a.bytes) if a.bytes else "-", a.reason] for a, s in preview],
        )
    return sum(1 for _, s in preview if s != "done")


def failure_json(failures: list[tuple[PlanAction, Outcome]]) -> list[dict[str, Any]]:
    return [action_json(a, state=o.state, message=o.message) for a, o in failures]


def show_failures(failures: list[tuple[PlanAction, Outcome]]) -> None:
    from ftbridge.cli.render import STATE_STYLES, Col, table, text_col

    if failures:
        table(
            f"{plural(len(failures), 'action')} not done",
            ["action", "kind", "vm", Col("state", styles=STATE_STYLES), text_col("why")],
            [[a.id, a.kind, a.vm_name, o.state, o.message] for a, o in failures],
        )


__all__ = [
    "INTERRUPTED",
    "Bars",
    "JsonLines",
    "Quiet",
    "Tally",
    "VmIds",
    "action_json",
    "event_dict",
    "failure_json",
    "running",
    "show_failures",
    "show_preview",
]
