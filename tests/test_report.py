"""``ftbridge report``: the page loads in a real browser, clean, and shows what the data says.

The demo's report and a 5,000-VM estate's are opened in headless Chromium (Debian's
``chromium``) over its DevTools protocol: no console error, no exception, no request beyond
the page itself, every site of the demo drawn as a box of its own inside the picture, every
VM drawn, the red lines exactly the pairs the audit finds not separated; a screenshot of
each goes under the test's tmp dir.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cdp import Page, available, chromium
from helpers import ROOT, ftb

pytestmark = pytest.mark.skipif(not available(), reason="Debian's chromium is not installed (apt-get install chromium)")

PICTURE = """(() => {
  const svg = document.querySelector('svg.placement').getBoundingClientRect();
  const inside = r => r.width > 0 && r.height > 0 && r.left >= svg.left - 1 && r.right <= svg.right + 1
                      && r.top >= svg.top - 1 && r.bottom <= svg.bottom + 1;
  const box = g => { const r = g.querySelector(':scope > rect').getBoundingClientRect();
                     return {w: r.width, h: r.height, inside: inside(r)}; };
  return {
    sites: [...document.querySelectorAll('svg.placement g.site')].map(g => ({site: g.dataset.site, ...box(g)})),
    vms: [...document.querySelectorAll('svg.placement rect.vm')].map(e => e.dataset.vm),
    copies: document.querySelectorAll('svg.placement circle.copy').length,
    red: [...document.querySelectorAll('svg.placement path.not-separated')].map(e => e.dataset.vm),
    requests: performance.getEntriesByType('resource').map(e => e.name),
    title: document.title,
  };
})()"""


def _look(page: Page, html: Path, shot: Path, width: int = 1600, height: int = 1200) -> dict[str, Any]:
    page.open(html.as_uri())
    seen = page.evaluate(PICTURE)
    page.screenshot(shot, width, height)
    seen["errors"] = page.errors()
    return dict(seen)


def _sites(inv: dict[str, Any]) -> set[str]:
    return {o["domain"]["site"] for o in [*inv["datastores"], *inv["hosts"]] if o["domain"].get("site")}


def test_demo_report_loads_clean_and_draws_every_site(demo_config: Path, tmp_path: Path) -> None:
    page_file = tmp_path / "demo-report.html"
    r = ftb("-c", str(demo_config), "report", "--out", str(page_file))
    assert r.code == 0, r.err
    assert "Traceback" not in r.err and f"report written to {page_file}" in r.err
    inv = json.loads(ftb("-c", str(demo_config), "inventory", "-o", "json").out)
    findings = json.loads(ftb("-c", str(demo_config), "audit", "-o", "json").out)["findings"]
    shot = tmp_path / "demo-report.png"
    with chromium(tmp_path / "profile") as page:
        seen = _look(page, page_file, shot)
    assert seen["errors"] == []
    assert seen["requests"] == []  # nothing fetched: the page is self-contained
    sites = _sites(inv)
    assert len(sites) >= 3  # the demo spans ams1, ams2, rtm1, fra1
    drawn = {s["site"]: s for s in seen["sites"]}
    assert sites <= set(drawn), f"sites not drawn: {sites - set(drawn)}"
    for name in sites:
        assert drawn[name]["inside"] and drawn[name]["w"] > 40 and drawn[name]["h"] > 40, drawn[name]
    assert sorted(seen["vms"]) == sorted(f"{v['endpoint']}/{v['id']}" for v in inv["vms"])
    assert seen["copies"] == sum(len(v["secondaries"]) for v in inv["vms"])
    # a partial copy needs the primary's own disk: one failure takes both, so its line is red too
    not_separated = {
        f"{f['endpoint']}/{f['vm']}" for f in findings if f["rule"] in ("secondary-not-separated", "secondary-partial")
    }
    assert not_separated and set(seen["red"]) == not_separated
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_report_json_is_what_the_page_shows_and_reads_a_saved_inventory(demo_config: Path, tmp_path: Path) -> None:
    saved = tmp_path / "inv.json"
    saved.write_text(ftb("-c", str(demo_config), "inventory", "-o", "json").out)
    # the estate vanishes: the report from the saved inventory must not need it
    (demo_config.parent / "estate.toml").unlink()
    for p in demo_config.parent.glob("*.simstate.db*"):
        p.unlink()
    data_r = ftb("-c", str(demo_config), "report", "--from", str(saved), "-o", "json")
    assert data_r.code == 0, data_r.err
    data = json.loads(data_r.out)
    assert data["kind"] == "ftbridge-report" and data["source"] == {"kind": "file", "detail": str(saved)}
    page_file = tmp_path / "offline.html"
    assert ftb("-c", str(demo_config), "report", "--from", str(saved), "--out", str(page_file)).code == 0
    html = page_file.read_text()
    for v in data["vms"]:
        assert f'data-vm="{v["endpoint"]}/{v["vm"]}"' in html
    red = sum(s["separated"] is False for v in data["vms"] for s in v["secondaries"])
    assert html.count('class="pair not-separated"') == red > 0
    for s in data["domains"]:
        if s["site"] is not None:
            assert f'data-site="{s["site"]}"' in html
    for p in data["protection"]:
        assert p["vms"] == sum(
            p.get(k, 0) for k in ("protected", "degraded", "unprotected", "not-required", "unmanaged")
        )
    # JSON timestamps are RFC 3339 UTC
    assert data["generated_at"].endswith("Z") and "T" in data["generated_at"]


def test_report_refuses_what_it_cannot_do(demo_config: Path, tmp_path: Path) -> None:
    neither = ftb("-c", str(demo_config), "report")
    assert neither.code == 2 and "--out" in neither.err and "Traceback" not in neither.err
    nowhere = ftb("-c", str(demo_config), "report", "--out", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert nowhere.code == 3, nowhere.err
    assert "cannot write" in nowhere.err and len(nowhere.err.strip().splitlines()) == 1
    bad_from = ftb("-c", str(demo_config), "report", "--from", str(tmp_path / "missing.json"), "-o", "json")
    assert bad_from.code == 3 and "missing.json" in bad_from.err and bad_from.out == ""


def _bench() -> Any:
    path = ROOT / "contrib" / "bench" / "report_scale.py"
    spec = importlib.util.spec_from_file_location("ftbridge_bench_report_scale", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_report_of_5000_vms_loads_clean(tmp_path: Path) -> None:
    from ftbridge.report import Source, render_html, report_data

    inv, cfg = _bench().estate(5000)
    data = report_data(inv, cfg, Source("file", "synthetic 5,000-VM estate"), generated_at=0.0)
    page_file = tmp_path / "report-5000.html"
    page_file.write_text(render_html(data), encoding="utf-8")
    shot = tmp_path / "report-5000.png"
    with chromium(tmp_path / "profile") as page:
        seen = _look(page, page_file, shot, 1600, 1200)
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert len(seen["vms"]) == len(inv.vms) == 5000
    sites = {d.domain.site for d in inv.datastores if d.domain.site}
    assert sites <= {s["site"] for s in seen["sites"]}
    assert all(s["inside"] for s in seen["sites"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
