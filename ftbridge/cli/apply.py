"""``ftbridge apply PLAN``: carry a plan out, journaled and resumable.

Without ``--yes`` nothing changes: the plan is checked against the live estate, what would
run is printed, and the exit code is 2 (so a script that forgot ``--yes`` does not believe it
succeeded). With ``--yes``: progress bars on a terminal (stderr), JSON event lines on stdout
with ``-o json``, a summary at the end. Exit 0 when every action is done, 1 when some failed
(each failure is listed), 8 for a plan that is corrupt, for another estate or stale, 9 when
another apply holds the estate's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, YesOpt, again, run, say
from ftbridge.cli.progress import JsonLines, failure_json, running, show_failures, show_preview
from ftbridge.cli.render import plural
from ftbridge.cli.runs import retain

if TYPE_CHECKING:
    from ftbridge.apply import ApplyResult


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
        lines = JsonLines() if output is Output.json else None
        result = running(
            "apply",
            output,
            yes,
            again(ctx, "apply", str(plan), "--yes", "--resume"),
            lambda sink: apply_plan(cfg, plan, yes=yes, resume=resume, revalidate_plan=revalidate, on_event=sink),
        )
        if result.dry_run:
            todo = show_preview(f"plan {result.plan_id}: what --yes would do", result.preview, lines)
            raise ConfirmationRequired(
                f"dry run: {todo} of {plural(len(result.preview), 'action')} would run; nothing was changed",
                hint="add --yes to apply them",
            )
        if result.already_applied:
            if lines:
                lines.write({"event": "already_applied", "plan_id": result.plan_id, "run": result.run_id})
            say(f"plan {result.plan_id} was applied completely (run {result.run_id}); nothing to do")
            return
        _show_summary(result, lines)
        retain(ctx)
        result.raise_for_failures()


def _show_summary(result: ApplyResult, lines: JsonLines | None) -> None:
    failures = result.failures()
    if lines is not None:
        lines.write({"event": "summary", **result.summary(), "failures": failure_json(failures)})
        return
    show_failures(failures)
    done = ", ".join(f"{v} {k}" for k, v in result.counts().items()) or "nothing to do"
    verb = "resumed run" if result.resumed else "run"
    say(f"{verb} {result.run_id} of plan {result.plan_id}: {done} in {result.elapsed:.1f}s (journal {result.journal})")
