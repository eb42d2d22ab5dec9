"""The streaming JSON reader (``loading.parse_json_streaming``) against the whole-file reader.

``parse_json`` (the standard library's parser behind ftbridge's limits) is the reference: for
every document here, every prefix of it and every one-character corruption of it, the
streaming reader must give the same document (its streamed items, handed over one at a time,
put back in place) or the same one-line error. Then what streaming is for: ``Inventory.load``
reads a saved inventory to the same inventory as ``Inventory.from_dict`` in every key order,
refuses what it refuses in the same words, and never holds the file's parsed tree whole
(measured in a child process: its peak memory against the file's size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge import loading  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.errors import ConfigError  # noqa: E402
from ftbridge.inventory import Inventory  # noqa: E402
from ftbridge.loading import parse_json, parse_json_streaming  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402

DOC: dict[str, Any] = {
    "schema_version": 1,
    "name": 'a "quoted" \\ name \u00e9\u4e2d',
    "hosts": [{"id": "h1", "tags": [], "n": -1.5e3}],
    "vms": [
        {"id": "v1", "disks": [{"size": 20, "ok": True, "none": None}]},
        [],
        "text",
        {"nested": {"deep": [[1, 2], {"x": {}}]}},
    ],
    "after": {"k": [1, 2, 3]},
}
TEXTS = [
    json.dumps(DOC),
    json.dumps(DOC, indent=2),
    json.dumps(DOC, separators=(",", ":")).replace(",", " ,\r\n\t"),
    json.dumps({"vms": []}),
    json.dumps({"vms": 7, "x": 1}),
    json.dumps({"a": 1}),
    json.dumps([1, {"vms": [1]}]),
    "  {  }  ",
]


def _reference(text: str) -> tuple[str, Any]:
    try:
        return "ok", parse_json(text, source="f.json", what="test file")
    except ConfigError as exc:
        return "error", str(exc)


def _streamed(text: str) -> tuple[str, Any]:
    items: list[Any] = []
    heads: list[list[str]] = []

    def each(i: int, item: Any, head: dict[str, Any]) -> None:
        assert i == len(items)
        items.append(item)
        heads.append(list(head))

    try:
        doc = parse_json_streaming(text, source="f.json", what="test file", stream="vms", each=each)
    except ConfigError as exc:
        return "error", str(exc)
    if items:
        assert doc["vms"] == []  # handed over, not kept
        assert all(h == heads[0] for h in heads) and "vms" in heads[0]  # the keys before, as read
        doc["vms"] = items
    return "ok", doc


def _variants(text: str) -> list[str]:
    out = [text[:n] for n in range(len(text))]  # every cut-short file
    for at in range(len(text)):
        for c in '{}[],:"x0 -':
            if text[at] != c:
                out.append(text[:at] + c + text[at + 1 :])
    return out


@pytest.mark.parametrize("text", TEXTS)
def test_every_prefix_and_corruption_reads_as_the_whole_file_reader_reads_it(text: str) -> None:
    checked = errors = 0
    for variant in [text, *_variants(text)]:
        if variant.count('"vms"') > 1:
            continue  # a duplicate list is refused by the streaming reader only (its own test)
        want, got = _reference(variant), _streamed(variant)
        assert got == want, variant
        checked += 1
        errors += want[0] == "error"
    assert errors > checked // 3  # most corruptions break the document


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"vms": [{"size": 99999999999999999999999}]}', "f.json: vms[0].size: number out of range"),
        ('{"vms": [1, {"a": [NaN]}]}', "f.json: vms[1].a[0]: expected a finite number"),
        ('{"x": Infinity, "vms": []}', "f.json: x: expected a finite number"),
        ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
    ],
)
def test_bad_numbers_and_nesting_are_named_as_the_whole_file_reader_names_them(text: str, needle: str) -> None:
    want, got = _reference(text), _streamed(text)
    assert got == want and want[0] == "error" and needle in want[1]


@pytest.mark.parametrize("pad", range(48))
def test_a_long_number_is_found_wherever_it_falls_across_the_checked_slices(
    monkeypatch: pytest.MonkeyPatch, pad: int
) -> None:
    """The digit-run check reads the text a slice at a time (16 MiB; 32 characters here): a
    20-digit number is found inside a slice or across two, and refused with its key."""
    monkeypatch.setattr(loading, "_DIGIT_SLICE", 32)
    text = '{"pad": "' + "x" * pad + '", "n": ' + "9" * 20 + "}"
    for kind, message in (_reference(text), _streamed(text)):
        assert kind == "error" and message == "f.json: n: number out of range (more than 64 bits)"


def test_a_streamed_list_given_twice_is_refused() -> None:
    """``json.loads`` keeps the last of two equal keys; the first list was handed out already."""
    kind, message = _streamed('{"vms": [1], "vms": [2]}')
    assert kind == "error" and message == "f.json: not a test file: vms appears twice"


# -- the saved inventory -------------------------------------------------------------------------
def _demo_inventory(tmp_path: Path) -> dict[str, Any]:
    cfg = load_config(K.copy_demo(tmp_path))
    with Session(cfg) as s:
        inv = collect(s)
    return json.loads(json.dumps(inv.to_dict()))  # type: ignore[no-any-return]


def _same(a: Inventory, b: Inventory) -> bool:
    return json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def test_a_saved_inventory_loads_as_from_dict_reads_it_in_any_key_order(tmp_path: Path) -> None:
    saved = _demo_inventory(tmp_path)
    want = Inventory.from_dict(saved, source="x")
    orders = {
        "as written": saved,
        "sorted keys": json.loads(json.dumps(saved, sort_keys=True)),
        "vms first": {"vms": saved["vms"], **{k: v for k, v in saved.items() if k != "vms"}},
        "hosts last": {**{k: v for k, v in saved.items() if k != "hosts"}, "hosts": saved["hosts"]},
    }
    for name, doc in orders.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2))
        assert _same(Inventory.load(str(path)), want), name
    assert len(want.vms) > 10


@pytest.mark.parametrize("vms_first", [False, True])
def test_a_bad_vm_or_a_bad_head_is_refused_in_the_same_words_as_from_dict(tmp_path: Path, vms_first: bool) -> None:
    saved = _demo_inventory(tmp_path)
    cases: list[dict[str, Any]] = []
    changes: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["vms"][3]["disks"][0].__setitem__("size", "big"),
        lambda d: d["vms"][5].__setitem__("surprise", 1),
        lambda d: d["vms"].append(dict(d["vms"][2])),  # the same VM twice
        lambda d: d["hosts"][0].__setitem__("state", "melted"),
        lambda d: d.__setitem__("schema_version", 99),
        lambda d: d.__setitem__("vms", {"not": "a list"}),
        lambda d: d["datastores"][1].__setitem__("free", d["datastores"][1]["capacity"] + 1),
    ]
    again = saved["vms"][2]
    named = [  # where each is at fault, as its error names it
        "vms[3].disks[0].size: expected an integer",
        "vms[5].surprise: unknown key",
        f"vms[{len(saved['vms'])}].id: {again['endpoint']}/{again['id']} appears twice",
        "hosts[0].state: expected one of",
        "not an ftbridge inventory",
        "vms: expected a list",
        "datastores[1].free: more free space than capacity",
    ]
    for change in changes:
        doc = json.loads(json.dumps(saved))
        change(doc)
        cases.append(doc)
    for n, doc in enumerate(cases):
        if vms_first:
            doc = {"vms": doc["vms"], **{k: v for k, v in doc.items() if k != "vms"}}
        path = tmp_path / f"bad{n}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError) as want:
            Inventory.from_dict(json.loads(path.read_text()), source=str(path))
        with pytest.raises(ConfigError) as got:
            Inventory.load(str(path))
        assert str(got.value) == str(want.value), n
        assert str(got.value).startswith(f"{path}: {named[n]}"), (n, str(got.value))


def _compact(vm: dict[str, Any], i: int) -> dict[str, Any]:
    """A VM as a large estate's often are: short names, no paths, several disks (the demo's
    long paths make its file large beside its parsed tree)."""
    disk = vm["disks"][0]
    return {
        **vm,
        "id": f"vm{i}",
        "name": f"vm{i}",
        "config_path": "",
        "uuid": "",
        "nics": [],
        "disks": [{**d, "path": ""} for d in vm["disks"]] + [{**disk, "id": f"x{k}", "path": ""} for k in range(4)],
        "secondaries": [{**s, "disks": [{**x, "path": ""} for x in s["disks"]]} for s in vm.get("secondaries", [])],
    }


_CHILD = """
import json, sys
from ftbridge.inventory import Inventory

