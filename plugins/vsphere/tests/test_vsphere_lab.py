"""The lab serves an estate as the estate file writes it (the demo estate, violations included),
and cleans up after itself."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab, estate_document

from ftbridge.estate import Estate, load_estates
from ftbridge.model import PowerState


def demo_estate() -> Estate:
    path = Path(str(resources.files("ftbridge") / "demo" / "estate.toml"))
    if not path.exists():
        pytest.skip("the core ships no demo estate")
    return next(e for e in load_estates(path).values() if e.flavor == "vsphere")


@pytest.mark.parametrize("which", ["demo", "tests"])
def test_the_lab_serves_the_estate_as_written(
    vcsim_bin: Path, ft_estate: Estate, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    estate = demo_estate() if which == "demo" else ft_estate
    lab = VsphereLab(estate)
    lab.start()
    try:
        for k, v in lab.secrets().items():
            monkeypatch.setenv(k, v)
        drv = VsphereDriver(VsphereConfig.model_validate(lab.endpoint_config()), endpoint=estate.name)
        with drv:
            part = drv.inventory()
    finally:
        lab.stop()

    host_name = {h.id: h.name for h in estate.hosts}
    ds_name = {d.id: d.name for d in estate.datastores}
    got_host = {h.id: h.name for h in part.hosts}
    got_ds = {d.id: d.name for d in part.datastores}

    assert {(h.name, h.cluster, h.state) for h in part.hosts} == {(h.name, h.cluster, h.state) for h in estate.hosts}
    want_ds = {
        (
            d.name,
            d.kind,
            d.shared,
            tuple(sorted(host_name[x] for x in d.hosts)),
            d.capacity,
            max(d.free, 0),
            d.accessible,
        )
        for d in estate.datastores
    }
    assert {
        (d.name, d.kind, d.shared, tuple(sorted(got_host[x] for x in d.hosts)), d.capacity, d.free, d.accessible)
        for d in part.datastores
    } == want_ds

    got = {v.name: v for v in part.vms}
    assert set(got) == {v.name for v in estate.vms}
    for want in estate.vms:
        vm = got[want.name]
        assert got_host.get(vm.host or "") == host_name.get(want.host or ""), want.name
        assert vm.vcpus == want.vcpus
        assert vm.power is (
            PowerState.UNKNOWN
            if want.host and any(h.id == want.host and h.state.value == "down" for h in estate.hosts)
            else want.power
        ), want.name
        assert [(got_ds[d.datastore], d.size) for d in vm.disks] == [(ds_name[d.datastore], d.size) for d in want.disks]
        assert got_ds[vm.config_datastore or ""] == ds_name[want.config_datastore or ""]
        wanted_ft = [s for s in want.secondaries if s.mechanism == "vsphere-ft"]
        assert len(vm.secondaries) == len(wanted_ft), want.name
        for s, w in zip(vm.secondaries, wanted_ft, strict=True):
            assert got_host[s.host or ""] == host_name[w.host or ""]
            assert [got_ds[x.datastore] for x in s.disks] == [ds_name[x.datastore] for x in w.disks]
            assert got_ds[s.config_datastore or ""] == ds_name[w.config_datastore or w.disks[0].datastore]
            assert got_ds[s.metadata_datastore or ""] == ds_name[w.metadata_datastore or w.config_datastore or ""]


def test_stop_removes_everything(vcsim_bin: Path, ft_estate: Estate) -> None:
    lab = VsphereLab(ft_estate)
    lab.start()
    where = lab.local_path("[ams-nfs-a] web01/web01.vmx")
    assert where is not None and where.exists()
    proc = lab._proc
    lab.stop()
    lab.stop()  # idempotent
    assert proc is not None and proc.returncode is not None
    assert not where.exists() and not where.parents[3].exists()


def test_estate_document_round_trips_through_the_estate_reader(ft_estate: Estate, tmp_path: Path) -> None:
    import json

    path = tmp_path / "e.json"
    path.write_text(json.dumps(estate_document(ft_estate)))
    again = load_estates(path)[ft_estate.name]
    assert again.hosts == ft_estate.hosts
    assert again.datastores == ft_estate.datastores
    assert [(v.id, v.disks, v.secondaries) for v in again.vms] == [
        (v.id, v.disks, v.secondaries) for v in ft_estate.vms
    ]
    assert os.environ.get("FTBRIDGE_VCSIM_PASSWORD") is None  # secrets go to the child only
