"""The oVirt DR role's mapping file: every real file the role runs is read, what it would not run is
refused naming the key, and what ftbridge writes passes the role's own rules, type by type.

The oracle here is written from the role itself, independently of ``drmap``'s tables
(ovirt-ansible-collection roles/disaster_recovery, cited per rule): :data:`ROLE_READS` lists what
``tasks/recover/add_<type>_domain.yml`` and ``recover_engine.yml`` read without a default for each
side; :func:`validator_errors` replays the offline checks of ``files/validator.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ftbridge_ovirt import drmap
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import make_config, real_dr_dir

from ftbridge.errors import ConfigError
from ftbridge.estate import parse_estates
from ftbridge.model import SecondaryState

SAMPLE = Path(__file__).parent / "data" / "dr_mapping.yml"

#: per domain type, the keys the role's add_<type>_domain.yml (and recover_engine.yml's
#: dr_<side>_master_domain condition) read without a default, "{side}" for either direction
ROLE_READS: dict[str, tuple[str, ...]] = {
    "nfs": (
        "dr_{side}_name",
        "dr_{side}_master_domain",
        "dr_{side}_dc_name",
        "dr_{side}_path",
        "dr_{side}_address",
        "dr_storage_domain_type",
        "dr_critical_space_action_blocker",
        "dr_wipe_after_delete",
        "dr_backup",
    ),
    "glusterfs": (
        "dr_{side}_name",
        "dr_{side}_master_domain",
        "dr_{side}_dc_name",
        "dr_{side}_path",
        "dr_{side}_address",
        "dr_storage_domain_type",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_backup",
    ),
    "posixfs": (
        "dr_{side}_name",
        "dr_{side}_master_domain",
        "dr_{side}_dc_name",
        "dr_{side}_path",
        "dr_{side}_address",
        "dr_{side}_vfs_type",
        "dr_storage_domain_type",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_backup",
    ),
    "iscsi": (
        "dr_{side}_name",
        "dr_{side}_master_domain",
        "dr_{side}_dc_name",
        "dr_{side}_address",
        "dr_{side}_target",
        "dr_domain_id",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_discard_after_delete",
        "dr_backup",
    ),
    "fcp": (
        "dr_{side}_name",
        "dr_{side}_master_domain",
        "dr_{side}_dc_name",
        "dr_domain_id",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_discard_after_delete",
        "dr_backup",
    ),
}
LISTS = (
    "dr_cluster_mappings",
    "dr_import_storages",
    "dr_role_mappings",
    "dr_affinity_group_mappings",
    "dr_affinity_label_mappings",
    "dr_network_mappings",
)


def role_keys(kind: str, side: str) -> set[str]:
    return {k.format(side=side) for k in ROLE_READS[kind]}


def validator_errors(data: dict[str, Any]) -> list[str]:
    """The offline checks of the role's files/validator.py, on parsed YAML."""
    errors = []
    for side in ("primary", "secondary"):  # ConnectSDK.validate_primary / validate_secondary
        for what in ("url", "username", "ca_file"):
            if data.get(f"dr_sites_{side}_{what}") is None:
                errors.append(f"dr_sites_{side}_{what} is not initialized")
    for key in LISTS:  # _validate_lists_in_mapping_file
        if data.get(key) is not None and not isinstance(data[key], list):
            errors.append(f"{key} is not a list")
    dup_keys = [
        ("dr_cluster_mappings", "primary_name", "secondary_name"),
        ("dr_import_storages", "dr_primary_name", "dr_secondary_name"),
        ("dr_role_mappings", "primary_name", "secondary_name"),
        ("dr_affinity_group_mappings", "primary_name", "secondary_name"),
        ("dr_affinity_label_mappings", "primary_name", "secondary_name"),
    ]
    for key, a, b in dup_keys:  # _validate_duplicate_keys / _get_dups
        for k in (a, b):
            seen = [x[k] for x in data.get(key) or ()]
            if len(seen) != len(set(seen)):
                errors.append(f"duplicate {k} in {key}")
    for side in ("primary", "secondary"):  # _get_dup_network
        seen = []
        for x in data.get("dr_network_mappings") or ():
            if x.get(f"{side}_profile_name") is None or x.get(f"{side}_network_name") is None:
                errors.append(f"network mapping not initialized on the {side} side")
                continue
            seen.append((x[f"{side}_profile_name"], x[f"{side}_network_name"], x.get(f"{side}_network_dc", "")))
        if len(seen) != len(set(seen)):
            errors.append(f"duplicate network on the {side} side")
    for s in data["dr_import_storages"]:  # _validate_hosted_engine, _validate_export_domain
        if "hosted_storage" in (s["dr_primary_name"], s["dr_secondary_name"]):
            errors.append("hosted storage")
        if s["dr_storage_domain_type"] == "export":
            errors.append("export domain")
    return errors


