"""The failure detector, the storm guard, the local backend's fence and its refusal of auto_failover."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ftb

from ftbridge.apply.journal import Fence, Journal, SqliteJournalStore, StaleLeader
from ftbridge.config import load_config
from ftbridge.drivers.base import HealthReport
from ftbridge.inventory import Inventory
from ftbridge.model import HostState
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session
from ftbridge.sim.driver import SimDriver
from ftbridge.watch.detect import Detector, observe


def config_for(estate: Path, extra: str = "") -> Path:
    cfg = estate.with_name("ftbridge.toml")
    cfg.write_text(
        f'[endpoints.lab]\ndriver = "sim"\nestate = "{estate.name}"\n\n'
        '[[domains]]\nendpoint = "lab"\ncluster = "ams"\nsite = "ams"\n\n'
        '[[domains]]\nendpoint = "lab"\ncluster = "rtm"\nsite = "rtm"\n\n'
        '[state]\ndir = "state"\n' + extra
    )
    return cfg


def look(cfg: Path) -> tuple[Inventory, HealthReport]:
    config = load_config(cfg)
    with Session(config) as s:
        inv = collect(s)
        drv = s.driver("lab")
        assert isinstance(drv, SimDriver)
        return inv, drv.health()


def inject(cfg: Path, **faults: object) -> None:
    drv = SimDriver(load_config(cfg).endpoints["lab"], endpoint="lab")
    drv.ex_inject(**faults)


def test_a_failure_is_confirmed_only_after_n_cycles_of_agreement(small_estate: Path) -> None:
    cfg = config_for(small_estate)
    inject(cfg, hosts_down=["h3"])
    inv, health = look(cfg)
    det = Detector(confirm_cycles=3, storm_fraction=0.9)
    for _ in range(2):
        v = det.update(inv, observe(inv, {"lab": health}, frozenset()))
        assert v.suspects == 1 and v.failed is None
    v = det.update(inv, observe(inv, {"lab": health}, frozenset()))
    assert v.failed is not None and v.failed.hosts == {("lab", "h3")} and v.failed.why == "host esx-b1"
    assert v.sites == []  # its storage (rtm-shared) survived: the site as a whole has not failed
    # one cycle where the health call disagrees starts the count over
    up = HealthReport(hosts={**health.hosts, "h3": HostState.UP}, datastores=health.datastores)
    assert det.update(inv, observe(inv, {"lab": up}, frozenset())).failed is None
    assert det.update(inv, observe(inv, {"lab": health}, frozenset())).failed is None


def test_an_unreachable_host_or_endpoint_proves_nothing(small_estate: Path) -> None:
    cfg = config_for(small_estate)
    inv, health = look(cfg)
    unreachable = HealthReport(hosts={**health.hosts, "h3": HostState.UNREACHABLE}, datastores=health.datastores)
    det = Detector(confirm_cycles=1, storm_fraction=0.5)
    assert det.update(inv, observe(inv, {"lab": unreachable}, frozenset())).suspects == 0
    # the endpoint stops answering: nothing is suspect, but the storm guard holds (all went dark)
    v = det.update(Inventory(), observe(Inventory(), {}, frozenset({"lab"})))
    assert v.suspects == 0 and v.failed is None and v.storm


def test_storm_guard_holds_when_too_much_looks_dead_at_once(small_estate: Path) -> None:
    cfg = config_for(small_estate)
    inject(cfg, hosts_down=["h1", "h2", "h3"], datastores_down=["ds-a", "ds-b"])
    inv, health = look(cfg)
    v = Detector(confirm_cycles=1, storm_fraction=0.5).update(inv, observe(inv, {"lab": health}, frozenset()))
    assert v.storm and "suspecting this controller's own view" in v.storm_reason
    v = Detector(confirm_cycles=1, storm_fraction=0.9).update(inv, observe(inv, {"lab": health}, frozenset()))
    assert not v.storm and v.failed is not None


def test_sqlite_epoch_fences_every_write(tmp_path: Path) -> None:
    store = SqliteJournalStore(tmp_path / "journal.sqlite")
    epoch = store.bump_epoch()
    store.fence = Fence(epoch, lambda: None)
    j = Journal(store=store)
    run = j.start_run("p", "plan.json", "fp", [("a1", "protect", "ep", "vm")])
    store.fence = None
    store.bump_epoch()  # another controller took over
    store.fence = Fence(epoch, lambda: None)
    with pytest.raises(StaleLeader, match="no longer current"):
        j.record(run, "a1", "succeeded", "action_succeeded")
    assert j.actions(run)["a1"].state == "pending"
    store.close()


def test_local_backend_refuses_auto_failover_and_status_says_nobody_leads(small_estate: Path) -> None:
    cfg = config_for(small_estate, '\n[policies.gold]\nauto_failover = true\nmatch = [{ tag = "tier1" }]\n')
    r = ftb("-c", str(cfg), "watch", "--cycles", "1")
    assert r.code == 3 and "policies.gold.auto_failover = true is refused" in r.err and "local" in r.err
    assert "Traceback" not in r.err
    r = ftb("-c", str(cfg), "watch", "--status", "-o", "json")
    assert r.code == 1 and '"leader": null' in r.out
