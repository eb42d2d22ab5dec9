"""pending_operations: ftbridge's operations on a VM found again from the engine alone, over the
real SDK against the lab, and the engine rules it stands on (the jobs search, the audit log,
what the API keeps of a correlation id). The lab holds jobs until released: nothing here races
a clock."""

from __future__ import annotations

import re
import ssl
import urllib.request
from typing import Any

import pytest
from ftbridge_ovirt import naming as N
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import NotFound
from ftbridge.model import SecondaryState

sdk = pytest.importorskip("ovirtsdk4")
pytestmark = pytest.mark.lab


def _raw(lab: OvirtLab, conn: Any, path: str) -> str:
    """The XML the lab answers, as it goes over the wire."""
    req = urllib.request.Request(
        lab.url("https") + path, headers={"Authorization": f"Bearer {conn.authenticate()}", "Accept": "application/xml"}
    )
    tls = ssl.create_default_context(cafile=str(lab.ca_file))
    with urllib.request.urlopen(req, timeout=20, context=tls) as resp:  # noqa: S310 - the lab on loopback
        return bytes(resp.read()).decode("utf-8")


def _move(conn: Any, lab: OvirtLab, disk: str, target: str, corr: str | None) -> None:
    """A disk move someone else asks the engine for."""
    ds = conn.system_service().disks_service().disk_service(lab.id("disk", disk))
    ds.move(
        storage_domain=sdk.types.StorageDomain(id=lab.id("sd", target)),
        query={"correlation_id": corr} if corr is not None else None,
    )


def _running_jobs(lab: OvirtLab) -> list[str | None]:
    with lab.engine.lock:
        return [j.correlation_id for j in lab.engine.jobs.values() if j.status == "started"]


# correlation ids ---------------------------------------------------------------------------
def test_correlation_ids_fit_what_the_engine_keeps() -> None:
    """restapi CurrentFilter keeps [0-9a-zA-Z_-] and 36 characters; each id names its kind."""
    vm, other = "0b5e6f0c-6a4e-4c39-9a56-3c1fbd1c2a01", "0b5e6f0c-6a4e-4c39-9a56-3c1fbd1c2a02"
    for kind in N.KIND_WORDS:
        corr = N.correlation_id(kind, vm)
        assert len(corr) <= N.CORRELATION_ID_MAX and re.fullmatch(r"[0-9a-zA-Z_-]+", corr), corr
        parsed = N.parse_correlation_id(corr)
        assert parsed is not None and parsed.kind == kind and parsed.marker == N.vm_marker(vm)
        assert corr != N.correlation_id(kind, vm)  # one id per operation
    assert max(len(N.correlation_id(k, vm)) for k in N.KIND_WORDS) == N.CORRELATION_ID_MAX
    assert N.vm_marker(vm) != N.vm_marker(other) and N.vm_marker(vm.upper()) == N.vm_marker(vm)
    for foreign in ("ftbridge-move-0123456789ab", "t-1", vm, "ftbridge-rollback-abcdefghij-abcdef", ""):
        assert N.parse_correlation_id(foreign) is None, foreign


def test_the_lab_keeps_of_a_correlation_id_what_the_api_keeps(lab: OvirtLab, conn: Any) -> None:
    """CurrentFilter: the characters outside [0-9a-zA-Z_-] go, then all past the 36th; a request
    without one runs under a random UUID."""
    lab.hold_jobs()
    _move(conn, lab, "vm3/d0", "sd-r1", "ui.move/web01: " + "x" * 40)
    _move(conn, lab, "vm1/d0", "sd-r1", None)
    jobs = conn.system_service().jobs_service()
    kept = "uimoveweb01" + "x" * 25
    assert len(kept) == 36
    (job,) = jobs.list(search=f"correlation_id={kept}")
    assert job.description.startswith("Moving Disk web01_d0 ")
    assert jobs.list(search="correlation_id=uimoveweb01" + "x" * 40) == []
    (anon,) = [c for c in _running_jobs(lab) if c != kept]
    assert anon is not None and re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", anon)


