"""Stopping on a signal: the handler runs in the main thread, which may hold the stop event's
own lock right then (inside ``Event.wait``). Setting the event there deadlocked an oVirt lab
asked to stop with Ctrl-C; ``set_from_handler`` must never block its caller."""

from __future__ import annotations

import threading

from ftbridge.signalsafe import set_from_handler


def test_setting_the_event_while_holding_its_lock_does_not_block() -> None:
    stop = threading.Event()
    returned = threading.Event()

    def handler_inside_a_wait() -> None:
        with stop._cond:  # type: ignore[attr-defined]  # as Event.wait holds it before it lets go
            set_from_handler(stop)  # Event.set() here would wait for this thread's own lock
            returned.set()

    threading.Thread(target=handler_inside_a_wait, daemon=True).start()
    assert returned.wait(60), "the handler blocked on the lock its own thread holds"
    assert stop.wait(60)  # set once the lock was let go
