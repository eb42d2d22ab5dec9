"""Report benchmark: how long the DR-readiness report of a 5,000-VM estate takes.

The estate is plan_scale's synthetic one (stretched clusters over arrays in several sites,
FT, replicas and copies, a realistic share of problems), topped up to exactly the size asked
for, with a journal of test failovers for a tenth of the VMs so the RTO section has content.
Prints, per size: the time to audit and settle fixability (the planner), to assemble the
report data, to render the page, and its size; then, when Debian's chromium is installed,
the time headless Chromium takes to load the page and paint a screenshot of it.

Run:  python contrib/bench/report_scale.py [--sizes 5000] [--no-browser]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftbridge.inventory import Inventory

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


def _plan_scale() -> Any:
    spec = importlib.util.spec_from_file_location("ftbridge_bench_plan_scale", HERE / "plan_scale.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def estate(n_vms: int) -> tuple[Inventory, Any]:
    """A synthetic estate of exactly ``n_vms`` VMs and the config whose policies it is audited
    against (plan_scale's generator splits VMs evenly over three endpoints; the remainder is
    added as copies of the first VMs under new ids)."""
    bench = _plan_scale()
    inv = bench.make_estate(n_vms, max(20, n_vms // 10), max(4, n_vms // 180))
    vms = list(inv.vms)
    for k in range(n_vms - len(vms)):
        src = vms[k]
        vms.append(replace(src, id=f"{src.id}-x{k}", name=f"{src.name}-x{k}"))
    return Inventory(inv.endpoints, inv.hosts, inv.datastores, vms, inv.collected_at), bench.config()


def tested(inv: Inventory, state_dir: Path, share: float = 0.1) -> int:
    """A journal holding one test failover run of ``share`` of the protected VMs (written
    through the journal's own API, as ``failover test`` does); returns how many VMs."""
    from ftbridge.apply.journal import RUNNING, SUCCEEDED, Journal
    from ftbridge.failover.run import TEST_DIR
    from ftbridge.planning.planfile import write_plan

    vms = [v for v in inv.vms if v.secondaries][:: max(1, round(1 / share))]
    actions = []
    for v in vms:
        n = len(actions)
        s = v.secondaries[0]
        common = {"endpoint": v.endpoint, "vm": v.id, "vm_name": v.name, "bytes": 0}
        actions.append(
            {"id": f"a{n + 1}", "kind": "test_failover", "secondary": s.id, "mechanism": s.mechanism, **common}
        )
        actions.append({"id": f"a{n + 2}", "kind": "cleanup_test", "after": f"a{n + 1}", **common})
    path = state_dir / TEST_DIR / "test-bench.json"
    write_plan({"plan_id": "bench", "actions": actions}, path)
    journal = Journal(state_dir / "journal.sqlite")
    try:
        run = journal.start_run("bench", str(path), "", [(a["id"], a["kind"], a["endpoint"], a["vm"]) for a in actions])
        for a in actions:
            journal.record(run, a["id"], RUNNING, "action_started", attempts=1)
            result = {"test_id": f"t-{a['vm']}"} if a["kind"] == "test_failover" else None
            journal.record(run, a["id"], SUCCEEDED, "action_succeeded", result=result)
        journal.finish_run(run, "done", {})
    finally:
        journal.close()
    return len(vms)


def run_size(n_vms: int, browser: bool) -> dict[str, Any]:
    from ftbridge.apply.history import History
    from ftbridge.report import Source, render_html
    from ftbridge.report.data import build
    from ftbridge.services.compliance import audit_estate

    inv, cfg = estate(n_vms)
    state = Path(tempfile.mkdtemp(prefix="ftbridge-report-bench-"))
    n_tested = tested(inv, state)
    t0 = time.perf_counter()
    report = audit_estate(inv, cfg)
    t_audit = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = build(inv, cfg, report, History(state), Source("file", "synthetic"), generated_at=0.0)
    t_data = time.perf_counter() - t0
    assert data["rto"]["tested"] == n_tested, (data["rto"]["tested"], n_tested)
    shutil.rmtree(state, ignore_errors=True)
    t0 = time.perf_counter()
    page = render_html(data)
    t_html = time.perf_counter() - t0
    out: dict[str, Any] = {
        "vms": len(inv.vms),
        "datastores": len(inv.datastores),
        "hosts": len(inv.hosts),
        "findings": len(report.findings),
        "tested": n_tested,
        "audit_s": t_audit,
        "data_s": t_data,
        "html_s": t_html,
        "kib": len(page.encode()) / 1024,
        "browser_s": None,
    }
    if browser and Path(CHROMIUM).exists():
        with tempfile.TemporaryDirectory() as tmp:
            html = Path(tmp) / "report.html"
            html.write_text(page, encoding="utf-8")
            t0 = time.perf_counter()
            subprocess.run(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={tmp}/profile",
                    "--window-size=1600,1200",
                    f"--screenshot={tmp}/shot.png",
                    html.as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
            out["browser_s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="5000")
    ap.add_argument("--no-browser", action="store_true", help="do not time headless Chromium")
    args = ap.parse_args(argv)
    print(
        f"{'VMs':>7} {'datastores':>10} {'hosts':>6} {'findings':>8} {'tested':>6} {'audit s':>8} {'data s':>7} "
        f"{'html s':>7} {'total s':>7} {'page KiB':>8} {'chromium s':>10}"
    )
    for n in (int(x) for x in args.sizes.split(",") if x):
        r = run_size(n, not args.no_browser)
        total = r["audit_s"] + r["data_s"] + r["html_s"]
        browser = "-" if r["browser_s"] is None else f"{r['browser_s']:.2f}"
        print(
            f"{r['vms']:>7,} {r['datastores']:>10,} {r['hosts']:>6,} {r['findings']:>8,} {r['tested']:>6,} "
            f"{r['audit_s']:>8.2f} "
            f"{r['data_s']:>7.2f} {r['html_s']:>7.2f} {total:>7.2f} {r['kib']:>8,.0f} {browser:>10}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
