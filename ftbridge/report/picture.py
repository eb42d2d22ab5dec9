"""The placement picture: failure domains as nested boxes, VMs where their copies live (SVG).

Sites hold rooms, rooms hold arrays (and the hosts of the room), arrays hold datastores; a
label the estate does not know is a dashed "unknown" box, never merged into a known one.
Each VM is a square on the datastore its primary is drawn at, each secondary a circle on
its own datastore, and a line joins them: red where the pair is not separated at the VM's
policy level, green where it is, grey where no policy counts that copy.

Laid out here, in Python, so the page needs no script and prints as it shows; the layout is
a plain flow (left to right, wrapping) at every level, computed once per box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

MARK = 7  # a VM's square / a copy's circle
STEP = 9  # marker pitch
PAD = 8
HEAD = 18  # a box's title line
FLOW_WIDTH = 1600  # the picture's width before boxes wrap
HOST_H = 16

_HOST_STYLE = {
    "up": ("#e8f5e9", "#2e7d32", ""),
    "maintenance": ("#fff8e1", "#b26a00", ""),
    "down": ("#ffcdd2", "#b71c1c", ""),
    "unreachable": ("#fff3e0", "#e65100", "3,2"),
    "unknown": ("#eeeeee", "#757575", "3,2"),
}
_STATUS_FILL = {
    "protected": "#2e7d32",
    "degraded": "#f9a825",
    "unprotected": "#c62828",
    "not-required": "#78909c",
    "managed": "#5c6bc0",
    "unmanaged": "#b0bec5",
}


@dataclass
class Box:
    """A laid-out box: size, and how to draw it at a position (children drawn inside)."""

    w: float
    h: float
    draw: Callable[[float, float, list[str]], None]


@dataclass
class Picture:
    svg: str
    width: float
    height: float
    sites: list[str | None] = field(default_factory=list)


def _flow(children: list[Box], max_w: float, gap: float = PAD) -> tuple[list[tuple[float, float]], float, float]:
    """Positions of ``children`` left to right, wrapping at ``max_w``; and the size they take."""
    pos: list[tuple[float, float]] = []
    x = y = row_h = width = 0.0
    for c in children:
        if x > 0 and x + c.w > max_w:
            x, y = 0.0, y + row_h + gap
            row_h = 0.0
        pos.append((x, y))
        x += c.w + gap
        row_h = max(row_h, c.h)
        width = max(width, x - gap)
    return pos, width, (y + row_h) if children else 0.0


def _text_w(text: str, size: float = 10) -> float:
    return len(text) * size * 0.62 + 2


def _label(level: str, name: str | None) -> str:
    return name if name is not None else f"{level} unknown"


class _Layout:
    def __init__(self, data: dict[str, Any]) -> None:
        self.ds = {d["ref"]: d for d in data["datastores"]}
        self.hosts = {h["ref"]: h for h in data["hosts"]}
        self.vms = data["vms"]
        self.marks: dict[str, list[tuple[str, dict[str, Any], dict[str, Any] | None]]] = {}
        for v in self.vms:
            if v["primary"]["drawn_on"]:
                self.marks.setdefault(v["primary"]["drawn_on"], []).append(("primary", v, None))
            for s in v["secondaries"]:
                if s["drawn_on"]:
                    self.marks.setdefault(s["drawn_on"], []).append(("secondary", v, s))
        self.points: dict[tuple[str, str], tuple[float, float]] = {}  # (vm key, "p"|secondary id) -> centre

    # -- leaves -------------------------------------------------------------------------------
    def datastore(self, ref: str) -> Box:
        d = self.ds[ref]
        marks = sorted(self.marks.get(ref, []), key=lambda m: (m[0] != "primary", m[1]["vm_name"], m[1]["vm"]))
        cols = max(12, min(40, math.ceil(math.sqrt(len(marks)) * 1.6)))
        rows = math.ceil(len(marks) / cols)
        sub = f"{d['kind']}{'' if d['shared'] else ' local'} {_gib(d['free'])}/{_gib(d['capacity'])} free"
        w = max(cols * STEP + 2 * 5, _text_w(d["name"]) + 8, _text_w(sub, 8) + 8)
        h = 30 + rows * STEP + (6 if rows else 0)

        def draw(x: float, y: float, out: list[str]) -> None:
            bad = not d["accessible"]
            dash = "" if d["shared"] else ' stroke-dasharray="4,2"'
            out.append(
                f'<g class="datastore" data-datastore="{escape(ref)}">'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="3" '
                f'fill="{"#ffebee" if bad else "#ffffff"}" stroke="{"#b71c1c" if bad else "#90a4ae"}"{dash}>'
                f"<title>{escape(d['endpoint'])}/{escape(d['name'])}: {escape(sub)}"
                f"{' INACCESSIBLE' if bad else ''}</title></rect>"
                f'<text x="{x + 4:.0f}" y="{y + 12:.0f}" class="ds">{escape(d["name"])}</text>'
                f'<text x="{x + 4:.0f}" y="{y + 23:.0f}" class="sub">{escape(sub)}</text>'
            )
            for n, (role, v, s) in enumerate(marks):
                cx = x + 5 + (n % cols) * STEP + MARK / 2
                cy = y + 30 + (n // cols) * STEP + MARK / 2
                key = f"{v['endpoint']}/{v['vm']}"
                if role == "primary":
                    self.points[(key, "p")] = (cx, cy)
                    tip = (
                        f"{v['vm_name']} ({v['endpoint']}): primary on {d['name']}, host "
                        f"{v['primary']['host_name'] or '-'}; policy {v['policy'] or 'none'}; {v['status']}"
                    )
                    out.append(
                        f'<rect class="vm {v["status"]}" data-vm="{escape(key)}" x="{cx - MARK / 2:.1f}" '
                        f'y="{cy - MARK / 2:.1f}" width="{MARK}" height="{MARK}" '
                        f'fill="{_STATUS_FILL[v["status"]]}"><title>{escape(tip)}</title></rect>'
                    )
                else:
                    assert s is not None
                    self.points[(key, s["id"])] = (cx, cy)
                    lag = "" if s["lag_s"] is None else f", lag {s['lag_s']:.0f}s"
                    tip = (
                        f"{v['vm_name']} ({v['endpoint']}): {s['mechanism']} copy {s['id']} on {d['name']}, "
                        f"{s['state']}{lag}"
                    )
                    out.append(
                        f'<circle class="copy" data-vm="{escape(key)}" cx="{cx:.1f}" cy="{cy:.1f}" '
                        f'r="{MARK / 2 - 0.5}" '
                        f'fill="#ffffff" stroke="{_STATUS_FILL[v["status"]]}" stroke-width="1.6">'
                        f"<title>{escape(tip)}</title></circle>"
                    )
            out.append("</g>")

        return Box(w, h, draw)

    def host(self, ref: str) -> Box:
        h = self.hosts[ref]
        w = _text_w(h["name"], 9) + 8
        fill, stroke, dash = _HOST_STYLE.get(h["state"], _HOST_STYLE["unknown"])

        dashed = f' stroke-dasharray="{dash}"' if dash else ""

        def draw(x: float, y: float, out: list[str]) -> None:
            out.append(
                f'<g class="host" data-host="{escape(ref)}"><rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" '
                f'height="{HOST_H}" rx="8" fill="{fill}" stroke="{stroke}"{dashed}>'
                f"<title>host {escape(h['endpoint'])}/{escape(h['name'])}: {escape(h['state'])}</title></rect>"
                f'<text x="{x + 4:.0f}" y="{y + 11.5:.0f}" class="host">{escape(h["name"])}</text></g>'
            )

        return Box(w, HOST_H, draw)

    # -- containers -----------------------------------------------------------------------------
    def container(
        self, cls: str, level: str, name: str | None, kids: list[Box], max_w: float, *, head: float = HEAD
    ) -> Box:
        inner = max_w - 2 * PAD
        pos, cw, ch = _flow(kids, inner)
        title = _label(level, name)
        w = max(cw, _text_w(title, 11)) + 2 * PAD
        h = head + ch + PAD + (0 if kids else 4)

        def draw(x: float, y: float, out: list[str]) -> None:
            unknown = name is None
            attr = f' data-{level}="{escape(name)}"' if name is not None else f' data-{level}=""'
            dash = ' stroke-dasharray="6,3"' if unknown else ""
            out.append(
                f'<g class="{cls}{" unknown" if unknown else ""}"{attr}>'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="5" class="box {cls}"{dash}/>'
                f'<text x="{x + PAD:.0f}" y="{y + head - 5:.0f}" class="{cls}-title">{escape(title)}</text>'
            )
            for (dx, dy), k in zip(pos, kids, strict=True):
                k.draw(x + PAD + dx, y + head + dy, out)
            out.append("</g>")

        return Box(w, h, draw)

    def room(self, room: dict[str, Any], max_w: float) -> Box:
        arrays = [
            self.container("array", "array", a["array"], [self.datastore(r) for r in a["datastores"]], max_w - 2 * PAD)
            for a in room["arrays"]
        ]
        kids = list(arrays)
        if room["hosts"]:
            hosts = [self.host(r) for r in room["hosts"]]
            kids.append(self.container("hosts", "hosts", "hosts", hosts, max_w - 2 * PAD, head=HEAD - 2))
        return self.container("room", "room", room["room"], kids, max_w)


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.0f}G"


def draw(data: dict[str, Any], width: float = FLOW_WIDTH) -> Picture:
    """The placement picture of a report's data, as one SVG element."""
    lay = _Layout(data)
    sites = [
        lay.container("site", "site", s["site"], [lay.room(r, width - 4 * PAD) for r in s["rooms"]], width - 2 * PAD)
        for s in data["domains"]
    ]
    pos, w, h = _flow(sites, width, gap=2 * PAD)
    body: list[str] = []
    for (x, y), b in zip(pos, sites, strict=True):
        b.draw(x + PAD, y + PAD, body)
    lines: list[str] = []
    for sep in (None, True, False):  # red lines drawn last, on top
        for v in data["vms"]:
            key = f"{v['endpoint']}/{v['vm']}"
            p = lay.points.get((key, "p"))
            if p is None:
                continue
            for s in v["secondaries"]:
                if s["separated"] is not sep:
                    continue
                q = lay.points.get((key, s["id"]))
                if q is None:
                    continue
                cls = {None: "pair uncounted", True: "pair separated", False: "pair not-separated"}[sep]
                mx, my = (p[0] + q[0]) / 2, min(p[1], q[1]) - 20 - abs(p[0] - q[0]) / 8
                tip = f"{v['vm_name']}: {s['mechanism']} copy {s['id']} " + (
                    "not counted by a policy"
                    if sep is None
                    else f"separated at {v['level']} level"
                    if sep
                    else f"NOT separated at {v['level']} level: {s['shared_failure']}"
                )
                lines.append(
                    f'<path class="{cls}" data-vm="{escape(key)}" d="M{p[0]:.1f},{p[1]:.1f} '
                    f'Q{mx:.1f},{my:.1f} {q[0]:.1f},{q[1]:.1f}"><title>{escape(tip)}</title></path>'
                )
    total_w, total_h = w + 2 * PAD, h + 2 * PAD
    dense = " dense" if len(lines) > 300 else ""  # many pairs: separated ones fade, red ones stand out
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="placement{dense}" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
        f'width="{total_w:.0f}" height="{total_h:.0f}" role="img" aria-label="placement across failure domains">'
        + "".join(body)
        + '<g class="pairs">'
        + "".join(lines)
        + "</g></svg>"
    )
    return Picture(svg, total_w, total_h, [s["site"] for s in data["domains"]])


__all__ = ["Picture", "draw"]
