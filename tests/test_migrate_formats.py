"""Mapping formats: every one round-trips, malformed files give one line naming the entry, and
exports validate against the real schemas (Forklift CRDs, Coriolis JSON schemas) read from
``../shared/real/migration`` (never copied into the project)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftbridge.migrate.formats import (
    ExportContext,
    ExportVM,
    MappingError,
    parse_mapping,
    read_mapping,
    write_mapping,
)
from ftbridge.migrate.formats.pvepairs import format_pairs, parse_pairs
from ftbridge.migrate.mapping import ItemRule, Mapping, Rule


def shared_dir() -> Path | None:
    """``$FTBRIDGE_SHARED``, else ``<repo>/../shared``, else ``/work/shared``."""
    repo = Path(__file__).resolve().parents[1]
    for cand in (os.environ.get("FTBRIDGE_SHARED"), repo.parent / "shared", Path("/work/shared")):
        if cand and (Path(cand) / "real" / "migration").is_dir():
            return Path(cand)
    return None


SHARED = shared_dir()
REAL = SHARED / "real" / "migration" if SHARED else None
needs_real = pytest.mark.skipif(REAL is None, reason="../shared/real/migration is absent (not part of the project)")

SAMPLE = Mapping(
    storage_default="ceph-rtm",
    datastores=(Rule("ams1-netapp-a-01", "ceph-rtm"), Rule("ams2-netapp-c-01", "nfs-rtm-b")),
    disks=(ItemRule("ams-sql01", "2001", "nfs-rtm-c"),),
    network_default="vmbr0",
    networks=(Rule("VM Network", "vmbr0"), Rule("Backup", None)),
    nics=(ItemRule("ams-sql01", "4001", "vmbr1"),),
    clusters=(Rule("ams-stretch", "rtm"),),
    source="vc-ams",
    target="pve-rtm",
)


def test_native_round_trip_keeps_every_rule() -> None:
    text = write_mapping(SAMPLE, "ftbridge")
    again = parse_mapping(text, "ftbridge")
    assert again == SAMPLE
    assert write_mapping(again, "ftbridge") == text


def test_precedence_disk_over_datastore_over_default() -> None:
    from ftbridge.model import VM, Datastore, Disk, PowerState

    ds = Datastore("datastore-101", "ams1-netapp-a-01", "vc-ams", "vmfs", True, (), 1, 1)
    other = Datastore("datastore-9", "elsewhere", "vc-ams", "vmfs", True, (), 1, 1)
    d0, d1 = Disk("2000", 1, ds.id), Disk("2001", 1, ds.id)
    vm = VM("vm-1", "ams-sql01", "vc-ams", None, PowerState.ON, (d0, d1))
    assert SAMPLE.disk_target(vm, d1, ds) == ("nfs-rtm-c", "disk")
    assert SAMPLE.disk_target(vm, d0, ds) == ("ceph-rtm", "datastore")
    assert SAMPLE.disk_target(vm, Disk("2002", 1, other.id), other) == ("ceph-rtm", "default")
    # a rule names a datastore by name or by id in ftbridge's own file
    assert Rule("datastore-101", "x").matches(ds.id, ds.name) and not Rule("datastore-101", "x", "name").matches(
        ds.id, ds.name
    )


@pytest.mark.parametrize("fmt", ["forklift", "coriolis", "pve", "ovirt-dr"])
def test_each_format_round_trips_what_it_can_say(fmt: str) -> None:
    expressible = {
        "forklift": Mapping(
            datastores=(Rule("ams1-netapp-a-01", "ceph-rtm", "name"), Rule("datastore-201", "nfs", "id")),
            networks=(Rule("VM Network", "ns/vmbr0", "name"), Rule("Backup", None, "name"), Rule("m", "pod", "name")),
        ),
        "coriolis": Mapping(
            storage_default="ceph-rtm",
            datastores=(Rule("ams1-netapp-a-01", "ceph-rtm", "name"),),
            disks=(ItemRule(None, "2001", "nfs-rtm-c"),),
            networks=(Rule("VM Network", "vmbr0", "name"),),
        ),
        "pve": Mapping(
            storage_default="ceph-rtm",
            datastores=(Rule("local-lvm", "ceph-rtm", "name"),),
            networks=(Rule("vmbr0", "vmbr1", "name"),),
        ),
        "ovirt-dr": Mapping(
            datastores=(Rule("ams-nfs1", "fra-nfs-c", "name", {"dr_domain_type": "nfs"}),),
            networks=(Rule("VM Network", "ovirtmgmt", "name"),),
            clusters=(Rule("ams-stretch", "fra-prod", "name"),),
        ),
    }[fmt]
    once = parse_mapping(write_mapping(expressible, fmt), fmt)
    assert once == expressible
    assert parse_mapping(write_mapping(once, fmt), fmt) == once


@needs_real
@pytest.mark.parametrize(
    "name",
    sorted(
        p.name for p in ((REAL / "forklift" / "examples").glob("*.yaml") if REAL else []) if "powerstore" not in p.name
    ),
)
def test_real_forklift_examples_round_trip(name: str) -> None:
    assert REAL is not None
    m = read_mapping(REAL / "forklift" / "examples" / name)
    assert parse_mapping(write_mapping(m, "forklift"), "forklift").datastores == m.datastores
    assert parse_mapping(write_mapping(m, "forklift"), "forklift").networks == m.networks


@needs_real
def test_real_coriolis_samples_round_trip() -> None:
    assert REAL is not None
    read = 0
    for p in sorted((REAL / "coriolis" / "examples").glob("*.json")):
        if "endpoint-" in p.name or p.name == "extracted_mappings.json":
            continue
        m = read_mapping(p)
        assert parse_mapping(write_mapping(m, "coriolis"), "coriolis") == m, p.name
        read += 1
    assert read >= 5
    listed = read_mapping(REAL / "coriolis" / "examples" / "api_sample__transfer__transfer-list-resp.json")
    assert listed.datastores == (Rule("dg2vd1", "lvmdriver-1", "name"),)
    assert [(d.vm, d.item, d.target) for d in listed.disks] == [
        ("CI/coriolis-test-vms/openwrt-no-cbt-clone", "3000", "lvmdriver-1")
    ]


@needs_real
def test_negative_real_examples_fail_with_one_line_naming_the_entry() -> None:
    assert REAL is not None
    with pytest.raises(MappingError, match=r"StorageMap powerstore-storagemap: spec\.map: expected a list"):
        read_mapping(REAL / "forklift" / "examples" / "powerstore-README__1_storagemap.yaml")
    with pytest.raises(MappingError, match=r"spec\.map\[0\]\.source: expected an id or a name"):
        read_mapping(REAL / "forklift" / "samples" / "forklift_v1beta1_storagemap.yaml")


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("ftbridge", "[storage]\ndefault = 3\n", r"storage\.default: expected a non-empty string"),
        ("ftbridge", '[storage.datastores]\n"a" = false\n', r'storage\.datastores\."a": expected a target name'),
        ("ftbridge", "[[storage.disks]]\nvm = 'x'\ndisk = '2000'\n", r"storage\.disks\[0\]\.to: missing"),
        ("ftbridge", "[stroage]\n", r"stroage: unknown key"),
        ("ftbridge", "[storage\n", r"malformed TOML"),
        ("coriolis", '{"storage_mappings": {"defalt": "x"}}', r"storage_mappings\.defalt: unknown key"),
        (
            "coriolis",
            '{"storage_mappings": {"backend_mappings": [{"source": "a"}]}}',
            r"backend_mappings\[0\]: expected exactly source and destination",
        ),
        ("coriolis", "[1]", r"expected a JSON object"),
        (
            "forklift",
            "apiVersion: forklift.konveyor.io/v1beta1\nkind: NetworkMap\nmetadata: {name: n}\nspec:\n  map:\n"
            "  - source: {name: a}\n    destination: {type: bridge}\n",
            r"NetworkMap n: spec\.map\[0\]\.destination\.type: 'bridge', expected pod, multus or ignored",
        ),
        ("forklift", "apiVersion: v1\nkind: ConfigMap\n", r"document 1: kind: expected one of"),
        ("pve", "target-storage: local:x\n", r"line 1: target-storage: entry 'local:x' contains invalid ID"),
        ("pve", "target-storage: 1,local:ceph\n", r"identity mapping cannot be combined"),
        ("pve", "target-storage: ceph,nfs\n", r"default target ID can only be provided once"),
        ("pve", "target-bridge: vmbr0:a,vmbr0:b\n", r"duplicate mapping for source 'vmbr0'"),
        ("pve", "qm remote-migrate 100 x --target-bridge 1\n", r"--target-storage is required"),
        (
            "ovirt-dr",
            "dr_import_storages:\n- dr_domain_type: nfs\n  dr_primary_name: a\n",
            r"dr_secondary_name: missing",
        ),
        ("ovirt-dr", "dr_sites_primary_password: x\n", r"not a key the disaster_recovery role reads"),
        (
            "ovirt-dr",
            "dr_lun_mappings:\n- primary_logical_unit_password: s3cret\n",
            r"dr_lun_mappings\[0\]\.primary_logical_unit_password: a password has no place",
        ),
    ],
)
def test_malformed_files_name_the_entry(fmt: str, text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message) as info:
        parse_mapping(text, fmt, source="m")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("m")


# -- Proxmox pair-list grammar (pve-common JSONSchema.pm parse_idmap) ----------------------------
@pytest.mark.parametrize(
    ("text", "default", "entries"),
    [
        ("local-lvm:local-zfs", None, {"local-lvm": "local-zfs"}),
        ("local-lvm:ceph-pool;local:nfs-store", None, {"local-lvm": "ceph-pool", "local": "nfs-store"}),
        ("local-lvm:ceph-pool nfs-store", "nfs-store", {"local-lvm": "ceph-pool"}),
        ("ceph-pool", "ceph-pool", {}),
        ("1", None, {}),
    ],
)
def test_pair_lists_read_as_proxmox_reads_them(text: str, default: str | None, entries: dict[str, str]) -> None:
    assert parse_pairs(text, "storage", "t") == (default, entries)
    assert parse_pairs(format_pairs(default, entries), "storage", "t") == (default, entries)


def test_bridge_ids_follow_their_own_format() -> None:
    assert parse_pairs("vmbr0:vmbr1,x", "bridge", "t") == ("x", {"vmbr0": "vmbr1"})  # one char is a bridge
    with pytest.raises(MappingError, match="storage ID 'x' cannot be shorter than 2 characters"):
        parse_pairs("x", "storage", "t")


def test_pve_lines_never_hold_the_token_and_one_line_per_vm() -> None:
    ctx = ExportContext(
        vms=(
            ExportVM("100", "a", storages=(("local-lvm", "ceph-rtm"),), networks=(("vmbr0", "vmbr1"),), running=True),
            ExportVM("vm-12", "b"),
        )
    )
    text = write_mapping(Mapping(storage_default="ceph-rtm"), "pve", ctx)
    lines = [x for x in text.splitlines() if x.startswith("qm ")]
    assert lines == [
        'qm remote-migrate 100 100 "host=${PVE_REMOTE_HOST},apitoken=${PVE_REMOTE_APITOKEN},'
        'fingerprint=${PVE_REMOTE_FINGERPRINT}" --target-storage local-lvm:ceph-rtm --target-bridge vmbr0:vmbr1 '
        "--online 1"
    ]
    assert "# b: source id 'vm-12' is not a PVE vmid" in text
    again = parse_mapping(text, "pve")
    assert again.storage_default == "ceph-rtm" and again.vms == ("100",)


# -- exports validate against the real schemas ------------------------------------------------
def _crd_schema(name: str) -> dict[str, object]:
    import yaml

    assert REAL is not None
    crd = yaml.safe_load((REAL / "forklift" / "crd" / f"forklift.konveyor.io_{name}.yaml").read_text())
    schema: dict[str, object] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@needs_real
def test_forklift_export_validates_against_the_crds() -> None:
    import jsonschema
    import yaml

    ctx = ExportContext(
        source="vc-ams",
        target="pve-rtm",
        vms=(
            ExportVM(
                "vm-1", "ams-sql01", storages=(("ams1-netapp-a-01", "ceph-rtm"),), networks=(("VM Network", "vmbr0"),)
            ),
        ),
    )
    docs = list(yaml.safe_load_all(write_mapping(SAMPLE, "forklift", ctx)))
    kinds = {"StorageMap": "storagemaps", "NetworkMap": "networkmaps", "Plan": "plans"}
    assert [d["kind"] for d in docs] == ["StorageMap", "NetworkMap", "Plan"]
    for d in docs:
        jsonschema.validate(d, _crd_schema(kinds[d["kind"]]))
    # a broken manifest fails the same check: the validation is not vacuous
    bad = dict(docs[0], spec={"map": [{"source": {"name": "x"}, "destination": {}}]})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _crd_schema("storagemaps"))


@needs_real
def test_coriolis_export_validates_against_its_schemas() -> None:
    import jsonschema

    assert REAL is not None
    sm_schema = json.loads((REAL / "coriolis" / "schemas" / "storage_mappings_schema.json").read_text())
    nm_schema = json.loads((REAL / "coriolis" / "schemas" / "network_map_schema.json").read_text())
    for schema in (sm_schema, nm_schema):
        schema.pop("$schema", None)  # a Coriolis URI, not a meta-schema (see SOURCES.md)
    doc = json.loads(write_mapping(SAMPLE, "coriolis"))
    assert doc["transfers"][0]["instances"] == ["ams-sql01"]
    for t in doc["transfers"]:
        jsonschema.validate(t["storage_mappings"], sm_schema)
        jsonschema.validate(t["network_map"], nm_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"default": "x", "lvm": "y"}, sm_schema)
