"""Malformed input files through the real command line (issue 19, bad input).

A property-based test mutates valid files taken from the demo (config, sim estate, saved
inventory, plan, failover plan, recovery plan, mapping files) in ways that make each one
invalid (a wrong type, a required key deleted, a NaN, a 64-bit overflow, a negative size, a
duplicate, deep nesting, binary junk, a cut-short JSON file) and runs each through the CLI, in
process. Every run must end with the file's documented exit code (3 for config-like files, 8
for plans), never 0 and never 70, one ``error:`` line naming the file and the key at fault, no
traceback, and the files beside it (sim state, state dir, plans) unchanged.

Then one plain test per case the issue lists.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.cli.main import app  # noqa: E402
from ftbridge.loading import key_path  # noqa: E402

Loc = tuple[str | int, ...]

#: examples per kind of file (eight kinds): bounded so the whole test runs in about a minute
EXAMPLES = 40


# -- running the CLI in process ---------------------------------------------------------------
@dataclass
class Result:
    code: int
    out: str
    err: str


_COMMAND = typer.main.get_command(app)


def cli(*args: str) -> Result:
    """The command in process, its click command built once (typer builds it on every invoke)."""
    import typer.testing

    built = getattr(typer.testing, "_get_command")  # noqa: B009 (a private name, looked up by name)
    setattr(typer.testing, "_get_command", lambda _app: _COMMAND)  # noqa: B010
    try:
        r = CliRunner().invoke(app, list(args), prog_name="ftbridge")
    finally:
        setattr(typer.testing, "_get_command", built)  # noqa: B010
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def snapshot(where: Path) -> dict[str, str]:
    """Every file under ``where`` (lock files aside: empty markers the sim may create) by digest."""
    out = {}
    for p in sorted(where.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(where))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- the valid files, made once from the demo ------------------------------------------------
class World:
    """The valid files (a plain class: hypothesis prints a failing example's arguments, and a
    dataclass would be printed field by field, estate and all)."""

    def __init__(self, base: Path, config: Path, estate_text: str, **data: dict[str, Any]) -> None:
        self.base, self.config, self.estate_text = base, config, estate_text
        self.inventory, self.plan, self.failover = data["inventory"], data["plan"], data["failover"]
        self.recovery, self.mapping, self.drmap = data["recovery"], data["mapping"], data["drmap"]
        self.n: Iterator[int] = count()

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return f"World({self.base})"


RECOVERY = {"groups": [{"name": "databases", "vms": ["*sql*", "*db*"]}, {"name": "apps", "vms": ["*"]}]}
MAPPING = {
    "source": "vc-ams",
    "target": "pve-rtm",
    "vms": ["web-*"],
    "storage": {
        "default": "ceph-rtm",
        "datastores": {"ams1-netapp-a-01": "ceph-rtm"},
        "disks": [{"vm": "web-01", "disk": "2000", "to": "ceph-rtm"}],
    },
    "network": {"default": "vmbr0", "networks": {"VM Network": "vmbr0", "old": False}},
    "clusters": {"ams": "rtm"},
}
DRMAP = {
    "dr_import_storages": [
        {
            "dr_domain_type": "nfs",
            "dr_primary_name": "data-a",
            "dr_secondary_name": "data-b",
            "dr_primary_dc_name": "dc-a",
            "dr_secondary_dc_name": "dc-b",
        }
    ],
    "dr_cluster_mappings": [{"primary_name": "c-a", "secondary_name": "c-b"}],
    "dr_network_mappings": [{"primary_network_name": "net-a", "secondary_network_name": "net-b"}],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("bad-input")
    cfg = K.copy_demo(base / "demo")
    inv = cli("-c", str(cfg), "inventory", "-o", "json")
    assert inv.code == 0, inv.err
    r = cli("-c", str(cfg), "plan", "--out", str(base / "plan.json"))
    assert r.code == 0, r.err
    fo = str(base / "failover.json")
    r = cli("-c", str(cfg), "failover", "plan", "--domain", "site=ams1", "--fence", "--out", fo)
    assert r.code in (0, 1), r.err
    failover = json.loads((base / "failover.json").read_text())
    assert failover["steps"], "the demo's failover plan has steps to mutate"
    return World(
        base=base,
        config=cfg,
        estate_text=(base / "demo" / "estate.toml").read_text(),
        inventory=json.loads(inv.out),
        plan=json.loads((base / "plan.json").read_text()),
        failover=failover,
        recovery=RECOVERY,
        mapping=MAPPING,
        drmap=DRMAP,
    )


# -- writing files ---------------------------------------------------------------------------
def toml_text(data: dict[str, Any]) -> str:
    """TOML for any tree of tables, lists and scalars (every table inline: simple and exact)."""
    return "".join(f"{json.dumps(k)} = {K.toml_value(v)}\n" for k, v in data.items())


def yaml_text(data: Any) -> str:
    import yaml

    text: str = yaml.safe_dump(data, sort_keys=False)
    return text


# -- mutations that make a file invalid -------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    """What a file kind holds: keys that must be there, numbers that must not be negative, lists
    whose entries must be unique, subtrees free-form by design (left alone)."""

    required: frozenset[tuple[str, str]]  # (the list or table holding it, key)
    nonneg: frozenset[str]
    unique: frozenset[tuple[str, int]]  # (list name, depth of its entries): entries must be unique
    free_form: frozenset[str] = frozenset()
    numbers: bool = True  # the format can hold NaN (TOML, JSON; YAML only via .nan)


ESTATE = Rules(
    required=frozenset(
        {
            ("hosts", "id"),
            ("datastores", "id"),
            ("datastores", "kind"),
            ("datastores", "capacity_gib"),
            ("vms", "id"),
            ("networks", "id"),
            ("disks", "datastore"),
            ("disks", "size_gib"),
            ("secondaries", "mechanism"),
            ("depends_on", "kind"),
            ("depends_on", "datastore"),
        }
    ),
    nonneg=frozenset({"capacity_gib", "size_gib", "memory_gib", "reserve_gib", "reserved_gib", "vcpus", "vlan"}),
    unique=frozenset({("hosts", 4), ("datastores", 4), ("vms", 4), ("networks", 4)}),
)
INVENTORY = Rules(
    required=frozenset(
        {("", k) for k in ("schema_version", "endpoints", "hosts", "datastores", "vms")}
        | {("endpoints", k) for k in ("name", "driver")}
        | {("hosts", k) for k in ("id", "name", "endpoint", "state")}
        | {("datastores", k) for k in ("id", "name", "endpoint", "kind", "shared", "hosts", "capacity", "free")}
        | {("vms", k) for k in ("id", "name", "endpoint", "power", "disks")}
        | {("disks", k) for k in ("id", "size", "datastore")}
        | {("secondaries", k) for k in ("id", "mechanism", "state", "disks")}
        | {("nics", k) for k in ("id", "network")}
        | {("networks", k) for k in ("id", "name", "endpoint", "kind")}
    ),
    nonneg=frozenset({"capacity", "memory", "size", "allocated", "committed", "reserve", "lag", "vlan", "vcpus"}),
    unique=frozenset({("hosts", 2), ("datastores", 2), ("vms", 2)}),
)
PLAN = Rules(
    required=frozenset(
        {("", k) for k in ("schema_version", "kind", "created_at", "generator", "inventory", "endpoints", "actions")}
        | {("actions", k) for k in ("id", "kind", "endpoint", "vm", "vm_name", "bytes", "datastores", "reason")}
    ),
    nonneg=frozenset({"bytes"}),
    unique=frozenset({("actions", 2)}),
    # free-form by design, or rewritten by the re-signing below (plan_id)
    free_form=frozenset({"config", "summary", "names", "plan_id", "provenance"}),
)
FAILOVER = Rules(
    required=frozenset(
        {("", k) for k in ("scope", "inventory_fingerprint", "steps", "blocked", "created_at")}
        | {("steps", k) for k in ("endpoint", "vm", "vm_name", "kind", "why", "group", "group_index", "order")}
        | {("blocked", k) for k in ("endpoint", "vm", "vm_name", "reason")}
    ),
    nonneg=frozenset({"lag", "ha_grace", "group_index", "order"}),
    unique=frozenset(),
    free_form=frozenset({"original"}),
)
RECOVERY_RULES = Rules(
    required=frozenset({("groups", "name"), ("groups", "vms")}), nonneg=frozenset(), unique=frozenset({("groups", 2)})
)
MAPPING_RULES = Rules(required=frozenset({("disks", "disk"), ("disks", "to")}), nonneg=frozenset(), unique=frozenset())
DRMAP_RULES = Rules(
    required=frozenset(
        {("dr_import_storages", k) for k in ("dr_domain_type", "dr_primary_name", "dr_secondary_name")}
        | {("dr_cluster_mappings", k) for k in ("primary_name", "secondary_name")}
    ),
    nonneg=frozenset(),
    unique=frozenset(),
    # the role's own keys beside the names are carried through verbatim (the reader keeps them)
    free_form=frozenset({"dr_primary_dc_name", "dr_secondary_dc_name"}),
    numbers=False,
)


def nodes(data: Any, rules: Rules, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every value below the root with where it is, free-form subtrees left out."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        if k in rules.free_form:
            continue
        here = (*loc, k)
        yield here, v
        yield from nodes(v, rules, here)


def holder(loc: Loc) -> str:
    """The name of the list or table a key sits in: ``vms[0].disks[1].size`` -> ``disks``."""
    names = [x for x in loc[:-1] if isinstance(x, str)]
    return names[-1] if names else ""


def get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def wrong_type(value: Any) -> Any:
    """A value of a kind no reader takes where ``value`` was."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return "x1"
    if isinstance(value, str):
        return [[1]]
    if isinstance(value, list):
        return 7
    return [1]  # a table


