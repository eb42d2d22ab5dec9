"""The sim's state store: one transaction per operation, only what changed, readers never wait,
a stopped writer makes others wait with a message and then give up (exit 9), a read-only state
still reads, old operations are forgotten, an older JSON state is imported once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftbridge.drivers import OpState
from ftbridge.errors import BackendError, ConfigError, NotFound
from ftbridge.estate import load_estates
from ftbridge.sim.driver import SimConfig, SimDriver
from ftbridge.sim.state import dump, seed_state

sys.path.insert(0, str(Path(__file__).parent / "data"))
import plankit as K  # noqa: E402


def driver(estate: Path, **kw: object) -> SimDriver:
    drv = SimDriver(SimConfig.model_validate({"driver": "sim", "estate": estate, "name": "lab", **kw}), endpoint="lab")
    drv.open()
    return drv


def db(estate: Path) -> Path:
    return estate.with_name("estate.lab.simstate.db")


def finish(drv: SimDriver, op: object) -> None:
    st = drv.poll(op)  # type: ignore[arg-type]
    assert st.state is OpState.SUCCEEDED, st


def test_an_operation_writes_only_the_objects_it_changed(small_estate: Path) -> None:
    drv = driver(small_estate)
    with sqlite3.connect(db(small_estate)) as c:
        objects = c.execute("SELECT count(*) FROM obj").fetchone()[0]
    op = drv.move_disk("vm3", "d0", "ds-b")
    with sqlite3.connect(db(small_estate)) as c:
        rev = int(c.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
        written = sorted(c.execute("SELECT kind, id FROM obj WHERE rev = ?", (rev,)).fetchall())
    # the new operation and the datastore whose space it holds; not the estate
    assert written == [("datastores", "ds-b"), ("ops", op.id)], written
    assert objects >= 10
    finish(drv, op)
    with sqlite3.connect(db(small_estate)) as c:
        rev = int(c.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
        written = sorted(c.execute("SELECT kind, id FROM obj WHERE rev = ?", (rev,)).fetchall())
    assert written == [("datastores", "ds-a"), ("ops", op.id), ("vms", "vm3")], written


def test_another_process_sees_changes_and_deletions(small_estate: Path) -> None:
    a, b = driver(small_estate), driver(small_estate)
    sec = a.replication_status("vm2")[0].id
    op = a.test_failover("vm2", sec)
    finish(a, op)
    test_id = a.poll(op).result["test_id"]
    assert set(b.ex_tests()) == {test_id}  # b's copy catches up with a's commit
    finish(a, a.cleanup_test("vm2", test_id))
    assert b.ex_tests() == {}  # and with a deletion
    b.ex_inject(slow=2.5)
    assert a.ex_inject()["slow"] == 2.5


def test_a_reset_by_another_process_is_seen(small_estate: Path) -> None:
    a = driver(small_estate)
    a.ex_inject(slow=3.0)
    driver(small_estate).ex_reset()
    assert a.ex_inject()["slow"] == 0.0  # the estate as seeded again, not the deleted file
    assert {v.id for v in a.inventory().vms} == {v.id for v in load_estates(small_estate)["lab"].vms}


MID_OPERATION = """
import sys
from pathlib import Path
from ftbridge.sim.driver import SimConfig, SimDriver
drv = SimDriver(SimConfig(driver="sim", estate=Path(sys.argv[1]), name="lab"), endpoint="lab")
drv.open()
with drv._mutate() as state:  # an operation half done: space taken, VM moved, not committed
    state["datastores"]["ds-b"]["free"] -= 1
    state["vms"]["vm3"]["host"] = "h2"
    print("inside", flush=True)
    sys.stdin.readline()
"""


def test_sigkill_mid_operation_leaves_the_last_committed_state(small_estate: Path) -> None:
    driver(small_estate)
    before = dump(db(small_estate))
    child = subprocess.Popen(
        [sys.executable, "-c", MID_OPERATION, str(small_estate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "inside"
    child.kill()
    child.wait()
    assert dump(db(small_estate)) == before  # none of the half-done operation
    with sqlite3.connect(db(small_estate)) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    drv = driver(small_estate)
    finish(drv, drv.move_disk("vm3", "d0", "ds-b"))  # the platform goes on
    assert dump(db(small_estate))["vms"]["vm3"]["disks"][0]["datastore"] == "ds-b"


def test_platform_ha_restart_is_stored_for_every_process(small_estate: Path) -> None:
    text = small_estate.read_text().replace('name = "web01"\n', 'name = "web01"\nha = true\n')
    small_estate.write_text(text)
    drv = driver(small_estate, ha_seconds=0)
    drv.ex_inject(hosts_down=["h1"])
    web = next(v for v in drv.inventory().vms if v.id == "vm3")  # HA acted: a read saw it due
    assert web.host == "h2" and web.power.value == "on"
    assert dump(db(small_estate))["vms"]["vm3"]["host"] == "h2"  # written, not only in this process
    other = driver(small_estate)  # no HA of its own: sees what the platform did
    assert next(v for v in other.inventory().vms if v.id == "vm3").host == "h2"


def test_finished_operations_are_forgotten_beyond_the_retention(small_estate: Path) -> None:
    drv = driver(small_estate, keep_operations=5)
    drv.ex_inject(hold=True)
    running = drv.move_disk("vm3", "d0", "ds-b")  # unfinished: kept whatever its age
    drv.ex_inject(hold=False)
    sec = drv.replication_status("vm2")[0].id
    first = None
    for _ in range(40):
        op = drv.test_failover("vm2", sec)
        first = first or op
        finish(drv, op)
        finish(drv, drv.cleanup_test("vm2", drv.poll(op).result["test_id"]))
    ops = dump(db(small_estate))["ops"]
    assert running.id in ops and ops[running.id]["state"] == "running"
    assert len(ops) <= 5 + 16 + 1, len(ops)  # the last 5 finished (pruned in batches) and the running one
    with pytest.raises(NotFound):
        drv.poll(first)  # type: ignore[arg-type]
    finish(drv, running)


def test_older_json_state_is_imported_once(small_estate: Path) -> None:
    old = seed_state(load_estates(small_estate)["lab"])
    old["faults"]["slow"] = 7.0  # something only the old file knows
    legacy = small_estate.with_name("estate.lab.simstate.json")
    legacy.write_text(json.dumps(old))
    drv = driver(small_estate)
    assert drv.ex_inject()["slow"] == 7.0
    assert not legacy.exists() and legacy.with_name(legacy.name + ".migrated").exists()
    assert dump(db(small_estate))["faults"]["slow"] == 7.0


def test_a_configured_state_path_holding_json_is_refused_in_one_line(small_estate: Path) -> None:
    path = small_estate.with_name("mine.json")
    path.write_text(json.dumps(seed_state(load_estates(small_estate)["lab"])))
    with pytest.raises(ConfigError) as err:
        driver(small_estate, state=path)
    assert str(path) in str(err.value) and "ftbridge sim reset" in str(err.value)
    assert "\n" not in str(err.value)


CONFIG = """
[endpoints.lab]
driver = "sim"
estate = "estate.toml"
busy_seconds = 2

