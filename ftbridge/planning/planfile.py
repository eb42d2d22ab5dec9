"""The plan file: versioned JSON, written byte-for-byte the same for the same input.

``ftbridge/schemas/plan.schema.json`` describes it for other programs; :func:`load_plan`
validates it with pydantic (the edge of the core) and checks what a schema cannot: the
dependency graph, and that the content still matches its ``plan_id`` (a digest of everything
but ``created_at``), so a damaged or hand-edited plan is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftbridge.config import Config
from ftbridge.errors import PlanError
from ftbridge.inventory import Inventory
from ftbridge.planning.actions import ACTION_KINDS, PlanResult

PLAN_SCHEMA_VERSION = 1
#: version 2 adds ordering by barriers: the document's ``groups`` (names, in order) and an
#: action's ``stage`` (an index into them): an action of a stage starts only once every action
#: of the previous stage the document has is done, as if it depended on each of them, without
#: writing those edges out (n x m of them between two recovery groups). Failover documents are
#: written as version 2; the planner's plans, which have no stages, stay version 1. Both are read.
BARRIER_SCHEMA_VERSION = 2
READ_SCHEMA_VERSIONS = (PLAN_SCHEMA_VERSION, BARRIER_SCHEMA_VERSION)
PLAN_KIND = "ftbridge-plan"


# -- writing ---------------------------------------------------------------------------------
def estate_id(inv: Inventory) -> str:
    """What an estate *is* (endpoints, hosts, datastores), as opposed to where its VMs are now."""
    h = hashlib.sha256()
    for e in sorted(inv.endpoints, key=lambda e: e.name):
        h.update(f"E{e.name}/{e.driver}\n".encode())
    for d in sorted(inv.datastores, key=lambda d: (d.endpoint, d.id)):
        h.update(f"D{d.endpoint}/{d.id}\n".encode())
    for x in sorted(inv.hosts, key=lambda x: (x.endpoint, x.id)):
        h.update(f"H{x.endpoint}/{x.id}\n".encode())
    return h.hexdigest()[:32]


def config_digest(config: Config) -> str:
    """The parts of the config a plan depends on: policies and failure-domain labels."""
    data = {
        "policies": [p.model_dump(mode="json") for p in config.policies],
        "domains": [d.model_dump(mode="json") for d in config.domains],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def default_created_at() -> float:
    """Now, or ``$SOURCE_DATE_EPOCH`` (the reproducible-builds convention) when set."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return float(env)
        except ValueError:
            pass
    return time.time()


def content_digest(doc: dict[str, Any]) -> str:
    """The plan's id: a digest of ``json.dumps(body, sort_keys=True, separators=(",", ":"))``,
    the document without ``plan_id`` and ``created_at``. Hashed as that text is written, a
    top-level list an item at a time: a million-VM plan's text is never held whole (160 MB)."""
    body = {k: v for k, v in doc.items() if k not in ("plan_id", "created_at")}
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
    h = hashlib.sha256()
    h.update(b"{")
    for n, key in enumerate(sorted(body)):
        h.update(f"{',' if n else ''}{encode(key)}:".encode())
        value = body[key]
        if not isinstance(value, list):
            h.update(encode(value).encode())
            continue
        h.update(b"[")
        for k in range(0, len(value), 1024):
            chunk = encode(value[k : k + 1024])[1:-1]  # the items as the whole list writes them
            h.update(f"{',' if k else ''}{chunk}".encode())
        h.update(b"]")
    h.update(b"}")
    return h.hexdigest()[:16]


