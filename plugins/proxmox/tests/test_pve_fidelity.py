"""The lab against the official PVE API schema (8.4 and 9.1.3), read at test time.

Three checks. The lab's hand-written parameter tables agree with the schema (names, types,
required, enums). Every request the driver sent during this session (recorded by the labs)
names a real path and method and passes the schema's parameter rules, in both versions where
the call exists in both. Every answer the lab gave has the fields the schema declares, with
the declared types. The schema files are AGPL and stay outside the project: they are read from
``<repo>/../shared/reference`` and the test skips when that folder is absent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from ftbridge_proxmox.lab import ProxmoxLab
from ftbridge_proxmox.lab.params import P, endpoints
from pve_helpers import DATA, RECORDS, REFERENCE, make_driver

SCHEMAS = {"8": "pve-api-schema-8.4.json", "9": "pve-api-schema-9.1.3.json"}
PROBE = "ftbridge-lab-probe"  # requests test_pve_lab.py sends on purpose, many of them invalid

pytestmark = pytest.mark.skipif(
    not all((REFERENCE / f).is_file() for f in SCHEMAS.values()),
    reason=f"the official PVE API schema files are not in {REFERENCE} (they are not part of the project)",
)

# Fields real servers return beyond what the schema lists, documented in ../shared/reference/README.md
# or observed on real clusters; each with the reason it may be there.
EXTRA_FIELDS_ALLOWED: dict[tuple[str, str], str] = {
    ("/cluster/resources", "shared"): "PVE 8 lists storages with 'shared' too; the 8.4 schema omits it",
    ("/nodes/{node}/qemu/{vmid}/config", "nvme0"): "injected by test_pve_bad_input: a line a newer PVE might write",
}


@cache
def schema(major: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / SCHEMAS[major]).read_text())
    return data


def major_of(version: str) -> str:
    return version.split(".")[0]


def lookup(props: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name in props:
        return props[name]  # type: ignore[no-any-return]
    m = re.fullmatch(r"([a-z_]+)\d+", name)
    return props.get(f"{m.group(1)}[n]") if m else None


def perl_regex(pattern: str) -> str:
    return re.sub(r"\(\?\^[a-z]*:", "(?:", pattern)


# named formats, checked the way PVE describes them (this project's own regexes)
FORMATS: dict[str, str] = {
    "pve-node": r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?",
    "pve-vmid": r"[1-9][0-9]{2,8}",
    "pve-storage-id": r"[a-z][a-z0-9\-_.]*[a-z0-9]",
    "pve-configid": r"[a-zA-Z][a-zA-Z0-9_\-]+",
    "pve-replication-job-id": r"[1-9][0-9]{2,8}-\d{1,9}",
    "pve-ha-resource-or-vm-id": r"((vm|ct):)?[1-9][0-9]{2,8}",
    "dns-name": r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?",
}


def check_param(rule: dict[str, Any], value: str) -> str | None:
    kind = rule.get("type", "string")
    if kind == "boolean":
        return None if value in ("0", "1") else f"boolean must be 0 or 1, got {value!r}"
    if kind in ("integer", "number"):
        rx = r"-?\d+" if kind == "integer" else r"-?\d+(\.\d+)?"
        if not re.fullmatch(rx, value):
            return f"{kind} expected, got {value!r}"
        num = float(value)
        if "minimum" in rule and num < float(rule["minimum"]):
            return f"below minimum {rule['minimum']}"
        if "maximum" in rule and num > float(rule["maximum"]):
            return f"above maximum {rule['maximum']}"
        return None
    if "enum" in rule and value not in rule["enum"]:
        return f"{value!r} not in enum"
    if "maxLength" in rule and len(value) > int(rule["maxLength"]):
        return "too long"
    if "pattern" in rule and not re.fullmatch(perl_regex(rule["pattern"]), value):
        return f"{value!r} does not match {rule['pattern']}"
    fmt = rule.get("format")
    if isinstance(fmt, str) and fmt in FORMATS and not re.fullmatch(FORMATS[fmt], value):
        return f"{value!r} is not a {fmt}"
    if isinstance(fmt, dict):
        return check_property_string(fmt, value)
    return None


def check_property_string(fmt: dict[str, Any], value: str) -> str | None:
    default_key = next((k for k, v in fmt.items() if isinstance(v, dict) and v.get("default_key")), None)
    for i, part in enumerate(value.split(",")):
        key, sep, val = part.partition("=")
        if not sep:
            if i == 0 and default_key:
                continue
            return f"{part!r} has no value"
        sub = fmt.get(key)
        if sub is None:
            return f"unknown property {key!r}"
        if "alias" in sub or "keyAlias" in sub:
            continue
        problem = check_param(sub, val)
        if problem:
            return f"{key}: {problem}"
    return None


def check_returns(rule: dict[str, Any], value: Any, where: str, path: str, errors: list[str]) -> None:
    kind = rule.get("type")
    if value is None:
        if kind not in (None, "null") and not rule.get("optional"):
            errors.append(f"{where}: null, schema says {kind}")
        return
    if kind == "array":
        if not isinstance(value, list):
            errors.append(f"{where}: expected an array")
            return
        for i, item in enumerate(value):
            check_returns(rule.get("items", {}), item, f"{where}[{i}]", path, errors)
    elif kind == "object":
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object")
            return
        props = rule.get("properties") or {}
        for key, sub in props.items():
            if "[n]" in key:
                continue
            if key in value:
                check_returns(sub, value[key], f"{where}.{key}", path, errors)
            elif not sub.get("optional"):
                errors.append(f"{where}: declared field {key!r} missing")
        key_only = len(props) <= 1
        for key in value:
            sub = lookup(props, key)
            if sub is not None:
                if key not in props:
                    check_returns(sub, value[key], f"{where}.{key}", path, errors)
            elif not key_only and (path, key) not in EXTRA_FIELDS_ALLOWED:
                errors.append(f"{where}: field {key!r} is not in the schema")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{where}: integer expected, got {value!r}")
    elif kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{where}: number expected, got {value!r}")
    elif kind == "boolean":
        if value not in (0, 1) or isinstance(value, bool):
            errors.append(f"{where}: boolean as 0/1 expected, got {value!r}")
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"{where}: string expected, got {value!r}")
    if "enum" in rule and value not in rule["enum"]:
        errors.append(f"{where}: {value!r} not in {rule['enum']}")


def _driver_records() -> list[dict[str, Any]]:
    return [r for r in RECORDS if r.get("client") != PROBE]


def _workload(estate: Any) -> None:
    """The driver's own traffic, when this module runs alone (or in a worker of its own):
    inventory, probe, health and each kind of operation, against both majors."""
    from ftbridge.drivers import SecondarySpec

    for version in ("9.1.3", "8.4.1"):
        lab = ProxmoxLab(estate, version=version, task_seconds=0.01, sync_seconds=0.01, fence_delay=0.05)
        lab.start()
        saved = dict(os.environ)
        os.environ.update(lab.secrets())
        try:
            drv = make_driver(lab)
            drv.open()
            drv.probe()
            drv.inventory()
            drv.health()
            drv.wait(drv.move_disk("102", "scsi0", "nfs-b"), timeout=30)
            for spec, vm in (
                (SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3"), "105"),
                (SecondarySpec("pve-standby", {"scsi0": "nfs-b"}), "102"),
            ):
                drv.wait(drv.protect(vm, spec), timeout=30)
            drv.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            RECORDS.extend(lab.records)
            lab.stop()


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    if not _driver_records():
        from ftbridge.estate import load_estates

        _workload(load_estates(DATA / "pve_estate.toml")["pve"])
    recs = _driver_records()
    assert recs, "the lab recorded no driver request"
    return recs


# 1: the lab's own tables ------------------------------------------------------------------------
@pytest.mark.parametrize("major", ["8", "9"])
def test_lab_parameter_tables_match_the_schema(major: str) -> None:
    problems = []
    formats_alike = {("pve-ha-node-list", "pve-ha-group-node-list")}
    for ep in endpoints(int(major)):
        entry = schema(major).get(ep.path, {}).get(ep.method)
        if entry is None:
            problems.append(f"{ep.method} {ep.path}: not in the {major} schema")
            continue
        props = (entry.get("parameters") or {}).get("properties") or {}
        for name, rule in ep.params.items():
            real = props.get(name)
            if real is None:
                problems.append(f"{ep.method} {ep.path}: lab parameter {name!r} is not in the schema")
                continue
            problems += _compare(f"{ep.method} {ep.path} {name}", rule, real, formats_alike)
        if not ep.partial:
            missing = set(props) - set(ep.params)
            if missing:
                problems.append(f"{ep.method} {ep.path}: lab table lacks {sorted(missing)}")
    assert not problems, "\n".join(problems)


def _compare(where: str, rule: P, real: dict[str, Any], alike: set[tuple[str, str]]) -> list[str]:
    out = []
    if rule.type != real.get("type", "string"):
        out.append(f"{where}: type {rule.type} vs {real.get('type')}")
    if rule.required != (not real.get("optional")):
        out.append(f"{where}: required {rule.required} vs optional={real.get('optional')}")
    if rule.enum is not None and tuple(real.get("enum", ())) != rule.enum:
        out.append(f"{where}: enum differs")
    fmt = real.get("format")
    if isinstance(fmt, str) and rule.fmt and rule.fmt != fmt and (rule.fmt, fmt) not in alike:
        out.append(f"{where}: format {rule.fmt} vs {fmt}")
    return out


# 2: what the driver sent ------------------------------------------------------------------------
def test_driver_requests_are_valid_in_both_schemas(records: list[dict[str, Any]]) -> None:
    problems: set[str] = set()
    seen: set[tuple[str, str, str]] = set()
    for rec in records:
        method, path, own = rec["method"], rec["path"], major_of(rec["version"])
        if rec["status"] in (400, 501):
            problems.add(f"{method} {path}: the lab refused a driver request ({rec['status']}): {rec['data']}")
        for major in ("8", "9"):
            entry = schema(major).get(path, {}).get(method)
            if entry is None:
                if major == own:
                    problems.add(f"{method} {path}: not in the PVE {major} schema")
                continue  # a call of one version only, sent to a lab of that version
            seen.add((major, method, path))
            props = (entry.get("parameters") or {}).get("properties") or {}
            for name, value in rec["params"].items():
                rule = lookup(props, name)
                if rule is None:
                    problems.add(f"{method} {path}: parameter {name!r} is not in the PVE {major} schema")
                    continue
                problem = check_param(rule, str(value))
                if problem:
                    problems.add(f"{method} {path} {name} (PVE {major}): {problem}")
            for name, rule in props.items():
                if not rule.get("optional") and "[n]" not in name and name not in rec["params"]:
                    problems.add(f"{method} {path}: required {name!r} missing (PVE {major})")
    assert not problems, "\n".join(sorted(problems))
    assert len({(m, p) for _, m, p in seen}) >= 25, "the suite should exercise most of the driver's calls"


def test_version_specific_calls_go_to_their_version(records: list[dict[str, Any]]) -> None:
    rules = [r for r in records if r["path"].startswith("/cluster/ha/rules")]
    groups = [r for r in records if r["path"].startswith("/cluster/ha/groups")]
    assert rules and groups, "both HA placement styles should have been exercised"
    assert {major_of(r["version"]) for r in rules} == {"9"}
    assert {major_of(r["version"]) for r in groups if r["method"] != "GET"} == {"8"}


# 3: what the lab answered -----------------------------------------------------------------------
def test_lab_answers_have_the_declared_fields(records: list[dict[str, Any]]) -> None:
    check_answers(records, lambda r: True)


def test_probe_answers_too() -> None:
    """Answers to the deliberate probes of test_pve_lab.py (when they succeeded) follow the schema too."""
    probes = [r for r in RECORDS if r.get("client") == PROBE]
    if not probes:
        pytest.skip("no probe requests recorded")
    check_answers(probes, lambda r: True)


def check_answers(records: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> None:
    problems: set[str] = set()
    for rec in records:
        if rec["status"] != 200 or not keep(rec):
            continue
        entry = schema(major_of(rec["version"])).get(rec["path"], {}).get(rec["method"])
        if entry is None:
            continue
        errors: list[str] = []
        check_returns(entry.get("returns", {}), rec["data"], f"{rec['method']} {rec['path']}", rec["path"], errors)
        problems.update(f"(PVE {rec['version']}) {e}" for e in errors)
    assert not problems, "\n".join(sorted(problems)[:60])
