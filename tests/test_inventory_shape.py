"""The saved inventory is described twice, by necessity: ``schemas/inventory.schema.json`` for
other programs, ``ftbridge.inventory_shape`` for the reader (pydantic, fast enough for a
million VMs). They must name the same keys: a key the writer adds to one only is either
published but refused on reading (a broken copy's ``reason`` was: an inventory saved during an
outage did not read back), or read but never described."""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

from typing_extensions import is_typeddict

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge import inventory_shape  # noqa: E402
from ftbridge.audit import audit  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.inventory import Inventory  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "ftbridge" / "schemas" / "inventory.schema.json").read_text())


def _object(node: dict[str, Any]) -> dict[str, Any] | None:
    """The object a schema node describes (through ``$ref`` and array items), or None."""
    while True:
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif node.get("type") == "array" and "items" in node:
            node = node["items"]
        else:
            return node if "properties" in node else None


def _typeddict(annotation: Any) -> Any:
    """The TypedDict an annotation holds (through NotRequired, Annotated, unions, lists), or None."""
    if is_typeddict(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _typeddict(arg)
        if found is not None:
            return found
    return None


def _walk(shape: Any, node: dict[str, Any], where: str, out: list[str]) -> int:
    """Compare one TypedDict with one schema object, then what they hold; the objects compared."""
    hints = typing.get_type_hints(shape, include_extras=True)
    published, read = set(node["properties"]), set(hints)
    for key in sorted(published - read):
        out.append(f"{where}.{key}: in the schema, refused or ignored by the reader")
    for key in sorted(read - published):
        out.append(f"{where}.{key}: read, but not in the schema")
    # (``__required_keys__`` cannot see NotRequired in the module's postponed annotations)
    required = {k for k, v in hints.items() if typing.get_origin(v) is not typing.NotRequired}
    for key in sorted(required - set(node.get("required", ()))):
        out.append(f"{where}.{key}: the reader requires it, the schema does not")
    n = 1
    for key in sorted(published & read):
        sub, inner = _object(node["properties"][key]), _typeddict(hints[key])
        if (sub is None) != (inner is None):
            out.append(f"{where}.{key}: an object on one side only")
        elif sub is not None:
            n += _walk(inner, sub, f"{where}.{key}", out)
    return n


def test_the_reader_and_the_schema_name_the_same_keys() -> None:
    problems: list[str] = []
    compared = _walk(inventory_shape._Inventory, SCHEMA, "inventory", problems)
    assert problems == []
    assert compared >= 12  # the root, endpoints, hosts, datastores, networks, VMs and all they hold


def test_the_comparison_sees_a_key_missing_on_either_side() -> None:
    node = json.loads(json.dumps(SCHEMA["$defs"]["secondary"]))
    node["properties"]["brand_new"] = {"type": "string"}
    del node["properties"]["lag"]
    problems: list[str] = []
    _walk(inventory_shape._Secondary, node, "secondary", problems)
    assert problems == [
        "secondary.brand_new: in the schema, refused or ignored by the reader",
        "secondary.lag: read, but not in the schema",
    ]


# -- every state an outage leaves reads back ------------------------------------------------------
def _outages(inv: Inventory) -> list[tuple[str, dict[str, Any]]]:
    """Per endpoint: each datastore down, each host down, each host unreachable, and every
    host down at once."""
    out: list[tuple[str, dict[str, Any]]] = []
    for d in inv.datastores:
        out.append((d.endpoint, {"datastores_down": [d.id]}))
    for h in inv.hosts:
        out.append((h.endpoint, {"hosts_down": [h.id]}))
        out.append((h.endpoint, {"hosts_unreachable": [h.id]}))
    for ep in sorted({h.endpoint for h in inv.hosts}):
        out.append((ep, {"hosts_down": [h.id for h in inv.hosts if h.endpoint == ep]}))
    return out


def test_an_inventory_taken_in_any_outage_reads_back_whole_and_audits_alike(tmp_path: Path) -> None:
    """Whatever the platform reports while hosts or datastores are lost (broken copies and
    their reasons, unknown power, unreachable hosts), the saved inventory reads back to the
    same inventory and the same audit: an operator's offline copy of a bad night is usable."""
    cfg = load_config(K.copy_demo(tmp_path))
    clear: dict[str, Any] = {"datastores_down": [], "hosts_down": [], "hosts_unreachable": []}
    with Session(cfg) as s:
        base = collect(s)
    cases = _outages(base)
    broken = 0
    for ep, fault in cases:
        sim = SimDriver(cfg.endpoints[ep], endpoint=ep)
        sim.ex_inject(**{**clear, **fault})
        try:
            with Session(cfg) as s:
                inv = collect(s)
            saved = json.loads(json.dumps(inv.to_dict()))
            back = Inventory.from_dict(saved, source=f"{ep} {fault}")
            assert json.loads(json.dumps(back.to_dict())) == saved, (ep, fault)
            (tmp_path / "saved.json").write_text(json.dumps(saved))  # what --from reads, streamed
            loaded = Inventory.load(str(tmp_path / "saved.json"))
            assert json.loads(json.dumps(loaded.to_dict())) == saved, (ep, fault)
            assert [f.id for f in audit(back, cfg).findings] == [f.id for f in audit(inv, cfg).findings], (ep, fault)
            broken += sum(s.reason != "" for v in inv.vms for s in v.secondaries)
        finally:
            sim.ex_inject(**clear)
    assert len(cases) > 40 and broken > 0  # outages that broke copies, with the platform's reason
