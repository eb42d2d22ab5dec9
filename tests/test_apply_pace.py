"""How an apply keeps pace with the platform: it polls an operation when the operation's own
progress says it ends (not on a blind backoff), and actions journaling at once share one
durable transaction (group commit) without one bad write taking the others down; the writes
nobody waits for ride the next transaction; and a run's large heap stays out of the cyclic
collector's way without a nested block thawing it early."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply.events import ApplyEvent  # noqa: E402
from ftbridge.apply.journal import RUNNING, SUCCEEDED, Fence, Journal, SqliteJournalStore  # noqa: E402
from ftbridge.apply.steps import _time_left  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.failover.plan import FailoverPlan  # noqa: E402
from ftbridge.failover.run import run_failover  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402


# -- the pace of polling -------------------------------------------------------------------
def test_time_left_follows_the_rate_of_progress() -> None:
    # started at t=10 s; at t=10.2 s a quarter is done: three quarters are left, 0.6 s at that rate
    assert _time_left((10.0, 0.0), 10.2, 0.25, None) == pytest.approx(0.6)
    # found running at 40% (a resumed wait): the rate counts from there
    assert _time_left((10.0, 0.4), 11.0, 0.6, 0.5) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("origin", "now", "progress", "seen"),
    [
        ((10.0, 0.0), 10.01, 0.02, None),  # under 5% done: too little to extrapolate from
        ((10.0, 0.0), 12.0, 0.99, 0.99),  # no progress since the last poll: held, back off
        ((10.0, 0.3), 11.0, 0.3, None),  # found at 30% and still there
        ((10.0, 0.0), 10.0, 0.5, None),  # no time has passed
    ],
)
def test_time_left_says_nothing_without_a_rate(
    origin: tuple[float, float], now: float, progress: float, seen: float | None
) -> None:
    assert _time_left(origin, now, progress, seen) is None


def test_an_estimate_that_falls_short_still_waits_a_little() -> None:
    assert _time_left((10.0, 0.0), 11.0, 0.999999, 0.9) == 0.001


def test_an_operation_is_polled_when_its_progress_says_it_ends(tmp_path: Path) -> None:
    """A 0.4 s promote: polled at once, then after 10 (and 20) ms, then once its progress says
    it is done. Backing off alone (10, 20, 40 ... ms) polls it 7 times before it is seen done."""
    cfg_path = K.copy_demo(tmp_path, op_seconds=0.4)
    # the poll interval (the longest pause) follows the backoff: 1 s, longer than the operation
    cfg_path.write_text(cfg_path.read_text().replace('backoff = "0.01s"', 'backoff = "1s"'))
    cfg = load_config(cfg_path)
    SimDriver(cfg.endpoints["vc-ams"], endpoint="vc-ams").ex_inject(hosts_down=["host-11"])
    plan = tmp_path / "fo.json"
    r = K.ftb("-c", str(cfg_path), "failover", "plan", "--vm", "ams-sql01", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    events: list[ApplyEvent] = []
    result = run_failover(cfg, FailoverPlan.load(plan), yes=True, on_event=events.append).apply
    assert {o.state for o in result.outcomes.values()} == {SUCCEEDED}
    (promote,) = [a.id for a in result.actions if a.kind == "promote"]
    polls = [e for e in events if e.event == "action_progress" and e.action == promote]
    assert 2 <= len(polls) <= 5, [e.progress for e in polls]
    assert polls[-1].progress == 1.0


# -- group commit ----------------------------------------------------------------------------
def answering(answers: dict[str, object]) -> Callable[[str, Callable[[], object]], None]:
    """A thread target: ``call(name, fn)`` keeps what ``fn`` returned, or what it raised."""

    def call(name: str, fn: Callable[[], object]) -> None:
        try:
            answers[name] = fn()
        except BaseException as exc:
            answers[name] = exc

    return call


def counting(store: SqliteJournalStore) -> list[int]:
    """How many writes each transaction of ``store`` carries, from now on."""
    transactions: list[int] = []
    real = store._transaction

    def counted(bodies: list, token: int | None) -> list:  # type: ignore[type-arg]
        transactions.append(len(bodies))
        return real(bodies, token)

    store._transaction = counted  # type: ignore[method-assign]
    return transactions


def test_writes_that_arrive_together_commit_together_and_a_bad_one_fails_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    store = journal.store
    assert isinstance(store, SqliteJournalStore)
    run = journal.start_run("p1", "plan.json", "f", [(f"a{i}", "promote", "ep", f"vm{i}") for i in range(6)])
    transactions = counting(store)
    inside, go = threading.Event(), threading.Event()

    def slow(cur: sqlite3.Cursor) -> str:  # holds its transaction open until told to go
        inside.set()
        go.wait(60)
        return "slow"

    def bad(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    answers: dict[str, object] = {}
    call = answering(answers)

    first = threading.Thread(target=call, args=("slow", lambda: store._commit(slow)))
    first.start()
    assert inside.wait(60)
    others = [
        threading.Thread(
            target=call, args=(f"a{i}", lambda i=i: journal.record(run, f"a{i}", RUNNING, "action_started", attempts=1))
        )
        for i in range(5)
    ]
    others.append(threading.Thread(target=call, args=("bad", lambda: store._commit(bad))))
    for t in others:
        t.start()
    # every other write waits behind the open transaction
    while True:
        with store._queued:
            if len(store._queue) == len(others):
                break
        threading.Event().wait(0.001)
    go.set()
    for t in [first, *others]:
        t.join(60)
    assert answers["slow"] == "slow"
    assert isinstance(answers["bad"], sqlite3.OperationalError) and "no_such_table" in str(answers["bad"])
    assert all(answers[f"a{i}"] is None for i in range(5))
    # the six waiting writes went as one transaction, which the bad one spoiled; then each alone
    assert transactions[:2] == [1, 6] and sorted(transactions[2:]) == [1] * 6
    recs = journal.actions(run)
    assert {recs[f"a{i}"].state for i in range(5)} == {RUNNING} and recs["a5"].state == "pending"
    # the store's own answer for times equals what its events say
    times = journal.event_times(run, ("run_started", "action_started"))
    assert times == [
        (e["action_id"], e["at"], e["event"])
        for e in journal.events(run)
        if e["event"] in ("run_started", "action_started")
    ]
    assert sorted(aid or "" for aid, _, _ in times) == ["", "a0", "a1", "a2", "a3", "a4"]
    journal.close()


def test_a_commit_interrupted_half_way_leaves_no_write_reported_as_done(tmp_path: Path) -> None:
    """Two fencing tokens in one batch are two transactions; when the first is interrupted (a
    Ctrl-C in the thread that leads), the writes of the second were never tried: their callers
    get the interruption too, not a silent success."""
    journal = Journal(tmp_path / "journal.sqlite")
    store = journal.store
    assert isinstance(store, SqliteJournalStore)
    run = journal.start_run("p1", "plan.json", "f", [("a0", "promote", "ep", "vm0"), ("a1", "promote", "ep", "vm1")])
    inside, go = threading.Event(), threading.Event()

    def slow(cur: sqlite3.Cursor) -> None:  # holds the journal while the batch forms behind it
        inside.set()
        go.wait(60)

    def interrupted(cur: sqlite3.Cursor) -> None:
        raise KeyboardInterrupt

    answers: dict[str, object] = {}
    call = answering(answers)

    def queued(n: int) -> None:
        while True:
            with store._queued:
                if len(store._queue) == n:
                    return
            threading.Event().wait(0.001)

    first = threading.Thread(target=call, args=("first", lambda: store._commit(slow)))
    first.start()
    assert inside.wait(60)
    threads = [first]
    for name, fn in (
        ("lead", lambda: store._commit(interrupted)),  # first in the queue: it leads the next batch
        ("same", lambda: journal.record(run, "a0", RUNNING, "action_started")),
    ):
        threads.append(threading.Thread(target=call, args=(name, fn)))
        threads[-1].start()
        queued(len(threads) - 1)
    store.fence = Fence(7, lambda: None)  # the next write carries another token: another transaction
    threads.append(threading.Thread(target=call, args=("other", lambda: journal.record(run, "a1", RUNNING, "x"))))
    threads[-1].start()
    queued(3)
    go.set()
    for t in threads:
        t.join(60)
    assert answers["first"] is None
    assert all(isinstance(answers[k], KeyboardInterrupt) for k in ("lead", "same", "other")), answers
    store.fence = None
    assert {r.state for r in journal.actions(run).values()} == {"pending"}
    journal.close()


def _committed(path: Path, run: int) -> dict[str, str]:
    """Action states as another reader sees them on disk (the journal itself would flush first)."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT action_id, state FROM actions WHERE run_id = ?", (run,)).fetchall())
    finally:
        conn.close()


