"""``ftbridge apply PLAN``: carry a plan out, journaled and resumable.

Without ``--yes`` nothing changes: the plan is checked against the live estate, what would
run is printed, and the exit code is 2 (so a script that forgot ``--yes`` does not believe it
succeeded). With ``--yes``: progress bars on a terminal (stderr), JSON event lines on stdout
with ``-o json``, a summary at the end. Exit 0 when every action is done, 1 when some failed
(each failure is listed), 8 for a plan that is corrupt, for another estate or stale, 9 when
another apply holds the estate's lock.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.common import Output, OutputOpt, YesOpt, err, gib, run, say, table

if TYPE_CHECKING:
    from ftbridge.apply import ApplyEvent, ApplyResult


class _JsonLines:
    """One JSON object per event on stdout, flushed, for programs following along."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: ApplyEvent) -> None:
        if event.event == "action_progress":
            return  # too chatty for a log; the start and end of each action are there
        self.write(event.to_dict())

    def write(self, data: dict[str, Any]) -> None:
        from ftbridge.secrets import redact

        with self._lock:
            sys.stdout.write(redact(json.dumps(data, default=str)) + "\n")
            sys.stdout.flush()


class _Bars:
    """Rich progress: one bar for the run, one per action while it runs (stderr, terminal only)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}", justify="right"),
            TimeElapsedColumn(),
            console=err(),
            transient=False,
        )
        self._lock = threading.Lock()
        self.overall: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            p = self.progress
            if event.event == "run_started":
                self.overall = p.add_task(
                    "apply", total=event.data.get("actions", 0), completed=event.data.get("done", 0)
                )
            elif event.event == "action_started" and event.action and event.action not in self.tasks:
                self.tasks[event.action] = p.add_task(f"  {event.action} {event.kind} {event.vm}", total=100)
            elif event.event == "action_progress" and event.action in self.tasks and event.progress is not None:
                p.update(self.tasks[event.action], completed=100 * event.progress)
            elif event.event in ("action_succeeded", "action_skipped", "action_failed", "action_blocked"):
                task = self.tasks.pop(event.action or "", None)
                if task is not None:
                    p.remove_task(task)
                if self.overall is not None:
                    p.advance(self.overall)
                if event.event in ("action_failed", "action_blocked"):
                    p.console.print(
                        f"[red]{event.action} {event.kind} {event.vm}: {event.message}[/red]",
                        markup=True,
                        highlight=False,
                    )
            elif event.event == "action_retry":
                p.console.print(f"[yellow]{event.action} {event.vm}: {event.message}[/yellow]", highlight=False)


class _Quiet:
    """Not a terminal and not JSON: nothing while it runs; the summary lists every failure."""

    def __call__(self, event: ApplyEvent) -> None:
        return None


def register(app: typer.Typer) -> None:
    @app.command()
    def apply(
        ctx: typer.Context,
        plan: Annotated[Path, typer.Argument(help="a plan file written by 'ftbridge plan'", show_default=False)],
        yes: YesOpt = False,
        resume: Annotated[
            bool, typer.Option("--resume", help="continue this plan's unfinished run (after a crash or failures)")
        ] = False,
        revalidate: Annotated[
            bool,
            typer.Option(
                "--revalidate", help="the estate changed since planning: re-check every action instead of refusing"
            ),
        ] = False,
        output: OutputOpt = Output.table,
    ) -> None:
        """Carry out a plan (needs --yes). Exit 0 done, 1 some failed, 2 no --yes, 8 bad/stale plan, 9 locked."""
        from ftbridge.apply import ConfirmationRequired, apply_plan

        cfg = run(ctx).config()
        json_out = output is Output.json
        lines = _JsonLines() if json_out else None
        use_bars = not json_out and yes and err().is_terminal
        if use_bars:
            with _Bars() as bars:
                result = apply_plan(cfg, plan, yes=yes, resume=resume, revalidate_plan=revalidate, on_event=bars)
        else:
            sink: Any = lines if lines is not None else _Quiet()
            result = apply_plan(cfg, plan, yes=yes, resume=resume, revalidate_plan=revalidate, on_event=sink)
        if result.dry_run:
            _show_preview(result, lines)
            todo = sum(1 for _, s in result.preview if s != "done")
            raise ConfirmationRequired(
                f"dry run: {todo} of {len(result.preview)} actions would run; nothing was changed",
                hint="add --yes to apply them",
            )
        if result.already_applied:
            if lines:
                lines.write({"event": "already_applied", "plan_id": result.plan_id, "run": result.run_id})
            say(f"plan {result.plan_id} was applied completely (run {result.run_id}); nothing to do")
            return
        _show_summary(result, lines)
        result.raise_for_failures()


def _show_preview(result: ApplyResult, lines: _JsonLines | None) -> None:
    if lines is not None:
        for a, status in result.preview:
            lines.write(
                {
                    "event": "preview",
                    "action": a.id,
                    "kind": a.kind,
                    "vm": a.vm_name,
                    "status": status,
                    "reason": a.reason,
                }
            )
        return
    table(
        f"plan {result.plan_id}: what --yes would do",
        ["action", "vm", "status", "bytes", "why"],
        [[a.id + " " + a.kind, a.vm_name, s, gib(a.bytes) if a.bytes else "-", a.reason] for a, s in result.preview],
    )


def _show_summary(result: ApplyResult, lines: _JsonLines | None) -> None:
    counts = result.counts()
    failures = result.failures()
    if lines is not None:
        lines.write(
            {
                "event": "summary",
                **result.summary(),
                "failures": [
                    {"action": a.id, "kind": a.kind, "vm": a.vm_name, "state": o.state, "message": o.message}
                    for a, o in failures
                ],
            }
        )
    else:
        if failures:
            table(
                f"{len(failures)} actions not done",
                ["action", "vm", "state", "why"],
                [[f"{a.id} {a.kind}", a.vm_name, o.state, o.message] for a, o in failures],
            )
        done = ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing to do"
        verb = "resumed run" if result.resumed else "run"
        say(
            f"{verb} {result.run_id} of plan {result.plan_id}: {done} in {result.elapsed:.1f}s "
            f"(journal {result.journal})"
        )