def mutations(data: Any, rules: Rules, text_format: str) -> list[tuple[str, Loc]]:
    """Every (mutation, where) that makes this file invalid."""
    out: list[tuple[str, Loc]] = []
    for loc, v in nodes(data, rules):
        key = loc[-1]
        if v is not None:
            out.append(("type", loc))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(("huge", loc))
            if rules.numbers:
                out.append(("nan", loc))
            if key in rules.nonneg:
                out.append(("negative", loc))
        if isinstance(key, str) and (holder(loc), key) in rules.required:
            out.append(("delete", loc))
        if isinstance(key, int) and len(loc) >= 2 and (loc[-2], len(loc)) in rules.unique:
            out.append(("duplicate", loc))
        if len(loc) <= 3:
            out.append(("deep", loc))
    out.append(("binary", ()))
    if text_format == "json":
        out.append(("truncate", ()))
    return out


def mutate(data: Any, what: str, loc: Loc) -> Any:
    data = copy.deepcopy(data)
    parent, key = get(data, loc[:-1]), loc[-1]
    if what == "type":
        parent[key] = wrong_type(parent[key])
    elif what == "huge":
        parent[key] = 10**30
    elif what == "nan":
        parent[key] = math.nan
    elif what == "negative":
        parent[key] = -5
    elif what == "delete":
        del parent[key]
    elif what == "duplicate":
        parent.insert(int(key) + 1, copy.deepcopy(parent[key]))
    elif what == "deep":
        value = parent[key]
        for _ in range(120):
            value = [value]
        parent[key] = value
    return data


