"""Large outputs: summaries on a terminal, every row with ``--all`` or piped, JSON streamed.

The real command in a subprocess on the demo estate, told it writes to a terminal with
``FTBRIDGE_TERMINAL=1`` and given a short screen (``LINES``) so its tables do not fit. The
counts a summary prints are checked against the same command's JSON output, counted here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
from helpers import ROOT, ftb

SCHEMAS = ROOT / "ftbridge" / "schemas"
SEVERITIES = ["critical", "error", "warning", "info"]
#: a terminal 200 wide and 10 lines high: the demo's tables (27 findings, 61 VMs) overflow it
SHORT_SCREEN = {"FTBRIDGE_TERMINAL": "1", "COLUMNS": "200", "LINES": "10"}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def boxed(out: str, title: str) -> list[list[str]]:
    """The body rows of the boxed table titled ``title`` (cells stripped; continuation lines
    of wrapped cells come out as rows whose first cell is empty)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows: list[list[str]] = []
    in_body = False
    for line in lines[start + 1 :]:
        if line.startswith("┡"):
            in_body = True
        elif line.startswith("└"):
            break
        elif in_body and line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


def num(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_audit_on_a_short_terminal_counts_per_rule_and_endpoint(demo_config: Path) -> None:
    data = json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)
    findings = data["findings"]
    r = ftb("-c", str(demo_config), "audit", env=SHORT_SCREEN)
    assert r.code == 1, r.err
    per_rule = {row[0]: (row[1], num(row[2]), num(row[3])) for row in boxed(r.out, "findings per rule")}
    want_rule = {
        rule: (
            next(f["severity"] for f in findings if f["rule"] == rule),
            sum(f["rule"] == rule for f in findings),
            sum(f["rule"] == rule and f["fixable"] for f in findings),
        )
        for rule in {f["rule"] for f in findings}
    }
    assert per_rule == want_rule
    per_ep = {row[0]: [num(c) for c in row[1:]] for row in boxed(r.out, "findings per endpoint")}
    want_ep: dict[str, list[int]] = {}
    for ep in {f["endpoint"] for f in findings}:
        sev = Counter(f["severity"] for f in findings if f["endpoint"] == ep)
        want_ep[ep] = [sev[s] for s in SEVERITIES] + [sum(sev.values())]
    assert per_ep == want_ep
    # then the most severe findings, most severe first: as many as the summary says
    shown = [row[0] for row in boxed(r.out, "the 10 most severe findings of") if row[0]]
    ranked = sorted((f["severity"] for f in findings), key=SEVERITIES.index)
    assert shown == ranked[:10]
    assert "--all" in r.err and f"of {len(findings)} findings" in r.err
    # the rows not shown are not printed
    assert len(findings) > 10 and sum(line.startswith("│ ") for line in r.out.splitlines()) < 80


def test_audit_all_on_a_terminal_prints_every_row(demo_config: Path) -> None:
    n = len(json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)["findings"])
    r = ftb("-c", str(demo_config), "audit", "--all", env=SHORT_SCREEN)
    assert "findings per rule" not in r.out
    rows = boxed(r.out, f"audit: {n} findings")
    assert sum(row[0] in SEVERITIES for row in rows) == n


def test_piped_output_keeps_every_row_whatever_the_screen(demo_config: Path) -> None:
    n = len(json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)["findings"])
    piped = ftb("-c", str(demo_config), "audit", env={"LINES": "10"})
    assert "findings per rule" not in piped.out
    lines = piped.out.splitlines()
    assert lines[0].startswith(f"audit: {n} findings") and lines[1].split()[:2] == ["SEVERITY", "RULE"]
    assert len(lines) == n + 2 and all(line.split()[0] in SEVERITIES for line in lines[2:])
    assert ftb("-c", str(demo_config), "audit", "--all", env={"LINES": "10"}).out == piped.out
    assert ftb("-c", str(demo_config), "audit", env={"LINES": "10", "FTBRIDGE_TERMINAL": "0"}).out == piped.out


