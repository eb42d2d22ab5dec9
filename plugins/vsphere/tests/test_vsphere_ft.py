"""Fault Tolerance placement, FT limits, and the operations around them, against the lab."""

from __future__ import annotations

import pytest
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from vsphere_testlib import Names

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import Conflict, NotFound


def ft_spec(
    n: Names, vm: str, *, host: str, config: str, disks: str | list[str], meta: str = "ft-meta"
) -> SecondarySpec:
    v = n.vm[vm]
    targets = [disks] * len(v.disks) if isinstance(disks, str) else disks
    return SecondarySpec(
        mechanism="vsphere-ft",
        disks={d.id: n.ds[t] for d, t in zip(v.disks, targets, strict=True)},
        config_datastore=n.ds[config],
        host=n.host[host],
        metadata_datastore=n.ds[meta],
    )


def test_protect_places_the_secondary_files_where_the_spec_says(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    spec = ft_spec(names, "web01", host="esx-a2", config="rtm-nfs", disks="ams-nfs-b")
    status = vs.wait(vs.protect(names.vm["web01"].id, spec), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    sec_id = status.result["secondary_id"]

    web01 = Names(vs.inventory()).vm["web01"]
    (sec,) = web01.secondaries
    assert sec.id == sec_id and sec.mechanism == "vsphere-ft"
    assert sec.host == names.host["esx-a2"]
    assert sec.config_datastore == names.ds["rtm-nfs"]
    assert sec.metadata_datastore == names.ds["ft-meta"]
    assert {x.disk: x.datastore for x in sec.disks} == dict(spec.disks)
    assert sec.state.value == "in_sync" and sec.lag == 0.0
    # the files exist where vCenter says they are, and nowhere else
    for x in sec.disks:
        assert x.path.startswith("[ams-nfs-b] web01-ft/")
        local = lab.local_path(x.path)
        assert local is not None and local.exists(), x.path
    vmx = lab.local_path("[rtm-nfs] web01-ft/web01.vmx")
    assert vmx is not None and vmx.exists()
    meta = lab.local_path("[ft-meta] web01/shared.vmft")
    assert meta is not None and meta.exists()
    # the primary did not move
    assert [d.datastore for d in web01.disks] == [names.ds["ams-nfs-a"]]

    # unprotect removes the secondary and its files
    status = vs.wait(vs.unprotect(web01.id, sec_id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    assert Names(vs.inventory()).vm["web01"].secondaries == ()
    assert not lab.local_path(sec.disks[0].path).exists()  # type: ignore[union-attr]
    assert not vmx.exists() and not meta.exists()


def test_moving_an_ft_vm_is_refused_then_sequenced_off_move_on(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    ft01 = names.vm["ft01"]
    (old,) = ft01.secondaries
    with pytest.raises(Conflict, match="fault tolerant") as info:
        vs.move_vm(ft01.id, names.ds["ams-nfs-b"])
    assert "unprotect" in (info.value.hint or "")
    with pytest.raises(Conflict, match="fault tolerant"):
        vs.move_disk(ft01.id, ft01.disks[0].id, names.ds["ams-nfs-b"])

    new_id = vs.ex_move_ft_vm(ft01.id, names.ds["ams-nfs-b"], timeout=60)

    after = Names(vs.inventory()).vm["ft01"]
    assert {d.datastore for d in after.disks} == {names.ds["ams-nfs-b"]}
    assert after.config_datastore == names.ds["ams-nfs-b"]
    assert all(d.path.startswith("[ams-nfs-b] ft01/") for d in after.disks)
    assert all(lab.local_path(d.path).exists() for d in after.disks)  # type: ignore[union-attr]
    assert not lab.local_path(ft01.disks[0].path).exists()  # type: ignore[union-attr]
    (sec,) = after.secondaries
    assert sec.id == new_id != old.id
    # FT came back exactly where it was
    assert (sec.host, sec.config_datastore, sec.metadata_datastore) == (
        old.host,
        old.config_datastore,
        old.metadata_datastore,
    )
    assert {x.disk: x.datastore for x in sec.disks} == {x.disk: x.datastore for x in old.disks}


@pytest.mark.parametrize(
    "vm, host, match",
    [
        ("big01", "esx-a3", "10 vCPUs; FT allows at most 8"),
        ("web01", "esx-a3", "esx-a3 already runs 4 FT VMs"),
        ("rtm-app", "esx-b1", "esx-b1 would run 9 FT vCPUs"),
        ("web01", "esx-a1", "another host than the primary"),
    ],
)
def test_ft_limits_are_refused_clearly_before_vcenter_is_asked(
    vs: VsphereDriver, names: Names, vm: str, host: str, match: str
) -> None:
    spec = ft_spec(names, vm, host=host, config="rtm-nfs", disks="rtm-nfs")
    before = vs.session.round_trips
    with pytest.raises(Conflict, match=match) as info:
        vs.protect(names.vm[vm].id, spec)
    assert f"cannot protect {vm} with vsphere-ft" in str(info.value)
    assert vs.session.round_trips - before <= 4  # one inventory read (+ thin disks' layout), no task
    assert Names(vs.inventory()).vm[vm].secondaries == ()


def test_ft_rules_on_the_spec(vs: VsphereDriver, names: Names) -> None:
    web01 = names.vm["web01"]
    local = ft_spec(names, "web01", host="esx-a2", config="rtm-nfs", disks="rtm-nfs", meta="esx-a1-local")
    with pytest.raises(Conflict, match="metadata datastore esx-a1-local must be shared"):
        vs.protect(web01.id, local)
    unmounted = ft_spec(names, "web01", host="esx-a2", config="rtm-nfs", disks="esx-a1-local")
    with pytest.raises(Conflict, match="esx-a2 does not mount datastore esx-a1-local"):
        vs.protect(web01.id, unmounted)
    partial = SecondarySpec(
        "vsphere-ft",
        {},
        config_datastore=names.ds["rtm-nfs"],
        host=names.host["esx-a2"],
        metadata_datastore=names.ds["ft-meta"],
    )
    with pytest.raises(Conflict, match="place every disk"):
        vs.protect(web01.id, partial)
    with pytest.raises(NotFound):
        vs.unprotect(web01.id, "vm-424242")


def test_protect_replaces_the_one_ft_secondary_break_before_make(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    app01 = names.vm["app01"]  # secondary on ams-nfs-b, host esx-a3 (which is full)
    (old,) = app01.secondaries
    spec = ft_spec(names, "app01", host="esx-a3", config="rtm-nfs", disks="rtm-nfs")
    status = vs.wait(vs.protect(app01.id, spec), timeout=60)  # same host: the old one no longer counts
    assert status.state is OpState.SUCCEEDED, status.message
    (new,) = Names(vs.inventory()).vm["app01"].secondaries
    assert new.id == status.result["secondary_id"] != old.id
    assert {x.datastore for x in new.disks} == {names.ds["rtm-nfs"]}
    assert not lab.local_path(old.disks[0].path).exists()  # type: ignore[union-attr]
    with pytest.raises(NotFound):  # what the planner's "remove the old one" step then sees
        vs.unprotect(app01.id, old.id)


def test_vcenter_enforces_the_limits_too_as_a_failed_task(vs: VsphereDriver, names: Names) -> None:
    """Bypassing the driver's checks: the lab refuses as vCenter would, in the task."""
    big = names.vm["big01"]
    task = vs.session.create_secondary(
        big.id,
        host=names.host["esx-b3"],
        config_datastore=names.ds["rtm-nfs"],
        disks={int(d.id): names.ds["rtm-nfs"] for d in big.disks},
        metadata_datastore=names.ds["ft-meta"],
    )
    status = vs.wait(vs._op(task, "protect", big.id), timeout=60)
    assert status.state is OpState.FAILED
    assert "big01 has 10 vCPUs; fault tolerance supports at most 8" in status.message
    assert Names(vs.inventory()).vm["big01"].secondaries == ()


def test_a_task_fault_is_a_failed_status_with_the_message(vs: VsphereDriver, names: Names, make_driver: object) -> None:
    db01 = names.vm["db01"]
    disk = db01.disks[0]  # 40 GiB; "tiny" holds 10
    op = vs.move_disk(db01.id, disk.id, names.ds["tiny"])
    status = vs.wait(op, timeout=60)
    assert status.state is OpState.FAILED
    assert "Insufficient disk space on datastore 'tiny'" in status.message
    assert status.message.startswith("move_disk failed")
    again = Names(vs.inventory()).vm["db01"]
    assert again.disks == db01.disks  # nothing half-done
    tiny = next(d for d in vs.inventory().datastores if d.name == "tiny")
    assert tiny.free == tiny.capacity


def test_moves_update_paths_and_datastore_membership(vs: VsphereDriver, names: Names, lab: VsphereLab) -> None:
    db01 = names.vm["db01"]
    status = vs.wait(vs.move_vm(db01.id, names.ds["ams-nfs-b"], host_id=names.host["esx-a2"]), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    after = Names(vs.inventory())
    moved = after.vm["db01"]
    assert moved.host == names.host["esx-a2"]
    assert moved.config_path == "[ams-nfs-b] db01/db01.vmx"
    assert [d.path for d in moved.disks] == ["[ams-nfs-b] db01/db01.vmdk", "[ams-nfs-b] db01/db01_1.vmdk"]
    assert all(lab.local_path(d.path).exists() for d in moved.disks)  # type: ignore[union-attr]
    local = next(d for d in after.part.datastores if d.name == "esx-a1-local")
    assert local.free == local.capacity  # the space came back
    assert not lab.local_path("[esx-a1-local] db01/db01.vmx").exists()  # type: ignore[union-attr]
    props = vs.session.retrieve("Datastore", [names.ds["ams-nfs-b"], names.ds["esx-a1-local"]], ["vm"])
    assert db01.id in [v._moId for v in props[names.ds["ams-nfs-b"]]["vm"]]
    assert db01.id not in [v._moId for v in props[names.ds["esx-a1-local"]].get("vm") or []]
