"""Acting on a signal on a thread of its own: never inside a handler, never late.

Three ways a stop request went unanswered, each seen here:

* **A handler that waits for a lock.** A Python-level handler runs in the main thread between
  two bytecodes, possibly while that thread holds a lock the handler's work needs.
  ``Event.set()`` there, while the main thread was inside ``Event.wait`` after taking the
  event's lock, waited forever (a lab asked to stop with Ctrl-C, still serving an hour later).
* **A handler that prints** while the main thread is half way through a write to the same
  buffered stream: CPython raises ``RuntimeError: reentrant call`` into whatever the main
  thread was doing (the ``signal`` module's documentation warns of it).
* **A handler that never runs.** Python-level handlers run only in the main thread, once it
  runs Python again. The kernel may deliver a process's signal to any of its threads; when it
  picks another one, a main thread blocked in a queue's ``get()`` stays asleep. An apply sent
  SIGTERM while its workers waited on long operations kept running (caught by
  ``py-spy dump``: no handler had run, the main thread asleep in ``_Workers.finished``).
  The tests that send signals to a run hung 3 times in about 15 runs here before this
  design (each ended by the test's own bound), and in none of 33 runs after it.

So the interpreter's own C-level handler, which runs at once in whichever thread got the
signal, is what is listened to: it writes the signal's number to a pipe
(``signal.set_wakeup_fd``), and one daemon thread, started when the handlers are installed,
reads it and runs the callbacks in the order the signals came. The Python-level handler does
nothing; it only stands in for the default one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any


class _Relay:
    """The thread that runs the callbacks, in the order the signals came.

    It reads the signal numbers the interpreter's own C-level handler writes to the wakeup
    pipe (``signal.set_wakeup_fd``) the moment a signal lands, in whichever thread the kernel
    delivered it to. A Python-level handler alone runs only once the main thread runs
    Python again: a signal delivered to another thread leaves a main thread blocked in a
    queue's ``get()`` (an apply waiting for its next action to end) asleep, so a SIGTERM sent
    while a long operation was in flight went unanswered until that operation ended."""

    def __init__(self) -> None:
        self._r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)  # the main thread only (ValueError)
        self.callbacks: dict[int, Callable[[int], None]] = {}
        threading.Thread(target=self._run, name="ftbridge-signals", daemon=True).start()

    def _run(self) -> None:
        while True:
            for signum in os.read(self._r, 512):
                callback = self.callbacks.get(signum)
                if callback is None:
                    continue  # a signal some other handler answers (the pipe hears them all)
                try:
                    callback(signum)
                except Exception:  # a bug in one callback must not leave later signals unanswered
                    logging.getLogger(__name__).exception("a signal's callback failed")


_relay: _Relay | None = None
_relay_lock = threading.Lock()


def _started() -> _Relay:
    global _relay
    with _relay_lock:
        if _relay is None:
            _relay = _Relay()
        return _relay


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the relay has already heard the signal from the wakeup pipe;
    this one only stands in for the default (which would end the process or raise
    ``KeyboardInterrupt``)."""


@dataclass
class Installed:
    """What :func:`on_signals` replaced, to put back with :meth:`restore`."""

    handlers: dict[int, Any]
    callbacks: dict[int, Callable[[int], None] | None]

    def restore(self) -> None:
        """Put back the handlers and callbacks that were there before (main thread only)."""
        relay = _started()
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
            callback = self.callbacks.get(sig)
            if callback is None:
                relay.callbacks.pop(sig, None)
            else:
                relay.callbacks[sig] = callback


def on_signals(signals: Iterable[int], callback: Callable[[int], None]) -> Installed:
    """Run ``callback(signum)`` on the relay thread, soon after each of ``signals`` arrives,
    never inside a signal handler and whatever the main thread is waiting for.

    Receives: the signals, and what to do for each (it runs on another thread: it may take
    locks, print, set events, or end the process with ``os._exit``). Returns what it replaced
    (:meth:`Installed.restore` puts it back). Raises ``ValueError`` outside the main thread
    (``signal.signal`` and ``signal.set_wakeup_fd`` work there only). Call it from ordinary
    code, not from a handler: it may start the relay thread. The wakeup pipe is the process's
    only one: code that sets its own (asyncio's ``add_signal_handler`` does) takes it over, and
    the callbacks go quiet; nothing in ftbridge does."""
    relay = _started()
    sigs = list(signals)
    before = Installed({}, {sig: relay.callbacks.get(sig) for sig in sigs})
    for sig in sigs:
        relay.callbacks[sig] = callback
        before.handlers[sig] = signal.signal(sig, _noted)
    return before


def set_on_signals(signals: Iterable[int], event: threading.Event) -> Installed:
    """:func:`on_signals` that sets ``event`` (a stop request), whichever signal came."""
    return on_signals(signals, lambda _signum: event.set())
