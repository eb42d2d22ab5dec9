"""The saved inventory is described twice, by necessity: ``schemas/inventory.schema.json`` for
other programs, ``ftbridge.inventory_shape`` for the reader (pydantic, fast enough for a
million VMs). They must name the same keys: a key the writer adds to one only is either
published but refused on reading (a broken copy's ``reason`` was: an inventory saved during an
outage did not read back), or read but never described."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from typing_extensions import is_typeddict

from ftbridge import inventory_shape

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "ftbridge" / "schemas" / "inventory.schema.json").read_text()
)


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
