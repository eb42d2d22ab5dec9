"""The CLI reads well: help without Python types, tables that fit without breaking identifiers.

* every command registered (walked from the real command tree, so a sub-app added later is
  covered without touching this file) has a ``--help`` with no Python type in a metavar
  (``<str>``, ``list[str]``, ``{plan}``, ``Path``...), at 80 and 200 columns;
* the main commands, run on the demo at 80 and 200 columns, write no line wider than that
  and break no identifier (VM, host, datastore, endpoint, rule, mechanism, copy, plan and
  action ids) across lines; piped without ``$COLUMNS`` they write plain rows, one per line;
* the commands are listed in workflow order, then the tools;
* shell completion answers for ftbridge.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.cli.main import TOOLS, WORKFLOW, app, command  # noqa: E402

BOX = "│┃"
PY_TYPES = re.compile(
    # typer's <str>, <Path>, <list[str]>, <table|json>
    r"<(?:str|int|float|bool|bytes|Path|datetime|UUID|list\[[^>]*\]|tuple\[[^>]*\]|[\w-]+(?:\|[\w-]+)+)>"
    r"|\{[A-Za-z_]+\}"  # typer's {plan} for a required argument
    r"|\b(?:list|tuple|dict|set|frozenset|Optional|Union)\["
    r"|\bNoneType\b|\bpathlib\b|\btyping\.|\b(?:str|int|float|bool|Path) \| None\b"
)
METAVAR_WORDS = {"str", "int", "float", "bool", "path", "list", "dict", "text", "integer", "boolean"}


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        out += _commands(sub, (*path, name))
    return out


ALL = _commands(command())


@pytest.mark.parametrize("width", [80, 200])
def test_no_python_type_in_any_help(width: int) -> None:
    runner = CliRunner()
    assert len(ALL) > 20
    for path in ALL:
        r = runner.invoke(
            app, [*path, "--help"], prog_name="ftbridge", terminal_width=width, env={"COLUMNS": str(width)}
        )
        assert r.exit_code == 0, (path, r.output)
        text = r.output
        bad = PY_TYPES.search(text)
        assert bad is None, f"ftbridge {' '.join(path)} --help shows {bad.group(0)!r}:\n{text}"
        for line in text.splitlines():
            m = re.match(r"^\s+(-\w, )?--?[\w-]+(?:, -\w)? ([A-Za-z_|=.\[\]]+)\s", line)
            if m:
                assert m.group(2).lower() not in METAVAR_WORDS, f"{' '.join(path)}: metavar {m.group(2)!r}"
        usage = text.splitlines()[0]
        assert usage.startswith("Usage: ftbridge"), usage
        assert all(len(x) <= max(width, 80) for x in text.splitlines()), (path, text)


def test_commands_are_listed_in_workflow_order() -> None:
    r = CliRunner().invoke(app, ["--help"], prog_name="ftbridge", terminal_width=100)
    listed = re.findall(r"^  ([a-z]+)  ", r.output, re.M)
    top = [p[0] for p in ALL if len(p) == 1]
    assert sorted(listed) == sorted(top)
    known = [n for n in listed if n in WORKFLOW or n in TOOLS]
    assert known == [n for n in (*WORKFLOW, *TOOLS) if n in listed]
    assert listed.index("inventory") < listed.index("audit") < listed.index("plan") < listed.index("apply")
    assert listed.index("apply") < listed.index("health") < listed.index("failover") < listed.index("demo")
    assert r.output.index("Tools:") > r.output.index("report")


def test_shell_completion_is_installable() -> None:
    from helpers import ftb

    script = ftb("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert script.code == 0 and "_FTBRIDGE_COMPLETE" in script.out
    done = ftb(
        "failover",
        "t",
        env={"_FTBRIDGE_COMPLETE": "complete_bash", "COMP_WORDS": "ftbridge failover t", "COMP_CWORD": "2"},
    )
    assert done.out.split() == ["test"]


# -- tables -----------------------------------------------------------------------------------
def _cells(line: str) -> list[str] | None:
    if not any(c in line for c in BOX):
        return None
    return [c.strip() for c in re.split(f"[{BOX}]", line)[1:-1]]


def broken(text: str, ids: set[str]) -> list[str]:
    """Identifiers split between one line of a table cell and the same cell on the next line: the
    last word of the one and the first word of the other join into an identifier neither holds
    whole (a wrap between words never does that; an all-digit id counts only when it is exactly
    the two pieces, so a date wrapped after its day is not a broken VM id "123")."""
    out = []
    lines = text.splitlines()
    for a, b in zip(lines, lines[1:], strict=False):
        ca, cb = _cells(a), _cells(b)
        if ca is None or cb is None or len(ca) != len(cb):
            continue
        for x, y in zip(ca, cb, strict=True):
            if not x or not y:
                continue
            last, first = x.split()[-1], y.split()[0]
            joined = last + first
            for ident in ids:
                if ident in joined and ident not in last and ident not in first:
                    if any(ch.isalpha() for ch in ident) or joined == ident:
                        out.append(f"{ident!r} split as {x!r} / {y!r}")
    return out


def identifiers(cfg: Path, plan: Path) -> set[str]:
    def j(*args: str) -> Any:
        r = K.ftb("-c", str(cfg), *args, "-o", "json")
        return json.loads(r.stdout)

    inv = j("inventory")
    ids = {e["name"] for e in inv["endpoints"]}
    ids |= {h["name"] for h in inv["hosts"]} | {d["name"] for d in inv["datastores"]}
    for v in inv["vms"]:
        ids |= {v["name"], v["id"]} | {s["id"] for s in v["secondaries"]} | {s["mechanism"] for s in v["secondaries"]}
    ids |= {f["rule"] for f in j("audit")["findings"]}
    doc = json.loads(plan.read_text())
    ids |= {doc["plan_id"]} | {a["id"] for a in doc["actions"]}
    return {i for i in ids if len(i) > 2}


MAIN = [
    ("inventory",),
    ("audit",),
    ("plan", "show", "{plan}"),
    ("health",),
    ("failover", "plan", "--domain", "site=ams1", "--fence"),
    ("runs",),
    ("runs", "show", "1"),
    ("endpoints", "check"),
    ("drivers", "list"),
    ("drivers", "show", "sim"),
    ("lab", "list"),
    ("apply", "{plan}"),  # the dry run: what --yes would do
]


def test_main_commands_fit_80_and_200_columns_and_pipe_plain(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan)).returncode == 0
    ids = identifiers(cfg, plan)
    assert K.ftb("-c", str(cfg), "failover", "test", "--vm", "ams-sql01").returncode == 0  # a run for `runs`
    for args in MAIN:
        argv = [a.replace("{plan}", str(plan)) for a in args]
        for width in (80, 200):
            r = K.ftb("-c", str(cfg), *argv, env={"COLUMNS": str(width)})
            assert r.returncode in (0, 1, 2), (argv, r.stderr)
            assert "Traceback" not in r.stderr
            assert r.stdout.strip(), (argv, r.stderr)
            wide = [x for x in r.stdout.splitlines() if len(x) > width]
            assert wide == [], f"{' '.join(argv)} at {width}: {wide[:2]}"
            assert broken(r.stdout, ids) == [], f"{' '.join(argv)} at {width}"
        piped = K.ftb("-c", str(cfg), *argv)
        assert not any(c in piped.stdout for c in BOX + "━┏┗"), argv  # plain rows, no boxes
        assert broken(piped.stdout, ids) == []
    # piped, one VM per line: every VM name of the demo on a line of its own row
    inv = K.ftb("-c", str(cfg), "inventory").stdout.splitlines()
    names = json.loads(K.ftb("-c", str(cfg), "inventory", "-o", "json").stdout)["vms"]
    for v in names:
        assert any(re.match(rf"^{re.escape(v['endpoint'])} +{re.escape(v['name'])} ", x) for x in inv), v["name"]


def test_severity_is_coloured_and_the_headroom_rows_name_their_datastore(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    plain = K.ftb("-c", str(cfg), "audit").stdout
    rows = [x for x in plain.splitlines() if "datastore-over-headroom" in x]
    assert rows and all(re.search(r"datastore-over-headroom +\S+ +(ams1-pure-b-02|fra-nfs-d) ", x) for x in rows), rows
    assert "1 findings" not in plain and re.search(r"\b\d+ findings on \d+ VMs", plain)
    coloured = K.ftb("-c", str(cfg), "audit", env={"COLUMNS": "200", "FORCE_COLOR": "1", "TERM": "xterm"}).stdout
    assert re.search(r"\x1b\[[0-9;]*31m(error|critical)", coloured) or re.search(r"\x1b\[[0-9;]*1;31m", coloured)
    assert re.search(r"\x1b\[[0-9;]*33mwarning", coloured)
    nocolor = K.ftb("-c", str(cfg), "audit", env={"COLUMNS": "200", "FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert "\x1b[" not in nocolor or not re.search(r"\x1b\[[0-9;]*3[13]m", nocolor)


def test_failover_plan_with_nothing_to_do_says_why_and_what_next(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    r = K.ftb("-c", str(cfg), "failover", "plan", "-e", "vc-ams")
    assert r.returncode == 0, r.stderr
    assert "nothing to fail over" in r.stderr and "nothing is reported down" in r.stderr
    assert f"ftbridge -c {cfg} failover test" in r.stderr
    j = K.ftb("-c", str(cfg), "failover", "plan", "-e", "vc-ams", "-o", "json")
    assert json.loads(j.stdout)["steps"] == []


# -- one JSON vocabulary ----------------------------------------------------------------------
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def _walk(data: Any, where: str, vms: dict[str, set[str]], seen: dict[str, int]) -> None:
    if isinstance(data, list):
        for x in data:
            _walk(x, where, vms, seen)
        return
    if not isinstance(data, dict):
        return
    if "vm" in data and isinstance(data["vm"], str) and not {"id", "name"} <= set(data):
        assert "vm_name" in data, f"{where}: 'vm' without 'vm_name' in {data}"
        assert data["vm"] in vms["ids"], f"{where}: 'vm' is not a VM id: {data['vm']!r}"
        assert data["vm_name"] in vms["names"], f"{where}: 'vm_name' is not a VM name: {data['vm_name']!r}"
        seen["vm"] += 1
    for k, v in data.items():
        if (k.endswith("_at") or k == "last_sync") and v is not None:
            assert isinstance(v, str) and RFC3339.match(v), f"{where}: {k} = {v!r} is not RFC 3339 UTC"
            seen["time"] += 1
        if k == "action" and v is not None:
            assert isinstance(v, str) and re.match(r"^a\d+$", v), f"{where}: action id {v!r}"
        _walk(v, where, vms, seen)


def test_one_json_vocabulary(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    c = ("-c", str(cfg))
    plan = tmp_path / "plan.json"
    inv = json.loads(K.ftb(*c, "inventory", "-o", "json").stdout)
    vms = {"ids": {v["id"] for v in inv["vms"]}, "names": {v["name"] for v in inv["vms"]}}
    seen = {"vm": 0, "time": 0}
    outputs: list[tuple[str, Any]] = [("inventory", inv)]
    reads: tuple[tuple[str, ...], ...] = (
        ("audit",),
        ("health",),
        ("plan", "--out", str(plan)),
        ("failover", "plan", "--domain", "site=ams1"),
    )
    for args in reads:
        outputs.append((args[0], json.loads(K.ftb(*c, *args, "-o", "json").stdout)))
    for args in (
        ("apply", str(plan), "--yes"),
        ("failover", "test", "--vm", "ams-sql01", "--vm", "rtm-pg01"),
        ("apply", str(plan)),  # already applied: one line
    ):
        r = K.ftb(*c, *args, "-o", "json")
        outputs.append((" ".join(args), [json.loads(x) for x in r.stdout.splitlines()]))
    for args in (("runs",), ("runs", "show", "1"), ("runs", "show", "2"), ("report",)):
        outputs.append((" ".join(args), json.loads(K.ftb(*c, *args, "-o", "json").stdout)))
    for where, data in outputs:
        _walk(data, where, vms, seen)
    assert seen["vm"] > 50 and seen["time"] > 20, seen
    events = next(d for w, d in outputs if w.startswith("apply") and "--yes" in w)
    started = [e for e in events if e["event"] == "action_started"]
    assert started and all(e["vm"] in vms["ids"] and e["vm_name"] in vms["names"] for e in started)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_lab_run_removes_its_credentials_file_when_it_stops(tmp_path: Path, sig: str) -> None:
    """Stopped by a service manager (SIGTERM), Ctrl-C or a closed terminal (SIGHUP), the lab
    leaves no credentials file behind."""
    import signal

    from helpers import ftb_running

    proc = ftb_running("lab", "run", "proxmox", env={"TMPDIR": str(tmp_path)})
    try:
        assert proc.stderr is not None
        said = ""
        for line in proc.stderr:  # the lab says where its credentials are once it serves
            said += line
            if "credentials: source " in line:
                break
        m = re.search(r"credentials: source (\S+);", said)
        assert m, said
        creds = Path(m.group(1))
        assert creds.exists() and creds.parent == tmp_path and (creds.stat().st_mode & 0o777) == 0o600
        assert "export " in creds.read_text()
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert not creds.exists(), "the credentials outlived the lab"
    assert not list(tmp_path.glob("ftbridge-lab-*")), "nothing of the lab's is left in TMPDIR"
    assert "[endpoints.lab-proxmox]" in out and "removed" in err
