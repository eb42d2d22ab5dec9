"""``ftbridge watch`` on the demo estate with short RPOs: copies stay within their RPO, and the
metrics say so (read from ``/metrics`` and parsed with prometheus_client's own text parser)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from etcdlab import Controller
from helpers import ROOT, copy_demo
from prometheus_client.parser import text_string_to_metric_families

from ftbridge.watch.metrics import METRICS

pytestmark = pytest.mark.slow

REFRESHABLE = {"pve-standby", "ovirt-copy"}


def short_rpo_demo(where: Path) -> Path:
    cfg = copy_demo(where)
    text = cfg.read_text()
    text = text.replace('estate = "estate.toml"\n', 'estate = "estate.toml"\ncopies_age = true\n')
    text = re.sub(r'rpo = "(1h|4h)"', 'rpo = "6s"', text)
    text += '\n[state]\ndir = "state"\n\n[watch]\ninterval = "0.5s"\nrefresh_at = 0.5\n'
    cfg.write_text(text)
    return cfg


def scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def test_demo_copies_stay_within_their_rpo_over_many_cycles(tmp_path: Path) -> None:
    ctl = Controller(short_rpo_demo(tmp_path), extra=("--metrics-address", "127.0.0.1:0"))
    try:
        address = ctl.wait_for(lambda e: e["event"] == "metrics_listening")["address"]
        first = ctl.wait_for(lambda e: e["event"] == "refresh_finished")
        assert first["outcome"].get("failed", 0) == 0, first
        # the metrics of the cycle that ran the first refresh show the seeded lags: start after it
        mark = ctl.events.index(ctl.wait_for(lambda e: e["event"] == "cycle_finished", after=ctl.events.index(first)))
        checked = refreshed = 0
        for _ in range(24):  # 24 cycles of 0.5 s: the 6 s RPO passes twice, and more
            done = ctl.wait_for(lambda e: e["event"] == "cycle_finished", after=mark + 1)
            mark = ctl.events.index(done)
            m = scrape(address)
            rpo = {(lb["endpoint"], lb["vm"]): v for lb, v in m["ftbridge_vm_rpo_seconds"]}
            for labels, lag in m.get("ftbridge_vm_secondary_lag_seconds", []):
                if labels["mechanism"] in REFRESHABLE:
                    key = (labels["endpoint"], labels["vm"])
                    assert lag < rpo[key], f"{key} lags {lag:.1f}s, RPO {rpo[key]}s"
                    checked += 1
        refreshed = sum(1 for e in ctl.events if e["event"] == "refresh_finished")
        assert checked > 100 and refreshed >= 2  # many copies checked, refreshed again and again
        m = scrape(address)
        assert m["ftbridge_leader"] == [({}, 1.0)] and m["ftbridge_cycles_total"][0][1] >= 24
        assert sum(v for lb, v in m["ftbridge_actions_total"] if lb["outcome"] == "failed") == 0
    finally:
        ctl.stop()


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Continuous protection", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(ftbridge_[a-z_]+)`", section))
    exposed = {n + ("_total" if kind == "counter" else "") for n, (kind, _, _) in METRICS.items()}
    assert exposed == documented
