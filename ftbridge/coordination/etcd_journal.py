"""The journal in etcd, for several controllers: every write a transaction fenced by the token.

Records are small JSON values (etcd keeps every revision until compaction, and a transaction
holds at most 128 operations by default), laid out under ``<prefix>journal/``:

==============================  =====================================================
``next-run``                    the last run id given out (compare-and-swap)
``runs/<id>``                   a run: plan id and path, status, pid, times, summary,
                                and its actions' static part ``[[id, kind, ep, vm]]``
``plans/<plan id>``             the newest run of a plan (an index)
``actions/<id>/<action id>``    an action's state, attempts, operation handle, result
``events/<id>/<ns>-<pid>-<n>``  one event; its ``seq`` is the key's mod revision
``meta/<key>``                  small named values (the watch keeps plan documents here)
==============================  =====================================================

Each write is one transaction whose comparisons include, when the store carries a fence,
``create_revision(<leader key>) == token``: the store refuses (:class:`StaleLeader`) a write
by a controller that is no longer the leader, atomically with the write itself.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from ftbridge.apply.journal import ActionRecord, ActionRow, JournalStore, RunRecord, StaleLeader, who
from ftbridge.coordination.etcd_client import (
    KV,
    EtcdClient,
    compare_create,
    delete_op,
    kv_from,
    prefix_end,
    put_op,
    range_op,
)

#: etcd's default --max-txn-ops is 128; a resume that resets many actions writes in chunks
TXN_OPS = 100


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


class EtcdJournalStore(JournalStore):
    def __init__(self, client: EtcdClient, prefix: str, leader_key: str) -> None:
        self.client = client
        self.prefix = prefix
        self.leader_key = leader_key
        self.location = f"etcd {','.join(client.urls)} {prefix}"
        self._rows: dict[tuple[int, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._n = 0

    # -- plumbing -------------------------------------------------------------------------
    def _k(self, *parts: object) -> str:
        return self.prefix + "/".join(str(p) for p in parts)

    @staticmethod
    def _rid(run_id: int) -> str:
        return f"{run_id:012d}"

    def _commit(
        self, success: list[dict[str, Any]], compare: list[dict[str, Any]] | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """One transaction: the fence's comparison plus ``compare``. (succeeded, reply); raises
        :class:`StaleLeader` when the fence failed."""
        token = self.check_fence()
        cmp = list(compare or [])
        if token is not None:
            cmp.insert(0, compare_create(self.leader_key, token))
        reply = self.client.txn(cmp, success, [range_op(self.leader_key)] if token is not None else [])
        if reply.get("succeeded"):
            return True, reply
        if token is not None:
            kvs = reply.get("responses", [{}])[0].get("response_range", {}).get("kvs", [])
            now = kv_from(kvs[0]).create_revision if kvs else 0
            if now != token:
                raise StaleLeader(
                    f"journal write refused by etcd: the leader key's revision is {now or 'absent'}, "
                    f"this controller's token is {token}: another controller leads"
                )
        return False, reply

    def _event(
        self, run_id: int, event: str, action_id: str | None, state: str | None, detail: dict[str, Any] | None
    ) -> dict[str, Any]:
        with self._lock:
            self._n += 1
            n = self._n
        key = self._k("events", self._rid(run_id), f"{time.time_ns():020d}-{os.getpid()}-{n:06d}")
        body: dict[str, Any] = {
            "run_id": run_id,
            "action_id": action_id,
            "at": time.time(),
            "event": event,
            "state": state,
        }
        if detail:
            body["detail"] = detail
        return put_op(key, _dumps(body))

    def _get(self, key: str) -> KV | None:
        return self.client.get(key)

    def _run(self, run_id: int) -> dict[str, Any]:
        kv = self._get(self._k("runs", self._rid(run_id)))
        if kv is None:
            raise KeyError(f"no run {run_id} in {self.location}")
        return dict(json.loads(kv.value))

    # -- writes ---------------------------------------------------------------------------
    def start_run(
        self, plan_id: str, plan_path: str, fingerprint: str, actions: list[tuple[str, str, str, str]]
    ) -> int:
        self.check_fence()  # before any read: a controller past its deadline does not even ask
        now = time.time()
        while True:
            counter = self._get(self._k("next-run"))
            run_id = (int(counter.value) if counter else 0) + 1
            guard = {
                "key": _b64(self._k("next-run")),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": str(counter.mod_revision if counter else 0),
            }
            run = {
                "id": run_id,
                "plan_id": plan_id,
                "plan_path": plan_path,
                "fingerprint": fingerprint,
                "status": "running",
                "pid": os.getpid(),
                "started_at": now,
                "updated_at": now,
                "finished_at": None,
                "summary": None,
                "actions": [list(a) for a in actions],
            }
            ok, _ = self._commit(
                [
                    put_op(self._k("next-run"), str(run_id)),
                    put_op(self._k("runs", self._rid(run_id)), _dumps(run)),
                    put_op(self._k("plans", plan_id), str(run_id)),
                    self._event(run_id, "run_started", None, None, {"plan_path": plan_path, **who()}),
                ],
                [guard],
            )
            if ok:
                return run_id

    def resume_run(self, run_id: int) -> None:
        self.check_fence()
        run = self._run(run_id)
        run.update(status="running", pid=os.getpid(), updated_at=time.time(), finished_at=None)
        now = time.time()
        resets = []
        for aid, rec in self._states(run_id).items():
            if rec.get("state") in ("failed", "blocked"):
                rec.update(state="pending", updated_at=now)
                resets.append(put_op(self._k("actions", self._rid(run_id), aid), _dumps(rec)))
                with self._lock:
                    self._rows[(run_id, aid)] = rec
        for i in range(0, len(resets), TXN_OPS):  # resets are idempotent: chunks are harmless
            self._commit(resets[i : i + TXN_OPS])
        self._commit(
            [
                put_op(self._k("runs", self._rid(run_id)), _dumps(run)),
                self._event(run_id, "run_resumed", None, None, who()),
            ]
        )

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self.check_fence()
        run = self._run(run_id)
        now = time.time()
        run.update(status=status, updated_at=now, finished_at=now, summary=summary)
        self._commit(
            [
                put_op(self._k("runs", self._rid(run_id)), _dumps(run)),
                self._event(run_id, "run_finished", None, None, {"status": status, **summary}),
            ]
        )

    def record(
        self,
        run_id: int,
        action_id: str,
        event: str,
        update: dict[str, Any],
        detail: dict[str, Any] | None,
        *,
        wait: bool = True,
    ) -> None:
        """Every write waits for etcd's answer (``wait`` is not used: a transaction's round trip
        is the write)."""
        self.check_fence()
        key = self._k("actions", self._rid(run_id), action_id)
        with self._lock:
            row = self._rows.get((run_id, action_id))
        if row is None:
            kv = self._get(key)
            row = dict(json.loads(kv.value)) if kv else {"state": "pending", "attempts": 0}
        row = {**row, **update}
        self._commit([put_op(key, _dumps(row)), self._event(run_id, event, action_id, update["state"], detail)])
        with self._lock:
            self._rows[(run_id, action_id)] = row

    def set_meta(self, key: str, value: str | None) -> None:
        k = self._k("meta", key)
        self._commit([delete_op(k) if value is None else put_op(k, value)])

    # -- reads ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        kv = self._get(self._k("meta", key))
        return kv.value.decode() if kv else None

    def _range(self, *parts: object) -> list[KV]:
        start = self._k(*parts) + "/"
        kvs, _ = self.client.range(start, prefix_end(start))
        return kvs

    def _states(self, run_id: int) -> dict[str, dict[str, Any]]:
        kvs = self._range("actions", self._rid(run_id))
        return {kv.key.rsplit("/", 1)[1]: dict(json.loads(kv.value)) for kv in kvs}

    @staticmethod
    def _record(run: dict[str, Any]) -> RunRecord:
        return RunRecord(
            int(run["id"]),
            str(run["plan_id"]),
            run.get("plan_path"),
            str(run["status"]),
            run.get("pid"),
            float(run["started_at"]),
            run.get("finished_at"),
        )

    def runs(self, *, limit: int | None = None, unfinished: bool = False) -> list[RunRecord]:
        out = [self._record(json.loads(kv.value)) for kv in self._range("runs")]
        out = [r for r in out if not unfinished or r.status != "done"]
        out.sort(key=lambda r: -r.id)
        return out[:limit] if limit is not None else out

    def latest_run(self, plan_id: str) -> RunRecord | None:
        kv = self._get(self._k("plans", plan_id))
        if kv is None:
            return None
        return self._record(self._run(int(kv.value)))

    def actions(self, run_id: int) -> dict[str, ActionRecord]:
        run = self._run(run_id)
        states = self._states(run_id)
        out: dict[str, ActionRecord] = {}
        with self._lock:
            for aid, *_ in run["actions"]:
                st = states.get(aid, {"state": "pending", "attempts": 0})
                self._rows[(run_id, aid)] = st
                out[aid] = ActionRecord(
                    aid,
                    str(st["state"]),
                    int(st.get("attempts", 0)),
                    st.get("operation"),
                    st.get("result"),
                    st.get("error"),
                )
        return out

    def run_actions(self, run_id: int) -> list[ActionRow]:
        run = self._run(run_id)
        states = self._states(run_id)
        out = []
        for n, (aid, kind, ep, vm) in enumerate(run["actions"]):
            st = states.get(aid, {})
            out.append(
                ActionRow(
                    aid,
                    n,
                    kind,
                    ep,
                    vm,
                    str(st.get("state", "pending")),
                    int(st.get("attempts", 0)),
                    st.get("error"),
                    float(st.get("updated_at", run["started_at"])),
                )
            )
        return out

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        kvs = self._range("events", self._rid(run_id)) if run_id is not None else self._range("events")
        out = []
        for kv in kvs:
            e = json.loads(kv.value)
            out.append(
                {
                    "seq": kv.mod_revision,
                    "run_id": e["run_id"],
                    "action_id": e.get("action_id"),
                    "at": e["at"],
                    "event": e["event"],
                    "state": e.get("state"),
                    "detail": e.get("detail"),
                }
            )
        out.sort(key=lambda e: (e["seq"], e["at"]))
        return out

    def close(self) -> None:
        return None  # the client belongs to the coordinator


def _b64(key: str) -> str:
    from ftbridge.coordination.etcd_client import b64

    return b64(key)