def barriers_as_edges(doc: dict[str, Any]) -> dict[str, Any]:
    """A schema 2 document (recovery groups as stage barriers) written as schema 1 wrote the
    same order: each staged action depends on every action of the stage before it, and no
    stages. The reader takes both; tests and the failover benchmark compare them with this.
    Returns a new document with its own ``plan_id``."""
    old: dict[str, Any] = json.loads(json.dumps(doc))
    stages: dict[int, list[str]] = {}
    for a in old["actions"]:
        if "stage" in a:
            stages.setdefault(a["stage"], []).append(a["id"])
    for a in old["actions"]:
        stage = a.pop("stage", None)
        if stage:  # stage 0 waits for nothing before it
            a["depends_on"] = sorted(set(a["depends_on"]) | set(stages[stage - 1]), key=lambda x: int(x[1:]))
    old.pop("groups", None)
    old["schema_version"] = PLAN_SCHEMA_VERSION
    old["plan_id"] = content_digest(old)
    return old


def plan_document(
    inv: Inventory, config: Config, result: PlanResult, *, created_at: float, generator: str
) -> dict[str, Any]:
    """The plan as the JSON object the file holds."""
    by_kind = {k: 0 for k in ACTION_KINDS}
    for a in result.actions:
        by_kind[a.kind] += 1
    by_cat: dict[str, int] = {}
    for u in result.unfixable:
        by_cat[u.category] = by_cat.get(u.category, 0) + 1
    used = set(result.policies_used)
    doc: dict[str, Any] = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "kind": PLAN_KIND,
        "plan_id": "",
        "created_at": datetime.fromtimestamp(created_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": generator,
        "made_by": "plan",
        "inventory": {
            "fingerprint": inv.fingerprint(),
            "estate_id": estate_id(inv),
            "vms": len(inv.vms),
            "datastores": len(inv.datastores),
        },
        "endpoints": [
            {"name": e.name, "driver": e.driver, "mechanisms": list(e.mechanisms)}
            for e in sorted(inv.endpoints, key=lambda e: e.name)
        ],
        "config": {
            "digest": config_digest(config),
            "policies": {
                p.name: p.model_dump(mode="json", exclude={"name"}) for p in config.policies if p.name in used
            },
        },
        "summary": {
            "actions": len(result.actions),
            "by_kind": by_kind,
            "bytes_moved": result.bytes_moved,
            "findings": result.findings_total,
            "fixable": result.findings_fixable,
            "closed": len(result.closed),
            "unfixable": len(result.unfixable),
            "unfixable_by_category": dict(sorted(by_cat.items())),
        },
        "actions": [a.to_dict() for a in result.actions],
        "unfixable": [u.to_dict() for u in result.unfixable],
        "names": _names(inv, result),
    }
    doc["plan_id"] = content_digest(doc)
    return doc


def _names(inv: Inventory, result: PlanResult) -> dict[str, dict[str, str]]:
    """Names of the datastores and hosts the plan refers to by id, for people reading it."""
    ds: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for a in result.actions:
        ids = set(a.datastores)
        spec = a.detail.get("spec")
        if isinstance(spec, dict) and spec.get("host"):
            h = inv.host(a.endpoint, spec["host"])
            if h is not None:
                hosts[f"{a.endpoint}/{h.id}"] = h.name
        for x in ids:
            d = inv.datastore(a.endpoint, x)
            if d is not None:
                ds[f"{a.endpoint}/{d.id}"] = d.name
    for u in result.unfixable:
        d = inv.datastore(u.endpoint, u.datastore)
        if d is not None:
            ds[f"{u.endpoint}/{d.id}"] = d.name
    return {"datastores": dict(sorted(ds.items())), "hosts": dict(sorted(hosts.items()))}


def dump_chunks(doc: dict[str, Any], per_chunk: int = 1024) -> Iterator[bytes]:
    """The file's bytes, a piece at a time: JSON indented by two, UTF-8, one final newline.

    Byte for byte what one ``orjson.dumps(doc, OPT_INDENT_2 | OPT_APPEND_NEWLINE)`` gives, but a
    top-level list (the actions) is encoded ``per_chunk`` items at a time, so a million-VM
    plan's text (115 MB) is never held whole: written as it is made, its pages are not taken
    from the system and faulted in at all. orjson writes ten times faster than the standard
    library's indenting encoder; what it cannot encode (an integer beyond 64 bits) the standard
    library writes (same layout)."""
    if not doc:
        yield b"{}\n"
        return
    yield b"{\n"
    for n, (key, value) in enumerate(doc.items()):
        head = (b",\n  " if n else b"  ") + _indented(key, 2) + b": "
        if not isinstance(value, list) or not value:
            yield head + _indented(value, 2)
            continue
        yield head + b"[\n"
        for k in range(0, len(value), per_chunk):
            items = _indented(value[k : k + per_chunk], 2)[2:-4]  # less "[\n" and "\n  ]"
            yield (b",\n" if k else b"") + items
        yield b"\n  ]"
    yield b"\n}\n"


