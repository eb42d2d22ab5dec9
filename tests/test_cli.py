"""The real ``ftbridge`` command, in a subprocess: outputs, schemas, exit codes, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import jsonschema
import pytest
from helpers import PLUGINS, ROOT, ftb

SCHEMAS = ROOT / "ftbridge" / "schemas"


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def test_demo_prints_an_audit_with_every_rule(tmp_path: Path) -> None:
    r = ftb("demo", "--reset", env={"XDG_STATE_HOME": str(tmp_path)})
    assert r.code == 0, r.err
    for rule in (
        "primary-not-shared",
        "no-secondary",
        "secondary-not-separated",
        "secondary-on-primary-host",
        "secondary-lag",
        "ft-metadata-not-shared",
        "datastore-over-headroom",
    ):
        assert rule in r.out
    for endpoint in ("vc-ams", "pve-rtm", "ovirt-fra"):
        assert endpoint in r.out
    assert "Traceback" not in r.err


def test_inventory_and_audit_json_follow_their_schemas(demo_config: Path) -> None:
    inv = ftb("-c", str(demo_config), "inventory", "-o", "json")
    assert inv.code == 0, inv.err
    inv_data = json.loads(inv.out)
    jsonschema.validate(inv_data, schema("inventory"))
    assert len(inv_data["vms"]) >= 55
    aud = ftb("-c", str(demo_config), "audit", "-o", "json")
    assert aud.code == 1, aud.err  # the demo has findings
    aud_data = json.loads(aud.out)
    jsonschema.validate(aud_data, schema("audit"))
    assert aud_data["summary"]["findings"] == len(aud_data["findings"]) > 20


def test_schema_rejects_what_it_should() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 2}, schema("inventory"))


def test_saved_inventory_audits_offline_like_the_live_one(demo_config: Path, tmp_path: Path) -> None:
    inv = ftb("-c", str(demo_config), "inventory", "-o", "json")
    saved = tmp_path / "inv.json"
    saved.write_text(inv.out)
    live = json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)
    # the sim estate vanishes: the offline audit must not need it
    (demo_config.parent / "estate.toml").unlink()
    for p in demo_config.parent.glob("*.simstate.db*"):
        p.unlink()
    offline = ftb("-c", str(demo_config), "audit", "--from", str(saved), "-o", "json")
    assert offline.code == 1, offline.err
    assert [f["id"] for f in json.loads(offline.out)["findings"]] == [f["id"] for f in live["findings"]]


def test_an_inventory_saved_during_an_outage_reads_back(demo_config: Path, tmp_path: Path) -> None:
    """A datastore is lost at 2 a.m.: the copies on it are broken, with the platform's reason,
    and the inventory an operator saves then must read back for an offline audit."""
    before = json.loads(ftb("-c", str(demo_config), "inventory", "-o", "json").out)
    names = {(d["endpoint"], d["id"]): d["name"] for d in before["datastores"]}
    ep, ds = next((v["endpoint"], x["datastore"]) for v in before["vms"] for s in v["secondaries"] for x in s["disks"])
    r = ftb("-c", str(demo_config), "sim", "fault", ep, "--datastore-down", names[(ep, ds)])
    assert r.code == 0, r.err
    inv = ftb("-c", str(demo_config), "inventory", "-o", "json")
    data = json.loads(inv.out)
    reasons = [s.get("reason") for v in data["vms"] for s in v["secondaries"] if s["state"] == "broken"]
    assert "its storage or host is not available" in reasons  # what the saved file must carry
    jsonschema.validate(data, schema("inventory"))
    saved = tmp_path / "outage.json"
    saved.write_text(inv.out)
    live = json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)
    offline = ftb("-c", str(demo_config), "audit", "--from", str(saved), "-o", "json")
    assert offline.code == 1, offline.err
    assert [f["id"] for f in json.loads(offline.out)["findings"]] == [f["id"] for f in live["findings"]]


def test_fail_on_threshold(demo_config: Path) -> None:
    assert ftb("-c", str(demo_config), "audit", "--fail-on", "critical").code == 0
    assert ftb("-c", str(demo_config), "audit", "--fail-on", "error").code == 1
    bad = ftb("-c", str(demo_config), "audit", "--fail-on", "sometimes")
    assert bad.code == 2 and "sometimes" in bad.err


def test_drivers_list_and_show() -> None:
    r = ftb("drivers", "list", "-o", "json")
    assert r.code == 0
    assert "sim" in {d["name"] for d in json.loads(r.out)}
    r = ftb("drivers", "show", "sim", "-o", "json")
    data = json.loads(r.out)
    assert "protect" in data["capabilities"] and {"vsphere-ft", "pve-replication"} <= {
        m["name"] for m in data["mechanisms"]
    }
    assert "estate" in {k["key"] for k in data["config"]}


def test_endpoints_check_ok(demo_config: Path) -> None:
    r = ftb("-c", str(demo_config), "endpoints", "check", "-o", "json")
    assert r.code == 0, r.err
    assert {e["endpoint"] for e in json.loads(r.out) if e["ok"]} == {"vc-ams", "pve-rtm", "ovirt-fra"}


# --- bad input: one line naming what is wrong, a documented exit code, no traceback ----------


def one_line_error(r, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == code, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "Traceback" not in r.err
    assert r.out == ""


SIM = '[endpoints.lab]\ndriver = "sim"\nestate = "estate.toml"\nname = "lab"\n'


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    (tmp_path / "estate.toml").write_text((ROOT / "tests" / "data" / "small_estate.toml").read_text())
    return tmp_path


@pytest.mark.parametrize(
    ("config", "code", "needles"),
    [
        ("[endpoints.lab\n", 3, ["ftbridge.toml", "malformed TOML"]),
        (SIM + "colour = 1\n", 3, ["endpoints.lab.colour: unknown key"]),
        (SIM + "op_seconds = 'slow'\n", 3, ["endpoints.lab.op_seconds", "expected a number, got a string"]),
        (SIM + "password = { env = 'FTB_TEST_UNSET' }\n", 3, ["endpoints.lab.password", "FTB_TEST_UNSET"]),
        ('[endpoints.x]\ndriver = "vmware-classic"\n', 4, ["endpoints.x.driver", "'vmware-classic'"]),
        (SIM.replace('name = "lab"', 'name = "nope"'), 3, ["no estate named 'nope'"]),
    ],
)
def test_bad_config(lab_dir: Path, config: str, code: int, needles: list[str]) -> None:
    (lab_dir / "ftbridge.toml").write_text(config)
    one_line_error(ftb("-c", str(lab_dir / "ftbridge.toml"), "inventory"), code, *needles)


def test_missing_config_file(tmp_path: Path) -> None:
    one_line_error(ftb("-c", str(tmp_path / "nope.toml"), "audit"), 3, "nope.toml", "cannot read config")


def test_debug_shows_the_traceback(lab_dir: Path) -> None:
    (lab_dir / "ftbridge.toml").write_text(SIM + "colour = 1\n")
    r = ftb("--debug", "-c", str(lab_dir / "ftbridge.toml"), "inventory")
    assert r.code == 3 and "Traceback" in r.err


def test_driver_that_fails_to_import(lab_dir: Path) -> None:
    (lab_dir / "ftbridge.toml").write_text('[endpoints.b]\ndriver = "broken"\n')
    env = {"PYTHONPATH": str(PLUGINS), "FTBRIDGE_TEST_BROKEN_IMPORT": "1"}
    r = ftb("-c", str(lab_dir / "ftbridge.toml"), "inventory", env=env)
    one_line_error(r, 4, "'broken'", "ftbridge-testplugins", "vendor_sdk_that_is_not_installed")
    # listing still works: it imports nothing
    listed = ftb("drivers", "list", "-o", "json", env=env)
    assert listed.code == 0 and "broken" in {d["name"] for d in json.loads(listed.out)}


def test_driver_for_another_api(lab_dir: Path) -> None:
    (lab_dir / "ftbridge.toml").write_text('[endpoints.o]\ndriver = "oldapi"\n')
    r = ftb("-c", str(lab_dir / "ftbridge.toml"), "inventory", env={"PYTHONPATH": str(PLUGINS)})
    one_line_error(r, 4, "driver API 0")


def test_endpoint_refusing_connection(lab_dir: Path) -> None:
    (lab_dir / "ftbridge.toml").write_text(SIM)
    assert ftb("-c", str(lab_dir / "ftbridge.toml"), "sim", "fault", "lab", "--clear").code == 0
    from ftbridge.sim.driver import SimConfig, SimDriver

    SimDriver(SimConfig(driver="sim", estate=lab_dir / "estate.toml"), endpoint="lab").ex_inject(
        refuse_connections=True
    )
    one_line_error(ftb("-c", str(lab_dir / "ftbridge.toml"), "audit"), 5, "lab:", "connection refused")


def test_rejected_login(lab_dir: Path) -> None:
    est = lab_dir / "estate.toml"
    est.write_text(
        est.read_text().replace(
            'flavor = "generic"', f'flavor = "generic"\npassword_sha256 = "{hashlib.sha256(b"right").hexdigest()}"'
        )
    )
    (lab_dir / "ftbridge.toml").write_text(SIM + "password = { env = 'LAB_PW' }\n")
    r = ftb("-c", str(lab_dir / "ftbridge.toml"), "inventory", env={"LAB_PW": "wrong-pw-canary"})
    one_line_error(r, 6, "lab:", "login rejected")
    assert "wrong-pw-canary" not in r.err


def test_canary_secret_never_leaves(lab_dir: Path) -> None:
    canary = 'CANARY-7f3a9c-secret&"<x> y+z'  # changes under URL, JSON and XML encoding
    forms = {canary, quote(canary, safe=""), quote_plus(canary), json.dumps(canary)[1:-1], xml_escape(canary)}
    est = lab_dir / "estate.toml"
    est.write_text(
        est.read_text().replace(
            'flavor = "generic"',
            f'flavor = "generic"\npassword_sha256 = "{hashlib.sha256(canary.encode()).hexdigest()}"',
        )
    )
    (lab_dir / "pw").write_text(canary)
    (lab_dir / "ftbridge.toml").write_text(
        SIM
        + "password = { env = 'LAB_PW' }\n"
        + '[endpoints.lab2]\ndriver = "sim"\nestate = "estate.toml"\nname = "lab"\nstate = "s2.json"\n'
        + "password = { file = 'pw' }\n"
    )
    state = lab_dir / "state"
    env = {"LAB_PW": canary, "XDG_STATE_HOME": str(state)}
    outputs = []
    for args in (
        ["inventory", "-o", "json"],
        ["audit", "-o", "json"],
        ["endpoints", "check"],
        ["endpoints", "check", "-o", "json"],
        ["--debug", "endpoints", "check"],
        ["--debug", "inventory"],
        ["--debug", "audit"],
        ["drivers", "show", "sim"],
    ):
        r = ftb("-c", str(lab_dir / "ftbridge.toml"), *args, env=env)
        assert r.code in (0, 1), (args, r.err)
        outputs += [r.out, r.err]
    assert not [(o, f) for o in outputs for f in forms if f in o]
    written = [p for p in lab_dir.rglob("*") if p.is_file() and p.name != "pw"]
    assert written, "ftbridge should have written its state"
    assert not [(p, f) for p in written for f in forms if f.encode() in p.read_bytes()]


def test_no_sdk_imported_at_start_up() -> None:
    import subprocess
    import sys

    for args in (["--help"], ["drivers", "list"]):
        p = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "ftbridge", *args], capture_output=True, text=True
        )
        assert p.returncode == 0
        modules = {line.split("|")[-1].strip().split(".")[0] for line in p.stderr.splitlines() if "|" in line}
        assert "ftbridge" in modules  # the measurement itself works
        # (typer 0.29 itself imports pydantic, so pydantic is not on this list)
        heavy = {
            "pyVmomi",
            "proxmoxer",
            "ovirtsdk4",
            "pycurl",
            "requests",
            "stevedore",
            "ftbridge_vsphere",
            "ftbridge_proxmox",
            "ftbridge_ovirt",
        }
        assert not modules & heavy, (args, modules & heavy)


def test_audit_fixable_is_what_the_planner_can_do(demo_config: Path) -> None:
    data = json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)
    by = {(f["vm_name"], f["rule"]): f for f in data["findings"]}
    dwh = by[("ams-dwh01", "no-secondary")]  # 12 vCPUs, FT allows 8
    assert not dwh["fixable"] and "at most 8" in dwh["fix"] and dwh["evidence"]["unfixable"] == "limits"
    archive = by[("fra-archive01", "no-secondary")]  # 5 TiB, no room outside its array
    assert not archive["fixable"] and archive["evidence"]["unfixable"] == "capacity"
    assert by[("fra-crm02", "secondary-lag")]["fixable"]  # a copy: a fresh one fixes it
    assert not by[("rtm-redis01", "secondary-lag")]["fixable"]  # pvesr: a plan cannot
    assert data["summary"]["fixable"] == sum(f["fixable"] for f in data["findings"])


def test_readme_capability_matrix_is_generated() -> None:
    """README's matrix, `drivers show` and the kit read one source: the drivers' declarations."""
    readme = (ROOT / "README.md").read_text()
    embedded = readme.split("<!-- capability-matrix -->\n", 1)[1].split("<!-- /capability-matrix -->", 1)[0]
    r = ftb("drivers", "matrix")
    assert r.code == 0
    installed = r.out.splitlines()[0]
    if installed != embedded.splitlines()[0]:
        pytest.skip(f"not every first-party driver is installed here: {installed}")
    assert r.out == embedded
