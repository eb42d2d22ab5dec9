"""Several ``ftbridge watch`` controllers on one sim estate, coordinated by a real etcd cluster.

Every controller is a real process with its own state directory (as on its own machine); they
share the estate (the sim's state file: the platform) and the etcd cluster. Tests wait for the
controllers' events, never for the clock; the sim's ``slow`` fault keeps a run in flight.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from etcdlab import Controller, EtcdCluster, needs_etcd, wait_any

from ftbridge.config import load_config
from ftbridge.coordination.etcd import EtcdCoordinator
from ftbridge.sim.driver import SimDriver
from ftbridge.sim.state import SimStore, dump

pytestmark = [needs_etcd, pytest.mark.lab, pytest.mark.slow]

ESTATE = """
[estates.lab]
flavor = "generic"
{hosts}
[[estates.lab.datastores]]
id = "ds-a"
name = "ams-nfs"
kind = "nfs"
hosts = ["a1", "a2"]
capacity_gib = 4000

[[estates.lab.datastores]]
id = "ds-b"
name = "fra-nfs"
kind = "nfs"
hosts = ["b1", "b2", "b3"]
capacity_gib = 4000

[[estates.lab.datastores]]
id = "ds-c"
name = "fra-nfs-2"
kind = "nfs"
hosts = ["b1", "b2", "b3"]
capacity_gib = 4000
{vms}
"""

HOST = '\n[[estates.lab.hosts]]\nid = "{id}"\nname = "{id}"\ncluster = "{cluster}"\n'
VM = """
[[estates.lab.vms]]
id = "vm{n}"
name = "app{n:02d}"
host = "a{h}"
disks = [{{ id = "d0", size_gib = 10, datastore = "ds-a" }}]
secondaries = [{{ mechanism = "pve-standby", disks = {{ d0 = "ds-b" }}, state = "in_sync", lag_s = {lag} }}]
"""

CONFIG = """
[endpoints.lab]
driver = "sim"
estate = "{estate}"
state = "{simstate}"
copies_age = true

[[domains]]
endpoint = "lab"
cluster = "ams"
site = "ams"

[[domains]]
endpoint = "lab"
cluster = "fra"
site = "fra"

[[domains]]
endpoint = "lab"
datastore = "ams-*"
site = "ams"

[[domains]]
endpoint = "lab"
datastore = "fra-*"
site = "fra"

[policies.gold]
separation = "site"
rpo = "{rpo}"
mechanisms = ["pve-standby"]
auto_failover = {auto}
match = [{{}}]

[state]
dir = "{state}"

[apply]
backoff = "0.05s"
retries = 1
concurrency_per_endpoint = {concurrency}

[coordination]
backend = "etcd"
name = "{name}"
prefix = "{prefix}"
lease_ttl = "3s"
settle = "1s"
members = [{members}]

[watch]
interval = "0.3s"
refresh_at = 0.5
confirm_cycles = 2
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    c = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    yield c
    c.stop()


class Estate:
    """The shared estate, the configs of N controllers, and the controllers once started."""

    def __init__(
        self, where: Path, cluster: EtcdCluster, *, n: int, lag: float, rpo: str, auto: bool, concurrency: int = 0
    ) -> None:
        self.where = where
        hosts = "".join(
            HOST.format(id=h, cluster="ams" if h[0] == "a" else "fra") for h in ("a1", "a2", "b1", "b2", "b3")
        )
        vms = "".join(VM.format(n=i, h=1 + i % 2, lag=lag) for i in range(1, 5))
        (where / "estate.toml").write_text(ESTATE.format(hosts=hosts, vms=vms))
        self.prefix = f"/w-{uuid.uuid4().hex[:8]}/"
        self.configs = []
        for i in range(n):
            d = where / f"ctl{i}"
            d.mkdir()
            text = CONFIG.format(
                estate=where / "estate.toml",
                simstate=where / "lab.simstate.db",
                rpo=rpo,
                auto="true" if auto else "false",
                state=d / "state",
                name=f"ctl{i}",
                prefix=self.prefix,
                members=cluster.members_toml(),
                concurrency=concurrency,
            )
            (d / "ftbridge.toml").write_text(text)
            self.configs.append(d / "ftbridge.toml")
        self.sim = SimDriver(load_config(self.configs[0]).endpoints["lab"], endpoint="lab")
        self.sim.open()
        self.controllers: list[Controller] = []

    def start(self) -> list[Controller]:
        self.controllers = [Controller(c) for c in self.configs]
        return self.controllers

    def state(self) -> dict[str, Any]:
        return dump(self.where / "lab.simstate.db")

    def journal_view(self) -> Any:
        """An unfenced reader of the shared journal (as an operator's tool would read it)."""
        return EtcdCoordinator(load_config(self.configs[0]).coordination, "reader")

    def stop(self) -> None:
        for c in self.controllers:
            c.stop()


