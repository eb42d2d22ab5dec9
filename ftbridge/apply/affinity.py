"""Running an apply's threads on one CPU when the platform itself runs in this interpreter.

Why: an in-process platform (the sim: :attr:`ftbridge.drivers.base.Driver.in_process`) does its
work in the apply's own threads, and each of its many short SQLite calls lets go of CPython's
interpreter lock. With a second CPU free, another thread takes the lock on that CPU at once,
and the first blocks when it comes back: the lock crosses CPUs at every such call. In a
10,000-VM failover on the sim the apply's workers made 270,000 voluntary context switches on
two CPUs against 75,000 on one, and used twice the CPU (15.3 s against 7.5 s; ftbridge's own
9.2 s against 4.1 s, wall 16 s against 9.4 s: ``contrib/bench/failover_scale.py``). Only one
thread runs Python at a time anyway, so one CPU loses nothing. Against a remote platform the
threads wait on sockets and hand the lock over once per request: nothing is pinned there.

The calling thread is pinned for the block and given its former CPUs back at the end; the
threads it starts meanwhile (the apply's workers, and the journal's flush timers they start)
inherit the one CPU, as Linux threads inherit their creator's. Linux only
(``sched_setaffinity``); elsewhere, or where the kernel refuses (a cpuset that changed under
us), the run goes unpinned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def _current_cpu() -> int | None:
    """The CPU this thread runs on now (field 39 of ``/proc/thread-self/stat``): two pinned
    processes on one machine then do not all crowd onto the first CPU."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            after_name = f.read().rsplit(b")", 1)[1].split()  # fields 3 onwards
        return int(after_name[39 - 3])
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def one_cpu(wanted: bool) -> Iterator[None]:
    """With ``wanted``, run the calling thread (and the threads it starts inside) on the CPU it
    runs on now; its former CPUs are given back however the block ends."""
    if not wanted or not hasattr(os, "sched_setaffinity"):
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        cpu = _current_cpu()
        os.sched_setaffinity(0, {cpu if cpu in before else min(before)})
    except OSError:
        yield  # refused: unpinned
        return
    try:
        yield
    finally:
        try:
            os.sched_setaffinity(0, before)
        except OSError:
            pass
