"""Setting a :class:`threading.Event` from a signal handler, safely.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds the event's own lock: inside ``Event.wait``, after taking the lock and before the
wait lets it go. ``Event.set()`` there waits for that lock forever. A lab asked to stop with
Ctrl-C hung that way (seen under load: still serving an hour later). A short-lived thread sets
the event instead, once the main thread's wait has let the lock go.
"""

from __future__ import annotations

import threading


def set_from_handler(event: threading.Event) -> None:
    """Set ``event``, soon, from a signal handler (or anywhere): never blocks the caller."""
    threading.Thread(target=event.set, name="ftbridge-signal", daemon=True).start()