def _indented(value: Any, by: int) -> bytes:
    """``value`` as indented JSON whose lines after the first are shifted ``by`` more spaces
    (JSON strings hold no raw newline, so every newline starts a line of the layout)."""
    import orjson

    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(value, indent=2, ensure_ascii=False).encode()
    return text.replace(b"\n", b"\n" + b" " * by)


def dumps(doc: dict[str, Any]) -> str:
    """The file's text whole (:func:`dump_chunks` joined)."""
    return b"".join(dump_chunks(doc)).decode()


def write_plan(doc: dict[str, Any], path: Path) -> None:
    """Atomically: a reader never sees half a plan (a full or read-only disk: StateStorageError).
    Written as it is encoded (:func:`dump_chunks`): never held whole in memory."""
    from ftbridge.statefiles import atomic_write

    atomic_write(path, dump_chunks(doc))


# -- reading ---------------------------------------------------------------------------------
class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SpecModel(_M):
    mechanism: str
    disks: dict[str, str]
    config_datastore: str | None = None
    host: str | None = None
    metadata_datastore: str | None = None


class _ActionBase(_M):
    id: str = Field(pattern=r"^a[0-9]+$")
    endpoint: str
    vm: str
    vm_name: str
    bytes: int = Field(ge=0)
    datastores: list[str]
    depends_on: list[str]
    #: schema 2: waits for every action of the previous stage (see BARRIER_SCHEMA_VERSION)
    stage: int | None = Field(default=None, ge=0)
    closes: list[str]
    reason: str = Field(min_length=1)


class MoveDiskAction(_ActionBase):
    kind: Literal["move_disk"]
    disk: str
    source: str = Field(alias="from")
    to: str


class MoveVMAction(_ActionBase):
    kind: Literal["move_vm"]
    disks: list[str]
    source: list[str] = Field(alias="from")
    to: str
    config_from: str | None = None
    host: str | None = None  # failback: also run the VM on this host again (absent in planner output)


class ProtectAction(_ActionBase):
    kind: Literal["protect"]
    mechanism: str
    spec: SpecModel
    replaces: list[str]
    existing: list[str]
    primary: dict[str, str]


class UnprotectAction(_ActionBase):
    kind: Literal["unprotect"]
    secondary: str
    mechanism: str
    after: str | None = None
    keeps: list[str]
    window: bool = False
    restore: str | None = None


# -- failover kinds: written by ftbridge.failover (never by the planner), run by the same apply --
#: Action kinds only failover documents hold; the apply accepts them beside ACTION_KINDS.
FAILOVER_ACTION_KINDS: tuple[str, ...] = ("fence", "restart", "promote", "test_failover", "cleanup_test")

#: What made a document (its ``made_by``) and the action kinds that producer writes. The apply
#: checks both against what its caller runs (``ftbridge apply``: ordinary plans), never against
#: the id: anyone can recompute a digest, so a hand-edited "plan" holding a promote is refused.
MADE_BY: dict[str, frozenset[str]] = {
    "plan": frozenset(ACTION_KINDS),  # ftbridge plan (and the plans migrate verify and watch make)
    "reprotect": frozenset({"protect", "unprotect"}),  # ftbridge failover reprotect
    "failback": frozenset({"move_vm", "move_disk"}),  # ftbridge failover failback
    "failover": frozenset({"fence", "restart", "promote"}),  # ftbridge failover run, watch
    "failover-test": frozenset({"test_failover", "cleanup_test"}),  # ftbridge failover test [--cleanup]
}


