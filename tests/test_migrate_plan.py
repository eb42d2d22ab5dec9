"""Migration plans on the demo: vc-ams to pve-rtm and to ovirt-fra, then verify after the move.

What a broken planner gets wrong here: a primary on storage one host mounts, a protected VM
without a secondary (or with one the model does not call separated), FT reported as anything
but degraded, a plan that changes between runs, a mapping entry that does not fit accepted
silently, and a moved estate that verify or plan misreads.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import copy_demo, ftb

from ftbridge.config import Config, load_config
from ftbridge.inventory import Inventory
from ftbridge.migrate import make_migration
from ftbridge.migrate.check import check_mapping
from ftbridge.migrate.formats import MappingError, parse_mapping
from ftbridge.migrate.mapping import Mapping, Rule
from ftbridge.migrate.verify import verify
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Config, Inventory]:
    path = copy_demo(tmp_path)
    cfg = load_config(path)
    with Session(cfg) as s:
        inv = collect(s)
    return path, cfg, inv


@pytest.mark.parametrize("target", ["pve-rtm", "ovirt-fra"])
def test_demo_plan_shared_primaries_and_separated_secondaries(
    demo: tuple[Path, Config, Inventory], target: str
) -> None:
    _, cfg, inv = demo
    m, doc = make_migration(inv, "vc-ams", inv, target, cfg, created_at=0)
    assert doc["summary"]["infeasible"] == 0 and doc["summary"]["planned"] == 23
    for v in doc["vms"]:
        for d in v["disks"]:
            ds = inv.datastore(target, d["to"])
            assert ds is not None and ds.shared, (v["vm_name"], d)
            host = inv.host(target, v["host"])
            assert host is not None and host.id in ds.hosts
    protected = [v for v in doc["vms"] if v["protection"]["wanted"]]
    src = {v.name: v for v in inv.vms if v.endpoint == "vc-ams"}
    assert {v["vm_name"] for v in protected} >= {n for n, v in src.items() if v.secondaries}
    for v in protected:
        p = v["protection"]
        assert p["mechanism"] is not None, (v["vm_name"], p["reason"])
        # checked again here with the model's one separation function, on the projected VM
        vm = m.projected.vm(target, f"vc-ams/{v['vm']}")
        assert vm is not None
        from ftbridge.model import Level, Secondary, SecondaryDisk

        sec = Secondary("x", p["mechanism"], tuple(SecondaryDisk(k, x) for k, x in p["spec"]["disks"].items()))
        where = m.projected.secondary_location(vm, sec)
        assert m.projected.primary_location(vm).separated_from(where, Level(p["level"])), v["vm_name"]
        assert p["separated"] is True


def test_demo_gaps_mark_ft_degraded_with_new_rpo_and_rto(demo: tuple[Path, Config, Inventory]) -> None:
    _, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, created_at=0)
    ft = [v for v in doc["vms"] if "vsphere-ft" in v["gap"]["source"]["mechanisms"]]
    assert len(ft) == 6
    for v in ft:
        g = v["gap"]
        assert g["status"] == "degraded", v["vm_name"]
        assert g["source"]["rpo"] == 0 and g["source"]["rto"] == 0 and g["source"]["kinds"] == ["lockstep"]
        assert g["target"]["rpo"] == 3600  # a refreshed copy: as old as tier1's 1 h RPO allows
        assert g["target"]["rto"] == 300
        assert "RPO 0 becomes up to 1 h" in g["restore"]
    gained = [v for v in doc["vms"] if v["gap"]["status"] == "gained"]
    assert {v["vm_name"] for v in gained} == {"ams-pay01", "ams-ldap01", "ams-dwh01"}


def test_plan_is_deterministic(demo: tuple[Path, Config, Inventory]) -> None:
    _, cfg, inv = demo
    one = json.dumps(make_migration(inv, "vc-ams", inv, "ovirt-fra", cfg, created_at=0)[1], sort_keys=True)
    two = json.dumps(make_migration(inv, "vc-ams", inv, "ovirt-fra", cfg, created_at=0)[1], sort_keys=True)
    assert one == two


def test_mapping_drives_placement_and_is_checked(demo: tuple[Path, Config, Inventory]) -> None:
    _, cfg, inv = demo
    vms = [v for v in inv.vms if v.endpoint == "vc-ams"]
    mapping = parse_mapping(
        '[storage]\ndefault = "ceph-rtm"\n[storage.datastores]\n"ams2-netapp-c-01" = "nfs-rtm-b"\n'
        '[[storage.disks]]\nvm = "ams-sql01"\ndisk = "2001"\nto = "nfs-rtm-c"\n',
        "ftbridge",
        source="map.toml",
    )
    check_mapping(mapping, inv, "vc-ams", inv, "pve-rtm", vms)
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, mapping, created_at=0)
    disks = {(v["vm_name"], d["id"]): (d["to_name"], d["rule"]) for v in doc["vms"] for d in v["disks"]}
    assert disks[("ams-sql01", "2001")] == ("nfs-rtm-c", "disk")
    assert disks[("ams-sql01", "2000")] == ("ceph-rtm", "default")
    assert disks[("ams-erp02", "2000")] == ("nfs-rtm-b", "datastore")
    for bad, message in [
        (
            Mapping(datastores=(Rule("ams9", "ceph-rtm", where="map.toml: storage.datastores.ams9"),)),
            "has no datastore 'ams9'",
        ),
        (Mapping(storage_default="local-zfs@pve-rtm-1", origin="map.toml"), "is not shared"),
        (Mapping(storage_default="nope", origin="map.toml"), "pve-rtm has no datastore 'nope'"),
        (
            Mapping(storage_default="nfs-rtm-c", origin="map.toml"),
            r"sends 2,660 GiB to nfs-rtm-c, which has .* too small",
        ),
    ]:
        with pytest.raises(MappingError, match=message) as info:
            check_mapping(bad, inv, "vc-ams", inv, "pve-rtm", vms)
        assert str(info.value).startswith("map.toml")


def test_headroom_across_the_migration_makes_vms_infeasible_in_a_sentence(demo: tuple[Path, Config, Inventory]) -> None:
    _, cfg, inv = demo
    # nfs-rtm-c has 2,048 GiB; the web VMs fit, the big ones then find no room above its headroom
    mapping = Mapping(storage_default="nfs-rtm-c")
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, mapping, created_at=0)
    bad = [v for v in doc["vms"] if v["status"] == "infeasible"]
    assert bad and all("nfs-rtm-c" in v["reason"] and "headroom" in v["reason"] for v in bad)
    used = next(d for d in doc["datastores"] if d["name"] == "nfs-rtm-c")
    assert used["free_after_primaries"] >= used["capacity"] * used["headroom_pct"] / 100


def test_waves_keep_their_size(demo: tuple[Path, Config, Inventory]) -> None:
    _, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, wave_size=5, created_at=0)
    counts: dict[int, int] = {}
    for v in doc["vms"]:
        counts[v["wave"]] = counts.get(v["wave"], 0) + 1
    assert doc["summary"]["waves"] == 5 and max(counts.values()) == 5


# -- after the move: the sim's target estate with the VMs where the plan put them ------------------
def _land(tmp: Path, doc: dict[str, Any], deviate: str | None = None) -> Path:
    """A copy of the demo estate with the planned VMs on pve-rtm (no secondaries: the tools drop
    them), served by the sim from a new file; ``deviate`` puts one VM's disk elsewhere."""
    data = tomllib.loads((tmp / "estate.toml").read_text())
    target = data["estates"]["pve-rtm"]
    for n, v in enumerate(doc["vms"]):
        disks = [{"id": f"scsi{i}", "size": d["size"], "datastore": d["to"]} for i, d in enumerate(v["disks"])]
        if v["vm_name"] == deviate:
            disks[0]["datastore"] = "nfs-rtm-c"
        target["vms"].append(
            {
                "id": str(900 + n),
                "name": v["vm_name"],
                "host": v["host"],
                "disks": disks,
                "tags": [],
                "vcpus": v["vcpus"],
                "memory": v["memory"],
                "uuid": v["uuid"],
            }
        )
        target["vms"][-1]["nics"] = [{"id": f"net{i}", "network": x["to"]} for i, x in enumerate(v["nics"])]
        src = next(x for x in data["estates"]["vc-ams"]["vms"] if x["name"] == v["vm_name"])
        target["vms"][-1]["tags"] = src.get("tags", [])
    landed = tmp / "landed.json"
    landed.write_text(json.dumps({"estates": {"pve-rtm": target}}))
    cfg = (
        (tmp / "ftbridge.toml")
        .read_text()
        .replace(
            '[endpoints.pve-rtm]\ndriver = "sim"\nestate = "estate.toml"',
            '[endpoints.pve-rtm]\ndriver = "sim"\nestate = "landed.json"',
        )
    )
    (tmp / "moved.toml").write_text(cfg)
    return tmp / "moved.toml"