# the real files -------------------------------------------------------------------------------
FCP_LOW_SPACE = "dr_import_storages[0].dr_warning_low_space: missing"  # add_fcp_domain.yml reads it
#: file -> None (the role runs it, ftbridge reads it) or the key ftbridge names refusing it
EXPECTED: dict[str, str | None] = {
    "generated-by-role-from-replay-estate_edge-filled.yml": None,
    "generated-by-role-from-replay-estate_edge.yml": "dr_sites_secondary_url: missing or empty",
    "ovirt-site-doc-appendix-a.yml": "not valid YAML at line 29",
    "role-example-collection-2025.yml": "dr_import_storages[0].dr_storage_domain_type: missing",
    "role-example-collection-2022.yml": "dr_import_storages[0].dr_storage_domain_type: missing",
    "role-example-standalone-2019.yml": "dr_import_storages[0].dr_storage_domain_type: missing",
    "role-example-standalone-2018-02.yml": "dr_import_storages[0].dr_storage_domain_type: missing",
    "role-example-standalone-2018-01.yml": "dr_import_storages[0].dr_master_domain: the role reads dr_primary_",
    "xrm-controller/60b04b9-ovirt_tests_disaster_recovery_vars_with_iscsi.yml": "dr_sites_secondary_url: missing",
    "xrm-controller/905e7a5-ovirt_tests_store_test1_disaster_recovery_vars.yml": "dr_sites_primary_ca_file: missing",
    "xrm-controller/0a06be9-ovirt_tests_disaster_recovery_vars_with_fcp.yml": FCP_LOW_SPACE,
    "xrm-controller/130a81a-ovirt_tests_disaster_recovery_vars_with_fcp.yml": FCP_LOW_SPACE,
    "xrm-controller/285bed9-ovirt_tests_disaster_recovery_vars_with_fcp.yml": FCP_LOW_SPACE,
}


def _real_files() -> Iterator[Path]:
    base = real_dr_dir()
    yield from sorted(base.glob("*.yml"))
    yield from sorted(base.glob("*/*.yml"))


def test_every_real_file_is_read_or_refused_naming_the_key() -> None:
    base = real_dr_dir()
    files = list(_real_files())
    assert len(files) == 29
    read = 0
    for path in files:
        name = str(path.relative_to(base))
        expected = EXPECTED.get(name)
        if expected is None:
            mapping = drmap.load(path)  # the role runs it: ftbridge reads it
            read += 1
            _check_read(path, mapping)
        else:
            with pytest.raises(ConfigError) as info:
                drmap.load(path)
            assert f"{path}: {expected}" in str(info.value), name
            assert "\n" not in str(info.value)
    assert read == 17


def _check_read(path: Path, mapping: drmap.DrMapping) -> None:
    data = yaml.safe_load(path.read_text())
    written = mapping.to_data()
    for key, v in data.items():  # everything the file says is kept as it said it
        if v:
            assert written[key] == v, (path.name, key)
    again = drmap.loads(drmap.dumps(mapping))
    assert again == mapping  # round trip: nothing read is lost
    for s in data.get("dr_import_storages") or ():  # every entry the role imports is paired
        imported = s["dr_domain_type"] in ROLE_READS and s.get("dr_storage_domain_type", "data") == "data"
        assert imported == any(p.primary_name == s["dr_primary_name"] for p in mapping.storage_mappings())


def test_the_generators_filled_output_is_read_with_what_the_role_skips_said() -> None:
    path = real_dr_dir() / "generated-by-role-from-replay-estate_edge-filled.yml"
    mapping = drmap.load(path)
    assert [(p.primary_name, p.secondary_name) for p in mapping.storage_mappings()] == [
        ("data-nfs-a", "data-nfs-a"),
        ("data-iscsi-b", "data-iscsi-b"),
        ("data-fc-c", "data-fc-c"),
    ]
    assert mapping.names["dr_role_mappings"] == ({"primary_name": None, "secondary_name": None},)  # the stub
    assert mapping.name_map("dr_role_mappings") == {}
    assert any("localfs" in w and "edge01-local" in w for w in mapping.warnings)
    assert any("primary_network_dc" in w for w in mapping.warnings)  # ovirt-dr validate would refuse it


