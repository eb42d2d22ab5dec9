"""Finding a target datastore without scanning every datastore for every VM.

Datastores are filed in *groups* of the same endpoint, kind, sharing and content types: one
group per such combination for the whole endpoint, and one per combination and set of mounting
hosts (a query that needs a given host to mount the target looks only at the groups of the
mount sets that contain it). A group is a list of (room, datastore) kept sorted, so the
datastore that fits tightest is found by bisection and the roomiest is at the end.

Separation is the model's to decide: the index only skips datastores whose failure domain
(site, room, array labels) :meth:`~ftbridge.model.FailureDomain.separated_at` says is not
apart from the domains a query avoids (a verdict cached per domain, not per datastore), and
leaves the rest to the caller's ``accept`` callback, which asks the model. The number of
groups a query looks at does not grow with the estate, and a query stops at the first
datastore that fits (best fit: the first one above the room needed; balance: the roomiest),
so planning cost grows close to linearly with VMs and datastores.

:attr:`CandidateIndex.examined` counts the datastores looked at, for the tests that keep it so.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ftbridge.model import Datastore, FailureDomain, Level
from ftbridge.planning.ledger import SpaceLedger

DomainKey = tuple[str | None, str | None, str | None]  # site, room, array
Content = frozenset[str] | None

_SKIP, _OK, _CHECK = 0, 1, 2  # a domain's verdict for a query: apart, not apart, ask per datastore


def domain_key(d: FailureDomain) -> DomainKey:
    return (d.site, d.room, d.array)


def _key_domain(k: DomainKey) -> FailureDomain:
    return FailureDomain(site=k[0], room=k[1], array=k[2])


@dataclass(frozen=True, slots=True)
class Query:
    """What a target must satisfy. ``avoid``: domains it must be separated from at ``level``."""

    endpoint: str
    need: int  # bytes on a target that cannot keep thin volumes thin
    pct: float = 0.0
    level: Level | None = None
    avoid: tuple[FailureDomain, ...] = ()
    kinds: frozenset[str] | None = None
    shared: bool | None = None
    host: str | None = None
    exclude: frozenset[int] = frozenset()
    #: mounted by at least one of these hosts (a copy that must stay near the primary)
    near: frozenset[str] | None = None
    #: content types the target must hold (:meth:`Datastore.holds`)
    content: frozenset[str] = frozenset({"images"})
    #: bytes on a target that keeps thin volumes thin (None: ``need``)
    need_thin: int | None = None

    @property
    def least(self) -> int:
        return self.need if self.need_thin is None or self.need_thin > self.need else self.need_thin

    def need_on(self, d: Datastore) -> int:
        return self.need_thin if self.need_thin is not None and d.thin else self.need


class _Group:
    """Datastores of one endpoint, kind, sharing and content (and maybe mount set)."""

    __slots__ = ("kind", "shared", "content", "rooms", "first")

    def __init__(self, kind: str, shared: bool, content: Content, first: int) -> None:
        self.kind, self.shared, self.content = kind, shared, content
        self.rooms: list[tuple[int, int]] = []  # (room, ds index), sorted
        self.first = first  # lowest member: a stable order between groups


class CandidateIndex:
    """Target datastores by kind, sharing, content and mounting hosts, sorted by room."""

    def __init__(
        self, datastores: list[Datastore], ledger: SpaceLedger, *, tight: bool | frozenset[str] = False
    ) -> None:
        #: best fit instead of balance: everywhere (True) or on these endpoints
        self.tight = tight
        self.ds = datastores
        self.ledger = ledger
        #: datastores looked at by queries so far (a measure of the work, for tests)
        self.examined = 0
        self.room = [0] * len(datastores)  # the room each datastore is filed under
        self._filed = [False] * len(datastores)
        self._dkey = [domain_key(d.domain) for d in datastores]
        self._member_of: list[list[_Group]] = [[] for _ in datastores]
        self._by_ep: dict[str, list[_Group]] = {}
        self._by_mount: dict[tuple[str, int], list[_Group]] = {}
        self._host_mounts: dict[tuple[str, str], set[int]] = {}
        self._groups_cache: dict[tuple[object, ...], list[_Group]] = {}
        self._verdicts: dict[tuple[Level, frozenset[DomainKey]], dict[DomainKey, int]] = {}
        whole: dict[tuple[str, str, bool, Content], _Group] = {}
        by_mount: dict[tuple[str, str, bool, Content, int], _Group] = {}
        mount_ids: dict[tuple[str, ...], int] = {}
        for i, d in enumerate(datastores):
            if not d.accessible:
                continue  # never a target
            mounts = tuple(sorted(d.hosts))
            mid = mount_ids.setdefault(mounts, len(mount_ids))
            for h in mounts:
                self._host_mounts.setdefault((d.endpoint, h), set()).add(mid)
            g = whole.get((d.endpoint, d.kind, d.shared, d.content))
            if g is None:
                g = whole[(d.endpoint, d.kind, d.shared, d.content)] = _Group(d.kind, d.shared, d.content, i)
                self._by_ep.setdefault(d.endpoint, []).append(g)
            gm = by_mount.get((d.endpoint, d.kind, d.shared, d.content, mid))
            if gm is None:
                gm = by_mount[(d.endpoint, d.kind, d.shared, d.content, mid)] = _Group(d.kind, d.shared, d.content, i)
                self._by_mount.setdefault((d.endpoint, mid), []).append(gm)
            self._member_of[i] = [g, gm]
        for i in range(len(datastores)):
            self.update(i)

    def update(self, i: int) -> None:
        """The room of datastore ``i`` changed: file it again in its groups."""
        groups = self._member_of[i]
        if not groups:
            return
        old, new = self.room[i], self.ledger.potential(i)
        if self._filed[i] and old == new:
            return
        self.room[i] = new
        for g in groups:
            rooms = g.rooms
            if self._filed[i]:
                del rooms[bisect.bisect_left(rooms, (old, i))]
            bisect.insort(rooms, (new, i))
        self._filed[i] = True

    def _groups(self, q: Query) -> list[_Group]:
        """The groups that can hold a target for ``q`` (cached: many VMs share a query shape)."""
        ck = (q.endpoint, q.kinds, q.shared, q.host, q.near, q.content)
        found = self._groups_cache.get(ck)
        if found is not None:
            return found
        source: list[_Group] = []
        if q.host is not None or q.near is not None:
            hosts = {q.host} if q.host is not None else set(q.near or ())
            mids = {m for h in hosts for m in self._host_mounts.get((q.endpoint, h), ())}
            for mid in sorted(mids):
                source += self._by_mount.get((q.endpoint, mid), [])
        else:
            source = self._by_ep.get(q.endpoint, [])
        out = [
            g
            for g in source
            if (q.kinds is None or g.kind in q.kinds)
            and (q.shared is None or g.shared == q.shared)
            and (g.content is None or q.content <= g.content)
        ]
        out.sort(key=lambda g: g.first)
        self._groups_cache[ck] = out
        return out

    def _verdict_of(self, q: Query) -> dict[DomainKey, int] | None:
        """The verdict cache for ``q``'s separation (None: nothing to avoid)."""
        if q.level is None or not q.avoid:
            return None
        vk = (q.level, frozenset(domain_key(a) for a in q.avoid))
        found = self._verdicts.get(vk)
        if found is None:
            found = self._verdicts[vk] = {}
        return found

    def _verdict(self, cache: dict[DomainKey, int], key: DomainKey, q: Query) -> int:
        """May a datastore of domain ``key`` be apart from ``q.avoid``? The model's
        :meth:`~ftbridge.model.FailureDomain.separated_at` on the labels every datastore of that
        domain shares; at datastore level those labels may not be enough: then ask per datastore."""
        v = cache.get(key)
        if v is None:
            assert q.level is not None
            coarse = q.level if q.level is not Level.DATASTORE else Level.ARRAY
            mine = _key_domain(key)
            if all(mine.separated_at(a, coarse) for a in q.avoid):
                v = _OK
            elif q.level is Level.DATASTORE:
                v = _CHECK
            else:
                v = _SKIP
            cache[key] = v
        return v

    def _ok(self, i: int, q: Query, check: bool, accept: Callable[[int], bool] | None) -> bool:
        if i in q.exclude:
            return False
        if check and not all(self.ds[i].domain.separated_at(a, Level.DATASTORE) for a in q.avoid):
            return False
        return accept is None or accept(i)

    def admits(self, i: int, q: Query, accept: Callable[[int], bool] | None = None) -> bool:
        """Would :meth:`find` take datastore ``i`` for ``q`` (room included)? Without a scan."""
        groups = self._member_of[i]
        if not groups or self.ds[i].endpoint != q.endpoint:
            return False
        g = groups[0]
        if q.kinds is not None and g.kind not in q.kinds:
            return False
        if (q.shared is not None and g.shared != q.shared) or (g.content is not None and not q.content <= g.content):
            return False
        if q.host is not None or q.near is not None:
            hosts = {q.host} if q.host is not None else set(q.near or ())
            if not hosts & set(self.ds[i].hosts):
                return False
        self.examined += 1
        cache = self._verdict_of(q)
        v = _OK if cache is None else self._verdict(cache, self._dkey[i], q)
        if v == _SKIP or self.ledger.potential(i, q.pct) < q.need_on(self.ds[i]):
            return False
        return self._ok(i, q, v == _CHECK, accept)

    def find(self, q: Query, accept: Callable[[int], bool] | None = None) -> int | None:
        """A compatible datastore with room for ``q.need`` bytes, or None: the roomiest
        (balance), or where ``tight`` says so the one it fills best (keeps big holes for big items).
        Ties go to the lowest index: the same input gives the same answer."""
        if self.tight is True or (isinstance(self.tight, frozenset) and q.endpoint in self.tight):
            return self._tightest(q, accept)
        best, best_room = None, -1
        least = q.least
        cache = self._verdict_of(q)
        potential, dkey, ds = self.ledger.potential, self._dkey, self.ds
        seen = 0
        for g in self._groups(q):
            rooms = g.rooms
            for k in range(len(rooms) - 1, -1, -1):
                filed, i = rooms[k]
                seen += 1
                if filed < least or filed < best_room:
                    break  # nothing further down can fit or do better
                v = _OK if cache is None else self._verdict(cache, dkey[i], q)
                if v == _SKIP:
                    continue
                room = potential(i, q.pct)
                if room < q.need_on(ds[i]) or room < best_room or (room == best_room and best is not None and i > best):
                    continue
                if self._ok(i, q, v == _CHECK, accept):
                    best, best_room = i, room
        self.examined += seen
        return best

    def _tightest(self, q: Query, accept: Callable[[int], bool] | None) -> int | None:
        best, best_room = None, 1 << 62
        cache = self._verdict_of(q)
        potential, dkey, ds = self.ledger.potential, self._dkey, self.ds
        seen = 0
        for g in self._groups(q):
            rooms = g.rooms
            for k in range(bisect.bisect_left(rooms, (q.least, -1)), len(rooms)):
                filed, i = rooms[k]
                seen += 1
                if filed > best_room:
                    break  # the rest of this group fits worse
                v = _OK if cache is None else self._verdict(cache, dkey[i], q)
                if v == _SKIP:
                    continue
                room = potential(i, q.pct)
                if room < q.need_on(ds[i]) or room > best_room or (room == best_room and best is not None and i > best):
                    continue
                if self._ok(i, q, v == _CHECK, accept):
                    best, best_room = i, room
        self.examined += seen
        return best

    def any_fits(self, q: Query, room: Callable[[int], int], accept: Callable[[int], bool] | None = None) -> bool:
        """Is there a datastore :meth:`find` would take for ``q`` (room aside) where ``room(i)``
        bytes would hold it? For explanations and for deciding whether room the plan took is
        worth a rerun (the planner's ``short_of_room``): looks at every compatible datastore."""
        return next(self.fitting(q, room, accept), None) is not None

    def fitting(
        self, q: Query, room: Callable[[int], int], accept: Callable[[int], bool] | None = None
    ) -> Iterator[int]:
        """The datastores :meth:`find` would take for ``q`` (room aside) where ``room(i)`` bytes
        would hold it, in group order. For explanations and the planner's repair step (which
        makes room where the plan took it): looks at every compatible datastore."""
        cache = self._verdict_of(q)
        for g in self._groups(q):
            for _, i in list(g.rooms):
                self.examined += 1
                if room(i) < q.need_on(self.ds[i]):
                    continue
                v = _OK if cache is None else self._verdict(cache, self._dkey[i], q)
                if v != _SKIP and self._ok(i, q, v == _CHECK, accept):
                    yield i

    def roomiest(self, q: Query, k: int, accept: Callable[[int], bool] | None = None) -> list[int]:
        """The ``k`` datastores :meth:`find` would take for ``q`` but for room, those with the
        most room first (ties: lowest index): where the least must be freed to make room.
        Each group is read from its roomiest down and left at the ``k``-th it accepts: what it
        passes over on the way (datastores in a domain to avoid, or refused by ``accept``) is
        its cost, as for :meth:`find`."""
        cache = self._verdict_of(q)
        found: list[tuple[int, int]] = []
        for g in self._groups(q):
            rooms, taken = g.rooms, 0
            for pos in range(len(rooms) - 1, -1, -1):
                if taken >= k:
                    break
                _, i = rooms[pos]
                self.examined += 1
                v = _OK if cache is None else self._verdict(cache, self._dkey[i], q)
                if v != _SKIP and self._ok(i, q, v == _CHECK, accept):
                    found.append((-self.ledger.potential(i, q.pct), i))
                    taken += 1
        return [i for _, i in sorted(found)[:k]]

    def survey(self, q: Query, accept: Callable[[int], bool] | None = None) -> tuple[int, int | None, int]:
        """For explanations: (compatible datastores seen, 0 when there is none at all; the one
        with the most room; its room). Stops once nothing further can have more room."""
        count, best, best_room = 0, None, -(1 << 62)
        cache = self._verdict_of(q)
        for g in self._groups(q):
            rooms = g.rooms
            for k in range(len(rooms) - 1, -1, -1):
                filed, i = rooms[k]
                self.examined += 1
                if count and filed < best_room:
                    break
                v = _OK if cache is None else self._verdict(cache, self._dkey[i], q)
                if v == _SKIP or not self._ok(i, q, v == _CHECK, accept):
                    continue
                count += 1
                room = self.ledger.potential(i, q.pct)
                if room > best_room or (room == best_room and best is not None and i < best):
                    best, best_room = i, room
        return count, best, best_room