class FenceAction(_ActionBase):
    """Power the primary off so its secondary may be promoted without split brain.

    Done once the primary cannot run any more *on ``host``* (the host it ran on when planned):
    once the VM runs elsewhere (restarted, promoted) a fence must never run again, or it would
    power off the VM it made way for."""

    kind: Literal["fence"]
    host: str | None = None


class RestartAction(_ActionBase):
    """Start the VM again from its own, intact primary files on a surviving host (loses nothing).

    With ``ha_grace`` the platform's HA gets that long to do it first; ftbridge then restarts
    the VM itself if it is still down."""

    kind: Literal["restart"]
    host: str | None = None
    original_host: str | None = None
    ha_grace: float = Field(default=0.0, ge=0)
    fenced: bool = False
    forced: bool = False
    group: str = "rest"
    group_index: int = 0
    order: int = 0


class PromoteAction(_ActionBase):
    """Run the VM from one secondary (``secondary_disks``: primary disk id -> datastore)."""

    kind: Literal["promote"]
    secondary: str
    mechanism: str
    host: str | None = None
    #: the endpoint that keeps the copy and runs the promotion (a DR site), when not ``endpoint``
    target_endpoint: str | None = None
    secondary_disks: dict[str, str] = {}
    secondary_config: str | None = None
    fenced: bool = False  # a fence action this one depends on powers the primary off first
    forced: bool = False  # the operator forced it while the primary may still run
    group: str = "rest"
    group_index: int = 0
    order: int = 0
    lag: float | None = None


class TestFailoverAction(_ActionBase):
    """Start the secondary isolated; its result names the test instance (``test_id``)."""

    __test__ = False  # not a pytest class
    kind: Literal["test_failover"]
    secondary: str
    mechanism: str
    host: str | None = None


class CleanupTestAction(_ActionBase):
    """Remove what the test_failover action ``after`` created, or the test instance ``test_id``
    a test kept up earlier (``failover test --keep``, then ``--cleanup``)."""

    kind: Literal["cleanup_test"]
    after: str | None = None
    test_id: str | None = None


PlanAction = Annotated[
    MoveDiskAction
    | MoveVMAction
    | ProtectAction
    | UnprotectAction
    | FenceAction
    | RestartAction
    | PromoteAction
    | TestFailoverAction
    | CleanupTestAction,
    Field(discriminator="kind"),
]


class EndpointRef(_M):
    name: str
    driver: str
    mechanisms: list[str] = []


class InventoryRef(_M):
    fingerprint: str
    estate_id: str
    vms: int
    datastores: int


class UnfixableModel(_M):
    finding: str
    rule: str
    endpoint: str
    vm: str | None = None
    vm_name: str | None = None
    datastore: str | None = None
    category: Literal["capacity", "limits", "placement", "unavailable", "manual"]
    reason: str = Field(min_length=1)


class PlanDoc(_M):
    schema_version: Literal[1, 2]
    kind: Literal["ftbridge-plan"]
    plan_id: str
    created_at: str
    generator: str
    #: the producer (a key of :data:`MADE_BY`); files written before it existed are plans
    made_by: str = "plan"
    inventory: InventoryRef
    endpoints: list[EndpointRef]
    config: dict[str, Any]
    summary: dict[str, Any]
    actions: list[PlanAction]
    unfixable: list[UnfixableModel]
    names: dict[str, dict[str, str]] = {}
    #: schema 2: the stages' names (recovery groups), in the order they run
    groups: list[str] | None = None

    def ds_name(self, endpoint: str, ds_id: str | None) -> str:
        return self.names.get("datastores", {}).get(f"{endpoint}/{ds_id}", ds_id or "-")

    def host_name(self, endpoint: str, host_id: str | None) -> str:
        return self.names.get("hosts", {}).get(f"{endpoint}/{host_id}", host_id or "-")

    def action(self, action_id: str) -> PlanAction:
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(action_id)


