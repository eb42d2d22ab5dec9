"""Secrets and what ftbridge leaves on disk: the redaction rule (every encoding, whole values
only), credentials in URLs refused, state files private, the lab's credentials file removed, and
retention (``runs prune``, ``[state] retention``)."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from helpers import copy_demo, ftb

from ftbridge import secrets


# -- the rule ------------------------------------------------------------------------------------
@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry of this test's own (the module's is process-wide)."""
    monkeypatch.setattr(secrets, "_known", set())
    monkeypatch.setattr(secrets, "_pattern", None)


def test_whole_values_only(registry: None) -> None:
    secrets.remember("pass")
    text = "password=pass; my_pass passport bypass pass\n(pass) 'pass'"
    assert secrets.redact(text) == "password=********; my_pass passport bypass ********\n(********) '********'"


def test_a_short_secret_is_masked_too(registry: None) -> None:
    """A three-letter password is a bad one, but it must not show: masked as a whole word."""
    secrets.remember("pve")
    secrets.remember("")  # an empty token an SDK hands back: not a secret (it would match everywhere)
    assert secrets.redact("login root@pam password pve failed (pve-manager)") == (
        "login root@pam password ******** failed (********-manager)"
    )


def test_every_encoding_is_masked(registry: None) -> None:
    value = 'S3cr3t p@ss+w/rd&"<x>'
    secrets.remember(value, user="root@pam")
    basic = base64.b64encode(f"root@pam:{value}".encode()).decode()
    forms = {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote-path": quote(value),
        "quote_plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "xml": value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "xml-attr": value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"),
        "json(xml)": json.dumps(value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))[1:-1],
        "basic": basic,
    }
    for name, form in forms.items():
        for text in (f"password={form}&x=1", f"Authorization: Basic {form}\n", f'{{"e": "{form}"}}'):
            out = secrets.redact(text)
            assert form not in out and secrets.MASK in out, (name, text, out)


def test_the_stream_masks_a_secret_written_in_pieces(registry: None) -> None:
    secrets.remember("tok-1234567890")
    inner = io.StringIO()
    stream = secrets.RedactingStream(inner)
    for piece in ("Authorization: PVEAPIToken=u@pve!ci=tok-12", "34567890\n", "tail tok-1234567890"):
        stream.write(piece)
    assert "tok-" not in inner.getvalue()  # the unfinished line waits for its end
    stream.flush()
    assert inner.getvalue() == f"Authorization: PVEAPIToken=u@pve!ci={secrets.MASK}\ntail {secrets.MASK}"


# -- credentials in URLs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[endpoints.vc]\ndriver = "vsphere"\nhost = "admin:{pw}@vc.example.com"\nuser = "a"\n', "endpoints.vc.host"),
        (
            '[endpoints.pve]\ndriver = "proxmox"\nurl = "https://root%40pam:{pw}@pve:8006"\nuser = "a@pam"\n',
            "endpoints.pve.url",
        ),
        ('[endpoints.pve]\ndriver = "proxmox"\nhost = "root:{pw}@pve"\nuser = "a@pam"\n', "endpoints.pve.host"),
        (
            '[endpoints.e]\ndriver = "ovirt"\nurl = "https://admin:{pw}@engine/ovirt-engine/api"\n',
            "endpoints.e.url",
        ),
        (
            '[coordination]\nbackend = "etcd"\nmembers = [{{ url = "https://u:{pw}@etcd1:2379" }}]\n',
            "coordination.members[0].url",
        ),
    ],
)
def test_credentials_in_a_url_are_refused_without_echo(tmp_path: Path, body: str, key: str) -> None:
    pw = "Hunter2-url-secret"
    cfg = tmp_path / "ftbridge.toml"
    text = body.format(pw=pw)
    if "[endpoints." in text:
        text += 'password = { env = "X_PW" }\n'
    cfg.write_text(text)
    r = ftb("-c", str(cfg), "inventory", env={"X_PW": "x"})
    assert r.code == 3, r.err
    line = r.err.strip()
    assert len(line.splitlines()) == 1 and str(cfg) in line and f"{key}: credentials" in line, line
    assert pw not in r.out + r.err


# -- files on disk -------------------------------------------------------------------------------
def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


