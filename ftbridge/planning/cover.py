"""Which items to take so that they free at least a given amount, with the least taken.

The headroom pass asks which disks leave a datastore over its headroom (:func:`choose_cover`);
the repair step, which of this plan's placements to lift from a datastore (:func:`min_cover`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import TypeVar

#: above this many distinct sums, :func:`min_cover` settles for its greedy answer
EXACT_STATES = 50_000
#: :func:`choose_cover` tries every set that frees enough (fewest bytes first, at most
#: COVER_TRIES) when there are at most this many candidates and the first does not fit
EXACT_COVER = 12
COVER_TRIES = 64

#: a candidate: (bytes, key, anything, anything); only the bytes and the key are looked at
Cand = TypeVar("Cand", bound=tuple[int, str, object, str])


def choose_cover(cands: list[Cand], need: int, attempt: Callable[[list[Cand]], str | None]) -> tuple[bool, set[str]]:
    """Which disks leave a datastore over its headroom: the set of ``cands`` that frees at least
    ``need`` bytes with the fewest bytes (:func:`min_cover`) *and* finds room elsewhere
    (``attempt`` plans it, or names the disk that found none and takes everything back).

    The fewest-bytes set is tried first. When it does not fit: with at most
    :data:`EXACT_COVER` candidates, every set that frees enough, fewest bytes first (ties: the
    lexically first keys), at most :data:`COVER_TRIES` of them; beyond that, greedy: the disk
    that found no room is left out and the fewest-bytes set of the rest tried, once per
    candidate. Returns (planned, the disks left out)."""
    banned: set[str] = set()
    first = min_cover([c[0] for c in cands], need)
    if first is None:
        return False, banned
    failed = attempt([cands[k] for k in first])
    if failed is None:
        return True, banned
    banned.add(failed)
    if len(cands) <= EXACT_COVER:
        sets = sorted(
            (sum(cands[k][0] for k in combo), [cands[k][1] for k in combo], combo)
            for r in range(1, len(cands) + 1)
            for combo in combinations(range(len(cands)), r)
            if sum(cands[k][0] for k in combo) >= need
        )
        for _, _, combo in [x for x in sets if list(x[2]) != sorted(first)][: COVER_TRIES - 1]:
            if attempt([cands[k] for k in combo]) is None:
                return True, set()
        return False, banned
    for _ in range(len(cands)):
        live = [c for c in cands if c[1] not in banned]
        chosen = min_cover([c[0] for c in live], need)
        if chosen is None:
            break
        failed = attempt([live[k] for k in chosen])
        if failed is None:
            return True, banned
        banned.add(failed)
    return False, banned


def min_cover(sizes: Sequence[int], need: int) -> list[int] | None:
    """Indexes of ``sizes`` whose sum is at least ``need`` and as small as possible.

    Exact subset-sum (sums reached, each with the item that first reached it) while the number
    of distinct sums stays small; otherwise the better of "one item big enough" and "largest
    first, then drop what is not needed".
    """
    if need <= 0:
        return []
    if sum(sizes) < need:
        return None
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k], k))
    # greedy upper bound
    greedy: list[int] = []
    acc = 0
    for k in order:
        if acc >= need:
            break
        greedy.append(k)
        acc += sizes[k]
    for k in sorted(greedy, key=lambda k: (sizes[k], k)):
        if acc - sizes[k] >= need:
            greedy.remove(k)
            acc -= sizes[k]
    best_sum, best = acc, greedy
    singles = [k for k in order if sizes[k] >= need]
    if singles:
        k = min(singles, key=lambda k: (sizes[k], k))
        if sizes[k] < best_sum:
            best_sum, best = sizes[k], [k]
    if best_sum == need:
        return sorted(best)
    reached: dict[int, tuple[int, int]] = {0: (-1, -1)}  # sum -> (item, previous sum)
    for k in order:
        s = sizes[k]
        for total in list(reached):
            if total >= need:
                continue
            new = total + s
            if new >= best_sum or new in reached:
                continue
            reached[new] = (k, total)
            if new >= need:
                best_sum = new
        if len(reached) > EXACT_STATES:
            return sorted(best)
    if best_sum not in reached:
        return sorted(best)
    out = []
    total = best_sum
    while total:
        k, total = reached[total]
        out.append(k)
    return sorted(out)
