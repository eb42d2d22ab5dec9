"""The inventory equals what plain pyVmomi reads, VM by VM and field by field, on estates shaped
like real ones (issue 13): two datacenters whose local datastores share a name, refused,
inaccessible and orphaned VMs, a linked clone, RDMs, an ISO, a vCLS-like VM, FT; read whole
and paged (the PropertyCollector returning a few objects per reply and a token for the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from vsphere_testlib import Names, direct

from ftbridge.estate import Estate, load_estates
from ftbridge.inventory import InventoryPart
from ftbridge.model import HostState, PowerState
from ftbridge.testing.conformance import check_inventory

DATA = Path(__file__).parent / "data"
SHAPES = {
    "datacenters": {"dc-b": ["rtm"]},
    "refused": ["a-refused"],
    "inaccessible": ["a-lost"],
    "orphaned": ["b-orphan"],
}
_HOST = {"connected": HostState.UP}


@pytest.fixture(scope="module")
def shapes_estate() -> Estate:
    return load_estates(DATA / "shapes_estate.toml")["shapes"]


@pytest.fixture(scope="module", params=[0, 3], ids=["whole", "paged"])
def shapes_lab(request: pytest.FixtureRequest, vcsim_bin: Path, shapes_estate: Estate) -> Iterator[VsphereLab]:
    lab = VsphereLab(shapes_estate, page_size=request.param, **SHAPES)  # type: ignore[arg-type]
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def read(lab: VsphereLab, monkeypatch: pytest.MonkeyPatch) -> tuple[InventoryPart, int]:
    for k, v in lab.secrets().items():
        monkeypatch.setenv(k, v)
    drv = VsphereDriver(VsphereConfig.model_validate(lab.endpoint_config()), endpoint="truth")
    with drv:
        before = drv.ex_round_trips
        part = drv.inventory()
        return part, drv.ex_round_trips - before


def assert_equals_pyvmomi(part: InventoryPart, want: dict[str, Any]) -> None:
    """Field by field: hosts (state, memory), datastores (name, kind, capacity, free, mounts), and
    every readable VM (host, power, config datastore, every disk's path, datastore and size, vCPUs,
    FT role and the secondary's host and datastores); unreadable VMs are there too."""

    def state(conn: str, power: str) -> HostState:
        if power in ("poweredOff", "standBy"):
            return HostState.DOWN
        return HostState.UP if conn == "connected" else HostState.UNREACHABLE

    assert {h.id: (h.name, h.cluster, h.state, h.memory) for h in part.hosts} == {
        k: (n, c, state(conn, pw), mem) for k, (n, c, conn, pw, mem) in want["hosts"].items()
    }
    assert {
        d.id: (d.name, d.kind, d.capacity, d.free, d.accessible, tuple(sorted(d.hosts))) for d in part.datastores
    } == {
        k: (n, kind, cap, free, acc, tuple(sorted(hs)))
        for k, (n, kind, cap, free, acc, hs) in want["datastores"].items()
    }
    got = {v.id: v for v in part.vms}
    assert set(got) == set(want["vms"]), "VMs vanished or appeared"
    hosts = {h.id: h for h in part.hosts}
    for vm_id, w in want["vms"].items():
        v = got[vm_id]
        assert v.name == w[0], vm_id
        if len(w) == 2:  # refused or unreadable: listed, with the reason
            assert v.warnings and v.disks == () and v.config_datastore is None, v
            continue
        _, host, power, conn, cfg_ds, cpus, disks, role, secondaries = w
        expect_power = {"poweredOn": PowerState.ON, "poweredOff": PowerState.OFF}[power]
        if conn != "connected" or hosts[host].state is not HostState.UP:
            expect_power = PowerState.UNKNOWN
        assert (v.host, v.power, v.config_datastore, v.vcpus) == (host, expect_power, cfg_ds, cpus), v.name
        assert cfg_ds is not None, f"{v.name}: pyVmomi could not place its config either"
        assert tuple((d.id, d.path, d.datastore, d.size) for d in v.disks) == disks, v.name
        assert (role == 1) == bool(v.secondaries), v.name
        assert (
            tuple(
                (s.id, s.host, s.config_datastore, tuple((x.disk, x.datastore) for x in s.disks)) for s in v.secondaries
            )
            == secondaries
        ), v.name


def test_shapes_lab_inventory_equals_pyvmomi(shapes_lab: VsphereLab, monkeypatch: pytest.MonkeyPatch) -> None:
    part, trips = read(shapes_lab, monkeypatch)
    check_inventory(part, "truth")
    assert_equals_pyvmomi(part, direct(shapes_lab))
    paged = shapes_lab.page_size > 0
    assert (trips > 5) == paged, f"{trips} round trips"  # paged: continued until the last token


def test_shapes_lab_shows_what_real_estates_hold(
    shapes_lab: VsphereLab, shapes_estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    part, _ = read(shapes_lab, monkeypatch)
    n = Names(part)
    assert set(n.vm) == {v.name for v in shapes_estate.vms}  # nothing vanished
    ds = {(d.name, h): d.id for d in part.datastores for h in d.hosts}
    local_a, local_b = ds[("LocalDS_0", n.host["esx-a1"])], ds[("LocalDS_0", n.host["esx-b1"])]
    assert local_a != local_b
    assert n.vm["a-web"].config_datastore == local_a and n.vm["a-web"].disks[0].datastore == local_a
    assert n.vm["b-web"].config_datastore == local_b and n.vm["b-web"].disks[0].datastore == local_b

    assert any("NoPermission" in w for w in n.vm["a-refused"].warnings)
    assert any("inaccessible" in w for w in n.vm["a-lost"].warnings)
    assert any("orphaned" in w for w in n.vm["b-orphan"].warnings) and n.vm["b-orphan"].power is PowerState.UNKNOWN

    assert n.vm["vcls-1"].managed_by == "com.vmware.vim.eam (cluster-agent)"
    assert n.vm["a-web"].uuid == "4203aa17-5c4e-4b8a-9a52-0f6b0d7c1e01"

    clone = n.vm["a-clone"]
    assert [(d.kind, n.ds_name[d.datastore], d.path) for d in clone.depends_on] == [
        ("base-disk", "templates", "[templates] golden/golden.vmdk")
    ]
    assert clone.mechanisms == ()
    assert [(d.kind, n.ds_name[d.datastore], d.path) for d in n.vm["a-iso"].depends_on] == [
        ("iso", "iso-lib", "[iso-lib] images/rescue.iso")
    ]
    rdm = n.vm["a-rdm"]
    assert [(d.kind, d.movable) for d in rdm.disks] == [("disk", True), ("rdm", False), ("rdm", False)]
    assert rdm.mechanisms == ()  # one of them is a physical-mode RDM

    web = n.vm["a-web"].disks[0]
    assert web.thin and web.size == 10 << 30 and web.allocated == 2 << 30
    assert not n.vm["b-web"].disks[0].thin and n.vm["b-web"].disks[0].allocated is None
    assert {h.name: h.memory for h in part.hosts} == {
        "esx-a1": 64 << 30,
        "esx-a2": 64 << 30,
        "esx-b1": 32 << 30,
        "esx-b2": 32 << 30,
    }
    nets = {x.name: x for x in part.networks}
    assert (nets["pg-app"].kind, nets["pg-app"].vlan) == ("portgroup", 100)
    assert (nets["dv-db"].kind, nets["dv-db"].vlan) == ("dvportgroup", 200)
    assert set(nets["dv-db"].hosts) == {n.host["esx-b1"], n.host["esx-b2"]}
    (nic,) = n.vm["a-web"].nics
    assert (nic.network, nic.mac, nic.model) == (nets["pg-app"].id, "00:50:56:aa:00:01", "vmxnet3")
    (nic,) = n.vm["b-web"].nics
    assert (nic.network, nic.mac, nic.model) == (nets["dv-db"].id, "00:50:56:bb:00:01", "e1000e")
    (sec,) = n.vm["a-ft"].secondaries
    assert n.host_name[sec.host or ""] == "esx-a2" and n.ds_name[sec.metadata_datastore or ""] == "shared-a"


@pytest.fixture(scope="module", params=[(True, 0), (False, 100)], ids=["plain-vcsim", "paged"])
def model_lab(request: pytest.FixtureRequest, vcsim_bin: Path) -> Iterator[VsphereLab]:
    """vcsim's own model in two datacenters, each with its LocalDS_0: unextended (as 0.24.2 serves
    it), and through the lab's PropertyCollector at 100 objects per reply."""
    plain, page = request.param
    lab = VsphereLab(plain=plain, vms=480, hosts=3, datastores=2, datacenters=2, page_size=page)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def test_two_datacenters_of_vcsims_model_read_as_pyvmomi_reads_them(
    model_lab: VsphereLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model_lab.info["datacenters"] == 2
    part, trips = read(model_lab, monkeypatch)
    check_inventory(part, "truth")
    names = [d.name for d in part.datastores]
    assert names.count("LocalDS_0") == 2 and len(part.vms) >= 960
    assert_equals_pyvmomi(part, direct(model_lab))
    assert (trips > 10) == (model_lab.page_size > 0)
