"""Reading vSphere SOAP replies straight from their XML, without pyVmomi's deserialiser.

pyVmomi turns every device of every VM into Python objects, which costs many times the
transfer itself on a large estate, and it refuses a whole reply when one type or property in
it is newer than the pyVmomi installed; inventory needs a handful of fields. The reply is fed
to the C XML parser while it downloads, and only the wanted elements are read. Stdlib only.

What the reader relies on (see the plugin README's rule table):

* ``RetrievePropertiesExResponse/returnval`` is a ``RetrieveResult``: ``objects``
  (``ObjectContent``: ``obj``, ``propSet`` of ``{name, val}``, ``missingSet`` of
  ``{path, fault}``) and an optional ``token`` for ContinueRetrievePropertiesEx (vSphere API
  reference, ``vmodl.query.PropertyCollector``); a Fetch reply's ``returnval`` is the value.
* ``xsd:boolean`` is ``true``/``false``/``1``/``0`` (XML Schema part 2, 3.2.2; pyVmomi's
  SoapAdapter reads all four), and attribute values may be quoted with ``'`` or ``"`` (XML 1.0,
  production AttValue), so neither is assumed.
* ``xsi:type`` values may carry a namespace prefix (``vim25:VirtualDisk``): the local name is
  the type.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

V = "{urn:vim25}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

Element = ET.Element


@dataclass
class ObjectContent:
    """One object of the reply: its type, moref value, the raw value element per path, and
    the paths the server did not return, each with its fault's type name (``NoPermission``,
    ``NotAuthenticated``, ``InvalidProperty``...; ``""`` when the server named none)."""

    type: str
    moid: str
    props: dict[str, Element]
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    objects: list[ObjectContent] = field(default_factory=list)
    token: str | None = None


#: Device types cut from the byte stream by ``Feeder(lean=True)``: what inventory never reads
#: and what makes up most of a VM's device list. Anything else (disks, CD-ROMs, NICs, types
#: newer than this list) is parsed as usual. Controllers are every ``...Controller`` type.
LEAN_CUT = frozenset(
    {
        "VirtualKeyboard",
        "VirtualPointingDevice",
        "VirtualMachineVideoCard",
        "VirtualMachineVMCIDevice",
        "VirtualMachineVMIROM",
    }
)
_TYPE_ATTR = re.compile(rb"""\btype\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def cut_device(tag: bytes) -> bool:
    """Is this ``<VirtualDevice ...>`` start tag one of :data:`LEAN_CUT` (or a controller)?
    Only a type read positively from the tag is cut; a tag it cannot read passes."""
    m = _TYPE_ATTR.search(tag)
    if m is None:
        return False
    name = (m.group(1) if m.group(1) is not None else m.group(2)).decode("ascii", "replace")
    name = name.rpartition(":")[2]
    return name.endswith("Controller") or name in LEAN_CUT