def test_a_write_nobody_waits_for_rides_the_next_transaction_and_its_failure_is_told_once(tmp_path: Path) -> None:
    """An outcome written without waiting returns at once, even while another transaction is
    open, and opens no transaction of its own: the next waiting write carries it, in order. A
    failed one is raised by the write after, once, and the journal goes on."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    store = journal.store
    assert isinstance(store, SqliteJournalStore)
    store.flush_after = 3600.0  # no timer in this test: only writes carry it
    run = journal.start_run("p1", "plan.json", "f", [(f"a{i}", "promote", "ep", f"vm{i}") for i in range(3)])
    transactions = counting(store)
    inside, go = threading.Event(), threading.Event()

    def slow(cur: sqlite3.Cursor) -> None:
        inside.set()
        go.wait(60)

    def bad(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    answers: dict[str, object] = {}
    first = threading.Thread(target=answering(answers), args=("slow", lambda: store._commit(slow)))
    first.start()
    assert inside.wait(60)
    journal.record(run, "a0", SUCCEEDED, "action_succeeded", result={"host": "h1"}, wait=False)  # returns at once
    store._write(bad, wait=False)
    go.set()
    first.join(60)
    assert answers["slow"] is None and transactions == [1]  # the open one ended; nothing else opened
    assert _committed(path, run)["a0"] == "pending"  # not on disk: it waits for the next write
    journal.record(run, "a1", RUNNING, "action_started", attempts=1)  # carries both (the bad one fails alone)
    assert transactions[1:] == [3, 1, 1, 1]
    assert _committed(path, run) == {"a0": SUCCEEDED, "a1": RUNNING, "a2": "pending"}
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        journal.record(run, "a2", RUNNING, "action_started", attempts=1)  # the next write tells the failure
    journal.record(run, "a2", RUNNING, "action_started", attempts=1)  # once: the journal goes on
    events = [e["event"] for e in journal.events(run) if e["action_id"]]
    assert events == ["action_succeeded", "action_started", "action_started"]  # in the order they were made
    journal.close()


def _one_outcome_queued(path: Path, flush_after: float) -> tuple[Journal, int]:
    """A journal whose one action's outcome was written without waiting (a timer ``flush_after``)."""
    journal = Journal(path)
    assert isinstance(journal.store, SqliteJournalStore)
    journal.store.flush_after = flush_after
    run = journal.start_run("p1", "plan.json", "f", [("a0", "promote", "ep", "vm0")])
    journal.record(run, "a0", SUCCEEDED, "action_succeeded", wait=False)
    return journal, run


