"""Finding a target datastore without scanning every datastore for every VM.

Datastores are grouped in *buckets* of the same endpoint, failure domain (site, room, array),
kind, sharing and content types (and, in a second view, the same set of mounting hosts). Separation from a
primary, the kinds a mechanism accepts and "mounted by this host" are properties of a whole
bucket, so a query first picks the compatible buckets (cached: thousands of VMs share a
query shape), then looks at the top of each bucket's max-heap of room. A query costs about
the number of compatible buckets, not the number of datastores; that keeps 100k VMs over
2k datastores close to linear.

Heaps are lazy: a datastore whose room changed gets a fresh entry with a new version, and
stale entries are dropped when they surface.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass

from ftbridge.model import Datastore, FailureDomain, Level
from ftbridge.planning.ledger import SpaceLedger

DomainKey = tuple[str | None, str | None, str | None]  # site, room, array
Content = frozenset[str] | None


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


class _Bucket:
    __slots__ = ("key", "heap", "rooms", "members")

    def __init__(self, key: DomainKey) -> None:
        self.key = key
        self.heap: list[tuple[int, int, int]] = []  # (-room, ds index, version): roomiest first
        self.rooms: list[tuple[int, int]] = []  # (room, ds index), sorted: best fit by bisection
        self.members: list[int] = []


class CandidateIndex:
    """Target datastores by domain, kind, sharing and mounting host, best room first."""

    def __init__(self, datastores: list[Datastore], ledger: SpaceLedger, *, tight: bool = False) -> None:
        self.tight = tight
        self.ds = datastores
        self.ledger = ledger
        self.version = [0] * len(datastores)
        self.room = [0] * len(datastores)  # the room each datastore is filed under
        self._any: dict[tuple[str, DomainKey, str, bool, Content], _Bucket] = {}
        self._by_mount: dict[tuple[str, DomainKey, str, bool, Content, int], _Bucket] = {}
        self._mount_ids: dict[tuple[str, ...], int] = {}
        self._host_mounts: dict[tuple[str, str], set[int]] = {}
        self._member_of: list[list[_Bucket]] = [[] for _ in datastores]
        self._compat: dict[tuple[object, ...], list[tuple[_Bucket, bool]]] = {}
        self._any_by_ep: dict[str, list[tuple[tuple[str, DomainKey, str, bool, Content], _Bucket]]] = {}
        self._mount_by_id: dict[
            tuple[str, int], list[tuple[tuple[str, DomainKey, str, bool, Content, int], _Bucket]]
        ] = {}
        for i, d in enumerate(datastores):
            if not d.accessible:
                continue  # never a target
            key = domain_key(d.domain)
            mounts = tuple(sorted(d.hosts))
            mid = self._mount_ids.setdefault(mounts, len(self._mount_ids))
            for h in mounts:
                self._host_mounts.setdefault((d.endpoint, h), set()).add(mid)
            for bucket in (
                self._any.setdefault((d.endpoint, key, d.kind, d.shared, d.content), _Bucket(key)),
                self._by_mount.setdefault((d.endpoint, key, d.kind, d.shared, d.content, mid), _Bucket(key)),
            ):
                bucket.members.append(i)
                self._member_of[i].append(bucket)
        for k, b in self._any.items():
            self._any_by_ep.setdefault(k[0], []).append((k, b))
        for km, b in self._by_mount.items():
            self._mount_by_id.setdefault((km[0], km[5]), []).append((km, b))
        for i in range(len(datastores)):
            self.update(i)

    def update(self, i: int) -> None:
        """The room of datastore ``i`` changed: file it again in its buckets."""
        if not self._member_of[i]:
            return
        self.version[i] += 1
        old, new = self.room[i], self.ledger.potential(i)
        self.room[i] = new
        entry = (-new, i, self.version[i])
        for b in self._member_of[i]:
            if self.tight:
                if self.version[i] > 1:
                    del b.rooms[bisect.bisect_left(b.rooms, (old, i))]
                bisect.insort(b.rooms, (new, i))
                continue
            heapq.heappush(b.heap, entry)
            if len(b.heap) > 4 * len(b.members) + 64:
                self._compact(b)

    def _compact(self, b: _Bucket) -> None:
        b.heap = [(-self.ledger.potential(i), i, self.version[i]) for i in b.members]
        heapq.heapify(b.heap)

    def _compatible(self, q: Query) -> list[tuple[_Bucket, bool]]:
        """Buckets that can hold a target for ``q``; the flag: check separation per datastore."""
        avoid_keys = frozenset(domain_key(a) for a in q.avoid)
        ck = (q.endpoint, q.level, avoid_keys, q.kinds, q.shared, q.host, q.near, q.content)
        found = self._compat.get(ck)
        if found is not None:
            return found
        source: list[tuple[tuple[object, ...], _Bucket]] = []
        if q.host is not None or q.near is not None:
            hosts = {q.host} if q.host is not None else set(q.near or ())
            mids = {m for h in hosts for m in self._host_mounts.get((q.endpoint, h), ())}
            for mid in sorted(mids):
                source += self._mount_by_id.get((q.endpoint, mid), [])
        else:
            source += self._any_by_ep.get(q.endpoint, [])
        out: list[tuple[_Bucket, bool]] = []
        for k, b in source:
            kind, shared, content = k[2], k[3], k[4]
            assert content is None or isinstance(content, frozenset)
            if q.kinds is not None and kind not in q.kinds:
                continue
            if q.shared is not None and shared != q.shared:
                continue
            if content is not None and not q.content <= content:
                continue
            if q.level is None or not avoid_keys:
                out.append((b, False))
                continue
            coarse = q.level if q.level is not Level.DATASTORE else Level.ARRAY
            mine = _key_domain(b.key)
            if all(mine.separated_at(_key_domain(a), coarse) for a in avoid_keys):
                out.append((b, False))
            elif q.level is Level.DATASTORE:
                out.append((b, True))  # separated only if the datastore labels differ
        out.sort(key=lambda x: min(x[0].members))
        self._compat[ck] = out
        return out

    def _ok(self, i: int, q: Query, check: bool, accept: Callable[[int], bool] | None) -> bool:
        if i in q.exclude:
            return False
        if check and not all(self.ds[i].domain.separated_at(a, Level.DATASTORE) for a in q.avoid):
            return False
        return accept is None or accept(i)

    def find(self, q: Query, accept: Callable[[int], bool] | None = None) -> int | None:
        """A compatible datastore with room for ``q.need`` bytes, or None: the roomiest
        (balance), or with ``tight`` set the one it fills best (keeps big holes for big items)."""
        if self.tight:
            return self._tightest(q, accept)
        best, best_room = None, -1
        least = q.least
        heappop, heappush = heapq.heappop, heapq.heappush
        for b, check in self._compatible(q):
            heap = b.heap
            aside: list[tuple[int, int, int]] = []
            while heap:
                negroom, i, ver = heap[0]
                if ver != self.version[i]:
                    heappop(heap)
                    continue
                if -negroom < least or -negroom < best_room:
                    break  # nothing further down this heap can fit or do better
                room = self.ledger.potential(i, q.pct)
                if room >= q.need_on(self.ds[i]) and self._ok(i, q, check, accept):
                    if room > best_room or (room == best_room and best is not None and i < best):
                        best, best_room = i, room
                    break
                aside.append(heappop(heap))
            for e in aside:
                heappush(heap, e)
        return best

    def _tightest(self, q: Query, accept: Callable[[int], bool] | None) -> int | None:
        best, best_room = None, 1 << 62
        for b, check in self._compatible(q):
            rooms = b.rooms
            for k in range(bisect.bisect_left(rooms, (q.least, -1)), len(rooms)):
                filed, i = rooms[k]
                if filed > best_room:
                    break  # the rest of this bucket fits worse
                room = self.ledger.potential(i, q.pct)
                if room >= q.need_on(self.ds[i]) and self._ok(i, q, check, accept):
                    if room < best_room or (room == best_room and best is not None and i < best):
                        best, best_room = i, room
                    break
        return best

    def survey(self, q: Query, accept: Callable[[int], bool] | None = None) -> tuple[int, int | None, int]:
        """For explanations: (compatible datastores, the one with the most room, its room)."""
        count, best, best_room = 0, None, -(1 << 62)
        for b, check in self._compatible(q):
            if not check and accept is None and not q.exclude and self.tight:
                count += len(b.members)
                if b.rooms:
                    i = b.rooms[-1][1]
                    room = self.ledger.potential(i, q.pct)
                    if room > best_room:
                        best, best_room = i, room
                continue
            if not check and accept is None and not q.exclude:
                # cheap path: the top of the heap is the roomiest member
                heap = b.heap
                while heap and heap[0][2] != self.version[heap[0][1]]:
                    heapq.heappop(heap)
                count += len(b.members)
                if heap:
                    i = heap[0][1]
                    room = self.ledger.potential(i, q.pct)
                    if room > best_room:
                        best, best_room = i, room
                continue
            for i in b.members:
                if not self._ok(i, q, check, accept):
                    continue
                count += 1
                room = self.ledger.potential(i, q.pct)
                if room > best_room:
                    best, best_room = i, room
        return count, best, best_room
