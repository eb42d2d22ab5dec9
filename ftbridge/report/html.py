"""The report's data as one self-contained HTML page.

No script, no font, no image file, no link to fetch: styles are inline, the picture is inline
SVG, and a Content-Security-Policy forbids every request, so the page shows the same offline,
in a mail attachment or on an auditor's laptop, and prints as it shows (A4 landscape).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from ftbridge.report.picture import draw

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { --ok:#2e7d32; --warn:#f9a825; --bad:#c62828; --mute:#607d8b; --line:#cfd8dc; }
* { box-sizing: border-box; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color:#1c2329; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid var(--line); padding-bottom: 3px; }
.meta { color: var(--mute); margin: 0 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 130px; }
.card b { display: block; font-size: 20px; }
.card.ok b { color: var(--ok); } .card.warn b { color: #b26a00; } .card.bad b { color: var(--bad); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eceff1; vertical-align: top; }
th { background: #f5f7f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { white-space: nowrap; }
.sev-critical, .sev-error, .st-unprotected, .st-failed, .st-over { color: var(--bad); font-weight: 600; }
.sev-warning, .st-degraded, .st-interrupted, .st-unknown { color: #b26a00; font-weight: 600; }
.sev-info { color: #00838f; }
.st-protected, .st-done, .st-within { color: var(--ok); font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 16px; margin: 6px 0; color: #37474f; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.sw { display: inline-block; width: 10px; height: 10px; }
.picture { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
svg.placement { display: block; max-width: 100%; height: auto; }
svg .box { fill: #fafafa; stroke: #90a4ae; }
svg .box.site { fill: #f1f5f9; stroke: #455a64; stroke-width: 1.5; }
svg .box.room { fill: #f8fafb; }
svg .box.array { fill: #ffffff; stroke: #b0bec5; }
svg .box.hosts { fill: none; stroke: none; }
svg .unknown > .box { fill: #fffde7; stroke: #9e9d24; }
svg text { font-family: system-ui, sans-serif; fill: #263238; }
svg .site-title { font-size: 14px; font-weight: 700; }
svg .room-title, svg .array-title { font-size: 11px; font-weight: 600; fill: #455a64; }
svg .hosts-title { font-size: 10px; fill: #607d8b; }
svg text.ds { font-size: 10px; font-weight: 600; }
svg text.sub { font-size: 8px; fill: #607d8b; }
svg text.host { font-size: 9px; }
svg .pair { fill: none; }
svg .pair.separated { stroke: var(--ok); stroke-opacity: .45; stroke-width: 1; }
svg .pair.not-separated { stroke: var(--bad); stroke-width: 1.8; }
svg.dense .pair.separated { stroke-opacity: .18; }
svg .pair.uncounted { stroke: #90a4ae; stroke-opacity: .6; stroke-dasharray: 3,3; }
.note { color: var(--mute); font-size: 12px; }
.names { font-size: 12px; line-height: 1.7; }
.nm { white-space: nowrap; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; font-size: 10.5px; }
  .picture { overflow: visible; border: none; }
  h2 { break-after: avoid; }
  tr, .card { break-inside: avoid; }
}
"""