@pytest.fixture
def estate_factory(tmp_path: Path, cluster: EtcdCluster) -> Iterator[Any]:
    made: list[Estate] = []

    def make(**kw: Any) -> Estate:
        e = Estate(tmp_path, cluster, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()


def leader_of(controllers: list[Controller]) -> Controller:
    c, _ = wait_any(controllers, lambda e: e["event"] == "leader_elected")
    return c


def assert_each_action_ran_once(est: Estate, reader: EtcdCoordinator) -> None:
    """Every operation the platform ever started belongs to exactly one journaled action, and no
    action started two (no action ran twice, nothing ran unjournaled)."""
    j = reader.store()
    by_action: dict[tuple[int, str], set[str]] = {}
    for e in j.events():
        op = (e.get("detail") or {}).get("operation")
        if op and e["action_id"]:
            by_action.setdefault((e["run_id"], e["action_id"]), set()).add(op["id"])
    owners: dict[str, list[tuple[int, str]]] = {}
    for key, ops in by_action.items():
        assert len(ops) == 1, f"action {key} ran operations {sorted(ops)}"
        owners.setdefault(next(iter(ops)), []).append(key)
    platform_ops = est.state()["ops"]
    assert platform_ops, "the platform saw no operation at all"
    for op_id in platform_ops:
        assert len(owners.get(op_id, [])) == 1, f"operation {op_id} belongs to {owners.get(op_id)}"
    assert est.state()["violations"] == []


def test_one_leader_then_sigkill_mid_run_and_another_finishes_it(estate_factory: Any) -> None:
    est = estate_factory(n=3, lag=400, rpo="600s", auto=False)
    est.sim.ex_inject(hold=True)  # operations stay in flight until released: the run is caught in flight
    ctls = est.start()
    first = leader_of(ctls)
    op = first.wait_for(lambda e: e["event"] == "op_started")
    for c in ctls:
        if c is not first:  # the others have run cycles: they are followers, not slow starters
            c.wait_for(lambda e: e["event"] == "cycle_finished" and not e["leader"])
    assert [len(c.named("leader_elected")) for c in ctls] == [int(c is first) for c in ctls]
    run_id = first.wait_for(lambda e: e["event"] == "run_started")["run"]
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    others = [c for c in ctls if c is not first]
    second, elected = wait_any(others, lambda e: e["event"] == "leader_elected")
    assert elected["epoch"] > first.named("leader_elected")[0]["epoch"]
    second.wait_for(lambda e: e["event"] == "run_resuming" and e["run"] == run_id)
    est.sim.ex_inject(hold=False)
    done = second.wait_for(lambda e: e["event"] == "run_resumed")
    assert done["run"] == run_id and op["controller"] == first.named("leader_elected")[0]["holder"]
    reader = est.journal_view()
    try:
        runs = {r.id: r for r in reader.store().runs()}
        assert runs[run_id].status == "done" and runs[run_id].pid == second.pid
        assert all(a.state in ("succeeded", "skipped") for a in reader.store().actions(run_id).values())
        assert_each_action_ran_once(est, reader)
    finally:
        reader.client.close()
        reader._renewer.close()
    vms = est.state()["vms"]
    # every VM has one copy, a fresh one this run made (it carries the time of its sync)
    assert all(len(v["secondaries"]) == 1 and v["secondaries"][0].get("last_sync") for v in vms.values())


def test_a_stopped_leader_wakes_up_deposed_its_writes_refused_and_estate_untouched(estate_factory: Any) -> None:
    # one operation at a time: once its first is in flight (held), the old leader only polls
    est = estate_factory(n=2, lag=400, rpo="600s", auto=False, concurrency=1)
    est.sim.ex_inject(hold=True)  # operations stay in flight until released: the run cannot end early
    ctls = est.start()
    first = leader_of(ctls)
    second = next(c for c in ctls if c is not first)
    first.wait_for(lambda e: e["event"] == "op_started")
    run_id = first.wait_for(lambda e: e["event"] == "run_started")["run"]
    # frozen past its lease: it cannot know. Frozen while not inside a platform call: the sim is
    # a database file in the caller's process, so a call made before the stop is served only after
    # it (a server would have served it at once), and a process stopped in its write transaction
    # would stop every other writer, which a server never lets a client do. So the old leader is
    # stopped while it only polls its one held operation, and while the test holds the sim's
    # write lock. (A lease that lapses before a step starts its operation: test_apply_safety.)
    held = SimStore(est.where / "lab.simstate.db")
    with held.exclusive():
        first.proc.send_signal(signal.SIGSTOP)
    held.close()
    second.wait_for(lambda e: e["event"] == "leader_elected")
    second.wait_for(lambda e: e["event"] == "run_resuming" and e["run"] == run_id)
    est.sim.ex_inject(hold=False)  # the new leader resumes: let the platform finish
    second.wait_for(lambda e: e["event"] == "run_resumed" and e["run"] == run_id)
    ops_before = set(est.state()["ops"])
    mark = len(first.events)
    first.proc.send_signal(signal.SIGCONT)
    refused = first.wait_for(lambda e: e["event"] == "journal_write_refused", after=mark)
    # refused by its own deadline (the lease thread or the write noticed first) or by etcd's compare
    assert any(w in refused["message"] for w in ("does not lead", "renew", "another controller leads")), refused
    first.wait_for(lambda e: e["event"] == "cycle_finished" and not e["leader"], after=mark)
    # the old leader started nothing after waking: every operation started since is the new
    # leader's, which goes on with its cycles (its op_started event names the operation; one the
    # old leader started would have no such event there, nor a journal entry)
    for op in sorted(set(est.state()["ops"]) - ops_before):
        second.wait_for(lambda e, op=op: e["event"] == "op_started" and e.get("message", "").endswith(f" {op}"))
    late = [e["message"].split()[-1] for e in first.events[mark:] if e["event"] == "op_started"]
    assert set(late) <= ops_before  # an event printed after waking, for an operation journaled before
    reader = est.journal_view()
    try:
        assert {r.id: r for r in reader.store().runs()}[run_id].status == "done"
        assert_each_action_ran_once(est, reader)
    finally:
        reader.client.close()
        reader._renewer.close()


def test_site_failure_gives_one_plan_and_one_failover_whoever_leads(estate_factory: Any) -> None:
    est = estate_factory(n=2, lag=0, rpo="600s", auto=True)
    ctls = est.start()
    first = leader_of(ctls)
    for c in ctls:
        c.wait_for(lambda e: e["event"] == "cycle_finished")
    est.sim.ex_inject(hosts_down=["a1", "a2"], datastores_down=["ds-a"], slow=1.0)
    planner, planned = wait_any(ctls, lambda e: e["event"] == "failover_planned")
    assert planner is first and planned["scope"] == "site=ams" and planned["steps"] == 4 and planned["auto"] == 4
    # the leader dies as soon as it planned: whoever leads next must not plan again, and finishes the run
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    second = next(c for c in ctls if c is not first)
    second.wait_for(lambda e: e["event"] == "leader_elected")
    # it resumes the run the old leader journaled, or starts the one it planned but never began
    resumed = second.wait_for(lambda e: e["event"] in ("run_resumed", "failover_finished"))
    mark = len(second.events)
    for _ in range(3):  # a few more cycles as leader: nothing is planned again
        mark = second.events.index(second.wait_for(lambda e: e["event"] == "cycle_finished", after=mark)) + 1
    assert not second.named("failover_planned")
    vms = est.state()["vms"]
    assert all(v["disks"][0]["datastore"] == "ds-b" and v["host"].startswith("b") for v in vms.values()), resumed
    reader = est.journal_view()
    try:
        store = reader.store()
        failovers = [r for r in store.runs() if any(a.kind == "promote" for a in store.run_actions(r.id))]
        assert len(failovers) == 1 and failovers[0].status == "done"
        assert_each_action_ran_once(est, reader)
    finally:
        reader.client.close()
        reader._renewer.close()