# what the role reads, by key, per storage type ---------------------------------------------------
def _entry(kind: str) -> dict[str, Any]:
    e: dict[str, Any] = {"dr_domain_type": kind}
    for side in ("primary", "secondary"):
        for key in role_keys(kind, side):
            short = key[len(f"dr_{side}_") :] if key.startswith(f"dr_{side}_") else key
            e[key] = {
                "master_domain": side == "primary",
                "target": [f"iqn.2024-01.x:{side}"],
                "dr_critical_space_action_blocker": 5,
                "dr_warning_low_space": 10,
                "dr_wipe_after_delete": False,
                "dr_backup": False,
                "dr_discard_after_delete": False,
                "dr_storage_domain_type": "data",
            }.get(short, f"{side}-{short}")
    e["dr_secondary_master_domain"] = True
    return e


def _doc(*entries: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    data["dr_import_storages"] = list(entries)
    return data


@pytest.mark.parametrize("kind", sorted(ROLE_READS))
def test_each_key_the_role_reads_is_required(kind: str) -> None:
    whole = _entry(kind)
    drmap.parse(_doc(whole))
    for key in sorted(role_keys(kind, "secondary") | (role_keys(kind, "primary") - set())):
        if key.startswith("dr_primary_") and key not in ("dr_primary_name", "dr_primary_dc_name"):
            broken = copy.deepcopy(whole)
            del broken[key]  # a failback would miss it: read, with a warning naming it
            assert any(key in w for w in drmap.parse(_doc(broken)).warnings), key
            continue
        broken = copy.deepcopy(whole)
        del broken[key]
        with pytest.raises(ConfigError, match=rf"dr_import_storages\[0\]\.{key}: missing"):
            drmap.parse(_doc(broken), source="x.yml")


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d.update(dr_import_storage=d.pop("dr_import_storages")), "dr_import_storage"),
        (lambda d: d["dr_import_storages"][0].pop("dr_secondary_name"), "dr_import_storages[0].dr_secondary_name"),
        (lambda d: d["dr_import_storages"][1].update(dr_primary_nmae="x"), "dr_import_storages[1].dr_primary_nmae"),
        (lambda d: d["dr_import_storages"][0].update(dr_domain_type="ceph"), "dr_import_storages[0].dr_domain_type"),
        (lambda d: d["dr_import_storages"][0].update(dr_master_domain=True), "dr_import_storages[0].dr_master_domain"),
        (
            lambda d: d["dr_import_storages"][0].update(dr_secondary_master_domain="maybe"),
            "dr_import_storages[0].dr_secondary_master_domain",
        ),
        (
            lambda d: d["dr_import_storages"][1].update(dr_secondary_port=70000),
            "dr_import_storages[1].dr_secondary_port",
        ),
        (
            lambda d: d["dr_import_storages"][1].update(dr_secondary_target=[]),
            "dr_import_storages[1].dr_secondary_target",
        ),
        (
            lambda d: d["dr_import_storages"][0].update(dr_storage_domain_type="export"),
            "dr_import_storages[0].dr_storage_domain_type",
        ),
        (
            lambda d: d["dr_import_storages"][0].update(dr_secondary_name="hosted_storage"),
            "dr_import_storages[0].dr_secondary_name",
        ),
        (
            lambda d: d["dr_import_storages"][1].update(dr_primary_name="ams-nfs1"),
            "dr_import_storages[1].dr_primary_name",
        ),
        (lambda d: d["dr_cluster_mappings"][0].update(Secondary_name="x"), "dr_cluster_mappings[0].Secondary_name"),
        (lambda d: d["dr_cluster_mappings"][0].update(secondary_name=None), "dr_cluster_mappings[0].secondary_name"),
        (lambda d: d.update(dr_cluster_mappings={"primary_name": "a"}), "dr_cluster_mappings"),
        (lambda d: d["dr_network_mappings"][0].update(primary_vlan=3), "dr_network_mappings[0].primary_vlan"),
        (
            lambda d: d["dr_network_mappings"][0].pop("secondary_profile_id"),
            "dr_network_mappings[0].secondary_profile_id",
        ),
        (
            lambda d: d["dr_lun_mappings"][0].update(secondary_storage_type="STORAGE TYPE COULD NOT BE FETCHED!"),
            "dr_lun_mappings[0].secondary_storage_type",
        ),
        (lambda d: d.update(dr_sites_primary_url=["x"]), "dr_sites_primary_url"),
        (lambda d: d.pop("dr_sites_secondary_ca_file"), "dr_sites_secondary_ca_file"),
    ],
)
def test_malformed_file_names_the_wrong_key(tmp_path: Path, edit: Callable[[dict[str, Any]], object], key: str) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    edit(data)
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        drmap.load(bad)
    assert f"{bad}: {key}:" in str(info.value)