def test_verify_after_the_move_shows_no_deviation_and_plan_closes_protection(
    demo: tuple[Path, Config, Inventory],
) -> None:
    from ftbridge.planning import make_plan

    path, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, created_at=0)
    moved_cfg = load_config(_land(path.parent, doc))
    with Session(moved_cfg) as s:
        after = collect(s, ["pve-rtm"])
    report = verify(doc, after, "pve-rtm", moved_cfg)
    assert report.matched == 23 and report.deviations == []
    assert report.plan is not None
    protected = {v["vm_name"] for v in doc["vms"] if v["protection"]["mechanism"]}
    restored = {a["vm_name"] for a in report.plan["actions"] if a["kind"] == "protect"}
    assert restored == protected
    # and the ordinary planner closes the policy's protection findings of the moved VMs by itself
    plan = make_plan(after, moved_cfg)
    closed = {c for a in plan["actions"] for c in a["closes"]}
    moved = {report.matches[n] for n in protected}
    policy_wants = [f"no-secondary:pve-rtm/{vid}" for vid in sorted(moved)]
    assert policy_wants and all(f in closed for f in policy_wants)


def test_verify_reports_a_disk_on_another_datastore(demo: tuple[Path, Config, Inventory]) -> None:
    path, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, created_at=0)
    moved_cfg = load_config(_land(path.parent, doc, deviate="ams-web03"))
    with Session(moved_cfg) as s:
        after = collect(s, ["pve-rtm"])
    report = verify(doc, after, "pve-rtm", moved_cfg)
    assert [(d.vm_name, d.kind) for d in report.deviations] == [("ams-web03", "disk")]
    assert "is on nfs-rtm-c, planned on ceph-rtm" in report.deviations[0].message


