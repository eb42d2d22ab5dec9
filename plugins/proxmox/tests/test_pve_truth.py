"""Issue 11, row by row: the driver reads and does what a real PVE cluster reads and does, and
the lab refuses what PVE refuses, in PVE's words and status codes.

Every test runs the driver over proxmoxer against the lab (or sends the lab raw requests as
any client would), on the estate in ``data/pve_truth_estate.toml``. Each names the PVE source
of the rule it holds; the plugin README's rule table points back here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from pve_helpers import DATA, LabFactory, make_driver
from pydantic import ValidationError

from ftbridge.audit import audit
from ftbridge.config import load_config
from ftbridge.drivers import Operation, OpState, SecondarySpec
from ftbridge.errors import Conflict
from ftbridge.estate import Estate, load_estates
from ftbridge.inventory import Inventory
from ftbridge.model import VM, EndpointInfo

pytestmark = [pytest.mark.lab]
KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.fixture(scope="module")
def truth_estate() -> Estate:
    return load_estates(DATA / "pve_truth_estate.toml")["truth"]


@pytest.fixture
def tlab(lab_factory: LabFactory, truth_estate: Estate, monkeypatch: pytest.MonkeyPatch) -> ProxmoxLab:
    lab = lab_factory(estate=truth_estate)
    for key, value in lab.secrets().items():
        monkeypatch.setenv(key, value)
    return lab


@pytest.fixture
def drv(tlab: ProxmoxLab) -> Iterator[ProxmoxDriver]:
    d = make_driver(tlab)
    d.open()
    try:
        yield d
    finally:
        d.close()


class Raw:
    """A plain client, as any other tool talking to PVE would be."""

    def __init__(self, lab: ProxmoxLab) -> None:
        self.base = lab.url
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.verify = str(lab.ca_file)
        self.s.headers["Authorization"] = f"PVEAPIToken={lab.user}!{lab.token_id}={lab.token}"
        self.s.headers["User-Agent"] = "ftbridge-lab-probe"  # deliberate refusals: not the driver's traffic

    def call(self, method: str, path: str, **params: Any) -> requests.Response:
        if method in ("GET", "DELETE"):
            return self.s.request(method, self.base + path, params=params)
        return self.s.request(method, self.base + path, data=params)

    def task_end(self, node: str, upid: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            st = self.call("GET", f"/nodes/{node}/tasks/{upid}/status").json()["data"]
            if st["status"] == "stopped":
                return str(st["exitstatus"])
            assert time.monotonic() < deadline
            time.sleep(0.02)


def vms(drv: ProxmoxDriver) -> dict[str, VM]:
    return {v.name: v for v in drv.inventory().vms}


def done(drv: ProxmoxDriver, op: Operation) -> Any:
    status = drv.wait(op, timeout=30, interval=0.02)
    assert status.state is OpState.SUCCEEDED, status.message
    return status


# 1: a shared storage's hosts are where it is active ------------------------------------------------
def test_1_a_storage_missing_on_a_node_is_not_mounted_there(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.fail_datastore("nfs-b@pve3")  # the NFS export is not mounted on pve3
    ds = {d.id: d for d in drv.inventory().datastores}
    assert ds["nfs-b"].hosts == ("pve1", "pve2") and ds["nfs-b"].accessible
    assert ds["ceph-vm"].hosts == ("pve1", "pve2", "pve3")
    # so nothing moves a disk of a pve3 guest there; PVE would fail the move
    with pytest.raises(Conflict, match="'nfs-b' is not active on node pve3"):
        drv.move_disk("205", "scsi1", "nfs-b")
    raw = Raw(tlab)
    upid = raw.call("POST", "/nodes/pve3/qemu/205/move_disk", disk="scsi1", storage="nfs-b").json()["data"]
    assert raw.task_end("pve3", upid) == "storage 'nfs-b' is not online"
    status = {
        r["node"]: r["status"]
        for r in raw.call("GET", "/cluster/resources", type="storage").json()["data"]
        if r["storage"] == "nfs-b"
    }
    assert status == {"pve1": "available", "pve2": "available", "pve3": "unknown"}


# 2: storage content --------------------------------------------------------------------------------
def test_2_content_types_are_read_and_enforced(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    part = drv.inventory()
    content = {d.id: d.content for d in part.datastores}
    assert content["ceph-vm"] == frozenset({"images"}) and content["ceph-ct"] == frozenset({"images", "rootdir"})
    assert content["local@pve1"] == frozenset({"iso", "vztmpl", "backup"})
    assert content["cephfs"] == frozenset({"iso", "backup"})
    assert content["san-lun"] == frozenset()  # "content none"
    ct02 = next(v for v in part.vms if v.name == "ct02")
    assert {d.id: d.content for d in ct02.disks} == {"rootfs": "rootdir"}
    for target in ("cephfs", "san-lun"):  # qemu-server move_vm_disk: a parameter error
        with pytest.raises(Conflict, match=f"storage '{target}' does not support vm images"):
            drv.move_disk("200", "scsi0", target)
    with pytest.raises(Conflict, match="does not support vm images"):
        drv.move_disk("204", "scsi0", "local@pve1")
    with pytest.raises(Conflict, match="content type 'rootdir' is not available or configured on storage 'ceph-vm'"):
        drv.move_disk("203", "rootfs", "ceph-vm")
    done(drv, drv.move_disk("203", "rootfs", "ceph-ct"))
    raw = Raw(tlab)
    r = raw.call("POST", "/nodes/pve1/qemu/200/move_disk", disk="scsi0", storage="cephfs")
    assert (r.status_code, r.reason) == (400, "Parameter verification failed.")
    assert r.json()["errors"] == {"storage": "storage 'cephfs' does not support vm images"}
    upid = raw.call("POST", "/nodes/pve2/lxc/203/move_volume", volume="rootfs", storage="ceph-vm").json()["data"]
    assert raw.task_end("pve2", upid) == "content type 'rootdir' is not available or configured on storage 'ceph-vm'"


# 3: a running container's volumes do not move --------------------------------------------------------
def test_3_running_container_volumes_are_not_movable(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    ct01 = vms(drv)["ct01"]
    assert ct01.power.value == "on" and [d.movable for d in ct01.disks] == [False, False]
    assert all(d.movable for d in vms(drv)["ct02"].disks)  # stopped
    with pytest.raises(Conflict, match="cannot move volumes of a running container"):
        drv.move_disk("202", "rootfs", "ceph-ct")
    r = Raw(tlab).call("POST", "/nodes/pve3/lxc/202/move_volume", volume="mp0", storage="nfs-b")
    assert (r.status_code, r.reason) == (500, "cannot move volumes of a running container")


# 4: a guest's mechanisms are what protect accepts ------------------------------------------------------
EXPECTED_MECHANISMS = {
    "web01": (),  # every volume shared (pvesr has nothing to copy); running with TPM state (no clone)
    "app01": ("pve-standby",),  # shared only
    "ct01": ("pve-replication",),  # a container: no clone; ZFS root replicates, the Ceph mount point is skipped
    "ct02": ("pve-replication",),
    "db01": ("pve-replication", "pve-standby"),
    "pend01": ("pve-standby",),
    "app02": ("pve-standby",),
    "pt01": (),  # a pass-through disk: pvesr refuses it, a clone cannot parse it
}


def test_4_each_guest_lists_exactly_the_mechanisms_protect_accepts(drv: ProxmoxDriver) -> None:
    found = vms(drv)
    assert {name: vm.mechanisms for name, vm in found.items()} == EXPECTED_MECHANISMS
    specs: dict[str, Callable[[VM], SecondarySpec]] = {
        "pve-replication": lambda vm: SecondarySpec(
            "pve-replication",
            {
                d.id: d.datastore.replace(f"@{vm.host}", "@pve2")
                for d in vm.disks
                if d.datastore.endswith(f"@{vm.host}")
            },
            host="pve2",
        ),
        "pve-standby": lambda vm: SecondarySpec("pve-standby", {d.id: "nfs-b" for d in vm.disks}),
    }
    for vm in found.values():
        for mechanism, spec in specs.items():
            if mechanism in (vm.mechanisms or ()):
                continue
            with pytest.raises(Conflict):  # refused before anything is changed
                drv.protect(vm.id, spec(vm))
    # and one it lists is taken
    done(drv, drv.protect("203", SecondarySpec("pve-replication", {"rootfs": "local-zfs@pve3"}, host="pve3")))


# 5 and 6: pvesr skips shared and replicate=0 volumes; PVE replicates such guests -------------------------
def test_5_a_replica_lists_shared_volumes_on_their_own_storage(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    part = drv.inventory()
    known = {d.id for d in part.datastores}
    ct01 = next(v for v in part.vms if v.name == "ct01")
    (job,) = ct01.secondaries
    assert sorted((x.disk, x.datastore) for x in job.disks) == [("mp0", "ceph-ct"), ("rootfs", "local-zfs@pve1")]
    assert job.missing == () and job.datastores <= known
    assert set(tlab.cluster.jobs["202-0"].replicated) == {"rootfs"}  # what the lab's pvesr copies


def test_6_mixed_and_replicate_0_guests_are_replicated(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    # a container with its root on ZFS and a mount point on Ceph: the Ceph volume stays where it is
    op = drv.protect(
        "202", SecondarySpec("pve-replication", {"rootfs": "local-zfs@pve2", "mp0": "ceph-ct"}, host="pve2")
    )
    done(drv, op)
    # a VM with a pass-through disk marked replicate=0 and a ZFS disk marked replicate=0
    tlab.attach_device(204, "scsi2", "/dev/disk/by-id/nvme-SAMSUNG_MZQL2960_S64F", "backup=0,replicate=0")
    tlab.set_drive_options(204, "scsi1", "replicate=0")
    with pytest.raises(Conflict, match="pvesr does not copy scsi1"):
        drv.protect(
            "204", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3", "scsi1": "local-zfs@pve3"}, host="pve3")
        )
    done(drv, drv.protect("204", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3")))
    db01 = vms(drv)["db01"]
    new = next(s for s in db01.secondaries if s.host == "pve3")
    assert [(x.disk, x.datastore) for x in new.disks] == [("scsi0", "local-zfs@pve3")]
    assert new.missing == ("scsi1", "scsi2") and new.state.value == "in_sync"
    # without replicate=0 a pass-through device stops pvesr, in PVE's words
    tlab.set_drive_options(204, "scsi2", "backup=0")
    assert "pve-replication" not in (vms(drv)["db01"].mechanisms or ())
    with pytest.raises(Conflict, match="unable to replicate local file/device '/dev/disk/by-id/nvme-SAMSUNG"):
        drv.protect("204", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3"))


# 7: the current config, not the pending one -----------------------------------------------------------
def test_7_pending_changes_do_not_count_until_they_run(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.set_pending(205, "scsi1", None)  # the detach waits for a reboot: scsi1 is still attached
    tlab.set_pending(205, "scsi2", "ceph-vm:vm-205-disk-9,size=3G")  # not attached yet
    assert sorted(d.id for d in vms(drv)["pend01"].disks) == ["scsi0", "scsi1"]
    raw = Raw(tlab)
    pending = raw.call("GET", "/nodes/pve3/qemu/205/config").json()["data"]
    current = raw.call("GET", "/nodes/pve3/qemu/205/config", current=1).json()["data"]
    assert ("scsi1" in pending, "scsi2" in pending) == (False, True)
    assert ("scsi1" in current, "scsi2" in current) == (True, False)


# 8: volumes on a disabled storage, or one not configured for the node, are said --------------------
def test_8_disabled_and_unconfigured_storages_are_warnings_and_findings(
    tlab: ProxmoxLab, drv: ProxmoxDriver, tmp_path: Path
) -> None:
    tlab.set_storage("nfs-b", disabled=True)
    tlab.set_storage("ceph-ct", nodes=["pve1", "pve2"])
    part = drv.inventory()
    ds = {d.id: d for d in part.datastores}
    assert not ds["nfs-b"].accessible and ds["nfs-b"].hosts == ()
    assert ds["ceph-ct"].hosts == ("pve1", "pve2")
    found = {v.name: v for v in part.vms}
    assert any("'nfs-b', which is disabled" in w for w in found["app01"].warnings)
    assert any("'ceph-ct', which is not configured for node pve3" in w for w in found["ct01"].warnings)
    for vm in part.vms:  # no disk points at a datastore the inventory lacks
        assert {d.datastore for d in vm.disks} <= set(ds), vm.name
    cfg = tmp_path / "ftbridge.toml"
    cfg.write_text(
        '[endpoints.pve]\ndriver = "sim"\nestate = "x.toml"\n[policies.all]\nrequire_secondary = false\n'
        "require_shared_primary = false\n",
        encoding="utf-8",
    )
    inv = Inventory().with_parts(EndpointInfo("pve", "proxmox", mechanisms=tuple(drv.mechanisms)), part)
    findings = {(f.vm_name, f.rule) for f in audit(inv, load_config(cfg)).findings}
    assert {("app01", "inventory-warning"), ("ct01", "inventory-warning")} <= findings
    # the lab: a disabled storage is not among the cluster's resources, and PVE refuses it
    raw = Raw(tlab)
    assert not [
        r for r in raw.call("GET", "/cluster/resources", type="storage").json()["data"] if r["storage"] == "nfs-b"
    ]
    r = raw.call("POST", "/nodes/pve1/qemu/200/move_disk", disk="scsi0", storage="nfs-b")
    assert (r.status_code, r.reason) == (500, "storage 'nfs-b' is disabled")
    r = raw.call("POST", "/nodes/pve3/qemu/205/move_disk", disk="scsi1", storage="ceph-ct")
    assert (r.status_code, r.reason) == (500, "storage 'ceph-ct' is not available on node 'pve3'")


# 9: shared=1 on a device or host path ---------------------------------------------------------------
def test_9_a_device_marked_shared_is_available_on_every_node(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.attach_device(207, "scsi1", "/dev/mapper/san-lun0", "shared=1")
    tlab.attach_device(202, "mp1", "/mnt/pve/shared-data", "mp=/data,shared=1")
    part = drv.inventory()
    ds = {d.id: d for d in part.datastores}
    found = {v.name: v for v in part.vms}
    assert {d.id: d.datastore for d in found["app02"].disks}["scsi1"] == "passthrough"
    assert {d.id: d.datastore for d in found["ct01"].disks}["mp1"] == "passthrough"
    assert ds["passthrough"].shared and ds["passthrough"].hosts == ("pve1", "pve2", "pve3")
    assert {d.id: d.datastore for d in found["pt01"].disks}["scsi1"] == "passthrough@pve2"  # not marked: pinned
    assert not ds["passthrough@pve2"].shared


# 10: cloud-init drives by an anchored match ------------------------------------------------------------
def test_10_a_disk_named_like_cloud_init_is_a_disk(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.set_config_line(200, "scsi5", "ceph-vm:vm-200-cloudinit-data,size=20G")
    tlab.set_config_line(200, "ide2", "ceph-vm:vm-200-cloudinit,media=cdrom")
    disks = {d.id: d for d in vms(drv)["web01"].disks}
    assert disks["scsi5"].size == 20 * GIB and disks["scsi5"].kind == "disk"
    assert "ide2" not in disks  # the real cloud-init drive: PVE regenerates it


# 11: user ids ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "user",
    ["example.user@google.com@myrealm1", "ftbridge@pve", "root@pam", "a.b-c@ad.example", "o'brien@corp", "svc!x@pve"],
)
def test_11_user_ids_pve_documents_are_accepted(user: str) -> None:
    # pve-access-control PVE/Auth/Plugin.pm: user part [^\s:/]+, realm after the last '@'
    cfg = ProxmoxConfig.model_validate({"driver": "proxmox", "host": "h", "user": user, "password": {"env": "P"}})
    assert cfg.user == user


@pytest.mark.parametrize(
    "user", ["root", "a:b@pve", "a/b@pve", "a b@pve", "x@p", "ab@1realm", "@pve", "us@pve!tok", "u" * 60 + "@pve.x"]
)
def test_11_user_ids_pve_refuses_are_refused(user: str) -> None:
    with pytest.raises(ValidationError, match="user@realm"):
        ProxmoxConfig.model_validate({"driver": "proxmox", "host": "h", "user": user, "password": {"env": "P"}})


def test_11_a_user_whose_name_holds_an_at_sign_logs_in(
    lab_factory: LabFactory, truth_estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_factory(estate=truth_estate, user="example.user@google.com@myrealm1")
    for key, value in lab.secrets().items():
        monkeypatch.setenv(key, value)
    for creds in ({}, {"token": None, "token_name": None, "password": {"env": lab.PASSWORD_ENV}}):
        table = {k: v for k, v in {**lab.endpoint_config(), **creds}.items() if v is not None}
        drv = ProxmoxDriver(ProxmoxConfig.model_validate(table), endpoint="pve")
        drv.open()
        try:
            assert drv.probe().version == "9.1.3" and drv.inventory().vms
        finally:
            drv.close()


# 12: sizes -------------------------------------------------------------------------------------------
def test_12_sizeless_efidisk_and_kib_to_tib_sizes(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.set_config_line(200, "efidisk0", "ceph-vm:vm-200-disk-1,efitype=4m,pre-enrolled-keys=1")
    tlab.set_config_line(200, "scsi0", "ceph-vm:vm-200-disk-0,iothread=1,size=32GiB")
    web01 = vms(drv)["web01"]
    disks = {d.id: d.size for d in web01.disks}
    assert disks["efidisk0"] == 528 * KIB and disks["scsi0"] == 32 * GIB
    assert not [w for w in web01.warnings if "size" in w]


# issue 14: networks and NICs --------------------------------------------------------------------------
def test_networks_bridges_vlans_and_vnets(drv: ProxmoxDriver) -> None:
    part = drv.inventory()
    nets = {n.id: n for n in part.networks}
    assert (nets["vmbr0"].kind, nets["vmbr0"].vlan, nets["vmbr0"].hosts) == ("bridge", None, ("pve1", "pve2", "pve3"))
    assert (nets["vmbr0/20"].name, nets["vmbr0/20"].vlan) == ("vmbr0", 20)
    assert (nets["prod"].kind, nets["prod"].vlan) == ("vnet", 100)
    found = {v.name: v for v in part.vms}
    (nic,) = found["web01"].nics
    assert (nic.id, nic.network, nic.mac, nic.model) == ("net0", "vmbr0/20", "BC:24:11:00:20:00", "virtio")
    assert found["app01"].nics[0].network == "prod"
    assert found["ct01"].nics[0].model == "veth" and found["ct01"].nics[0].network == "vmbr0"
    assert found["web01"].uuid == "5b8e6c0a-2f4e-4b8a-9d7e-0a1b2c3d4e5f" and found["ct01"].uuid == ""
    for vm in part.vms:
        assert {n.network for n in vm.nics} <= set(nets), vm.name


def test_thin_storages_and_disks(drv: ProxmoxDriver) -> None:
    part = drv.inventory()
    thin = {d.id: d.thin for d in part.datastores}
    assert thin["ceph-vm"] and thin["local-zfs@pve1"] and thin["nfs-b"]
    assert not thin["local@pve1"] and not thin["san-lun"]  # dir preallocated (the estate says thick), a LUN
    assert all(d.thin for d in vms(drv)["web01"].disks)


# issue 10: restart and the state map ---------------------------------------------------------------------
def test_restart_on_the_vms_own_node_and_idempotent(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    done(drv, drv.fence("207"))
    assert tlab.guest(207).status == "stopped"
    assert done(drv, drv.restart("207")).result == {"host": "pve2"}
    assert tlab.guest(207).status == "running"
    again = drv.restart("207")
    assert drv.poll(again).state is OpState.SUCCEEDED  # already runs: at once


def test_restart_to_another_node_moves_the_config_first(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    done(drv, drv.fence("207"))
    assert done(drv, drv.restart("207", host_id="pve3")).result == {"host": "pve3"}
    assert (tlab.guest(207).node, tlab.guest(207).status) == ("pve3", "running")
    with pytest.raises(Conflict, match="node-local|not active there"):
        drv.restart("203", host_id="pve1")  # ct02's root is on pve2's local ZFS


@pytest.mark.parametrize("version", ["9.1.3", "8.4.1"])  # the preferred node: an HA rule, or an HA group
def test_restart_after_pve_fenced_the_node_goes_through_ha(
    lab_factory: LabFactory, truth_estate: Estate, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    tlab = lab_factory(estate=truth_estate, version=version)
    for key, value in tlab.secrets().items():
        monkeypatch.setenv(key, value)
    drv = make_driver(tlab)
    drv.open()
    try:
        _restart_after_fencing(tlab, drv)
    finally:
        drv.close()


def _restart_after_fencing(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.cluster.fence_delay = 3600
    tlab.partition_host("pve2")  # app01 runs under HA there: pve2's LRM holds the lock and the watchdog
    with pytest.raises(Conflict, match="does not report it fenced"):
        drv.restart("207")
    tlab.elapse_fence_delay()  # the watchdog reset pve2; PVE's HA manager took its lock
    assert drv.health().hosts["pve2"].value == "down"
    assert vms(drv)["app02"].power.value == "off"  # a fenced node runs nothing
    status = done(drv, drv.restart("207", host_id="pve3"))
    assert status.result == {"host": "pve3"}
    assert (tlab.guest(207).node, tlab.guest(207).status) == ("pve3", "running")
    assert "vm:207" not in tlab.cluster.ha_resources  # the HA resource was only for the restart
    assert "ftbridge_207" not in tlab.cluster.ha_rules and "ftbridge_207" not in tlab.cluster.ha_groups
    assert tlab.split_brain == []


def test_restart_refuses_an_unreachable_node_pve_has_not_fenced(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    # pve3 runs no HA service: its LRM holds no lock, so PVE's HA would take it at once and start
    # a second pend01 while the first still runs on the partitioned node
    tlab.partition_host("pve3")
    assert drv.health().hosts["pve3"].value == "unreachable"
    with pytest.raises(Conflict, match="does not report it fenced"):
        drv.restart("205", host_id="pve1")
    assert tlab.guest(205).status == "running" and tlab.split_brain == []
    assert "vm:205" not in tlab.cluster.ha_resources


def test_state_map_maintenance_from_the_ha_lrm() -> None:
    from ftbridge_proxmox.collect import View, host_state

    view = View(endpoint="pve", now=1000.0, quorate=True, node_status={"a": "online", "b": "online", "c": "x"})
    view.ha_manager = {"manager_status": {"timestamp": 1000}, "lrm_status": {"b": {"mode": "maintenance"}}}
    assert [host_state(view, n).value for n in "abc"] == ["up", "maintenance", "unknown"]


def test_inventory_cost_stays_flat(tlab: ProxmoxLab, drv: ProxmoxDriver) -> None:
    tlab.reset_counts()
    drv.inventory()
    guests = len(tlab.cluster.guests)
    # 3 cluster reads + replication (jobs, 2 source nodes) + HA (resources, rules, manager) +
    # networks (3 nodes, vnets) + one config per guest
    assert tlab.request_count == guests + 3 + 3 + 3 + 4, sorted(tlab.core.counts.items())


def test_lab_speaks_for_every_rule_only_in_pves_status_codes(tlab: ProxmoxLab) -> None:
    raw = Raw(tlab)
    r = raw.call("POST", "/cluster/replication", id="206-0", target="pve1", type="local")
    assert (r.status_code, r.reason) == (
        500,
        "unable to replicate local file/device '/dev/disk/by-id/ata-ST4000NM0035-1V4107_ZC1A2B3C'",
    )
    r = raw.call("POST", "/nodes/pve1/qemu/200/clone", newid=300, full=1, storage="nfs-b")
    assert (r.status_code, r.reason) == (500, "cannot clone TPM state while VM is running")
    r = raw.call("POST", "/nodes/pve2/qemu/206/clone", newid=300, full=1, storage="nfs-b")
    assert (r.status_code, r.reason) == (
        500,
        "unable to parse volume ID '/dev/disk/by-id/ata-ST4000NM0035-1V4107_ZC1A2B3C'",
    )
    r = raw.call("POST", "/nodes/pve2/qemu/207/clone", newid=300, full=1, storage="cephfs")
    assert (r.status_code, r.json()["errors"]) == (400, {"storage": "storage 'cephfs' does not support vm images"})
    assert raw.call("GET", "/nodes/pve1/qemu/200/config", current=1, snapshot="s1").status_code == 400
