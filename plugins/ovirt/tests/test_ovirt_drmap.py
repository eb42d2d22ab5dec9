"""The oVirt DR role's mapping file: round trip without loss, errors that name the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from ftbridge_ovirt import drmap
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.errors import ConfigError
from ftbridge.model import SecondaryState

SAMPLE = Path(__file__).parent / "data" / "dr_mapping.yml"


def test_round_trip_import_export_import(tmp_path: Path) -> None:
    first = drmap.load(SAMPLE)
    out = tmp_path / "out.yml"
    drmap.save(first, out)
    second = drmap.load(out)
    assert second == first
    assert second.to_data() == yaml.safe_load(SAMPLE.read_text())  # nothing the file said is lost
    assert drmap.dumps(second) == out.read_text()  # and the export is stable
    pairs = first.storage_mappings()
    assert [(p.primary_name, p.secondary_name) for p in pairs] == [
        ("ams-nfs1", "ams-nfs1-replica"), ("ams-iscsi1", "ams-iscsi1-replica")]
    assert pairs[1].secondary_id == "2b64fa80-1cc5-5c05-8374-995b708bf497" and pairs[0].secondary_dc == "rtm-dc"


@pytest.mark.parametrize("edit, key", [
    (lambda d: d.update(dr_import_storage=d.pop("dr_import_storages")), "dr_import_storage"),
    (lambda d: d["dr_import_storages"][0].pop("dr_secondary_name"), "dr_import_storages[0].dr_secondary_name"),
    (lambda d: d["dr_import_storages"][1].update(dr_primary_nmae="x"), "dr_import_storages[1].dr_primary_nmae"),
    (lambda d: d["dr_import_storages"][0].update(dr_domain_type="ceph"), "dr_import_storages[0].dr_domain_type"),
    (lambda d: d["dr_cluster_mappings"][0].update(Secondary_name="x"), "dr_cluster_mappings[0].Secondary_name"),
    (lambda d: d["dr_role_mappings"][0].update(primary_name=""), "dr_role_mappings[0].primary_name"),
    (lambda d: d.update(dr_cluster_mappings={"primary_name": "a"}), "dr_cluster_mappings"),
    (lambda d: d.update(dr_sites_secondary_password="hunter2"), "dr_sites_secondary_password"),
    (lambda d: d["dr_network_mappings"][0].update(primary_vlan=3), "dr_network_mappings[0].primary_vlan"),
    (lambda d: d.update(dr_sites_primary_url=["x"]), "dr_sites_primary_url"),
])
def test_malformed_file_names_the_wrong_key(tmp_path: Path, edit: Callable[[dict], object], key: str) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    edit(data)
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        drmap.load(bad)
    assert f"{bad}: {key}:" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        drmap.loads("dr_import_storages:\n  - [unclosed\n", source="x.yml")
    with pytest.raises(ConfigError, match=r"\(top level\)"):
        drmap.loads("- a\n- b\n")
    with pytest.raises(ConfigError, match="cannot read"):
        drmap.load(tmp_path / "missing.yml")


@pytest.mark.lab
def test_paired_domains_give_ovirt_dr_secondaries(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver(dr_mapping_file=str(SAMPLE), dr_secondary_endpoint="ovirt-rtm")
    drv.open()
    try:
        vms = {v.name: v for v in drv.inventory().vms}
        (dr,) = [s for s in vms["web01"].secondaries if s.mechanism == "ovirt-dr"]
        assert dr.target_endpoint == "ovirt-rtm" and dr.state is SecondaryState.UNKNOWN
        assert dr.disks[0].datastore == "2b64fa80-1cc5-5c05-8374-995b708bf497"
        assert dr.disks[0].path.startswith("ams-iscsi1-replica:")
        assert any(s.mechanism == "ovirt-dr" for s in vms["db01"].secondaries)
        exported = drv.ex_dr_mapping(secondary_url="https://engine-rtm.example.net/ovirt-engine/api")
        again = drmap.loads(drmap.dumps(exported))
        assert again == exported
        assert {s["dr_primary_name"] for s in again.storages} == {"ams-nfs1", "ams-iscsi1"}
        assert {p.primary_name for p in again.storage_mappings()} == set(drv.ex_dr_pairs())
    finally:
        drv.close()


@pytest.mark.lab
def test_dr_pairs_need_a_secondary_endpoint(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver(dr_storage_mappings=[{"primary_name": "ams-nfs1", "secondary_name": "x"}])
    with pytest.raises(ConfigError, match="dr_secondary_endpoint"):
        drv.open()
    drv.close()