# -- the command line ----------------------------------------------------------------------------
def test_cli_plan_gaps_export_and_a_bad_mapping(tmp_path: Path) -> None:
    path = copy_demo(tmp_path)
    out = tmp_path / "m.json"
    r = ftb("-c", str(path), "migrate", "plan", "-s", "vc-ams", "-t", "pve-rtm", "--out", str(out), "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["kind"] == "ftbridge-migration-plan" and out.is_file()
    r = ftb("-c", str(path), "migrate", "gaps", "--plan", str(out), "-o", "json")
    assert r.code == 0 and {x["status"] for x in json.loads(r.out)["vms"]} >= {"degraded", "gained"}
    r = ftb("-c", str(path), "migrate", "export", "--plan", str(out), "--format", "pve")
    assert r.code == 0 and "target-storage:" in r.out
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage.datastores]\n"ams1-netapp-a-01" = "local-lvm@pve-rtm-1"\n')
    r = ftb("-c", str(path), "migrate", "plan", "-s", "vc-ams", "-t", "pve-rtm", "--map", str(bad))
    assert r.code == 3
    assert r.err.strip().splitlines() == [
        f'error: {bad}: storage.datastores."ams1-netapp-a-01": local-lvm@pve-rtm-1 on pve-rtm is not shared '
        "(one host mounts it): a primary must be on shared storage"
    ]


def test_plan_file_follows_its_schema_and_refuses_edits(demo: tuple[Path, Config, Inventory], tmp_path: Path) -> None:
    import jsonschema

    from ftbridge.errors import PlanError
    from ftbridge.migrate.planfile import load_migration, write_migration

    _, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "ovirt-fra", cfg, created_at=0)
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "ftbridge/schemas/migration-plan.schema.json").read_text()
    )
    jsonschema.validate(doc, schema)
    path = tmp_path / "m.json"
    write_migration(doc, path)
    assert load_migration(path)["plan_id"] == doc["plan_id"]
    edited = dict(doc, summary={**doc["summary"], "planned": 1})
    path.write_text(json.dumps(edited))
    with pytest.raises(PlanError, match="does not match its plan_id"):
        load_migration(path)


def test_planner_itself_never_lands_a_primary_on_local_storage(demo: tuple[Path, Config, Inventory]) -> None:
    """Even without the mapping check (the Python API), a mapped local target makes VMs infeasible."""
    _, cfg, inv = demo
    _, doc = make_migration(inv, "vc-ams", inv, "pve-rtm", cfg, Mapping(storage_default="local-zfs@pve-rtm-1"))
    assert doc["summary"]["planned"] == 0
    assert all("local-zfs@pve-rtm-1 is not shared storage" in v["reason"] for v in doc["vms"])


def test_no_protection_is_planned_on_a_target_that_cannot_protect(demo: tuple[Path, Config, Inventory]) -> None:
    """What the target's site offers travels in its inventory (``probe()``: a read-only oVirt
    account offers nothing that changes): a migration plan promising secondaries there would
    promise what ftbridge cannot make. The VMs are placed; their protection says why not."""
    from dataclasses import replace

    _, cfg, inv = demo
    eps = [
        replace(e, capabilities=("inventory", "replication_status", "health")) if e.name == "ovirt-fra" else e
        for e in inv.endpoints
    ]
    target = Inventory(eps, inv.hosts, inv.datastores, inv.vms, inv.collected_at, inv.networks)
    _, doc = make_migration(inv, "vc-ams", target, "ovirt-fra", cfg, created_at=0)
    assert doc["summary"]["planned"] == 23
    wanted = [v["protection"] for v in doc["vms"] if v["protection"]["wanted"]]
    assert wanted and all(p["mechanism"] is None for p in wanted)
    assert all("offers no protect" in p["reason"] for p in wanted), {p["reason"] for p in wanted}