class Feeder:
    """Incremental parser: feed bytes as they arrive, then :meth:`page` (or :meth:`result`).

    With ``lean``, device arrays lose the devices :func:`cut_device` names before the XML
    parser sees them: controllers, keyboard, mouse and video are most of a VM's configuration
    and inventory reads nothing from them. Only ``<VirtualDevice ...>`` elements written that
    way (the default namespace vCenter uses) and positively recognised are cut; anything else
    passes through and is parsed as usual.
    """

    _OPEN = b"<VirtualDevice "
    _CLOSE = b"</VirtualDevice>"

    def __init__(self, *, lean: bool = False) -> None:
        self._parser = ET.XMLParser()
        self._filter = lean
        self._carry = b""
        self._skipping = False

    def feed(self, data: bytes) -> None:
        if not self._filter:
            self._parser.feed(data)
            return
        buf = self._carry + data if self._carry else data
        out: list[bytes] = []
        pos, n = 0, len(buf)
        opn, close = self._OPEN, self._CLOSE
        while True:
            if self._skipping:
                j = buf.find(close, pos)
                if j < 0:
                    pos = max(pos, n - len(close) + 1)
                    break
                pos, self._skipping = j + len(close), False
            i = buf.find(opn, pos)
            if i < 0:
                keep = max(pos, n - len(opn) + 1)
                out.append(buf[pos:keep])
                pos = keep
                break
            end = buf.find(b">", i)
            if end < 0:
                out.append(buf[pos:i])
                pos = i
                break
            tag = buf[i:end]
            if tag.endswith(b"/") or not cut_device(tag):
                out.append(buf[pos : end + 1])
            else:
                out.append(buf[pos:i])
                self._skipping = True
            pos = end + 1
        self._carry = buf[pos:]
        if out:
            self._parser.feed(b"".join(out))

    def result(self) -> Element | None:
        """The reply's ``returnval`` element (None for an empty reply)."""
        if self._carry:
            self._parser.feed(self._carry)
            self._carry = b""
        root = self._parser.close()
        for el in root.iter(V + "returnval"):
            return el
        return None

    def page(self) -> Page:
        """The reply read as a RetrieveResult (RetrievePropertiesEx and its continuation)."""
        ret = self.result()
        page = Page()
        if ret is None:  # an empty reply: <RetrievePropertiesExResponse/>
            return page
        page.token = ret.findtext(V + "token")
        for oc in ret.iterfind(V + "objects"):
            obj = oc.find(V + "obj")
            if obj is None:
                continue
            props: dict[str, Element] = {}
            for ps in oc.iterfind(V + "propSet"):
                name = ps.findtext(V + "name")
                val = ps.find(V + "val")
                if name is not None and val is not None:
                    props[name] = val
            missing = {
                ms.findtext(V + "path") or "": fault_name(child(ms, "fault")) for ms in oc.iterfind(V + "missingSet")
            }
            page.objects.append(ObjectContent(obj.get("type", ""), obj.text or "", props, missing))
        return page


def soap_fault(data: bytes) -> tuple[str, str]:
    """(fault type, faultstring) of a SOAP fault reply, for faults pyVmomi cannot read."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return "", ""
    fault = next(root.iter("{http://schemas.xmlsoap.org/soap/envelope/}Fault"), None)
    if fault is None:
        return "", ""
    text = fault.findtext("faultstring") or ""
    detail = fault.find("detail")
    first = next(iter(detail), None) if detail is not None else None
    name = xsi_type(first) or (first.tag.rpartition("}")[2].removesuffix("Fault") if first is not None else "")
    return name, text


def fault_name(el: Element | None) -> str:
    """``NoPermission`` from a ``LocalizedMethodFault`` element (its ``fault``'s xsi:type)."""
    return xsi_type(child(el, "fault"))


def parse(data: bytes, *, lean: bool = False) -> Page:
    f = Feeder(lean=lean)
    f.feed(data)
    return f.page()


# --- reading values ----------------------------------------------------------------------


def text(el: Element | None, default: str = "") -> str:
    return el.text or default if el is not None else default


def child(el: Element | None, name: str) -> Element | None:
    return el.find(V + name) if el is not None else None


def children(el: Element | None, name: str) -> Iterator[Element]:
    return el.iterfind(V + name) if el is not None else iter(())


def ctext(el: Element | None, name: str, default: str = "") -> str:
    return text(child(el, name), default)


def xsi_type(el: Element | None) -> str:
    """The element's ``xsi:type``, without a namespace prefix (``""`` when it has none)."""
    return el.get(XSI_TYPE, "").rpartition(":")[2] if el is not None else ""


def moid(el: Element | None) -> str | None:
    """The value of a ManagedObjectReference element (``<x type="Datastore">ds-1</x>``)."""
    return el.text.strip() or None if el is not None and el.text else None


def morefs(el: Element | None) -> list[str]:
    """The values of an ArrayOfManagedObjectReference."""
    return [m for x in items(el) if (m := moid(x))]


def boolean(el: Element | None, default: bool | None = None) -> bool | None:
    """An ``xsd:boolean``: ``true``/``1`` or ``false``/``0``; anything else is ``default``."""
    if el is None or el.text is None:
        return default
    t = el.text.strip()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    return default


def integer(el: Element | None, default: int = 0) -> int:
    try:
        return int(el.text) if el is not None and el.text else default
    except ValueError:
        return default


def items(el: Element | None) -> Iterable[Element]:
    """The entries of an ArrayOf* value (its child elements)."""
    return list(el) if el is not None else []