def kib(key):  # this process's own memory (ru_maxrss would count the parent's, kept over exec)
    line = next(x for x in open("/proc/self/status") if x.startswith(key))
    return int(line.split()[1]) * 1024

base = kib("VmRSS:")
inv = Inventory.load(sys.argv[1])
print(json.dumps({"vms": len(inv.vms), "grew": kib("VmHWM:") - base}))
"""


def test_loading_a_large_inventory_never_holds_its_parsed_tree(tmp_path: Path) -> None:
    """30,000 VMs of five disks (about 40 MB of JSON). Read whole, the file's parsed tree and
    its checked copy stood beside the objects: the load grew by 4.8 times the file. Streamed,
    the file's bytes and text and the objects remain: 3.6 times. The bound is 4.2."""
    saved = _demo_inventory(tmp_path)
    saved["vms"] = [_compact(v, i) for i in range(30_000) for v in [saved["vms"][i % len(saved["vms"])]]]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(saved))
    size = path.stat().st_size
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    killer = threading.Timer(300, child.kill)  # a safety net only: the load takes seconds
    killer.start()
    try:
        out, _ = child.communicate()
    finally:
        killer.cancel()
    assert child.returncode == 0
    result = json.loads(out)
    assert result["vms"] == 30_000
    assert size > 30 * 2**20 and result["grew"] < 4.2 * size, (result["grew"] / size, size)


def test_names_that_many_objects_repeat_are_one_string_once_loaded(tmp_path: Path) -> None:
    """Parsed JSON holds a copy of a datastore's id per disk that names it; the loaded
    inventory holds one (half a kilobyte a VM at a million VMs, and a third of the audit)."""
    saved = _demo_inventory(tmp_path)
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(saved))
    for inv in (Inventory.load(str(path)), Inventory.from_dict(json.loads(path.read_text()))):
        by_value: dict[str, set[int]] = {}
        for vm in inv.vms:
            names = [vm.endpoint, vm.host, vm.config_datastore, *vm.tags]
            names += [x for d in vm.disks for x in (d.id, d.datastore, d.kind)]
            names += [x for s in vm.secondaries for x in (s.mechanism, s.host, *(d.datastore for d in s.disks))]
            for name in names:
                if name is not None:
                    by_value.setdefault(name, set()).add(id(name))
        repeated = {k: v for k, v in by_value.items() if len(v) > 1}
        assert repeated == {} and len(by_value) > 20, sorted(repeated)[:5]
