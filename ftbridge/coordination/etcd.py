"""The etcd backend: a leader key bound to a lease; its creation revision is the fencing token.

The pattern is the one Patroni's etcd3 DCS (``patroni/dcs/etcd3.py``: ``_do_attempt_to_acquire_leader``
puts the leader key in a transaction guarded by ``create_revision == 0`` with the member's lease;
``_do_refresh_lease`` keeps the lease alive) and etcd's election recipe
(``client/v3/concurrency/election.go``: the leader's ``Rev()`` is the key's creation revision,
and ``Proclaim``/``Resign`` guard their writes with ``CreateRevision(key) == Rev``) both use;
etcd's concurrency API reference says of the lock key: "used in conjunction with transactions to
safely ensure updates to etcd only occur while holding lock ownership". Written from those
descriptions, no code copied.

* **Campaign**: grant a lease (``lease_ttl``), then one transaction: if the key's create revision
  is 0, put ``{name, since, lease_ttl}`` with the lease; else read the key (who leads). Never blocks.
* **Renew**: a thread sends keep-alives every quarter TTL. The *deadline* is the send time of the
  last keep-alive that succeeded plus the TTL it granted, less a margin: the server's expiry can
  only come later. Past the deadline the controller stops acting at once (:meth:`check` raises,
  the journal refuses writes), even if etcd is out of reach and cannot tell it so.
* **Fence**: every journal write (:class:`~ftbridge.coordination.etcd_journal.EtcdJournalStore`)
  is a transaction comparing the leader key's create revision with ours: after a new election the
  key is another key with a higher revision, so a deposed leader's writes fail.
* **Settle**: a new leader records the lease TTL of the leader it replaced and waits it out plus
  ``settle`` before touching a failed domain (:meth:`Coordinator.may_touch_failed_domains`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from ftbridge.apply.journal import JournalStore, StaleLeader
from ftbridge.config import CoordinationSettings
from ftbridge.coordination.base import Coordinator, Leadership, Notify, _ignore
from ftbridge.coordination.etcd_client import EtcdClient, compare_create, delete_op, kv_from, put_op, range_op
from ftbridge.errors import FtbridgeError

LEADER = "leader"


def client_for(cfg: CoordinationSettings) -> EtcdClient:
    cert = (str(cfg.cert_file), str(cfg.key_file)) if cfg.cert_file and cfg.key_file else None
    password = cfg.password.reveal("coordination.password") if cfg.password is not None else None
    return EtcdClient(
        [m.url.rstrip("/") for m in cfg.members],
        timeout=cfg.request_timeout,
        ca_file=str(cfg.ca_file) if cfg.ca_file else None,
        cert=cert,
        user=cfg.user,
        password=password,
    )


class EtcdCoordinator(Coordinator):
    backend = "etcd"

    def __init__(self, cfg: CoordinationSettings, name: str, *, notify: Notify = _ignore) -> None:
        super().__init__(name, settle=cfg.settle, notify=notify)
        self.cfg = cfg
        self.ttl = int(round(cfg.lease_ttl))
        self.key = cfg.prefix + LEADER
        self.client = client_for(cfg)
        self._renewer = client_for(cfg)  # its own connection: a slow write never delays a renewal
        self._lease = 0
        self._granted = 0.0  # monotonic time the lease was granted
        self._deadline = 0.0  # monotonic; meaningful while leading
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: JournalStore | None = None
        self._seen_ttl = 0.0

    def store(self) -> JournalStore:
        if self._store is None:
            from ftbridge.coordination.etcd_journal import EtcdJournalStore

            self._store = EtcdJournalStore(self.client, self.cfg.prefix + "journal/", self.key)
        return self._store

    # -- the election ---------------------------------------------------------------------
    def campaign(self) -> Leadership | None:
        if self.leading is not None:
            try:
                self.check()
                return self.leading
            except StaleLeader:
                return None
        sent = time.monotonic()
        if not self._lease or sent - self._granted > self.ttl / 2:
            # a follower does not renew its lease: take a fresh one rather than campaign with one
            # that may have expired (the old one simply lapses)
            self._lease = self.client.lease_grant(self.ttl)
            self._granted = sent
        value = json.dumps(
            {"holder": self.name, "since": time.time(), "lease_ttl": self.ttl, "pid": os.getpid()}, sort_keys=True
        )
        reply = self.client.txn(
            [compare_create(self.key, 0)], [put_op(self.key, value, self._lease)], [range_op(self.key)]
        )
        if not reply.get("succeeded"):
            kvs = reply.get("responses", [{}])[0].get("response_range", {}).get("kvs", [])
            if not kvs:
                return None  # it was deleted in between: next time
            kv = kv_from(kvs[0])
            data = json.loads(kv.value)
            if kv.lease == self._lease:  # our own key (a reply lost earlier): adopt it
                return self._adopt(kv.create_revision, data, sent)
            self._seen_ttl = float(data.get("lease_ttl", self.ttl))  # the lease we must wait out later
            return None
        revision = int(reply["header"]["revision"])  # a put that creates the key: create_revision
        return self._adopt(revision, json.loads(value), sent)

    def _adopt(self, epoch: int, value: dict[str, Any], sent: float) -> Leadership:
        prior = self._prior_lease_ttl()
        with self._lock:
            self._deadline = sent + self.ttl - self._margin()
        lead = Leadership(self.name, float(value["since"]), epoch, self.backend, float(self.ttl))
        self._won(lead, prior)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="ftbridge-lease", daemon=True)
        self._thread.start()
        return lead

    def _prior_lease_ttl(self) -> float:
        """The lease TTL of the leader before us, as we last saw its key (else our own): we wait
        that out, plus settle, before touching a failed domain."""
        return max(self._seen_ttl, float(self.ttl))

    def _margin(self) -> float:
        return min(1.0, 0.1 * self.ttl)

    def _renew_loop(self) -> None:
        period = max(0.2, self.ttl / 4)
        while not self._stop.wait(period):
            if self.leading is None:
                return
            sent = time.monotonic()
            try:
                granted = self._renewer.lease_keepalive(self._lease)
            except FtbridgeError:
                granted = None  # out of reach: keep trying until the deadline
            with self._lock:
                if granted is not None and granted > 0:
                    self._deadline = sent + granted - self._margin()
                expired = granted is not None and granted <= 0
                late = time.monotonic() >= self._deadline
            if expired or late:
                self._lose("lease expired" if expired else "could not renew the lease before its deadline")
                return

    def _lose(self, reason: str) -> None:
        with self._lock:
            self._deadline = 0.0
        self._lease = 0  # a fresh lease for the next campaign
        self._lost(reason)

    def check(self) -> None:
        lead = self.leading
        if lead is None:
            raise StaleLeader(f"controller {self.name} does not lead")
        with self._lock:
            late = time.monotonic() >= self._deadline
        if late:
            self._lose("could not renew the lease before its deadline")
            raise StaleLeader(
                f"controller {self.name} could not renew its lease before the deadline: it stopped acting "
                f"(epoch {lead.epoch})"
            )

    def leader(self) -> Leadership | None:
        kv = self.client.get(self.key)
        if kv is None:
            return None
        data = json.loads(kv.value)
        return Leadership(
            str(data["holder"]), float(data["since"]), kv.create_revision, self.backend, float(data["lease_ttl"])
        )

    def resign(self) -> None:
        self._stop.set()
        lead, lease = self.leading, self._lease
        if lead is not None:
            try:
                self.client.txn([compare_create(self.key, lead.epoch)], [delete_op(self.key)])
            except FtbridgeError:
                pass
        if lease:
            try:
                self.client.lease_revoke(lease)
            except FtbridgeError:
                pass
        self._lease = 0
        self._lost("resigned")

    def quorum_outside(self, site: str) -> tuple[bool, str]:
        members = self.cfg.members
        outside = [m for m in members if m.site is not None and m.site != site]
        if len(outside) * 2 > len(members):
            return True, ""
        unknown = [m.url for m in members if m.site is None]
        extra = f"; members with no site label prove nothing: {', '.join(unknown)}" if unknown else ""
        return False, (
            f"coordination.members: only {len(outside)} of {len(members)} etcd members are known to be outside "
            f"site {site}: losing it loses etcd's quorum{extra} (put members in three sites, a witness in the third)"
        )

    def close(self) -> None:
        self.resign()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()
        self._renewer.close()


def controller_name(configured: str | None) -> str:
    return configured or f"{socket.gethostname()}:{os.getpid()}"