@dataclass(frozen=True)
class Kind:
    """One kind of input file: how to get its valid data, write it, and run the CLI on it."""

    name: str
    rules: Rules
    fmt: str  # toml | json | yaml
    data: Callable[[World], Any]
    suffix: str
    code: int
    #: the command line for the file at ``path``, run in ``where`` (its own folder)
    args: Callable[[World, Path, Path], list[str]]
    #: write the (mutated) data: the plan is re-signed so the typed checks, not the digest, answer
    prepare: Callable[[Any], Any] = lambda d: d


def _estate_data(w: World) -> Any:
    import tomllib

    return tomllib.loads(w.estate_text)


def _estate_args(w: World, path: Path, where: Path) -> list[str]:
    shutil.copy(w.config, where / "ftbridge.toml")  # its estate = "estate.toml": the mutated file
    return ["-c", str(where / "ftbridge.toml"), "inventory"]


def _demo_dir(w: World, where: Path) -> Path:
    """A demo of its own (config, estate, sim states) beside the file: what must not change."""
    src = w.config.parent
    for p in src.iterdir():
        if p.is_file() and not p.name.endswith(".lock"):
            shutil.copy(p, where / p.name)
    return where / "ftbridge.toml"


KINDS = {
    "config": Kind(
        "config",
        Rules(
            required=frozenset({("vc-ams", "driver"), ("pve-rtm", "driver"), ("ovirt-fra", "driver")}),
            nonneg=frozenset({"op_seconds"}),
            unique=frozenset(),
        ),
        "toml",
        lambda w: __import__("tomllib").loads(w.config.read_text()),
        ".toml",
        3,
        lambda w, path, where: ["-c", str(path), "inventory"],
    ),
    "estate": Kind("estate", ESTATE, "toml", _estate_data, ".toml", 3, _estate_args),
    "inventory": Kind(
        "inventory",
        INVENTORY,
        "json",
        lambda w: w.inventory,
        ".json",
        3,
        lambda w, path, where: ["-c", str(_demo_dir(w, where)), "audit", "--from", str(path)],
    ),
    "plan": Kind(
        "plan",
        PLAN,
        "json",
        lambda w: w.plan,
        ".json",
        8,
        lambda w, path, where: ["-c", str(_demo_dir(w, where)), "apply", str(path), "--yes"],
        prepare=lambda d: K.resign(d) if isinstance(d, dict) and isinstance(d.get("actions"), list) else d,
    ),
    "failover": Kind(
        "failover",
        FAILOVER,
        "json",
        lambda w: w.failover,
        ".json",
        8,
        lambda w, path, where: ["-c", str(_demo_dir(w, where)), "failover", "run", str(path), "--yes"],
    ),
    "recovery": Kind(
        "recovery",
        RECOVERY_RULES,
        "toml",
        lambda w: w.recovery,
        ".toml",
        3,
        lambda w, path, where: [
            "-c",
            str(_demo_dir(w, where)),
            "failover",
            "plan",
            "--domain",
            "site=ams1",
            "--recovery-plan",
            str(path),
        ],
    ),
    "mapping": Kind(
        "mapping",
        MAPPING_RULES,
        "toml",
        lambda w: w.mapping,
        ".toml",
        3,
        lambda w, path, where: ["-c", str(w.config), "migrate", "export", "--map", str(path), "--format", "pve"],
    ),
    "ovirt-dr": Kind(
        "ovirt-dr",
        DRMAP_RULES,
        "yaml",
        lambda w: w.drmap,
        ".yml",
        3,
        lambda w, path, where: ["-c", str(w.config), "migrate", "export", "--map", str(path), "--format", "pve"],
    ),
}