def test_state_files_are_private_after_demo_plan_apply(tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    env = {"XDG_STATE_HOME": str(home)}
    assert ftb("demo", "-o", "json", env=env).code == 0
    state = home / "ftbridge"
    cfg = state / "demo" / "ftbridge.toml"
    r = ftb("-c", str(cfg), "plan", "-o", "json", env=env)
    assert r.code == 0, r.err
    plan = next((state / "plans").glob("plan-*.json"))
    r = ftb("-c", str(cfg), "apply", str(plan), "--yes", "-o", "json", env=env)
    assert r.code == 0, r.err
    modes = _modes(state)
    names = set(modes)
    for expected in ("journal.sqlite", "demo/ftbridge.toml", "demo/estate.toml", "plans"):
        assert expected in names, sorted(names)
    assert any(n.startswith("demo/") and n.endswith(".simstate.db") for n in names), sorted(names)
    assert any(n.startswith("demo/") and "estate-lock" in n for n in names), sorted(names)  # the estate's lock
    loose = {n: oct(m) for n, m in modes.items() if m != (0o700 if (state / n).is_dir() else 0o600)}
    assert not loose, loose


def test_an_existing_open_state_dir_is_tightened(tmp_path: Path) -> None:
    cfg = copy_demo(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with cfg.open("a") as f:
        f.write(f'\n[state]\ndir = "{state}"\n')
    assert ftb("-c", str(cfg), "inventory", "-o", "json").code == 0
    assert state.stat().st_mode & 0o777 == 0o700


# -- retention -----------------------------------------------------------------------------------
def _age(journal: Path, days: float, *, ids: list[int] | None = None) -> None:
    """Make runs look finished ``days`` ago (the test does not wait a month)."""
    then = time.time() - days * 86400
    with sqlite3.connect(journal) as db:
        where = f" WHERE id IN ({','.join(map(str, ids))})" if ids else ""
        db.execute(f"UPDATE runs SET started_at = ?, finished_at = ?{where}", (then - 60, then))


def _runs(journal: Path) -> dict[int, str]:
    with sqlite3.connect(journal) as db:
        return {int(i): str(s) for i, s in db.execute("SELECT id, status FROM runs")}


def test_runs_prune_keeps_the_unfinished_the_newest_and_foreign_plans(tmp_path: Path) -> None:
    cfg = copy_demo(tmp_path)
    state = tmp_path / "state"
    with cfg.open("a") as f:
        f.write(f'\n[state]\ndir = "{state}"\nretention = 0\n')
    c = ["-c", str(cfg)]
    mine = tmp_path / "my-plan.json"  # written with --out: the user's file, never ftbridge's to remove
    assert ftb(*c, "plan", "--out", str(mine), "-o", "json").code == 0
    assert ftb(*c, "apply", str(mine), "--yes", "-o", "json").code == 0  # run 1
    # run 2: ams-sql01's only test failover (its RTO evidence); run 4 tests another VM
    assert ftb(*c, "failover", "test", "--vm", "ams-sql01", "-o", "json").code == 0
    assert ftb(*c, "plan", "-o", "json").code == 0  # a plan document in the state dir, never applied
    journal = state / "journal.sqlite"
    with sqlite3.connect(journal) as db:  # run 3: an apply that failed, so --resume may need it
        db.execute(
            "INSERT INTO runs (plan_id, plan_path, status, pid, started_at, updated_at, finished_at) "
            "VALUES ('p', ?, 'failed', 1, 0, 0, 0)",
            (str(mine),),
        )
    assert ftb(*c, "failover", "test", "--vm", "rtm-pg01", "-o", "json").code == 0  # run 4, the newest
    _age(journal, 60)
    old_doc = next((state / "plans").glob("plan-*.json"))
    os.utime(old_doc, (time.time() - 60 * 86400,) * 2)
    newer_doc = state / "plans" / "plan-newer.json"
    newer_doc.write_text("{}")  # the newest document of plans/ stays, whatever its age
    os.utime(newer_doc, (time.time() - 59 * 86400,) * 2)

    r = ftb(*c, "runs", "prune", "--older-than", "30d", "--dry-run", "-o", "json")
    assert r.code == 0, r.err
    assert _runs(journal).keys() == {1, 2, 3, 4}  # a dry run removes nothing
    r = ftb(*c, "runs", "prune", "--older-than", "30d", "-o", "json")
    assert r.code == 0, r.err
    done = json.loads(r.out)
    kept = {k["run"]: k["why"] for k in done["kept"]}
    assert done["runs"] == [1] and done["actions"] > 0 and done["events"] > 0, done
    assert "newest" in kept[4] and "not done" in kept[3] and "verified test" in kept[2], kept
    assert _runs(journal).keys() == {2, 3, 4}
    assert mine.exists() and newer_doc.exists() and not old_doc.exists()
    assert done["files"] == [str(old_doc)]
    r = ftb(*c, "runs", "prune", "--older-than", "a month")
    assert r.code == 2 and "--older-than" in r.err


def test_state_retention_prunes_after_each_run(tmp_path: Path) -> None:
    cfg = copy_demo(tmp_path)
    state = tmp_path / "state"
    with cfg.open("a") as f:
        f.write(f'\n[state]\ndir = "{state}"\n')  # retention: the default, 30 days
    c = ["-c", str(cfg)]
    plan = tmp_path / "plan.json"
    assert ftb(*c, "plan", "--out", str(plan), "-o", "json").code == 0
    assert ftb(*c, "apply", str(plan), "--yes", "-o", "json").code == 0  # run 1
    journal = state / "journal.sqlite"
    _age(journal, 29)
    assert ftb(*c, "failover", "test", "-o", "json").code in (0, 1)  # run 2: 1 is 29 days old, kept
    assert _runs(journal).keys() == {1, 2}
    _age(journal, 31, ids=[1])
    r = ftb(*c, "failover", "test", "-o", "json")  # run 3: 1 is past the retention
    assert r.code in (0, 1), r.err
    assert _runs(journal).keys() == {2, 3}
    assert "retention: removed 1 run (1-1) older than 30d" in r.err


def test_an_error_never_shows_a_secret(registry: None) -> None:
    from ftbridge.errors import BackendError

    secrets.remember("s3cr/et&1")
    err = BackendError("HTTP 400: password=s3cr%2fet%261 rejected", endpoint="pve", hint="check")
    assert "s3cr" not in str(err) and "s3cr" not in err.one_line() and secrets.MASK in str(err)
