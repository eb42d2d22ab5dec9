"""A filtered session (``filter = true``, an account without admin roles): the engine lets it
read, but shows it no job, so ftbridge can follow no change it would make there. The lab refuses
what the engine refuses, in its words; the driver offers reads only, and starts no change."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import ftbridge_exe, sdk_session, write_config

from ftbridge.drivers import Capability
from ftbridge.errors import UnsupportedOperation

pytestmark = pytest.mark.lab

INSUFFICIENT = "Query execution failed due to insufficient permissions."


def _a_move(drv: OvirtDriver) -> tuple[str, str, str]:
    """A VM, one of its disks, and another data domain of its data center to move it to."""
    part = drv.inventory()
    vm = next(v for v in part.vms if v.name == "db01")
    disk = vm.disks[0]
    here = next(d for d in part.datastores if d.id == disk.datastore)
    there = next(
        d for d in part.datastores if d.id != here.id and d.kind == here.kind and d.accessible and d.hosts == here.hosts
    )
    return vm.id, disk.id, there.id


def test_the_engine_refuses_a_filtered_jobs_list_and_ignores_a_filtered_events_search(
    lab: OvirtLab, driver: OvirtDriver
) -> None:
    """restapi ``BackendJobsResource.list``: filtered, the list runs ``GetAllJobs``, an admin
    query that bll ``QueriesCommandBase.validatePermissions`` refuses to any filtered caller (a
    400 "Operation Failed" fault, ``BaseBackendResource.handleError``); ``BackendEventsResource``
    runs ``GetAllEventMessages`` for a filtered caller and drops the search."""
    sdk = pytest.importorskip("ovirtsdk4")
    vm_id, disk_id, target = _a_move(driver)
    op = driver.move_disk(vm_id, disk_id, target)  # unfiltered: a job and its events
    lab.finish_jobs()
    plain = sdk_session(lab)
    filtered = sdk_session(lab, filtered=True)
    try:
        assert plain.system_service().jobs_service().list(search=f"correlation_id={op.id}")
        with pytest.raises(sdk.Error) as refused:
            filtered.system_service().jobs_service().list(search=f"correlation_id={op.id}")
        assert refused.value.code == 400
        assert "Operation Failed" in str(refused.value) and INSUFFICIENT in str(refused.value)
        nothing = "correlation_id=no-such-id"
        assert plain.system_service().events_service().list(search=nothing) == []
        shown = filtered.system_service().events_service().list(search=nothing)
        assert {e.correlation_id for e in shown} >= {op.id}  # the search is not applied
    finally:
        plain.close()
        filtered.close()


def test_a_filtered_account_offers_reads_only_and_starts_no_change(
    lab: OvirtLab, driver: OvirtDriver, make_driver: Callable[..., OvirtDriver]
) -> None:
    vm_id, disk_id, target = _a_move(driver)
    reader = make_driver(filter=True)
    reader.open()
    try:
        reads = {Capability.INVENTORY, Capability.REPLICATION_STATUS, Capability.HEALTH}
        assert set(reader.probe().capabilities) == reads
        with lab.engine.lock:
            jobs, events = len(lab.engine.jobs), len(lab.engine.events)
        with pytest.raises(UnsupportedOperation, match=r"endpoints\.lab\.filter = true: .* no jobs"):
            reader.move_disk(vm_id, disk_id, target)
        with lab.engine.lock:
            assert (len(lab.engine.jobs), len(lab.engine.events)) == (jobs, events)  # nothing started
        assert reader.inventory().vms  # reading still works
    finally:
        reader.close()
    (vm,) = [v for v in driver.inventory().vms if v.id == vm_id]
    assert next(d for d in vm.disks if d.id == disk_id).datastore != target


def test_a_plan_over_a_filtered_account_changes_nothing_there_and_says_why(lab: OvirtLab, tmp_path: Path) -> None:
    cfg = write_config(lab, tmp_path, endpoint={"filter": True})
    env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}
    argv = [ftbridge_exe(), "--config", str(cfg), "plan", "-o", "json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    assert doc["unfixable"], "the lab's estate has findings a plan would fix"
    assert [a for a in doc["actions"] if a["endpoint"] == "ovirt"] == []
    assert any("offers no" in u["reason"] for u in doc["unfixable"])


def test_a_failover_plan_over_a_filtered_account_blocks_what_it_could_not_do(lab: OvirtLab, tmp_path: Path) -> None:
    """The same estate and failure that give app01 a promote step with an admin account
    (``test_ovirt_cli``): read-only, the step would fail half way through a failover."""
    cfg = write_config(lab, tmp_path, endpoint={"filter": True})
    env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}
    lab.fail_datastore("ams-nfs1")
    argv = [ftbridge_exe(), "--config", str(cfg), "failover", "plan", "--fence", "-o", "json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    plan = json.loads(p.stdout)
    assert plan["steps"] == []
    blocked = {b["vm_name"]: b["reason"] for b in plan["blocked"]}
    assert blocked["app01"].startswith("endpoint ovirt cannot ") and "offers no" in blocked["app01"]