# the engine's jobs search and audit log, as the lab answers them ---------------------------
def test_jobs_are_searched_by_exact_correlation_id_only(lab: OvirtLab, conn: Any) -> None:
    """searchbackend JobConditionFieldAutoCompleter: one field, typed UUID, so no wildcard and no
    LIKE; JobMapper: a job shows no correlation id."""
    lab.hold_jobs()
    _move(conn, lab, "vm3/d0", "sd-r1", "ui-1")
    _move(conn, lab, "vm1/d0", "sd-r1", "ui-2")
    jobs = conn.system_service().jobs_service()
    (one,) = jobs.list(search="correlation_id=ui-1")
    (two,) = jobs.list(search="correlation_id!=ui-1")
    assert one.description.startswith("Moving Disk web01_d0 ") and two.description.startswith("Moving Disk db01_d0 ")
    assert jobs.list(search="correlation_id=ui-*") == []  # '*' is a character here
    assert jobs.list(search="correlation_id=UI-1") == []  # PostgreSQL '=': case counts
    assert len(jobs.list()) == 2
    for field in ("status=started", "description=Moving*"):
        with pytest.raises(sdk.Error) as info:
            jobs.list(search=field)
        assert info.value.code == 400
    xml = _raw(lab, conn, "/jobs")
    assert "<job " in xml and "correlation_id" not in xml and "ui-1" not in xml


def test_events_show_correlation_ids_and_take_wildcards(lab: OvirtLab, conn: Any) -> None:
    """AuditLogConditionFieldAutoCompleter: correlation_id is a String (LIKE, '*'); EventMapper
    writes it; the newest event comes first (audit_log_id DESC)."""
    lab.hold_jobs()
    _move(conn, lab, "vm3/d0", "sd-r1", "ui-1")
    vms = conn.system_service().vms_service()
    batch = vms.list(search="name=batch01")[0]
    vms.vm_service(batch.id).start(query={"correlation_id": "ui-2"})
    events = conn.system_service().events_service()
    got = events.list(search="correlation_id=ui-*")
    assert [(e.code, e.correlation_id) for e in got] == [(150, "ui-2"), (2008, "ui-1")]
    assert (
        got[0].vm.id == batch.id and got[0].description == "Starting VM batch01 was initiated by admin@internal-authz."
    )
    assert got[1].vm is None and got[1].storage_domain.id == lab.id("sd", "sd-r1")
    assert got[1].description == "User admin@internal-authz moving disk web01_d0 to domain rtm-nfs1."
    assert events.list(search="correlation_id=UI-*") == []
    assert len(events.list(search="correlation_id=UI-*", case_sensitive=False)) == 2
    assert [e.correlation_id for e in events.list(search="correlation_id=ui-*", max=1)] == ["ui-2"]
    assert "<correlation_id>ui-1</correlation_id>" in _raw(lab, conn, "/events")