@pytest.mark.parametrize(
    "key, where",
    [
        ("dr_sites_secondary_password", lambda d: d),
        ("dr_secondary_password", lambda d: d["dr_import_storages"][1]),
        ("secondary_logical_unit_password", lambda d: d["dr_lun_mappings"][0]),
        ("primary_logical_unit_password", lambda d: d["dr_lun_mappings"][0]),
    ],
)
def test_passwords_are_vault_references_never_values(
    key: str, where: Callable[[dict[str, Any]], dict[str, Any]], tmp_path: Path
) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    where(data)[key] = "hunter2"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        drmap.load(bad)
    assert key in str(info.value) and "vault" in str(info.value) and "hunter2" not in str(info.value)
    where(data)[key] = "{{ vault_chap }}"  # a reference to the role's vault file: what the role reads
    ok = drmap.parse(data)
    assert "{{ vault_chap }}" in drmap.dumps(ok)
    where(data)[key] = ""  # no CHAP
    drmap.parse(data)


def test_round_trip_of_the_sample(tmp_path: Path) -> None:
    first = drmap.load(SAMPLE)
    out = tmp_path / "out.yml"
    drmap.save(first, out)
    second = drmap.load(out)
    assert second == first
    assert second.to_data() == yaml.safe_load(SAMPLE.read_text())
    assert drmap.dumps(second) == out.read_text()
    pairs = first.storage_mappings()
    assert [(p.primary_name, p.secondary_name) for p in pairs] == [
        ("ams-nfs1", "ams-nfs1-replica"),
        ("ams-iscsi1", "ams-iscsi1-replica"),
    ]
    assert pairs[1].secondary_id == "2b64fa80-1cc5-5c05-8374-995b708bf497" and pairs[0].secondary_dc == "rtm-dc"
    assert validator_errors(yaml.safe_load(out.read_text())) == []


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        drmap.loads("dr_import_storages:\n  - [unclosed\n", source="x.yml")
    with pytest.raises(ConfigError, match=r"\(top level\)"):
        drmap.loads("- a\n- b\n")
    with pytest.raises(ConfigError, match="cannot read"):
        drmap.load(tmp_path / "missing.yml")


# the export of a lab estate, per storage type ---------------------------------------------------
KINDS = ("nfs", "iscsi", "fcp", "glusterfs", "posixfs")
EXPORT_ESTATE = {
    "estates": {
        "primary": {
            "flavor": "ovirt",
            "hosts": [
                {"id": "h1", "name": "p-host1", "cluster": "prod"},
                {"id": "h2", "name": "p-host2", "cluster": "prod"},
            ],
            "datastores": [
                {"id": f"sd-{k}", "name": f"p-{k}", "kind": k, "hosts": ["h1", "h2"], "capacity_gib": 500}
                for k in KINDS
            ],
            "networks": [{"id": "prod", "name": "prod", "kind": "ovirt-network", "vlan": 10}],
            "vms": [
                {
                    "id": f"vm-{k}",
                    "name": f"vm-{k}",
                    "host": "h1",
                    "nics": [{"id": "nic1", "network": "prod"}],
                    "disks": [{"id": "d0", "size_gib": 10, "datastore": f"sd-{k}"}],
                }
                for k in KINDS
            ],
        },
        "secondary": {
            "flavor": "ovirt",
            "hosts": [{"id": "s1", "name": "s-host1", "cluster": "recovery"}],
            "datastores": [{"id": "sd-s", "name": "s-nfs", "kind": "nfs", "hosts": ["s1"], "capacity_gib": 100}],
            "networks": [{"id": "prod", "name": "prod", "kind": "ovirt-network", "vlan": 110}],
        },
    }
}


@pytest.fixture
def two_labs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OvirtLab, OvirtLab]]:
    estates = parse_estates(EXPORT_ESTATE)
    labs = (OvirtLab(estates["primary"], op_seconds=0.02), OvirtLab(estates["secondary"], op_seconds=0.02))
    for lab in labs:
        lab.start()
        for k, v in lab.secrets().items():
            monkeypatch.setenv(k, v)
    try:
        yield labs
    finally:
        for lab in labs:
            lab.stop()