def render(kind: Kind, data: Any) -> str:
    if kind.fmt == "json":
        return json.dumps(kind.prepare(data), indent=1)
    if kind.fmt == "yaml":
        return yaml_text(data)
    return toml_text(data)


def run_malformed(w: World, kind: Kind, what: str, loc: Loc, cut: float, junk: bytes) -> None:
    where = w.base / f"{kind.name}-{next(w.n)}"
    where.mkdir()
    path = where / (("estate" if kind.name == "estate" else "input") + kind.suffix)
    if kind.name == "config":
        shutil.copy(w.config.parent / "estate.toml", where / "estate.toml")
    valid = kind.data(w)
    if what == "binary":
        path.write_bytes(b"\xff\xfe" + junk)
    elif what == "truncate":
        text = render(kind, valid).rstrip()
        path.write_text(text[: max(1, min(len(text) - 1, int(len(text) * cut)))])
    else:
        path.write_text(render(kind, mutate(valid, what, loc)))
    args = kind.args(w, path, where)
    before = snapshot(where)
    r = cli(*args)
    shown = f"{kind.name} {what} at {key_path(loc)}: exit {r.code}: {r.err}"
    assert r.code == kind.code, shown
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert "Traceback" not in r.err and "internal error" not in r.err, shown
    assert str(path) in lines[0], "the file is named: " + shown
    if what in ("type", "huge", "nan", "negative", "delete") and kind.name != "config":
        # the key at fault: its path (or, for a deleted or re-typed entry, the entry holding it)
        named = key_path(loc)
        parent = key_path(loc[:-1])
        assert named in lines[0] or (parent and f"{parent}:" in lines[0]) or str(loc[-1]) in lines[0], (
            "the key is named: " + shown
        )
    elif what in ("type", "huge", "nan", "negative", "delete"):
        assert str(loc[-1]) in lines[0] or key_path(loc[:-1]) in lines[0], "the key is named: " + shown
    assert snapshot(where) == before, "nothing changed: " + shown


