"""The live reads an apply takes just before a step changes anything. Steps running at once
share a read, but only one that covered what each depends on: a driver may read only the hosts
and datastores it is asked for (``StoragePlacement.live_state`` invites it to), and a read of
others proves nothing about them."""

from __future__ import annotations

import sys
import time
from collections.abc import Collection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply.events import ignore  # noqa: E402
from ftbridge.apply.journal import Journal  # noqa: E402
from ftbridge.apply.service import settings_for  # noqa: E402
from ftbridge.apply.steps import Executor, LiveView  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.drivers.base import HealthReport  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402


class NarrowSim(SimDriver):
    """The sim as a driver that reads only what it is asked (a third party's, say)."""

    reads = 0

    def live_state(self, hosts: Collection[str], datastores: Collection[str]) -> HealthReport:
        self.reads += 1
        full = super().live_state(hosts, datastores)
        return HealthReport(
            {h: s for h, s in full.hosts.items() if h in hosts},
            {d: ok for d, ok in full.datastores.items() if d in datastores},
        )


def test_a_read_serves_another_step_only_when_it_covered_what_that_step_needs(tmp_path: Path) -> None:
    cfg = load_config(K.copy_demo(tmp_path))
    ep = "vc-ams"
    with Session(cfg) as session:
        inv = collect(session, [ep])
    x, y = sorted(d.id for d in inv.datastores if d.endpoint == ep and d.accessible)[:2]
    drv = NarrowSim(cfg.endpoints[ep], endpoint=ep)
    drv.open()
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        ex = Executor({ep: drv}, LiveView(inv), journal, 0, {}, settings_for(cfg), ignore)
        since = time.monotonic()  # two steps that began together
        assert ex._health(ep, since, stores=[x]) and drv.reads == 1
        drv.ex_inject(datastores_down=[y])
        # the second step needs y: the first step's read did not look at it, so it reads again
        assert ex._health(ep, since, stores=[y]) and drv.reads == 2
        found = ex.view.datastore(ep, y)
        assert found is not None and not found.accessible
        # a read that covered it serves a step that began before it
        assert ex._health(ep, since, stores=[y]) and drv.reads == 2
    finally:
        drv.close()
        journal.close()
