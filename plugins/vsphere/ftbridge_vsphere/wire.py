"""Reading a RetrievePropertiesEx reply straight from its XML, without pyVmomi's deserialiser.

pyVmomi turns every device of every VM into Python objects, which costs many times the
transfer itself on a large estate; inventory needs a handful of fields. The reply is fed to
the C XML parser while it downloads, and only the wanted elements are read. Stdlib only.
"""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

V = "{urn:vim25}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"

Element = ET.Element


@dataclass
class ObjectContent:
    """One object of the reply: its type, moref value, and the raw value element per path."""

    type: str
    moid: str
    props: dict[str, Element]
    missing: tuple[str, ...] = ()


@dataclass
class Page:
    objects: list[ObjectContent] = field(default_factory=list)
    token: str | None = None


class Feeder:
    """Incremental parser: feed bytes as they arrive, then :meth:`page`.

    With ``disks_only``, device arrays keep only their VirtualDisk entries: the other devices
    (controllers, NICs, CD-ROMs, ...) are most of a VM's configuration and inventory reads
    nothing from them, so they are cut from the byte stream before the XML parser sees them.
    Only elements positively recognised (``<VirtualDevice ...type="X">``, X not VirtualDisk)
    are cut; anything written differently passes through and is parsed as usual.
    """

    _OPEN = b"<VirtualDevice "
    _CLOSE = b"</VirtualDevice>"

    def __init__(self, *, disks_only: bool = False) -> None:
        self._parser = ET.XMLParser()
        self._filter = disks_only
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
            if b'type="VirtualDisk"' in tag or tag.endswith(b"/"):
                out.append(buf[pos:end + 1])
            else:
                out.append(buf[pos:i])
                self._skipping = True
            pos = end + 1
        self._carry = buf[pos:]
        if out:
            self._parser.feed(b"".join(out))

    def page(self) -> Page:
        if self._carry:
            self._parser.feed(self._carry)
            self._carry = b""
        root = self._parser.close()
        ret = None
        for el in root.iter(V + "returnval"):
            ret = el
            break
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
            missing = tuple(m.findtext(V + "path") or "" for m in oc.iterfind(V + "missingSet"))
            page.objects.append(ObjectContent(obj.get("type", ""), obj.text or "", props, missing))
        return page


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building a few hundred thousand elements triggers the cyclic GC over and over, for
    nothing (no cycles are made); pausing it cuts the parse by about a third."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse(data: bytes, *, disks_only: bool = False) -> Page:
    f = Feeder(disks_only=disks_only)
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
    return el.get(XSI_TYPE, "") if el is not None else ""


def moid(el: Element | None) -> str | None:
    """The value of a ManagedObjectReference element (``<x type="Datastore">ds-1</x>``)."""
    return el.text if el is not None and el.text else None


def boolean(el: Element | None, default: bool | None = None) -> bool | None:
    if el is None or el.text is None:
        return default
    return el.text.strip() == "true"


def integer(el: Element | None, default: int = 0) -> int:
    try:
        return int(el.text) if el is not None and el.text else default
    except ValueError:
        return default


def items(el: Element | None) -> Iterable[Element]:
    """The entries of an ArrayOf* value (its child elements)."""
    return list(el) if el is not None else []