def _case(kind: Kind, w: World) -> st.SearchStrategy[tuple[str, Loc, float, bytes]]:
    # the kind of mutation first (each as likely as the others: a file has one "binary" and
    # thousands of "type" places), then where
    by_kind: dict[str, list[Loc]] = {}
    for what, loc in mutations(kind.data(w), kind.rules, kind.fmt):
        by_kind.setdefault(what, []).append(loc)
    chosen = st.sampled_from(sorted(by_kind)).flatmap(
        lambda what: st.tuples(st.just(what), st.sampled_from(by_kind[what]))
    )
    return st.tuples(
        chosen,
        st.floats(min_value=0.0, max_value=1.0),
        st.binary(min_size=0, max_size=64),
    ).map(lambda t: (t[0][0], t[0][1], t[1], t[2]))


@pytest.mark.parametrize("name", list(KINDS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_malformed_files_are_one_clear_error_and_change_nothing(world: World, name: str, data: st.DataObject) -> None:
    kind = KINDS[name]
    what, loc, cut, junk = data.draw(_case(kind, world))
    run_malformed(world, kind, what, loc, cut, junk)


def test_every_kind_offers_every_mutation(world: World) -> None:
    """The generator reaches what the issue lists: each kind of file has typed, numeric, required
    and (where it has lists of named things) duplicate mutations to draw from."""
    total = 0
    for kind in KINDS.values():
        kinds = {m for m, _ in mutations(kind.data(world), kind.rules, kind.fmt)}
        total += len(mutations(kind.data(world), kind.rules, kind.fmt))
        assert {"type", "deep", "binary"} <= kinds, kind.name
        if kind.rules.required:
            assert "delete" in kinds, kind.name
        if kind.rules.unique:
            assert "duplicate" in kinds, kind.name
        if kind.rules.nonneg:
            assert "negative" in kinds, kind.name
    assert total > 1000


# -- one plain test per case the issue lists ---------------------------------------------------
@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return K.copy_demo(tmp_path / "demo")


def one_error(r: Result, code: int, *needles: str) -> str:
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert r.code == code, (r.code, r.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def config_with(demo: Path, text: str) -> Path:
    path = demo.parent / "bad.toml"
    base = demo.read_text()
    if text.startswith("policies ="):  # the demo's own [policies.*] tables would clash: endpoints only
        base = base[: base.index("[[domains]]")]
    path.write_text(text + "\n" + base)  # first: a bare key after a table would belong to it
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("x = " + "[" * 5000 + "]" * 5000, ["nested deeper than 64"]),
        ("[policies.p]\nheadroom = nan\n", ["policies.p.headroom", "finite"]),
        ("[policies.p]\nheadroom = inf\n", ["policies.p.headroom", "finite"]),
        ("[apply]\nretries = " + "9" * 5000 + "\n", ["integer too large"]),
        ("[apply]\nretries = " + "9" * 30 + "\n", ["apply.retries", "64 bits"]),
        ("policies = 1\n", ["policies: expected a table, got a number"]),
        ("[policies.p]\nrequire_secondary = 1\n", ["policies.p.require_secondary: expected true or false"]),
        ("[policies.p]\nrpo = nan\n", ["policies.p.rpo"]),
        ("[policies.p]\nrpo = 0\n", ["policies.p.rpo: must be more than 0"]),
        ("[policies.p]\nmatch = [1]\n", ["policies.p.match[0]: expected a table, got a number"]),
    ],
)
def test_bad_config_values(demo: Path, text: str, needles: list[str]) -> None:
    if "[apply]" in text:
        text = text.replace("[apply]\n", "")
        path = demo.parent / "bad.toml"
        path.write_text(demo.read_text().replace("[apply]\n", "[apply]\n" + text))
    else:
        path = config_with(demo, text)
    one_error(cli("-c", str(path), "audit"), 3, str(path), *needles)


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room on disk (a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


#: runs the ftbridge command line (argv[2:]) and writes its process's own peak memory (VmHWM)
#: to argv[1] as it exits. A child's ru_maxrss would not do: Linux keeps the larger of the
#: parent's peak and its own across exec, and pytest's process is large.
_OWN_PEAK = """
import atexit, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))))
sys.argv = ["ftbridge", *sys.argv[2:]]
runpy.run_module("ftbridge", run_name="__main__")
"""


def test_a_file_over_its_size_limit_is_refused_before_it_is_read(demo: Path) -> None:
    """256 MiB for every input; a saved inventory may be 1 GiB (about 750 bytes a VM: a
    million-VM estate's is 725 MiB). Judged by the file's size, before a byte is read: a
    test that read them would hold a gigabyte."""
    from ftbridge.inventory import MAX_SAVED_BYTES
    from ftbridge.loading import MAX_BYTES

    cfg = _sparse(demo.parent / "huge.toml", MAX_BYTES + 1)
    one_error(cli("-c", str(cfg), "audit"), 3, str(cfg), "not a config file: larger than 256 MiB")
    plan = _sparse(demo.parent / "huge-plan.json", MAX_BYTES + 1)
    one_error(cli("-c", str(demo), "apply", str(plan)), 8, str(plan), "larger than 256 MiB")
    inv = _sparse(demo.parent / "huge-inventory.json", MAX_SAVED_BYTES + 1)
    one_error(cli("-c", str(demo), "audit", "--from", str(inv)), 3, str(inv), "larger than 1024 MiB")
    # the real command, alone in its process: it never held the gigabyte (its own peak memory)
    err, peak = demo.parent / "huge.err", demo.parent / "huge.peak"
    with open(err, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", _OWN_PEAK, str(peak), "-c", str(demo), "audit", "--from", str(inv)],
            stdout=subprocess.DEVNULL,
            stderr=f,
            env={k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")},
        )
        try:
            proc.wait(120)  # a safety net: it answers at once
        finally:
            proc.kill()
    assert proc.returncode == 3 and "larger than 1024 MiB" in err.read_text(), err.read_text()
    kib = int(peak.read_text().split()[1])
    assert kib < MAX_BYTES // 1024, f"peak {kib // 1024} MiB"
    # over the others' limit, within its own: read (and refused for what it holds, not its size)
    inv = _sparse(demo.parent / "big-inventory.json", MAX_BYTES + 1)
    line = one_error(cli("-c", str(demo), "audit", "--from", str(inv)), 3, str(inv))
    assert "larger than" not in line


def test_backoff_below_zero_is_refused(demo: Path) -> None:
    path = demo.parent / "bad.toml"
    path.write_text(demo.read_text().replace('backoff = "0.01s"', "backoff = -1"))
    one_error(cli("-c", str(path), "audit"), 3, "apply.backoff", "0 seconds or more")


def test_a_secret_in_the_config_is_never_echoed(demo: Path) -> None:
    path = config_with(demo, '[coordination]\nuser = "u"\npassword = 31337133713\n')
    line = one_error(cli("-c", str(path), "audit"), 3, "coordination.password")
    assert "31337133713" not in line
    path = config_with(demo, '[coordination]\nuser = "u"\npassword = "hunter2-secret"\n')
    line = one_error(cli("-c", str(path), "audit"), 3, "coordination.password")
    assert "hunter2" not in line


def test_binary_config_and_missing_file(demo: Path) -> None:
    path = demo.parent / "bin.toml"
    path.write_bytes(b"\x00\xff\xfe\x80" * 20)
    one_error(cli("-c", str(path), "audit"), 3, str(path), "not UTF-8")
    one_error(cli("-c", str(demo.parent / "none.toml"), "audit"), 3, "none.toml", "cannot read")
    one_error(cli("-c", str(demo.parent), "audit"), 3, "is a directory")


def estate_with(demo: Path, change: Callable[[dict[str, Any]], None]) -> tuple[Path, dict[str, str]]:
    import tomllib

    data = tomllib.loads((demo.parent / "estate.toml").read_text())
    change(data["estates"]["vc-ams"])
    (demo.parent / "estate.toml").write_text(toml_text(data))
    return demo.parent / "estate.toml", snapshot(demo.parent)


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (lambda e: e.__setitem__("datastores", [1]), ["estates.vc-ams.datastores[0]: expected a table"]),
        (lambda e: e["datastores"][0].__setitem__("capacity_gib", -1), ["datastores[0].capacity_gib", "at least 0"]),
        (lambda e: e["datastores"][0].__setitem__("capacity_gib", 0.5), ["datastores[0]: overcommitted"]),
        (lambda e: e["vms"][0].__setitem__("disks", ["disk"]), ["vms[0].disks[0]: expected a table, got a string"]),
        (lambda e: e["vms"][0].__setitem__("secondaries", [{"disks": {}}]), ["vms[0].secondaries[0].mechanism"]),
        (lambda e: e["hosts"].append(dict(e["hosts"][0])), ["appears twice"]),
        (lambda e: e["vms"][0].__setitem__("ha", 1), ["vms[0].ha: expected true or false"]),
        (lambda e: e["vms"][0].__setitem__("memory_gib", math.inf), ["vms[0].memory_gib", "finite"]),
    ],
)
def test_bad_estates(demo: Path, change: Callable[[dict[str, Any]], None], needles: list[str]) -> None:
    path, before = estate_with(demo, change)
    one_error(cli("-c", str(demo), "inventory"), 3, str(path), *needles)
    assert snapshot(demo.parent) == before


def test_deeply_nested_json_inventory_and_numbers(demo: Path) -> None:
    inv = demo.parent / "inv.json"
    inv.write_text("[" * 100_000 + "]" * 100_000)
    one_error(cli("-c", str(demo), "audit", "--from", str(inv)), 3, str(inv), "nested deeper")
    good = cli("-c", str(demo), "inventory", "-o", "json")
    for bad, needle in (
        (good.out.replace('"capacity": ', '"capacity": 1e999 + ', 1).replace(" + ", ', "x": ', 1), "finite"),
        (good.out.replace('"free": ', '"free": NaN, "y": ', 1), "finite"),
        (good.out.replace('"capacity": ', '"capacity": ' + "9" * 5000 + ', "x": ', 1), "64 bits"),
        (good.out.replace('"capacity": ', f'"capacity": {2**63}, "x": ', 1), "64 bits"),  # the shortest too big
        (good.out.replace('"capacity": ', '"capacity": -1, "x": ', 1), "datastores[0].capacity: must be at least 0"),
    ):
        inv.write_text(bad)
        one_error(cli("-c", str(demo), "audit", "--from", str(inv)), 3, str(inv), needle)


def test_plan_with_a_wrong_type_names_the_action_and_key(demo: Path) -> None:
    plan = demo.parent / "plan.json"
    assert cli("-c", str(demo), "plan", "--out", str(plan)).code == 0
    before = snapshot(demo.parent)
    doc = json.loads(plan.read_text())
    doc["actions"][3]["datastores"][0] = 7
    plan.write_text(json.dumps(K.resign(doc)))
    one_error(cli("-c", str(demo), "apply", str(plan), "--yes"), 8, f"{plan}: malformed plan: actions[3].datastores[0]")
    one_error(cli("-c", str(demo), "apply", str(plan), "--yes"), 8, "expected a string, got a number")
    plan.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    one_error(cli("-c", str(demo), "plan", "show", str(plan)), 8, str(plan), "not UTF-8")
    before.pop("plan.json")
    after = snapshot(demo.parent)
    after.pop("plan.json")
    assert after == before


def test_plan_out_that_cannot_be_written(demo: Path) -> None:
    before = snapshot(demo.parent)
    for bad in ("/proc/version", str(demo.parent / "nowhere" / "p.json"), str(demo.parent), "/dev/null"):
        one_error(cli("-c", str(demo), "plan", "--out", bad), 3, f"--out {bad}: cannot write there")
    assert snapshot(demo.parent) == before


def failover_plan(demo: Path) -> tuple[Path, dict[str, Any]]:
    path = demo.parent / "fo.json"
    r = cli("-c", str(demo), "failover", "plan", "--domain", "site=ams1", "--fence", "--out", str(path))
    assert r.code in (0, 1), r.err
    return path, json.loads(path.read_text())


def test_failover_plan_steps_not_a_list_and_a_promote_without_mechanism(demo: Path) -> None:
    path, doc = failover_plan(demo)
    before = snapshot(demo.parent)
    changes: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda d: d.__setitem__("steps", {}), "steps: expected a list"),
        (lambda d: d["steps"][0].__setitem__("mechanism", 5), "steps[0].mechanism: expected a string"),
        (lambda d: d["steps"][0].__setitem__("kind", "explode"), "steps[0].kind: expected restart or promote"),
        (lambda d: d["steps"][0].__setitem__("lag", -1), "steps[0].lag: must be at least 0"),
        (lambda d: d["steps"][0].__setitem__("forced", 1), "steps[0].forced: expected true or false"),
        (lambda d: d["steps"][0].__setitem__("surprise", 1), "steps[0].surprise: unknown key"),
    ]
    for change, needle in changes:
        bad = copy.deepcopy(doc)
        change(bad)
        path.write_text(json.dumps(bad))
        one_error(cli("-c", str(demo), "failover", "run", str(path), "--yes"), 8, str(path), needle)
        assert snapshot(demo.parent) | {"fo.json": ""} == before | {"fo.json": ""}


