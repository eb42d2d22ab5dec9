"""The etcd coordinator and journal store against a real three-member etcd cluster on loopback."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from etcdlab import EtcdCluster, needs_etcd

from ftbridge.apply.journal import Journal, StaleLeader
from ftbridge.config import CoordinationSettings, EtcdMember
from ftbridge.coordination.etcd import EtcdCoordinator
from ftbridge.coordination.etcd_client import delete_op

pytestmark = [needs_etcd, pytest.mark.lab]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    c = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    yield c
    c.stop()


def settings(cluster: EtcdCluster, **kw: Any) -> CoordinationSettings:
    members = tuple(EtcdMember(url=u, site=s) for u, s in zip(cluster.urls, cluster.SITES, strict=True))
    base: dict[str, Any] = {
        "backend": "etcd",
        "members": members,
        "prefix": f"/t-{uuid.uuid4().hex[:8]}/",
        "lease_ttl": 2.0,
        "settle": 0.0,
    }
    return CoordinationSettings(**{**base, **kw})


class Seen:
    """Coordinator notifications, as events a test can wait on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lost = threading.Event()

    def __call__(self, event: str, detail: dict[str, Any]) -> None:
        self.events.append((event, detail))
        if event == "leadership_lost":
            self.lost.set()


def test_exactly_one_leads_and_status_tells_who_and_the_epoch(cluster: EtcdCluster) -> None:
    cfg = settings(cluster)
    a, b = EtcdCoordinator(cfg, "ctl-a"), EtcdCoordinator(cfg, "ctl-b")
    try:
        got_a, got_b = a.campaign(), b.campaign()
        assert got_a is not None and got_b is None
        seen = b.leader()
        assert seen is not None and (seen.holder, seen.epoch) == ("ctl-a", got_a.epoch)
        assert a.campaign() == got_a  # still leads: the same epoch, no new election
        a.resign()  # an orderly stop hands over at once
        got_b = b.campaign()
        assert got_b is not None and got_b.epoch > got_a.epoch  # the token only grows
    finally:
        a.close()
        b.close()


def test_fencing_token_compare_refuses_a_deposed_leaders_write(cluster: EtcdCluster) -> None:
    """A leader whose key was replaced while its own lease and deadline still look fine: only
    the transaction's create-revision compare can refuse it. (Remove the compare in
    EtcdJournalStore._commit and this test fails: the stale write lands.)"""
    cfg = settings(cluster)
    a, b = EtcdCoordinator(cfg, "ctl-a"), EtcdCoordinator(cfg, "ctl-b")
    try:
        assert a.campaign() is not None
        store_a = a.store()
        store_a.fence = a.fence()
        journal_a = Journal(store=store_a)
        run = journal_a.start_run("p1", "plan.json", "fp", [("a1", "protect", "ep", "vm1")])
        journal_a.record(run, "a1", "running", "action_started", attempts=1)
        # the key disappears behind A's back (an operator, a bug); A's lease stays alive
        a.client.txn([], [delete_op(a.key)])
        assert b.campaign() is not None
        a.check()  # A's local view still says it leads: the deadline guard cannot help here
        with pytest.raises(StaleLeader, match="another controller leads"):
            journal_a.record(run, "a1", "succeeded", "action_succeeded")
        store_b = b.store()
        store_b.fence = b.fence()
        assert Journal(store=store_b).actions(run)["a1"].state == "running"  # A's write did not land
    finally:
        a.close()
        b.close()


def test_a_leader_that_cannot_renew_stops_acting_at_its_deadline(cluster: EtcdCluster) -> None:
    """etcd frozen: the leader cannot renew, and nobody can tell it it lost. At its deadline it
    must stop by itself. (Remove the deadline in EtcdCoordinator and this test fails.)"""
    seen = Seen()
    a = EtcdCoordinator(settings(cluster, request_timeout=0.5), "ctl-a", notify=seen)
    try:
        lead = a.campaign()
        assert lead is not None
        store = a.store()
        store.fence = a.fence()
        journal = Journal(store=store)
        cluster.signal_all(signal.SIGSTOP)
        try:
            assert seen.lost.wait(60), "the leader never noticed it could not renew"
            with pytest.raises(StaleLeader):  # refused here, before any request leaves
                journal.start_run("p", "plan.json", "fp", [])
        finally:
            cluster.signal_all(signal.SIGCONT)
        lost = [d for e, d in seen.events if e == "leadership_lost"]
        assert lost[0]["reason"] == "could not renew the lease before its deadline"
        assert not a.may_touch_failed_domains()
    finally:
        cluster.wait_healthy()
        a.close()


def test_new_leader_waits_out_the_old_lease_before_touching_a_failed_domain(cluster: EtcdCluster) -> None:
    cfg = settings(cluster, settle=30.0)
    a, b = EtcdCoordinator(cfg, "ctl-a"), EtcdCoordinator(cfg, "ctl-b")
    try:
        assert a.campaign() is not None and b.campaign() is None  # b saw a's lease TTL
        a.resign()
        assert b.campaign() is not None
        assert not b.may_touch_failed_domains()  # 2 s of lease + 30 s settle have not passed
    finally:
        a.close()
        b.close()


def test_journal_store_round_trip_and_history(cluster: EtcdCluster, tmp_path: Path) -> None:
    cfg = settings(cluster)
    a = EtcdCoordinator(cfg, "ctl-a")
    try:
        assert a.campaign() is not None
        store = a.store()
        store.fence = a.fence()
        j = Journal(store=store)
        run = j.start_run("plan-x", "/p.json", "fp", [("a1", "protect", "ep", "vm1"), ("a2", "unprotect", "ep", "vm1")])
        j.record(run, "a1", "running", "op_started", attempts=1, operation={"id": "op-1", "endpoint": "ep"})
        j.record(run, "a1", "succeeded", "action_succeeded", result={"secondary_id": "s9"})
        j.record(run, "a2", "failed", "action_failed", error="boom")
        j.finish_run(run, "failed", {"succeeded": 1, "failed": 1})
        acts = j.actions(run)
        assert acts["a1"].state == "succeeded" and acts["a1"].result == {"secondary_id": "s9"}
        assert acts["a1"].operation == {"id": "op-1", "endpoint": "ep"} and acts["a2"].error == "boom"
        assert j.latest_run("plan-x") is not None and j.latest_run("plan-x").status == "failed"  # type: ignore[union-attr]
        j.resume_run(run)
        assert j.actions(run)["a2"].state == "pending"
        assert [r.id for r in j.runs(unfinished=True)] == [run]
        assert [(r.action_id, r.kind) for r in j.run_actions(run)] == [("a1", "protect"), ("a2", "unprotect")]
        names = [e["event"] for e in j.events(run)]
        assert names == [
            "run_started",
            "op_started",
            "action_succeeded",
            "action_failed",
            "run_finished",
            "run_resumed",
        ]
        times = j.event_times(run, ("op_started", "action_succeeded"))
        assert [(aid, ev) for aid, _, ev in times] == [("a1", "op_started"), ("a1", "action_succeeded")]
        assert times[0][1] <= times[1][1]
        run2 = j.start_run("plan-y", "/q.json", "fp", [])
        assert run2 > run and [r.id for r in j.runs()] == [run2, run]
    finally:
        a.close()