def load_plan(path: str | Path) -> PlanDoc:
    """A plan file, checked through and through; every problem is one :class:`PlanError` line."""
    path = Path(path)
    from ftbridge.gcpause import gc_paused
    from ftbridge.loading import load_json

    with gc_paused():
        return parse_plan(load_json(path, what="plan file", error=PlanError), source=str(path))


def _check_stages(doc: PlanDoc, source: str) -> None:
    """Schema 2 has ``groups`` and may stage actions; schema 1 neither. Staged actions come in
    stage order, so every wait (an edge or a stage's barrier) points to an earlier action and
    the graph stays acyclic by construction."""
    if doc.schema_version == PLAN_SCHEMA_VERSION:
        if doc.groups is not None:
            raise PlanError(f"{source}: malformed plan: groups: not in a schema_version 1 plan")
        staged = next((a for a in doc.actions if a.stage is not None), None)
        if staged is not None:
            raise PlanError(f"{source}: malformed plan: action {staged.id}: stage: not in a schema_version 1 plan")
        return
    if doc.groups is None:
        raise PlanError(f"{source}: malformed plan: groups: Field required (schema_version 2)")
    last = 0
    for a in doc.actions:
        if a.stage is None:
            continue
        if a.stage >= len(doc.groups):
            raise PlanError(
                f"{source}: malformed plan: action {a.id}: stage {a.stage}, but the plan has {len(doc.groups)} group(s)"
            )
        if a.stage < last:
            raise PlanError(
                f"{source}: malformed plan: action {a.id}: stage {a.stage} after an action of stage {last} "
                "(staged actions are listed in stage order)"
            )
        last = a.stage


def parse_plan(data: Any, *, source: str = "plan") -> PlanDoc:
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
        raise PlanError(f'{source}: not an ftbridge plan (no "kind": "{PLAN_KIND}")')
    if data.get("schema_version") not in READ_SCHEMA_VERSIONS:
        raise PlanError(
            f"{source}: plan schema_version {data.get('schema_version')!r} is not supported "
            f"(this ftbridge reads {' and '.join(map(str, READ_SCHEMA_VERSIONS))})",
            hint="make a new plan with 'ftbridge plan'",
        )
    actions = data.get("actions")
    if isinstance(actions, list):
        for n, a in enumerate(actions):
            kind = a.get("kind") if isinstance(a, dict) else None
            if kind not in ACTION_KINDS and kind not in FAILOVER_ACTION_KINDS:
                ident = a.get("id", f"#{n}") if isinstance(a, dict) else f"#{n}"
                known = ", ".join(ACTION_KINDS + FAILOVER_ACTION_KINDS)
                raise PlanError(f"{source}: action {ident}: unknown kind {kind!r} (known: {known})")
    try:
        doc = PlanDoc.model_validate(data, strict=True)  # a number is not a string, 1 is not true
    except ValidationError as exc:
        from ftbridge.loading import validation_line

        err = exc.errors()[0]  # the loc names the union member (the action's kind): not a key
        err["loc"] = tuple(x for x in err["loc"] if x not in ACTION_KINDS and x not in FAILOVER_ACTION_KINDS)
        raise PlanError(validation_line(f"{source}: malformed plan", err)) from None
    ids: dict[str, int] = {}
    for n, a in enumerate(doc.actions):
        if a.id in ids:
            raise PlanError(f"{source}: malformed plan: action id {a.id} appears twice")
        for dep in a.depends_on:
            if dep not in ids:  # only earlier actions: the graph is acyclic by construction
                raise PlanError(
                    f"{source}: malformed plan: action {a.id} depends on {dep}, which is not an earlier action"
                )
        ids[a.id] = n
    _check_stages(doc, source)
    if content_digest(data) != doc.plan_id:
        raise PlanError(
            f"{source}: plan content does not match its plan_id (damaged or edited)",
            hint="make a new plan with 'ftbridge plan'",
        )
    return doc