def test_duplicate_recovery_groups(demo: Path) -> None:
    rp = demo.parent / "rp.toml"
    rp.write_text('[[groups]]\nname = "db"\nvms = ["a"]\n[[groups]]\nname = "db"\nvms = ["b"]\n')
    args = ("-c", str(demo), "failover", "plan", "--domain", "site=ams1", "--recovery-plan", str(rp))
    one_error(cli(*args), 3, str(rp), "groups[1].name", "appears twice")
    rp.write_text("groups = 1\n")
    one_error(cli(*args), 3, str(rp), "groups: expected a list, got a number")


def test_ovirt_dr_mapping_deep_and_binary(demo: Path) -> None:
    m = demo.parent / "dr.yml"
    args = ("-c", str(demo), "migrate", "export", "--map", str(m), "--format", "pve")
    m.write_text("dr_import_storages: " + "[" * 500 + "]" * 500 + "\n")
    one_error(cli(*args), 3, str(m), "nested deeper")
    m.write_text("dr_cluster_mappings:\n" + "".join("  " * i + "- \n" for i in range(1, 2000)))
    one_error(cli(*args), 3, str(m))
    m.write_bytes(b"dr_import_storages: \xff\xfe\n")
    one_error(cli(*args), 3, str(m), "not UTF-8")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--slow", "-1"], "--slow"),
        (["--slow", "nan"], "--slow"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--fail-rate", "-0.1"], "--fail-rate"),
        (["--fail-rate", "nan"], "--fail-rate"),
    ],
)
def test_sim_fault_values_out_of_range(demo: Path, args: list[str], needle: str) -> None:
    assert cli("-c", str(demo), "inventory").code == 0  # the sim state exists
    before = snapshot(demo.parent)
    r = cli("-c", str(demo), "sim", "fault", "vc-ams", *args)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, r.err
    assert snapshot(demo.parent) == before


def test_the_limits_hold_below_the_parsers() -> None:
    """The loaders themselves, without the CLI: the depth scan runs before a recursive parser."""
    from ftbridge.errors import ConfigError, PlanError
    from ftbridge.loading import parse_json, parse_toml

    with pytest.raises(ConfigError, match="nested deeper than 64"):
        parse_toml("a = " + "[" * 65 + "]" * 65, source="f.toml", what="x")
    parse_toml("a = " + "[" * 60 + "]" * 60 + '\nb = "' + "[" * 200 + '"', source="f.toml", what="x")
    with pytest.raises(PlanError, match=r"f.json: a\[0\]: number out of range"):
        parse_json('{"a": [' + "1" * 25 + "]}", source="f.json", what="x", error=PlanError)
    with pytest.raises(PlanError, match=r"f.json: a.b: expected a finite number"):
        parse_json('{"a": {"b": -Infinity}}', source="f.json", what="x", error=PlanError)
    os.environ.pop("FTBRIDGE_NEVER_SET", None)