# pending_operations ------------------------------------------------------------------------
def test_a_lost_operation_is_found_with_its_kind(lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver) -> None:
    vm = lab.id("vm", "vm3")
    lab.hold_jobs()
    op = driver.move_disk(vm, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    (found,) = fresh.pending_operations(vm)
    assert (found.id, found.kind, found.vm, found.endpoint) == (op.id, "move_disk", vm, "lab")
    assert dict(found.data) == {"found": "1"}
    assert fresh.poll(found).state is OpState.RUNNING
    lab.release_jobs()
    assert fresh.wait(found, timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("disks", "web01_d0").domain == lab.id("sd", "sd-r1")


def test_another_vms_running_operation_is_not_listed(lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver) -> None:
    web01, db01, batch01 = lab.id("vm", "vm3"), lab.id("vm", "vm1"), lab.id("vm", "vm4")
    lab.hold_jobs()
    mine = driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    other = driver.move_disk(db01, lab.id("disk", "vm1/d0"), lab.id("sd", "sd-r1"))
    assert set(_running_jobs(lab)) == {mine.id, other.id}  # both run
    assert [o.id for o in fresh.pending_operations(web01)] == [mine.id]
    assert [o.id for o in fresh.pending_operations(db01)] == [other.id]
    assert fresh.pending_operations(batch01) == []


def test_operations_others_started_are_not_listed(
    lab: OvirtLab, conn: Any, driver: OvirtDriver, fresh: OvirtDriver
) -> None:
    """A move someone started in the engine's UI (its own correlation id, or none) runs on the
    VM; nothing the engine shows ties its job to the VM or to ftbridge, so it is not offered as
    an ftbridge operation (the core would adopt it as its own)."""
    web01 = lab.id("vm", "vm3")
    lab.hold_jobs()
    _move(conn, lab, "vm3/d0", "sd-r1", "ui-7f3a")
    driver.ex_set_lease(web01, lab.id("sd", "sd-r1"))  # an ftbridge operation that ended at once
    assert _running_jobs(lab) == ["ui-7f3a"]
    assert fresh.pending_operations(web01) == []
    lab.release_jobs()
    lab.hold_jobs()
    _move(conn, lab, "vm3/d0", "sd-a2", None)  # no correlation id: the engine makes one up
    (anon,) = _running_jobs(lab)
    assert anon and not anon.startswith("ftbridge-")
    assert fresh.pending_operations(web01) == []


def test_an_ended_operation_is_not_listed(lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver) -> None:
    web01 = lab.id("vm", "vm3")
    lab.hold_jobs()
    op = driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    assert [o.id for o in fresh.pending_operations(web01)] == [op.id]
    lab.release_jobs()
    assert fresh.pending_operations(web01) == []  # finished, and still shown by the engine
    assert [j.status for j in lab.engine.jobs.values() if j.correlation_id == op.id] == ["finished"]

    lab.fail_next("move")
    lab.hold_jobs()
    failing = driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-a2"))
    (found,) = fresh.pending_operations(web01)
    assert found.id == failing.id
    lab.release_jobs()
    end = fresh.poll(found)
    assert end.state is OpState.FAILED and "Moving Disk web01_d0" in end.message and end.retryable
    assert fresh.pending_operations(web01) == []


def test_jobs_the_engine_cleared_leave_nothing_to_find(lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver) -> None:
    web01 = lab.id("vm", "vm3")
    lab.hold_jobs()
    driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    (found,) = fresh.pending_operations(web01)
    lab.release_jobs()
    with lab.engine.lock:
        lab.engine.jobs.clear()  # the engine's job cleanup ran
    with pytest.raises(NotFound):
        fresh.poll(found)
    assert fresh.pending_operations(web01) == []


def test_a_test_failover_found_again_names_its_test_vm(lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver) -> None:
    """The events of the operation name the VM it created: the result the core adopts."""
    app01 = lab.id("vm", "vm2")
    (sec,) = [s for s in driver.replication_status(app01) if s.mechanism == "ovirt-copy"]
    lab.hold_jobs()
    op = driver.test_failover(app01, sec.id)
    (found,) = fresh.pending_operations(app01)
    assert (found.id, found.kind, found.data.get("test_id")) == (op.id, "test_failover", op.data["test_id"])
    assert fresh.poll(found).state is OpState.RUNNING
    lab.release_jobs()
    end = fresh.wait(found, timeout=30)
    assert end.state is OpState.SUCCEEDED and end.result["test_id"] == op.data["test_id"]
    assert end.result["host"] == lab.engine.vms[op.data["test_id"]].host
    assert fresh.wait(fresh.cleanup_test(app01, end.result["test_id"]), timeout=30).state is OpState.SUCCEEDED


def _machinery(lab: OvirtLab, vm: str, set_id: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """What the engine shows of one copy set of ``vm``: ftbridge's snapshots on the VM, the
    transient clone VMs naming it, and the set's copies, attached and floating."""
    snaps = [
        s.description for v in lab.vms() if v.id == vm for s in v.snapshots if s.description.startswith("ftbridge-")
    ]
    clones = [v.name for v in lab.vms() if v.description == N.clone_description(vm, set_id)]
    copies = [d for d in lab.disks() if d.alias.startswith(f"ftbridge-copy.{vm}.") and d.alias.endswith(set_id)]
    attached = [d.alias for d in copies if lab.engine.vms_of_disk(d.id)]
    return snaps, clones, attached, [d.alias for d in copies if not lab.engine.vms_of_disk(d.id)]


def _lost_protect(lab: OvirtLab, driver: OvirtDriver, vm: str) -> Any:
    """A protect of a running VM whose jobs the lab holds."""
    lab.hold_jobs()
    op = driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm3/d0"): lab.id("sd", "sd-r1")}))
    assert op.data["path"] == "snapshot"
    return op


def test_a_copy_lost_after_its_snapshot_leaves_no_snapshot_on_the_vm(
    lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver
) -> None:
    """Cloning the snapshot needs the target domains the lost handle held: the found operation
    rolls the snapshot back (a live snapshot left on a production VM grows and slows it), then
    leaves the outcome to the estate (NotFound: the core checks its postcondition)."""
    web01 = lab.id("vm", "vm3")
    op = _lost_protect(lab, driver, web01)
    set_id = op.data["secondary_id"]
    (found,) = fresh.pending_operations(web01)
    assert (found.id, found.kind, dict(found.data)) == (op.id, "protect", {"found": "1"})
    assert fresh.poll(found).state is OpState.RUNNING
    lab.release_jobs()  # the snapshot is taken; the handle that would clone it is gone
    assert _machinery(lab, web01, set_id) == ([N.snapshot_description(set_id)], [], [], [])
    with pytest.raises(NotFound, match="look at the estate"):
        fresh.wait(found, timeout=30)
    assert _machinery(lab, web01, set_id) == ([], [], [], [])
    assert lab.snapshot("vms", "web01").status == "up"
    assert any(
        j.description.startswith("Removing Snapshot ftbridge-copy") for j in lab.engine.jobs_for(op.id)
    )  # under the operation's own correlation id
    assert [s for s in fresh.replication_status(web01) if s.id == set_id] == []


def test_a_copy_lost_after_its_clone_keeps_the_copies_and_drops_the_rest(
    lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver
) -> None:
    """The clone was made onto the targets: removing it with detach_only and then the snapshot
    needs nothing the handle held, so the found operation finishes both; the core then finds the
    secondary by its postcondition."""
    web01 = lab.id("vm", "vm3")
    op = _lost_protect(lab, driver, web01)
    set_id = op.data["secondary_id"]
    lab.release_jobs()
    lab.hold_jobs()
    assert driver.poll(op).state is OpState.RUNNING  # the handle asks for the clone, then is lost
    assert _machinery(lab, web01, set_id)[:2] == ([N.snapshot_description(set_id)], [N.clone_vm_name(set_id)])
    (found,) = fresh.pending_operations(web01)
    assert found.id == op.id
    assert fresh.poll(found).state is OpState.RUNNING
    lab.release_jobs()  # the clone is made, Down, its disks under the set's copy aliases
    snaps, clones, attached, floating = _machinery(lab, web01, set_id)
    assert (len(snaps), len(clones), len(attached), floating) == (1, 1, 1, [])
    with pytest.raises(NotFound, match="look at the estate"):
        fresh.wait(found, timeout=30)
    assert _machinery(lab, web01, set_id) == ([], [], [], attached)
    (sec,) = [s for s in fresh.replication_status(web01) if s.id == set_id]
    assert sec.mechanism == "ovirt-copy" and sec.state is SecondaryState.IN_SYNC and sec.missing == ()
    assert {d.datastore for d in sec.disks} == {lab.id("sd", "sd-r1")}
    assert any(s.id == set_id for v in fresh.inventory().vms if v.id == web01 for s in v.secondaries)


def test_one_audit_log_read_and_one_jobs_search_per_operation(
    lab: OvirtLab, driver: OvirtDriver, fresh: OvirtDriver
) -> None:
    web01 = lab.id("vm", "vm3")
    for target in ("sd-r1", "sd-a2"):  # two operations that ended
        driver.wait(driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", target)), timeout=30)
    lab.hold_jobs()
    op = driver.move_disk(web01, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    lab.stats.reset()
    assert [o.id for o in fresh.pending_operations(web01)] == [op.id]
    assert lab.stats.by_route == {"GET /events": 1, "GET /jobs": 3}
    fresh.pending_scan = 1  # the bound: the newest operation only
    lab.stats.reset()
    assert [o.id for o in fresh.pending_operations(web01)] == [op.id]
    assert lab.stats.by_route == {"GET /events": 1, "GET /jobs": 1}
