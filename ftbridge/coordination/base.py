"""The ``Coordinator`` port: which controller may act, and the token its writes are fenced with.

Several ``ftbridge watch`` controllers (one per site) watch one estate; exactly one acts. The
proven shape (Patroni's etcd3 DCS, etcd's own ``concurrency`` election recipe) is a leader key
bound to a lease: whoever creates the key leads while it renews the lease; the key's creation
revision is a number that only grows, so it serves as the *fencing token* every journal write
compares (:class:`ftbridge.apply.journal.Fence`). A leader that cannot renew before its
deadline stops acting at once; a new leader waits out the old lease plus a settle delay before
it touches a failed domain.

Adapters: :class:`ftbridge.coordination.local.LocalCoordinator` (a lock file and an epoch in
the SQLite journal: one machine) and :class:`ftbridge.coordination.etcd.EtcdCoordinator`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ftbridge.apply.journal import Fence, JournalStore, StaleLeader

#: what a coordinator reports as it happens: (event name, details) -> None
Notify = Callable[[str, dict[str, Any]], None]


def _ignore(_event: str, _detail: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Leadership:
    """Who leads: the controller's name, since when (wall clock), and the epoch (fencing token)."""

    holder: str
    since: float
    epoch: int
    backend: str
    lease_ttl: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "since": self.since,
            "epoch": self.epoch,
            "backend": self.backend,
            "lease_ttl": self.lease_ttl,
        }


class Coordinator(abc.ABC):
    """One controller's view of the election. Not thread-safe except :meth:`check`."""

    backend: ClassVar[str]

    def __init__(self, name: str, *, settle: float, notify: Notify = _ignore) -> None:
        self.name = name
        self.settle = settle
        self.notify = notify
        self.leading: Leadership | None = None
        self._acquired = 0.0  # monotonic time we became leader
        self._prior_ttl = 0.0  # the lease of the leader before us: we wait it out (plus settle)

    @abc.abstractmethod
    def campaign(self) -> Leadership | None:
        """Try to lead, once, without blocking: the leadership when this controller leads now."""

    @abc.abstractmethod
    def leader(self) -> Leadership | None:
        """Who leads now, as the backend says (for ``watch --status``); None: nobody."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`StaleLeader` unless this controller leads and may still act now."""

    @abc.abstractmethod
    def resign(self) -> None:
        """Give the leadership up (idempotent)."""

    @abc.abstractmethod
    def store(self) -> JournalStore:
        """The journal store that goes with this backend (shared by every controller)."""

    @abc.abstractmethod
    def quorum_outside(self, site: str) -> tuple[bool, str]:
        """Can the coordination keep quorum when ``site`` is lost? (yes/no, and why)."""

    def close(self) -> None:
        self.resign()

    # -- shared ---------------------------------------------------------------------------
    def fence(self) -> Fence:
        if self.leading is None:
            raise StaleLeader(f"controller {self.name} does not lead")
        return Fence(self.leading.epoch, self.check)

    def may_touch_failed_domains(self) -> bool:
        """False until the old leader's lease and the settle delay have passed since we took over:
        whatever the old leader started in a failed domain has had its time to end."""
        return self.leading is not None and time.monotonic() >= self._acquired + self._prior_ttl + self.settle

    def safe_quorum(self, sites: list[str]) -> tuple[bool, str]:
        """:meth:`quorum_outside` for every site given; the first refusal, or (True, "")."""
        for s in sites:
            ok, why = self.quorum_outside(s)
            if not ok:
                return False, why
        return True, ""

    def _won(self, leadership: Leadership, prior_ttl: float) -> Leadership:
        self.leading = leadership
        self._acquired = time.monotonic()
        self._prior_ttl = prior_ttl
        self.notify("leader_elected", {"controller": self.name, **leadership.to_dict()})
        return leadership

    def _lost(self, reason: str) -> None:
        if self.leading is not None:
            was = self.leading
            self.leading = None
            self.notify("leadership_lost", {"controller": self.name, "epoch": was.epoch, "reason": reason})