[state]
dir = "state"
"""

HOLDER = """
import os, signal, sys
from pathlib import Path
from ftbridge.sim.state import SimStore
store = SimStore(Path(sys.argv[1]))
with store.exclusive():
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.fixture
def lab(small_estate: Path) -> Path:
    cfg = small_estate.with_name("ftbridge.toml")
    cfg.write_text(CONFIG)
    assert K.ftb("-c", str(cfg), "inventory").returncode == 0  # seeds the state
    return cfg


def test_stopped_writer_readers_go_on_writers_wait_then_busy(lab: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lab.with_name("estate.lab.simstate.db"))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        _, status = os.waitpid(holder.pid, os.WUNTRACED)  # it is stopped inside its write transaction
        assert os.WIFSTOPPED(status)
        for cmd in (("inventory",), ("audit",)):
            r = K.ftb("-c", str(lab), *cmd, "-o", "json")
            assert r.returncode in (0, 1), r.stderr  # audit exits 1 on findings
            assert "waiting" not in r.stderr
        r = K.ftb("-c", str(lab), "sim", "fault", "lab", "--slow", "1")
        assert r.returncode == 9, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 2 and "Traceback" not in r.stderr, lines
        assert "waiting for another process to release the sim state" in lines[0]
        assert "estate.lab.simstate.db" in lines[1] and "holds the sim state for writing" in lines[1]
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.wait(timeout=30)
    r = K.ftb("-c", str(lab), "sim", "fault", "lab", "--slow", "1")
    assert r.returncode == 0 and "waiting" not in r.stderr, r.stderr


@pytest.fixture
def foreign(lab: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The lab in a directory this test's commands may read but not write (root: without the
    capability to override file permissions), and its state. No -wal/-shm file there: reading
    must not need to make one."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot take away write permission")
    where = Path(tempfile.mkdtemp(prefix="ftbridge-ro-"))
    try:
        for name in ("estate.toml", lab.name, "estate.lab.simstate.db"):  # its last writer closed it
            shutil.copy(lab.with_name(name), where / name)
        state = dump(lab.with_name("estate.lab.simstate.db"))
        where.chmod(0o555)
        yield where / lab.name, state
    finally:
        where.chmod(0o755)
        shutil.rmtree(where)


def ftb_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    pre = []
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search,-fowner"
        pre = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
    cmd = [*pre, sys.executable, "-m", "ftbridge", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_read_only_state_dir_reads_and_refuses_changes_naming_the_path(
    foreign: tuple[Path, dict[str, Any]],
) -> None:
    cfg, before = foreign
    state = cfg.with_name("estate.lab.simstate.db")
    files = sorted(p.name for p in cfg.parent.iterdir())
    assert files == ["estate.lab.simstate.db", "estate.toml", "ftbridge.toml"]
    r = ftb_unprivileged("-c", str(cfg), "inventory", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert {v["name"] for v in json.loads(r.stdout)["vms"]} >= {"db01", "app01"}
    r = ftb_unprivileged("-c", str(cfg), "sim", "fault", "lab", "--slow", "1")
    assert r.returncode == BackendError.exit_code, r.stderr
    assert str(state) in r.stderr and "cannot change the sim state" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = ftb_unprivileged("-c", str(cfg), "sim", "reset")  # refused by the estate lock or by the store
    assert r.returncode in (BackendError.exit_code, ConfigError.exit_code) and "Traceback" not in r.stderr, r.stderr
    assert f"{cfg.parent}/" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in cfg.parent.iterdir()) == files  # nothing created: no lock file
    assert dump(state) == before


def test_read_only_state_dir_before_any_state_reads_the_estate(small_estate: Path, tmp_path: Path) -> None:
    """No stored state and no right to make one: reads see the estate as seeded, in memory."""
    cfg = small_estate.with_name("ftbridge.toml")
    cfg.write_text(CONFIG)
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv")
    where = Path(tempfile.mkdtemp(prefix="ftbridge-ro-"))
    try:
        for p in (small_estate, cfg):
            shutil.copy(p, where / p.name)
        where.chmod(0o555)
        r = ftb_unprivileged("-c", str(where / cfg.name), "inventory", "-o", "json")
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["vms"]) == len(load_estates(small_estate)["lab"].vms)
    finally:
        where.chmod(0o755)
        shutil.rmtree(where)