@pytest.mark.lab
def test_export_of_a_lab_estate_passes_the_roles_rules_per_storage_type(
    two_labs: tuple[OvirtLab, OvirtLab], tmp_path: Path
) -> None:
    primary, secondary = two_labs
    pairs = []
    for k in KINDS:
        pair: dict[str, Any] = {"primary_name": f"p-{k}", "secondary_name": f"s-{k}", "secondary_dc": "secondary"}
        if k in ("nfs", "glusterfs", "posixfs"):
            pair |= {"secondary_address": f"replica.{k}.example", "secondary_path": f"/exports/{k}"}
        if k == "iscsi":
            pair |= {
                "secondary_address": "198.51.100.7",
                "secondary_target": ["iqn.2024-01.x:replica"],
                "secondary_username": "chap",
                "secondary_password_var": "vault_dr_chap",
            }
        pairs.append(pair)
    drv = OvirtDriver(
        make_config(
            primary,
            dr_storage_mappings=pairs,
            dr_secondary_endpoint="secondary",
            dr_cluster_mappings=[{"primary_name": "prod", "secondary_name": "recovery"}],
        ),
        endpoint="primary",
    )
    sdrv = OvirtDriver(make_config(secondary), endpoint="secondary")
    drv.open()
    sdrv.open()
    try:
        dr = {v.name: s for v in drv.inventory().vms for s in v.secondaries if s.mechanism == "ovirt-dr"}
        exported = drv.ex_dr_mapping(secondary=sdrv)
    finally:
        drv.close()
        sdrv.close()
    assert set(dr) == {f"vm-{k}" for k in KINDS} and all(s.state is SecondaryState.UNKNOWN for s in dr.values())
    out = tmp_path / "disaster_recovery_vars.yml"
    drmap.save(exported, out)
    data = yaml.safe_load(out.read_text())
    assert validator_errors(data) == []
    by_kind = {s["dr_domain_type"]: s for s in data["dr_import_storages"]}
    assert set(by_kind) == set(KINDS)
    for kind, entry in by_kind.items():
        for side in ("primary", "secondary"):  # failover and failback both run
            missing = role_keys(kind, side) - set(entry)
            assert not missing, (kind, side, missing)
            assert all(entry[k] not in (None, "") for k in role_keys(kind, side)), (kind, side)
    assert sum(bool(drmap.as_bool(s["dr_secondary_master_domain"])) for s in data["dr_import_storages"]) == 1
    assert by_kind["iscsi"]["dr_secondary_password"] == "{{ vault_dr_chap }}"
    assert by_kind["fcp"]["dr_domain_id"] == primary.id("sd", "sd-fcp")
    assert data["dr_cluster_mappings"] == [{"primary_name": "prod", "secondary_name": "recovery"}]
    (net,) = [n for n in data["dr_network_mappings"] if n["primary_network_name"] == "prod"]
    assert net["secondary_profile_id"] == secondary.id("profile", "prod")
    assert net["primary_profile_id"] == primary.id("profile", "prod")
    assert data["dr_sites_secondary_url"] == secondary.url() and data["dr_sites_primary_ca_file"]
    assert drmap.load(out) == exported  # what ftbridge writes, it reads


@pytest.mark.lab
def test_export_names_the_config_key_it_lacks(two_labs: tuple[OvirtLab, OvirtLab]) -> None:
    primary, _ = two_labs
    drv = OvirtDriver(
        make_config(
            primary,
            dr_storage_mappings=[{"primary_name": "p-nfs", "secondary_name": "s-nfs", "secondary_dc": "secondary"}],
            dr_secondary_endpoint="secondary",
        ),
        endpoint="primary",
    )
    drv.open()
    try:
        with pytest.raises(ConfigError, match=r"endpoints\.primary\.dr_storage_mappings\[0\]\.secondary_path"):
            drv.ex_dr_mapping()
    finally:
        drv.close()


@pytest.mark.lab
def test_dr_pairs_need_a_secondary_endpoint(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver(dr_storage_mappings=[{"primary_name": "ams-nfs1", "secondary_name": "x"}])
    with pytest.raises(ConfigError, match="dr_secondary_endpoint"):
        drv.open()
    drv.close()


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
        (cl,) = [s for s in vms["clnode1"].secondaries if s.mechanism == "ovirt-dr"]
        quorum = next(d for d in vms["clnode1"].disks if d.kind == "lun")
        assert cl.missing == (quorum.id,)  # the sample maps another LUN: this one is not replicated
    finally:
        drv.close()
