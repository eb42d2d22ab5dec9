"""The streaming reader against pyVmomi's own deserialiser, on real vCenter/ESXi replies.

``shared/real/vsphere-replies`` holds RetrievePropertiesEx and Fetch replies recorded by
pyVmomi's test suite against vCenter 5.5, 6.0, 8.0.3 and ESXi 6.0/6.7 (each folder's
``index.tsv`` says which fixture and interaction). Each reply is fed to :mod:`wire` whole and
in small pieces, with and without the lean device filter, and every value the reader returns
is compared with what pyVmomi builds from the same bytes: same objects, same properties, and
for every property the same value read through wire's own readers (text, boolean, integer,
moref), element by element.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ftbridge_vsphere import wire
from pyVmomi import Iso8601, SoapAdapter, VmomiSupport, vmodl
from vsphere_testlib import shared_real

# pyVmomi ships types for its vim/vmodl objects only: SoapAdapter, VmomiSupport and Iso8601 have no
# annotations, so calling them is an untyped call (each such line carries ignore[no-untyped-call]).
REAL = shared_real()
REPLIES = REAL / "vsphere-replies" if REAL else None
STUB = SoapAdapter.SoapStubAdapter(  # type: ignore[no-untyped-call]
    "localhost",
    version=VmomiSupport.newestVersions.GetName("vim"),  # type: ignore[no-untyped-call]
)


def recorded() -> list[tuple[str, Path, dict[str, str]]]:
    if REPLIES is None or not REPLIES.is_dir():
        return []
    out = []
    for folder in sorted(p for p in REPLIES.iterdir() if p.is_dir()):
        with open(folder / "index.tsv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                out.append((f"{folder.name}/{row['sha']}", folder / f"{row['sha']}.xml", row))
    return out


CASES = recorded()
needs_real = pytest.mark.skipif(
    not CASES, reason="shared/real/vsphere-replies is absent (set FTBRIDGE_SHARED or clone beside ../shared)"
)


def pyvmomi_reply(data: bytes, fetch: bool) -> Any:
    pc = vmodl.query.PropertyCollector
    # pyVmomi's stubs declare the method a plain function; it is a ManagedMethod that carries .info
    result = object if fetch else pc.RetrievePropertiesEx.info.result  # type: ignore[attr-defined]
    reader = SoapAdapter.SoapResponseDeserializer(STUB)  # type: ignore[no-untyped-call]
    return reader.Deserialize(io.BytesIO(data), result)  # type: ignore[no-untyped-call]


def local(el: wire.Element) -> str:
    return el.tag.rpartition("}")[2]


def agree(val: Any, el: wire.Element, where: str, lean: bool = False) -> Iterator[str]:
    """Every difference between pyVmomi's value and what wire reads from the element. With
    ``lean``, pyVmomi's device lists lose what the filter cuts: ``<VirtualDevice>`` items of an
    ArrayOfVirtualDevice (``config.hardware.device``); ``<device>`` children of a whole
    ``config`` are not cut."""
    if isinstance(val, list):
        got = list(wire.items(el))
        if lean and got and local(got[0]) == "VirtualDevice":  # only <VirtualDevice> items are cut
            val = [v for v in val if not _cut(v)]
        if len(got) != len(val):
            yield f"{where}: {len(got)} items, pyVmomi {len(val)}"
            return
        for i, (v, e) in enumerate(zip(val, got, strict=True)):
            yield from agree(v, e, f"{where}[{i}]", lean)
    elif isinstance(val, VmomiSupport.ManagedObject):
        if wire.moid(el) != val._moId or el.get("type") != val._wsdlName:
            yield f"{where}: moref {el.get('type')}:{wire.moid(el)}, pyVmomi {val._wsdlName}:{val._moId}"
    elif isinstance(val, VmomiSupport.DataObject):
        yield from _data_object(val, el, where, lean)
    elif isinstance(val, bool):
        if wire.boolean(el) is not val:
            yield f"{where}: boolean {wire.text(el)!r}, pyVmomi {val}"
    elif isinstance(val, int):
        if wire.integer(el, default=-(2**70)) != val:
            yield f"{where}: integer {wire.text(el)!r}, pyVmomi {val}"
    elif isinstance(val, float):
        if float(wire.text(el)) != val:
            yield f"{where}: float {wire.text(el)!r}, pyVmomi {val}"
    elif isinstance(val, datetime):
        if Iso8601.ParseISO8601(wire.text(el)) != val:  # type: ignore[no-untyped-call]
            yield f"{where}: time {wire.text(el)!r}, pyVmomi {val}"
    elif isinstance(val, bytes):
        if base64.b64decode(wire.text(el)) != val:
            yield f"{where}: binary differs"
    elif isinstance(val, type):
        if wire.text(el).rpartition(":")[2] != VmomiSupport.GetWsdlName(val):  # type: ignore[no-untyped-call]
            yield f"{where}: type {wire.text(el)!r}, pyVmomi {val}"
    elif isinstance(val, str):
        if wire.text(el) != val:
            yield f"{where}: text {wire.text(el)!r}, pyVmomi {val!r}"
    elif isinstance(val, VmomiSupport.ManagedMethod) or callable(val):
        if wire.text(el).rpartition(":")[2] != getattr(val, "info", val).__dict__.get("wsdlName", wire.text(el)):
            yield f"{where}: method {wire.text(el)!r}"
    else:
        yield f"{where}: unexpected pyVmomi value {type(val)}"


def _cut(dev: Any) -> bool:
    name = type(dev)._wsdlName
    return name.endswith("Controller") or name in wire.LEAN_CUT


def _data_object(val: Any, el: wire.Element, where: str, lean: bool) -> Iterator[str]:
    typ = wire.xsi_type(el)
    if typ and typ != type(val)._wsdlName:
        yield f"{where}: xsi:type {typ}, pyVmomi {type(val)._wsdlName}"
    names = {local(c) for c in el}
    for prop in type(val)._GetPropertyList():
        v = getattr(val, prop.name)
        if prop.name not in names and (v is None or (not isinstance(v, bool | int | float | str | list) or not v)):
            continue  # absent: pyVmomi fills a required property with its type's zero
        if prop.name not in names:
            yield f"{where}.{prop.name}: missing from the element (pyVmomi has {v!r:.60})"
            continue
        found = list(wire.children(el, prop.name))
        if isinstance(v, list) and not (len(found) == 1 and wire.xsi_type(found[0]).startswith("ArrayOf")):
            if len(found) != len(v):
                yield f"{where}.{prop.name}: {len(found)} elements, pyVmomi {len(v)}"
                continue
            for i, (x, e) in enumerate(zip(v, found, strict=True)):
                yield from agree(x, e, f"{where}.{prop.name}[{i}]", lean)
        else:
            yield from agree(v, found[0], f"{where}.{prop.name}", lean)
    known = {p.name for p in type(val)._GetPropertyList()}
    for name in sorted(names - known):
        yield f"{where}: element {name} has no pyVmomi property"


def compare_page(data: bytes, page: wire.Page, lean: bool) -> list[str]:
    want = pyvmomi_reply(data, fetch=False)
    errors: list[str] = []
    if want is None:
        return [] if not page.objects and page.token is None else ["pyVmomi read an empty reply"]
    if page.token != want.token:
        errors.append(f"token {page.token!r}, pyVmomi {want.token!r}")
    if len(page.objects) != len(want.objects):
        return [*errors, f"{len(page.objects)} objects, pyVmomi {len(want.objects)}"]
    for got, oc in zip(page.objects, want.objects, strict=True):
        where = f"{got.type}:{got.moid}"
        if (got.type, got.moid) != (oc.obj._wsdlName, oc.obj._moId):
            errors.append(f"{where}: pyVmomi read {oc.obj}")
            continue
        if list(got.props) != [p.name for p in oc.propSet]:
            errors.append(f"{where}: properties {list(got.props)}, pyVmomi {[p.name for p in oc.propSet]}")
            continue
        want_missing = {m.path: type(m.fault)._wsdlName for m in oc.missingSet}
        if got.missing != want_missing:
            errors.append(f"{where}: missingSet {got.missing}, pyVmomi {want_missing}")
        for p in oc.propSet:
            errors.extend(agree(p.val, got.props[p.name], f"{where}.{p.name}", lean))
    return errors


def feed(data: bytes, size: int, lean: bool) -> wire.Feeder:
    f = wire.Feeder(lean=lean)
    for i in range(0, len(data), size):
        f.feed(data[i : i + size])
    return f


@needs_real
def test_the_recorded_replies_are_all_there() -> None:
    kinds = {row.get("method") or "Fetch" for _, _, row in CASES}
    assert kinds == {"RetrievePropertiesEx", "Fetch"}
    assert sum(1 for _, _, row in CASES if row.get("method") == "RetrievePropertiesEx") == 311
    assert all(path.is_file() for _, path, _ in CASES)


@needs_real
@pytest.mark.parametrize(("name", "path", "row"), CASES, ids=[c[0] for c in CASES])
def test_wire_agrees_with_pyvmomi_on_a_real_reply(name: str, path: Path, row: dict[str, str]) -> None:
    data = path.read_bytes()
    if row.get("method") == "RetrievePropertiesEx":
        for size, lean in ((len(data), False), (7, False), (len(data), True), (5, True), (1, True)):
            page = feed(data, size, lean).page()
            errors = compare_page(data, page, lean)
            assert not errors, f"{name} (chunks of {size}, lean={lean}): " + "; ".join(errors[:5])
    else:  # a Fetch of one property: its returnval is the value
        want = pyvmomi_reply(data, fetch=True)
        for size in (len(data), 3):
            got = feed(data, size, lean=False).result()
            assert got is not None
            errors = list(agree(want, got, f"{row['type']}:{row['moid']}.{row['prop']}"))
            assert not errors, f"{name} (chunks of {size}): " + "; ".join(errors[:5])