def render(data: dict[str, Any]) -> str:
    """The whole page for a report's data (as :func:`ftbridge.report.data.build` makes it)."""
    pic = draw(data)
    inv = data["inventory"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ftbridge DR readiness: {escape(_endpoints(inv))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>DR readiness</h1>",
        f'<p class="meta">Generated {escape(data["generated_at"])} by ftbridge from '
        f"{escape(_source(data))}; inventory collected {escape(inv['collected_at'] or 'at an unknown time')}, "
        f"fingerprint <code>{escape(inv['fingerprint'])}</code>.</p>",
        _cards(data),
        '<section id="placement"><h2>Placement across failure domains</h2>',
        _legend(),
        f'<div class="picture">{pic.svg}</div>',
        '<p class="note">Each square is a VM, drawn on the datastore that holds its primary; each circle '
        "a secondary, on its own datastore. Dashed datastores are not shared; yellow dashed boxes are "
        "labels ftbridge does not know (they count as separated from nothing). Hover for details.</p>",
        "</section>",
        _protection(data),
        _rpo(data),
        _rto(data),
        _findings(data),
        _runs(data),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _endpoints(inv: dict[str, Any]) -> str:
    return ", ".join(e["name"] for e in inv["endpoints"]) or "no endpoints"


def _source(data: dict[str, Any]) -> str:
    src = data["source"]
    return f"the saved inventory {src['detail']}" if src["kind"] == "file" else f"the endpoints {src['detail']}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _cards(data: dict[str, Any]) -> str:
    vms = data["vms"]
    count = {s: sum(v["status"] == s for v in vms) for s in ("protected", "degraded", "unprotected")}
    bad_pairs = sum(s["separated"] is False for v in vms for s in v["secondaries"])
    sev = data["findings"]["summary"]["by_severity"]
    rpo, rto = data["rpo"], data["rto"]
    cards = [
        ("", _plural(len(vms), "VM"), f"on {_plural(len(data['inventory']['endpoints']), 'endpoint')}"),
        ("ok", f"{count['protected']:,}", "protected"),
        ("warn" if count["degraded"] else "ok", f"{count['degraded']:,}", "degraded"),
        ("bad" if count["unprotected"] else "ok", f"{count['unprotected']:,}", "unprotected"),
        ("bad" if bad_pairs else "ok", f"{bad_pairs:,}", "copies not separated"),
        ("bad" if rpo["over"] else "ok", f"{rpo['within']:,}/{rpo['secondaries']:,}", "copies within RPO"),
        ("warn" if rto["untested"] else "ok", f"{rto['tested']:,}/{rto['protected_vms']:,}", "VMs test-failed-over"),
        (
            "bad" if sev.get("critical") or sev.get("error") else "warn" if sev.get("warning") else "ok",
            f"{data['findings']['summary']['findings']:,}",
            f"findings ({sev.get('critical', 0)} critical, {sev.get('error', 0)} error)",
        ),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card {c}"><b>{escape(v)}</b>{escape(t)}</div>' for c, v, t in cards)
        + "</div>"
    )


def _legend() -> str:
    items = [
        ('<span class="sw" style="background:#2e7d32"></span>', "protected VM"),
        ('<span class="sw" style="background:#f9a825"></span>', "degraded"),
        ('<span class="sw" style="background:#c62828"></span>', "unprotected"),
        ('<span class="sw" style="background:#b0bec5"></span>', "no policy"),
        ('<span class="sw" style="border:2px solid #2e7d32;border-radius:50%"></span>', "secondary"),
        (
            '<span class="sw" style="border-top:2px solid #c62828;height:0"></span>',
            "not separated at the policy's level",
        ),
        ('<span class="sw" style="border-top:2px solid #2e7d32;height:0;opacity:.6"></span>', "separated"),
        ('<span class="sw" style="border-top:2px dashed #90a4ae;height:0"></span>', "copy no policy counts"),
    ]
    return '<div class="legend">' + "".join(f"<span>{sw}{escape(t)}</span>" for sw, t in items) + "</div>"


def _table(head: Sequence[tuple[str, str]], rows: Iterable[Sequence[tuple[str, str]]]) -> str:
    """``head``: (title, css class); ``rows``: cells as (text, css class)."""
    th = "".join(f'<th class="{c}">{escape(t)}</th>' for t, c in head)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{escape(t)}</td>' for t, c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _secs(s: float | None) -> str:
    """A duration as people say it: ``0.4 s``, ``45 s``, ``15 min``, ``4 h``, ``1.5 d``."""
    if s is None:
        return "-"
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    units = (("d", 86400), ("h", 3600), ("min", 60))
    for unit, size in units:  # a round figure in the largest unit that has one
        n = s / size
        if n >= 1 and n.is_integer() and n < 1000:
            return f"{n:.0f} {unit}"
    unit, size = next((u, z) for u, z in units if s / z >= 2)
    return f"{s / size:.1f} {unit}"


def _protection(data: dict[str, Any]) -> str:
    rows = []
    for p in data["protection"]:
        if p["policy"] is None:
            rows.append(
                [("(no policy)", "id"), ("-", ""), ("-", "num"), (f"{p['vms']:,}", "num")]
                + [("-", "num")] * 3
                + [(f"{p['vms']:,} not audited", "")]
            )
            continue
        rows.append(
            [
                (p["policy"], "id"),
                (p["separation"], ""),
                (_secs(p["rpo_s"]), "num"),
                (f"{p['vms']:,}", "num"),
                (f"{p['protected']:,}", "num st-protected" if p["protected"] else "num"),
                (f"{p['degraded']:,}", "num st-degraded" if p["degraded"] else "num"),
                (f"{p['unprotected']:,}", "num st-unprotected" if p["unprotected"] else "num"),
                (f"{p['not-required']:,} need no secondary" if p["not-required"] else "", ""),
            ]
        )
    return (
        '<section id="protection"><h2>Protection per policy</h2>'
        + _table(
            [
                ("policy", ""),
                ("separation", ""),
                ("RPO", "num"),
                ("VMs", "num"),
                ("protected", "num"),
                ("degraded", "num"),
                ("unprotected", "num"),
                ("", ""),
            ],
            rows,
        )
        + '<p class="note">Protected: no finding. Degraded: a usable copy, but findings (lag, placement, '
        "capacity). Unprotected: no usable copy the policy counts, or the primary is down.</p></section>"
    )


def _rpo(data: dict[str, Any]) -> str:
    rpo = data["rpo"]
    items = [r for r in rpo["items"] if r["within"] is not True]
    head = (
        f"<p>{rpo['within']:,} of {_plural(rpo['secondaries'], 'counted secondary', 'counted secondaries')} "
        f"within their RPO; {rpo['over']:,} over it; {rpo['unknown']:,} of unknown lag.</p>"
    )
    table = (
        _table(
            [("VM", ""), ("endpoint", ""), ("secondary", ""), ("state", ""), ("lag", "num"), ("RPO", "num"), ("", "")],
            [
                [
                    (r["vm_name"], "id"),
                    (r["endpoint"], "id"),
                    (f"{r['mechanism']} {r['secondary']}", "id"),
                    (r["state"], ""),
                    (_secs(r["lag_s"]), "num"),
                    (_secs(r["rpo_s"]), "num"),
                    (
                        "over" if r["within"] is False else "unknown",
                        "st-over" if r["within"] is False else "st-unknown",
                    ),
                ]
                for r in items
            ],
        )
        if items
        else ""
    )
    return f'<section id="rpo"><h2>RPO compliance</h2>{head}{table}</section>'


def _rto(data: dict[str, Any]) -> str:
    rto = data["rto"]
    tested = [i for i in rto["items"] if i["last_test"] is not None]
    untested = [i for i in rto["items"] if i["last_test"] is None]
    head = (
        f"<p>{rto['tested']:,} of {_plural(rto['protected_vms'], 'VM')} with a counted copy have a verified test "
        f"failover in the journal; median time to a verified copy {_secs(rto['median_recovery_s'])}, "
        f"longest {_secs(rto['max_recovery_s'])}; oldest test {escape(rto['oldest_test_at'] or '-')}.</p>"
    )
    table = (
        _table(
            [
                ("VM", ""),
                ("endpoint", ""),
                ("policy", ""),
                ("copy tested", ""),
                ("verified at", ""),
                ("time to verified", "num"),
                ("run", "num"),
            ],
            [
                [
                    (i["vm_name"], "id"),
                    (i["endpoint"], "id"),
                    (i["policy"] or "-", "id"),
                    (f"{i['last_test']['mechanism'] or '?'} {i['last_test']['secondary'] or '?'}", "id"),
                    (i["last_test"]["verified_at"] or "-", "id"),
                    (_secs(i["last_test"]["recovery_s"]), "num"),
                    (str(i["last_test"]["run"]), "num"),
                ]
                for i in tested
            ],
        )
        if tested
        else ""
    )
    rest = (
        f'<p>Never tested ({len(untested):,}):</p><div class="names">'
        + ", ".join(f'<span class="nm">{escape(i["endpoint"])}/{escape(i["vm_name"])}</span>' for i in untested)
        + '</div><p class="note">Rehearse with: <code>ftbridge failover test</code>.</p>'
        if untested
        else ""
    )
    return f'<section id="rto"><h2>RTO readiness</h2>{head}{table}{rest}</section>'


def _findings(data: dict[str, Any]) -> str:
    items = data["findings"]["items"]
    names = {d["ref"]: d["name"] for d in data["datastores"]}
    summary = data["findings"]["summary"]
    head = (
        f"<p>{_plural(summary['findings'], 'finding')} on {_plural(summary['vms'], 'VM')}; "
        f"{summary['fixable']:,} fixable by <code>ftbridge plan</code>.</p>"
    )
    rows = [
        [
            (f["severity"], f"sev-{f['severity']}"),
            (f["rule"], "id"),
            (f["endpoint"], "id"),
            (f["vm_name"] or names.get(f"{f['endpoint']}/{f['datastore']}", f["datastore"] or "-"), "id"),
            (f["message"].split(": ", 1)[-1] if f["vm_name"] else f["message"], ""),
            (("" if f["fixable"] else "manual: ") + f["fix"], ""),
        ]
        for f in items
    ]
    table = (
        _table(
            [("severity", ""), ("rule", ""), ("endpoint", ""), ("VM / datastore", ""), ("finding", ""), ("fix", "")],
            rows,
        )
        if rows
        else ""
    )
    return f'<section id="findings"><h2>Findings and their fixes</h2>{head}{table}</section>'


def _runs(data: dict[str, Any]) -> str:
    runs = data["runs"]
    if not runs:
        return (
            '<section id="runs"><h2>Last runs</h2><p>No runs in the journal'
            + (f" ({escape(data['journal'])})" if data.get("journal") else "")
            + ".</p></section>"
        )
    rows = [
        [
            (str(r["run"]), "num"),
            (r["started_at"] or "-", "id"),
            (r["kind"], "id"),
            (r["result"], f"st-{r['result']}"),
            (f"{r['states'].get('succeeded', 0) + r['states'].get('skipped', 0)}/{r['actions']}", "num"),
            (_bytes(r["bytes"]), "num"),
            (_secs(r["duration_s"]), "num"),
            (_secs(r["recovery_s"]), "num"),
            (r["user"] or "-", "id"),
            (r["plan_id"], "id"),
        ]
        for r in reversed(runs)
    ]
    return (
        '<section id="runs"><h2>Last runs</h2>'
        + _table(
            [
                ("run", "num"),
                ("started (UTC)", ""),
                ("kind", ""),
                ("result", ""),
                ("actions", "num"),
                ("bytes", "num"),
                ("took", "num"),
                ("recovery", "num"),
                ("who", ""),
                ("plan", ""),
            ],
            rows,
        )
        + "</section>"
    )


def _bytes(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}"
        value /= 1024
    return f"{value:,.0f} TiB"


__all__ = ["CSP", "render"]
