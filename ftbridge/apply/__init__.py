"""Apply: carry a plan out through the drivers, safely, with a journal to resume from.

:func:`apply_plan` is the service; it reports progress through an event callback and never
prints. See :mod:`ftbridge.apply.service` for the order of checks, :mod:`.steps` for what one
action does, :mod:`.scheduler` for ordering and concurrency (and :mod:`.affinity` for why a
run on in-process platforms keeps to one CPU), :mod:`.journal` for the SQLite journal (and its
fault-injection hook), :mod:`.locks` for the estate lock.
"""

from ftbridge.apply.events import ApplyEvent, EventSink
from ftbridge.apply.journal import CRASH_ENV, Journal
from ftbridge.apply.locks import EstateLock
from ftbridge.apply.service import ApplyResult, ConfirmationRequired, apply_plan
from ftbridge.apply.steps import Outcome, Settings

__all__ = [
    "CRASH_ENV",
    "ApplyEvent",
    "ApplyResult",
    "ConfirmationRequired",
    "EstateLock",
    "EventSink",
    "Journal",
    "Outcome",
    "Settings",
    "apply_plan",
]
