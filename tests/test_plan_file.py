"""The plan file: its JSON Schema, byte-for-byte determinism, offline planning, and loading."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.errors import PlanError  # noqa: E402
from ftbridge.planning import parse_plan  # noqa: E402
from ftbridge.planning.planfile import content_digest  # noqa: E402

SCHEMA = json.loads((K.ROOT / "ftbridge" / "schemas" / "plan.schema.json").read_text())


@pytest.fixture
def demo_plan(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    cfg = K.copy_demo(tmp_path)
    r = K.ftb("-c", str(cfg), "plan", "--out", str(tmp_path / "plan.json"), "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_schema_accepts_the_plan_and_rejects_what_apply_refuses(demo_plan: dict) -> None:  # type: ignore[type-arg]
    jsonschema.validate(demo_plan, SCHEMA)
    kinds = {a["kind"] for a in demo_plan["actions"]}
    assert kinds == {"move_disk", "move_vm", "protect", "unprotect"}
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["actions"][0].update(kind="teleport"),
        lambda d: d["actions"][0].pop("reason"),
        lambda d: d["actions"][0].update(bytes=-5),
        lambda d: d.update(schema_version=2),
        lambda d: d["unfixable"][0].update(category="bad luck"),
        lambda d: d["actions"][-1].update(extra=1),
    ]
    for mutate in mutations:
        bad = json.loads(json.dumps(demo_plan))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)
        with pytest.raises(PlanError):
            parse_plan(K.resign(bad))


def test_every_action_says_why_and_what_it_closes(demo_plan: dict) -> None:  # type: ignore[type-arg]
    ids = [a["id"] for a in demo_plan["actions"]]
    for n, a in enumerate(demo_plan["actions"]):
        assert a["reason"] and set(a["depends_on"]) <= set(ids[:n])
    closing = [a for a in demo_plan["actions"] if a["closes"]]
    assert len(closing) >= len(demo_plan["actions"]) // 2
    for u in demo_plan["unfixable"]:
        assert len(u["reason"]) > 20, u


def test_same_inventory_gives_a_byte_identical_plan(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path)
    inv = K.ftb("-c", str(cfg), "inventory", "-o", "json")
    assert inv.returncode == 0, inv.stderr
    saved = tmp_path / "inv.json"
    saved.write_text(inv.stdout)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    outs = []
    for name in ("a.json", "b.json"):
        r = K.ftb("-c", str(cfg), "plan", "--from", str(saved), "--out", str(tmp_path / name), env=env)
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["created_at"] == "2023-11-14T22:13:20Z"
    # offline (from the saved inventory) and live plans are the same plan
    r = K.ftb("-c", str(cfg), "plan", "--out", str(tmp_path / "live.json"), env=env)
    assert r.returncode == 0
    assert (tmp_path / "live.json").read_bytes() == outs[0]


def test_plan_goes_to_the_state_directory_by_default(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path)
    r = K.ftb("-c", str(cfg), "plan")
    assert r.returncode == 0, r.stderr
    (path,) = (tmp_path / "state" / "plans").glob("plan-*.json")
    doc = json.loads(path.read_text())
    assert path.name == f"plan-{doc['plan_id']}.json"
    assert str(path) in r.stderr and f"ftbridge -c {cfg} apply {path} --yes" in r.stderr


def test_parse_plan_errors_are_one_clear_line() -> None:
    with pytest.raises(PlanError, match="not an ftbridge plan"):
        parse_plan([1, 2, 3])
    with pytest.raises(PlanError, match="schema_version 7 is not supported"):
        parse_plan({"kind": "ftbridge-plan", "schema_version": 7})
    with pytest.raises(PlanError, match="malformed plan"):
        parse_plan({"kind": "ftbridge-plan", "schema_version": 1, "actions": []})


def test_the_plan_id_is_the_digest_of_the_compact_sorted_text_saved_plans_were_signed_with() -> None:
    """The id is hashed a list item at a time (a million-VM plan's text is never held whole); it
    must stay the digest of the very text earlier versions hashed, or every saved plan would
    read as damaged."""
    doc = {
        "plan_id": "ignored",
        "created_at": "ignored too",
        "kind": "ftbridge-plan",
        "actions": [{"id": f"a{i}", "reason": "déplacer ✓", "bytes": i * 10**12, "lag": 0.1 * i} for i in range(2500)],
        "unfixable": [],
        "names": {"z": 1, "a": [1.5e-05, 1e16, None, True]},
        "summary": {"by_kind": {"protect": 2}},
    }
    body = {k: v for k, v in doc.items() if k not in ("plan_id", "created_at")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert content_digest(doc) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_file_written_a_piece_at_a_time_is_the_whole_documents_text(tmp_path: Path) -> None:
    """A plan file is encoded a chunk of actions at a time (a million-VM plan's text is never
    held whole); the bytes must be those one encoding of the whole document gives, whatever the
    chunk size, or plans would differ by how they were written."""
    import orjson

    from ftbridge.planning.planfile import dump_chunks, write_plan

    doc = {
        "schema_version": 1,
        "actions": [
            {"id": f"a{i}", "reason": "déplacer ✓\nnext", "datastores": [], "detail": {}, "deps": [i, {"x": [1]}]}
            for i in range(2500)
        ],
        "unfixable": [],
        "names": {"datastores": {}, "hosts": {"ep/h1": "h1"}},
        "summary": {"bytes_moved": 10**15, "lag": 1.5e-05, "none": None},
        "groups": [["a"], []],
    }
    whole = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    for per_chunk in (1, 7, 1024, 5000):
        assert b"".join(dump_chunks(doc, per_chunk)) == whole
    write_plan(doc, tmp_path / "plan.json")
    assert (tmp_path / "plan.json").read_bytes() == whole
    # what orjson cannot encode (an integer beyond 64 bits), the standard library writes, same layout
    big = {"a": [2**70, 1], "b": 2**65}
    assert json.loads(b"".join(dump_chunks(big))) == big
    assert b"".join(dump_chunks(big)) == (json.dumps(big, indent=2) + "\n").encode()


def test_a_plan_whose_encoding_fails_half_way_leaves_the_old_file(tmp_path: Path) -> None:
    from ftbridge.planning.planfile import write_plan

    path = tmp_path / "plan.json"
    path.write_text("old\n")
    doc = {"actions": [{"id": "a1"}] * 3000 + [{"id": object()}]}  # the last chunk cannot be encoded
    with pytest.raises(TypeError):
        write_plan(doc, path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]