def test_a_write_nobody_waits_for_is_committed_soon_when_no_other_comes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal, run = _one_outcome_queued(path, 0.01)
    for _ in range(6000):  # the timer's transaction, whenever it comes (bounded: a minute)
        if _committed(path, run)["a0"] == SUCCEEDED:
            break
        threading.Event().wait(0.01)
    assert _committed(path, run)["a0"] == SUCCEEDED
    journal.close()


def test_closing_the_journal_commits_what_nobody_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal, run = _one_outcome_queued(path, 3600.0)
    assert _committed(path, run)["a0"] == "pending"
    journal.close()
    assert _committed(path, run)["a0"] == SUCCEEDED


# -- the collector during a run ------------------------------------------------------------------
def test_frozen_blocks_nest_and_only_the_outermost_thaws() -> None:
    """A failover run freezes its heap and the apply inside it freezes again: the apply's end
    must not thaw what the failover still holds."""
    import gc

    from ftbridge.gcpause import gc_frozen, gc_paused

    assert gc.get_freeze_count() == 0
    with gc_frozen():
        outer = gc.get_freeze_count()
        with gc_frozen():
            pass
        assert gc.get_freeze_count() >= outer > 0  # still frozen after the inner block
        with gc_paused():  # a plan loaded during the run
            pass
        assert gc.get_freeze_count() >= outer  # and after a bulk load inside it
    assert gc.get_freeze_count() == 0
    with gc_paused():
        pass
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_read_commits_what_is_queued_and_leaves_a_failure_to_the_next_write(tmp_path: Path) -> None:
    """Reading the journal shows this process's own writes, those it did not wait for too; a
    failed one is not the reader's to swallow: the next write still tells it."""
    path = tmp_path / "journal.sqlite"
    journal, run = _one_outcome_queued(path, 3600.0)
    store = journal.store
    assert isinstance(store, SqliteJournalStore)

    def bad(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    store._write(bad, wait=False)
    assert journal.actions(run)["a0"].state == SUCCEEDED  # the read committed the queue first
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        journal.record(run, "a0", SUCCEEDED, "note")
    journal.close()
