"""``failover test --cleanup``: remove the test instances ``failover test --keep`` left up.

SRM's habit: a test failover may stay up for people to look at, and a separate step removes
it. The kept instances are found in the run history (each test action's journaled
``test_id`` not yet removed by a later cleanup), turned into ``cleanup_test`` actions naming
that id, and run through the apply like every other change: journaled, locked, resumable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ftbridge.apply.events import EventSink, ignore
from ftbridge.apply.history import History, TestEvidence
from ftbridge.apply.service import apply_plan
from ftbridge.config import Config
from ftbridge.failover.run import TEST_DIR, FailoverResult, _action, document, test_outcomes
from ftbridge.planning.planfile import write_plan


def cleanup_document(kept: list[TestEvidence], config: Config) -> dict[str, Any]:
    """One cleanup_test action per kept test instance (the endpoints must still be configured)."""
    from ftbridge import __version__

    actions: list[dict[str, Any]] = []
    for t in kept:
        a = _action(
            len(actions) + 1,
            "cleanup_test",
            t.endpoint,
            t.vm,
            t.vm_name,
            f"remove the test instance {t.test_id} of {t.vm_name} kept up by 'failover test --keep'",
            test_id=t.test_id,
        )
        actions.append(a)
    return document(
        config,
        actions,
        fingerprint="",
        estate="",
        created_at=time.time(),
        generator=f"ftbridge {__version__} failover test --cleanup {time.time_ns()}",
        made_by="failover-test",
    )


def run_cleanup(config: Config, *, on_event: EventSink = ignore) -> FailoverResult | None:
    """Remove every kept test instance; an interrupted or failed cleanup is carried on first.
    None when there is nothing to remove."""
    import json

    history = History(config.state_dir)
    unfinished = [r for r in history.runs(["test-cleanup"]) if r.result in ("interrupted", "failed")]
    path: Path | None = None
    if unfinished and unfinished[-1].plan_path and Path(unfinished[-1].plan_path).exists():
        path, resume = Path(unfinished[-1].plan_path), True
    else:
        kept = [t for t in history.kept_tests() if t.endpoint in config.endpoints and t.test_id]
        if not kept:
            return None
        doc = cleanup_document(kept, config)
        path, resume = Path(config.state_dir) / TEST_DIR / f"cleanup-{doc['plan_id']}.json", False
        write_plan(doc, path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    result = apply_plan(
        config, path, yes=True, resume=resume, live_checks=True, accept=("failover-test",), on_event=on_event
    )
    return test_outcomes(doc, result, [])


__all__ = ["cleanup_document", "run_cleanup"]