def test_plan_on_a_short_terminal_counts_per_kind_endpoint_and_target(demo_config: Path, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    assert ftb("-c", str(demo_config), "plan", "--out", str(path)).code == 0
    doc = json.loads(ftb("-c", str(demo_config), "plan", "show", str(path), "-o", "json").out)
    r = ftb("-c", str(demo_config), "plan", "show", str(path), env=SHORT_SCREEN)
    assert r.code == 0, r.err
    actions = doc["actions"]
    per_kind = {row[0]: num(row[1]) for row in boxed(r.out, "actions per kind")}
    assert per_kind == Counter(a["kind"] for a in actions)
    per_ep = {row[0]: (num(row[1]), num(row[2])) for row in boxed(r.out, "actions per endpoint")}
    assert per_ep == {
        ep: (len({a["vm"] for a in actions if a["endpoint"] == ep}), sum(a["endpoint"] == ep for a in actions))
        for ep in {a["endpoint"] for a in actions}
    }
    into: Counter[tuple[str, str]] = Counter()
    names = doc["names"]["datastores"]
    for a in actions:
        targets = {a["to"]} if a["kind"] in ("move_disk", "move_vm") else set()
        if a["kind"] == "protect":
            targets = set(a["spec"]["disks"].values())
        for t in targets:
            into[(a["endpoint"], names.get(f"{a['endpoint']}/{t}", t))] += 1
    busiest = {(row[0], row[1]): num(row[2]) for row in boxed(r.out, "busiest targets")}
    assert busiest and all(into[k] == v for k, v in busiest.items())
    assert min(busiest.values()) >= max([0, *(v for k, v in into.items() if k not in busiest)])
    first = [row[1].split()[0] for row in boxed(r.out, "the first 10 of") if row[1].split()[:1]]
    assert len([x for x in first if x.startswith("a")]) == 10
    full = ftb("-c", str(demo_config), "plan", "show", str(path), "--all", env=SHORT_SCREEN)
    ids = {row[1].split()[0] for row in boxed(full.out, f"plan {doc['plan_id']}: {len(actions)} actions") if row[1]}
    assert {a["id"] for a in actions} <= ids


def test_inventory_on_a_short_terminal_counts_per_endpoint(demo_config: Path) -> None:
    data = json.loads(ftb("-c", str(demo_config), "inventory", "-o", "json").out)
    r = ftb("-c", str(demo_config), "inventory", env={**SHORT_SCREEN, "LINES": "5"})  # 10 hosts do not fit
    assert r.code == 0, r.err
    vms = data["vms"]
    per_ep = {row[0]: [num(c) for c in row[1:4]] for row in boxed(r.out, "VMs per endpoint")}
    assert per_ep == {
        ep: [
            sum(v["endpoint"] == ep for v in vms),
            sum(v["endpoint"] == ep and v["power"] == "on" for v in vms),
            sum(v["endpoint"] == ep and bool(v["secondaries"]) for v in vms),
        ]
        for ep in {v["endpoint"] for v in vms}
    }
    dss = data["datastores"]
    per_ds = {row[0]: [num(c) for c in row[1:3]] for row in boxed(r.out, "datastores per endpoint")}
    assert per_ds == {
        ep: [sum(d["endpoint"] == ep for d in dss), sum(d["endpoint"] == ep and d["shared"] for d in dss)]
        for ep in {d["endpoint"] for d in dss}
    }
    hosts = data["hosts"]
    states = ["up", "maintenance", "down", "unreachable", "unknown"]
    per_host = {row[0]: [num(c) for c in row[1:]] for row in boxed(r.out, "hosts per endpoint")}
    assert per_host == {
        ep: [sum(h["endpoint"] == ep for h in hosts)]
        + [sum(h["endpoint"] == ep and h["state"] == s for h in hosts) for s in states]
        for ep in {h["endpoint"] for h in hosts}
    }
    every = ftb("-c", str(demo_config), "inventory", "--all", env=SHORT_SCREEN)
    listed = {row[1] for row in boxed(every.out, f"{len(vms)} VMs") if row[1]}
    assert {v["name"] for v in vms} <= listed


def test_streamed_json_is_the_document_json_dumps_writes(demo_config: Path, tmp_path: Path) -> None:
    from ftbridge.cli.jsonout import chunks
    from ftbridge.inventory import Inventory

    inv_out = ftb("-c", str(demo_config), "inventory", "-o", "json").out
    jsonschema.validate(json.loads(inv_out), schema("inventory"))
    saved = tmp_path / "inv.json"
    saved.write_text(inv_out)
    inv = Inventory.load(str(saved))
    whole = json.dumps(inv.to_dict(), indent=2, default=str)
    assert "".join(chunks(inv.lazy_dict())) == whole  # same text, lazily converted
    assert json.loads(inv_out) == json.loads(whole)
    path = tmp_path / "plan.json"
    plan_out = ftb("-c", str(demo_config), "plan", "--out", str(path), "-o", "json").out
    plan_doc = json.loads(plan_out)
    jsonschema.validate(plan_doc, schema("plan"))
    assert plan_doc == json.loads(path.read_text())
    assert plan_out == json.dumps(plan_doc, indent=2) + "\n"
    audit_out = ftb("-c", str(demo_config), "audit", "-o", "json").out
    jsonschema.validate(json.loads(audit_out), schema("audit"))
    assert audit_out == json.dumps(json.loads(audit_out), indent=2) + "\n"
    # empty lists, nested values and a document that is not an object come out the same too
    samples: list[Any] = [{}, {"a": [], "b": {}}, {"a": [{"b": [1, {}], "c": None}], "d": "x"}, [1, [2]], "s"]
    for doc in samples:
        assert "".join(chunks(doc)) == json.dumps(doc, indent=2)
