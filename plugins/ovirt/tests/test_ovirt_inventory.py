"""Inventory reads the engine as it is: what it will not move or copy, what VMs share and need,
managed block storage, networks, host states as the engine means them, non-admin accounts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ftbridge_ovirt.assemble import HOST_STATES
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.errors import BackendError
from ftbridge.estate import Estate
from ftbridge.model import HostState, PowerState, SecondaryState

pytestmark = pytest.mark.lab

GIB = 1 << 30


def test_plain_vms_hosts_and_domains(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    by_name = {v.name: v for v in part.vms}
    db = by_name["db01"]
    assert db.ha and db.vcpus == 2 and db.memory == 4 * GIB and db.tags == ("tier1",)
    assert db.power is PowerState.ON and db.host == lab.id("host", "h1") and db.config_datastore is None
    assert db.cluster == "ams" and db.uuid == db.id  # the engine's VM id is its SMBIOS uuid
    assert [d.datastore for d in db.disks] == [lab.id("sd", "sd-a1")] * 2
    assert by_name["batch01"].power is PowerState.OFF and by_name["batch01"].host is None
    assert by_name["batch01"].cluster == "ams"
    (copy,) = by_name["app01"].secondaries
    assert copy.mechanism == "ovirt-copy" and copy.state is SecondaryState.IN_SYNC
    assert copy.disks[0].datastore == lab.id("sd", "sd-r1") and 25 <= (copy.lag or 0) < 120
    ds = {d.name: d for d in part.datastores}
    assert ds["ams-iscsi1"].kind == "iscsi" and ds["ams-nfs1"].shared and len(ds["ams-nfs1"].hosts) == 4
    assert ds["ams-small"].capacity == 30 * GIB and ds["ams-small"].reserve == 5 * GIB
    assert ds["ams-nfs1"].committed is not None and ds["ams-nfs1"].thin
    hosts = {h.name: h for h in part.hosts}
    assert hosts["ams-host1"].cluster == "ams" and hosts["rtm-host2"].cluster == "rtm"


def test_thin_disks_count_their_data(lab: OvirtLab, driver: OvirtDriver) -> None:
    db = next(v for v in driver.inventory().vms if v.name == "db01")
    thick, thin = db.disks
    assert not thick.thin and thick.allocated is None
    assert thin.thin and thin.size == 100 * GIB and thin.allocated == 33 * GIB  # 30 GiB of data + qcow2's 10 %


def test_hosted_engine_and_its_domain_stay_out_of_plans(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    he = next(v for v in part.vms if v.name == "HostedEngine")
    assert he.managed_by and "ovirt-ha-agent" in he.managed_by and he.mechanisms == ()
    assert [d.movable for d in he.disks] == [False]
    hosted = next(d for d in part.datastores if d.name == "hosted_storage")
    assert hosted.content == frozenset() and not hosted.holds("images")  # never a target


def test_managed_block_storage_is_read(lab: OvirtLab, driver: OvirtDriver) -> None:
    """The API writes no <type> for a managed-block-storage domain: it is read all the same."""
    part = driver.inventory()
    ceph = next(d for d in part.datastores if d.name == "ams-ceph")
    assert ceph.kind == "managed_block_storage" and ceph.shared and ceph.reserve == 0
    vm = next(v for v in part.vms if v.name == "cephvm01")
    assert [d.datastore for d in vm.disks] == [ceph.id] and vm.warnings == ()  # not "outside the scope"
    assert vm.mechanisms == () and not vm.disks[0].movable  # running: no snapshot clone, no live move


def test_luns_are_disks_no_copy_holds(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    cl1 = next(v for v in part.vms if v.name == "clnode1")
    (lun,) = [d for d in cl1.disks if d.kind == "lun"]
    assert not lun.movable and lun.size == 2 * GIB and lun.path == f"lun:{lun.datastore}"
    store = next(d for d in part.datastores if d.id == lun.datastore)
    assert store.kind == "lun" and store.content == frozenset()


def test_a_shareable_disk_is_one_disk_its_vms_share(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    shared = lab.id("disk", "shared/shared0/cl1,cl2")
    cl1, cl2 = (next(v for v in part.vms if v.name == n) for n in ("clnode1", "clnode2"))
    d1, d2 = (next(d for d in v.disks if d.id == shared) for v in (cl1, cl2))
    assert d1.shared_by == (cl2.id,) and d2.shared_by == (cl1.id,)
    assert not d1.movable  # its VMs run: the engine moves it only with all of them down


def test_lease_and_template_are_dependencies(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    db = next(v for v in part.vms if v.name == "db01")
    (lease,) = db.depends_on
    assert lease.kind == "lease" and lease.datastore == lab.id("sd", "sd-a2")
    assert db.needed_datastores == {lab.id("sd", "sd-a1"), lab.id("sd", "sd-a2")}  # audited with the primary
    thin = next(v for v in part.vms if v.name == "rhel-thin01")
    (base,) = thin.depends_on
    assert base.kind == "base-disk" and base.datastore == lab.id("sd", "sd-a2") and "rhel9" in base.path
    assert not thin.disks[0].movable  # a thin clone moves only where its template's disk is


def test_networks_vnic_profiles_and_nics(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    nets = {n.name: n for n in part.networks}
    assert nets["prod"].kind == "ovirt-network" and nets["prod"].vlan == 10
    assert nets["prod/prod"].kind == "vnic-profile" and nets["prod/prod"].vlan == 10
    assert nets["backend/backend"].vlan == 20 and nets["ovirtmgmt"].vlan is None
    db = next(v for v in part.vms if v.name == "db01")
    assert [n.network for n in db.nics] == [lab.id("profile", "prod"), lab.id("profile", "backend")]
    assert db.nics[0].mac == "56:6f:00:00:00:01" and db.nics[0].model == "virtio"
    assert all(n.network in {x.id for x in part.networks} for v in part.vms for n in v.nics)


@pytest.mark.parametrize(
    "status, state",
    [
        ("up", HostState.UP),
        ("maintenance", HostState.MAINTENANCE),
        ("non_responsive", HostState.UNREACHABLE),
        ("connecting", HostState.UNREACHABLE),
        ("non_operational", HostState.UNREACHABLE),
        ("down", HostState.DOWN),
        ("reboot", HostState.DOWN),
        ("kdumping", HostState.DOWN),
        ("installing", HostState.MAINTENANCE),
    ],
)
def test_host_states_as_the_engine_means_them(
    lab: OvirtLab, driver: OvirtDriver, status: str, state: HostState
) -> None:
    assert HOST_STATES[status] is state
    with lab.engine.lock:
        lab.engine.hosts[lab.id("host", "h3")].status = status
    (host,) = [h for h in driver.inventory().hosts if h.name == "rtm-host1"]
    assert host.state is state
    assert driver.health().hosts[host.id] is state


def test_a_partitioned_host_is_unreachable_not_down(lab: OvirtLab, driver: OvirtDriver) -> None:
    lab.partition_host("ams-host1")
    part = driver.inventory()
    (h1,) = [h for h in part.hosts if h.name == "ams-host1"]
    assert h1.state is HostState.UNREACHABLE and not h1.state.proven_down
    db = next(v for v in part.vms if v.name == "db01")
    assert db.power is PowerState.UNKNOWN and db.host == h1.id
    nfs = next(d for d in part.datastores if d.name == "ams-nfs1")
    assert h1.id not in nfs.hosts  # it mounts nothing the engine can see now
    lab.fail_host("ams-host2")
    (h2,) = [h for h in driver.inventory().hosts if h.name == "ams-host2"]
    assert h2.state is HostState.DOWN


def test_a_non_admin_account_needs_the_filter_header(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, make_driver: Callable[..., OvirtDriver]
) -> None:
    lab = OvirtLab(estate, op_seconds=0.02, admin=False, user="reader@internal")
    lab.start()
    try:
        for k, v in lab.secrets().items():
            monkeypatch.setenv(k, v)
        from ovirt_helpers import make_config

        drv = OvirtDriver(make_config(lab), endpoint="lab")
        drv.open()
        try:
            with pytest.raises(BackendError, match="insufficient permissions"):
                drv.inventory()
        finally:
            drv.close()
        drv = OvirtDriver(make_config(lab, filter=True), endpoint="lab")
        drv.open()
        try:
            part = drv.inventory()
        finally:
            drv.close()
        db = next(v for v in part.vms if v.name == "db01")
        assert db.host is None and db.cluster == "ams" and db.power is PowerState.ON  # the engine hides it
        assert any("filtered" in w for w in db.warnings)
    finally:
        lab.stop()
